"""Where a single-account `POST /v1/evaluate` round trip goes, step by step, on the service's real HTTP stack.

The app (`create_app` on a temp data dir seeded with the shipped rules, access log off as in bench/http.py) is
served on threads of this process by `server.dispatch.build`: waitress with the patient dispatcher and the quiet
connection, as `kam serve` runs it. One keep-alive client in another process sends `--requests` single-account
requests one after another (each one of `--distinct` accounts, in turn). Marks are taken on both sides with
`time.perf_counter` (CLOCK_MONOTONIC: one clock for both processes on Linux), and each step is the time between
two marks, its median over the requests:

    the client sends         -> waitress's main loop has the bytes      (`HTTPChannel.received`, first call)
    -> parsed and queued                                                  (the dispatcher's `add_task`)
    -> a task thread takes the connection                                 (`HTTPChannel.service`)
    -> its task made, the WSGI environ built and the app called           (the app is entered)
    -> the app's answer (the evaluate lane, or Flask)                     (the app returns)
    -> the answer written to the socket                                   (the request's last `write_soon` returns)
    -> the client has read it all.

So the app's share of a latency figure shows beside what the stack and the loopback client cost. The medians of
the steps need not add up to the median round trip; both are printed. Each mark is a wrapper around a waitress
method (about a microsecond each, inside the steps they bound).

    python bench/stack.py [--requests 3000] [--distinct 1000] [--threads 4]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as `python bench/stack.py`, this file's folder leads sys.path, and its http.py would stand in for `http`.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import bisect  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

WARM = 200  # requests sent before the ones measured (each worker thread's first use, caches filled)

STEPS = [  # (mark the step starts at, mark it ends at, what it is)
    ("sent", "received", "client sends -> the server's loop has the bytes"),
    ("received", "queued", "request parsed and queued (waitress)"),
    ("queued", "taken", "a task thread takes it (dispatcher)"),
    ("taken", "app_in", "WSGI environ built, app called (waitress)"),
    ("app_in", "app_out", "the app: evaluate lane (token, rules, decision log)"),
    ("app_out", "written", "answer written to the socket (waitress)"),
    ("written", "done", "written -> the client has read it all"),
]


def client(port: int, token: str, bodies: list[bytes], count: int, results: Any) -> None:
    """One keep-alive connection, `count` requests in turn: each one's (sent, done) marks, to `results`."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    marks = []
    for i in range(count):
        sent = time.perf_counter()
        conn.request("POST", "/v1/evaluate", body=bodies[i % len(bodies)], headers=headers)
        response = conn.getresponse()
        payload = response.read()
        done = time.perf_counter()
        if response.status != 200:
            raise SystemExit(f"HTTP {response.status}: {payload[:300]!r}")
        marks.append((sent, done))
    conn.close()
    results.put(marks)


