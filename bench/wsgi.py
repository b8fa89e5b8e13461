"""Benchmark: the service's own CPU per single-account `POST /v1/evaluate`, without a network or a WSGI server.

The app is called directly as a WSGI callable with a hand-built environ (bearer token, JSON body of one
synthetic account, access log off), so what is timed is the server layer and the engine: the evaluate lane
(server/lane.py) answers such a request in front of Flask. Prints the per-request CPU p50 (`time.thread_time`),
and from a cProfile run the share of the request spent outside the engine: the request's time minus the time in
kamcore calls made from outside kamcore (the engine's evaluation, decision log, rule store reads), i.e. server/,
and Flask, werkzeug and flask-smorest where they answer.

Optionally against an earlier revision of the service (its `server` and `kamcore` packages and rule book,
`git archive`d), and with `--no-lane` this tree with the lane off (through Flask), run in interleaved
subprocesses, so a before / after figure comes from one run under the same load:

    python bench/wsgi.py [--calls 1500] [--rounds 3] [--against REV] [--no-lane] [--profile]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import collections, cProfile, io, json, pstats, shutil, statistics, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from kamcore.demo import synthetic_portfolio
from server import create_app
calls, profile, lane = int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
data = Path(tempfile.mkdtemp())
config = {"data_dir": data / "data", "access_log": False, "events_sweep_s": 0, "token_memory_kib": 1024}
if lane == "off":  # (a revision before the lane has no such setting)
    config["evaluate_lane"] = False
app = create_app(config)
token = app.extensions["kam"].tokens.create("bench", "viewer")
accounts = json.loads(synthetic_portfolio(1, seed=11).to_json(orient="records", date_format="iso"))
body = json.dumps({"accounts": accounts}).encode()

def environ():
    return {"REQUEST_METHOD": "POST", "PATH_INFO": "/v1/evaluate", "QUERY_STRING": "", "SERVER_NAME": "x",
            "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
            "wsgi.multiprocess": False, "wsgi.run_once": False, "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)), "HTTP_AUTHORIZATION": f"Bearer {token}", "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "x"}

status = []
def start_response(s, h, e=None):
    status.append(s)

def post():
    out = b"".join(app(environ(), start_response))
    assert status[-1].startswith("200"), out

for _ in range(300):
    post()
cpu = []
for _ in range(calls):
    t = time.thread_time()
    post()
    cpu.append((time.thread_time() - t) * 1000)
result = {"cpu_p50": statistics.median(cpu)}
if profile:
    pr = cProfile.Profile(time.thread_time)
    pr.enable()
    for _ in range(1000):
        post()
    pr.disable()
    stats = pstats.Stats(pr).stats
    engine = lambda file: "/kamcore/" in file
    total = sum(ct for (file, _, fn), (_, _, _, ct, _) in stats.items() if fn == "post" and file == "<string>")
    inside = 0.0  # kamcore functions' cumulative time, counted where the server layer calls them
    for (file, _, _), (_, _, _, _, callers) in stats.items():
        if engine(file):
            inside += sum(c[3] for caller, c in callers.items() if "/server/" in caller[0])
    groups = collections.Counter()
    for (file, _, fn), (_, _, tt, _, _) in stats.items():
        if "site-packages/" in file:
            groups[file.split("site-packages/")[1].split("/")[0]] += tt
        elif "/server/" in file:
            groups["server/" + file.split("/server/")[1]] += tt
    result.update(total_ms=total, engine_ms=inside, server_share=1 - inside / total,
                  groups={g: t for g, t in groups.most_common(12) if g != "kamcore"})
shutil.rmtree(data)
print(json.dumps(result))
"""


def measure(source: Path, calls: int, profile: bool, lane: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(source), str(calls), "1" if profile else "0", lane],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def export(revision: str, into: Path) -> Path:
    """The service (server, kamcore, the shipped rule book) at `revision`, unpacked under `into`."""
    archive = into / "service.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), revision, "kamcore", "server", "rules"],
                   check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1500, help="timed requests per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (one subprocess per tree per round)")
    parser.add_argument("--against", metavar="REV", help="also time the service at this git revision")
    parser.add_argument("--profile", action="store_true",
                        help="also profile 1,000 requests: the share outside the engine (cProfile inflates it)")
    parser.add_argument("--no-lane", action="store_true",
                        help="also time this tree with the evaluate lane off (server/lane.py): Flask's own path")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this tree": ROOT}
        if args.against:
            trees = {args.against: export(args.against, Path(tmp)), **trees}
        if args.no_lane:
            trees = {"no lane": ROOT, **trees}
        runs: dict[str, list[dict]] = {name: [] for name in trees}
        for r in range(args.rounds):  # interleaved, so drift on a shared machine hits every tree alike
            for name, source in trees.items():
                run = measure(source, args.calls, args.profile, "off" if name.endswith("no lane") else "on")
                runs[name].append(run)
                share = f"  outside the engine {run['server_share']:.1%} (cProfile)" if args.profile else ""
                print(f"round {r + 1}: {name:>12}  raw WSGI cpu p50 {run['cpu_p50']:.3f} ms{share}", flush=True)
    print()
    for name, rs in runs.items():
        cpu = statistics.median(r["cpu_p50"] for r in rs)
        line = f"{name:>12}: median of {args.rounds} round p50s {cpu:.3f} ms CPU"
        if args.profile:
            line += f", outside the engine {statistics.median(r['server_share'] for r in rs):.1%} of the request"
            groups = rs[-1]["groups"]
            total = rs[-1]["total_ms"]
            line += "\n              " + ", ".join(f"{g} {t / total:.1%}" for g, t in groups.items())
        print(line)


if __name__ == "__main__":
    main()