class Marks:
    """Times at which the wrapped methods were called (or returned), by name; appended from any thread."""

    def __init__(self) -> None:
        self.at: dict[str, list[float]] = {name: [] for name in ("received", "queued", "taken", "app_in", "app_out",
                                                                   "written")}

    def wrap(self, owner: type, method: str, name: str, after: bool = False) -> None:
        """Mark `name` on each call of owner.method (when it returns, with `after`)."""
        original: Callable[..., Any] = getattr(owner, method)
        times = self.at[name]

        def marked(*args: Any, **kwargs: Any) -> Any:
            if not after:
                times.append(time.perf_counter())
                return original(*args, **kwargs)
            try:
                return original(*args, **kwargs)
            finally:
                times.append(time.perf_counter())

        setattr(owner, method, marked)

    def app(self, app: Callable[..., Any]) -> Callable[..., Any]:
        """The WSGI app, marked when called and when it returns its answer."""
        called, answered = self.at["app_in"], self.at["app_out"]

        def marked(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            called.append(time.perf_counter())
            try:
                return app(environ, start_response)
            finally:
                answered.append(time.perf_counter())

        return marked


def steps_of(marks: Marks, rounds: list[tuple[float, float]]) -> tuple[dict[str, list[float]], int]:
    """Per request (its client's sent / done window), each step's milliseconds; and how many requests lacked a
    mark (left out). Within a window: the first `received`, the last of the others (a request's header and body
    are two writes)."""
    found: dict[str, list[float]] = {label: [] for _, _, label in STEPS}
    lacking = 0
    at = {name: sorted(times) for name, times in marks.at.items()}
    for sent, done in rounds:
        request = {"sent": sent, "done": done}
        for name, times in at.items():
            lo, hi = bisect.bisect_left(times, sent), bisect.bisect_right(times, done)
            if lo < hi:
                request[name] = times[lo] if name == "received" else times[hi - 1]
        if len(request) != len(at) + 2:
            lacking += 1
            continue
        for start, end, label in STEPS:
            found[label].append((request[end] - request[start]) * 1000)
    return found, lacking


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="requests measured (after a warm-up)")
    parser.add_argument("--distinct", type=int, default=1000, help="different accounts the requests take in turn")
    parser.add_argument("--threads", type=int, default=4, help="waitress task threads (kam serve's default)")
    args = parser.parse_args(argv)

    from waitress.channel import HTTPChannel

    from kamcore.demo import synthetic_portfolio
    from server import channel, create_app, dispatch

    data = Path(tempfile.mkdtemp(prefix="kam-bench-stack-"))
    server = None
    try:
        app = create_app({"data_dir": data / "data", "access_log": False, "events_sweep_s": 0})
        token = app.extensions["kam"].tokens.create("bench", "viewer")
        app.extensions["kam"].rules.book()  # compiled now, not in the first request
        bodies = [json.dumps({"accounts": [account]}).encode() for account in json.loads(synthetic_portfolio(
            max(1, args.distinct), seed=11).to_json(orient="records", date_format="iso"))]
        marks = Marks()
        marks.wrap(HTTPChannel, "received", "received")
        marks.wrap(dispatch.PatientDispatcher, "add_task", "queued")
        marks.wrap(HTTPChannel, "service", "taken")
        marks.wrap(channel.QuietChannel, "write_soon", "written", after=True)
        server = dispatch.build(marks.app(app), args.threads, host="127.0.0.1", port=0, ident="kam-bench")
        threading.Thread(target=server.run, name="kam-bench-loop", daemon=True).start()

        spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: this one has threads running
        results = spawn.Queue()
        child = spawn.Process(target=client, args=(server.effective_port, token, bodies, WARM + args.requests,
                                                   results))
        child.start()
        rounds = results.get(timeout=600)
        child.join(30)
        if child.exitcode != 0:
            raise SystemExit(f"the client failed (exit code {child.exitcode})")
        measured = rounds[WARM:]
        found, lacking = steps_of(marks, measured)
        trip = statistics.median((done - sent) * 1000 for sent, done in measured)
        print(f"single-account POST /v1/evaluate over one keep-alive connection, {len(measured):,} requests (of "
              f"{len(bodies):,} distinct accounts), {args.threads} task threads: round trip p50 {trip:.3f} ms")
        if lacking:
            print(f"  ({lacking} requests lacked a mark and are left out)")
        total = 0.0
        for _, _, label in STEPS:
            if not found[label]:
                counts = {name: len(times) for name, times in marks.at.items()}
                raise SystemExit(f"no request had every mark (marks taken: {counts})")
            step = statistics.median(found[label])
            total += step
            print(f"  {label:55s} {step:7.3f} ms")
        print(f"  {'(the steps medians, added up)':55s} {total:7.3f} ms")
        stack = sum(statistics.median(found[label]) for start, _, label in STEPS if start not in ("sent", "written",
                                                                                                    "app_in"))
        print(f"  the server outside the app: {stack:.3f} ms a request")
    finally:
        if server is not None:
            server.close()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
