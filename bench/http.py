"""HTTP benchmark: a real `kam serve` (waitress, `--workers` processes) on loopback, driven by `wrk`.

Reports single-account evaluate latency (p50 / p99 over one keep-alive connection, `wrk --latency`), requests/s
with `--clients` concurrent connections, and the server time (`Server-Timing`) of a 10,000-row batch: its first
three on their own, then the median of seven more.
For the concurrent run it also reports how many cores the server kept busy (CPU seconds of `kam serve` and its
workers, from /proc, over wall time) and its CPU milliseconds per request: "2.0 of 2 cores" is a saturated server,
well under that is a server left idle (by its clients, or by connections piled onto one worker); and the app's own
CPU per request (`Server-Timing` cpu, p50), so that the rest is what the HTTP stack costs under load. Then the same for
`GET /healthz` (the HTTP stack with no work behind it: no token, rules or decision log), so that what an evaluate
costs beyond the stack shows, and what the stack alone leaves of a latency or throughput target.
Last it reports how much of the machine's CPU time the host stole, and the time of a fixed piece of Python work
before and after the run: on a shared virtual machine the same code measures up to twice as slow at times.
wrk POSTs the single-account JSON with the bearer token from a Lua script. Without `wrk` on the PATH (or with
`--client python`) the Python clients measure instead: one keep-alive client for latency, and for requests/s one
process per client (so the clients do not share this script's GIL). The clients share the machine's cores with
the server, so the requests/s figure is a floor, not a ceiling.

    python bench/http.py [--client wrk|python] [--seconds 10] [--clients 8] [--workers 2] [--threads 4]
                         [--batch 10000] [--distinct 1000] [--requests 2000 (python client)]

Each single-account request is one of `--distinct` different accounts (at random under wrk, in turn under the
Python clients), so what the service remembers between requests helps it no more than real traffic would.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as `python bench/http.py`, this file's folder leads sys.path and would stand in for the standard `http`.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

from kamcore.demo import synthetic_portfolio  # noqa: E402

KAM = Path(sys.executable).with_name("kam")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data: Path, port: int, threads: int, workers: int, access_log: bool) -> subprocess.Popen:
    """`kam serve` started and every worker up. The first worker answers `/healthz` while the others are still
    starting (each imports the service and compiles the rule book, 1-3 s here): a run begun then measured
    one worker, and wrk's connections stayed on it. `kam serve` prints its "KAM Rules on" line once all its
    workers are ready."""
    env = dict(os.environ, KAM_ACCESS_LOG=str(access_log).lower())
    command = [str(KAM), "serve", "--data", str(data), "--port", str(port), "--threads", str(threads)]
    if workers > 1:
        command += ["--workers", str(workers)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    started = threading.Event()

    def read_output() -> None:  # read to the end, so the server never blocks on a full pipe
        for line in proc.stdout:
            if line.startswith("KAM Rules on "):
                started.set()

    threading.Thread(target=read_output, daemon=True).start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if started.wait(0.2):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return proc
            except OSError:
                pass
    proc.kill()
    raise SystemExit("the server did not start")


def token(data: Path) -> str:
    out = subprocess.run([str(KAM), "token", "create", "--name", "bench", "--role", "viewer", "--data", str(data)],
                         check=True, capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1]


def post(conn: http.client.HTTPConnection, body: bytes, headers: dict) -> tuple[float, float, bytes]:
    """One request: its round trip and its server time (ms), and the answer."""
    start = time.perf_counter()
    conn.request("POST", "/v1/evaluate", body=body, headers=headers)
    response = conn.getresponse()
    payload = response.read()
    elapsed = time.perf_counter() - start
    if response.status != 200:
        raise SystemExit(f"HTTP {response.status}: {payload[:300]!r}")
    return elapsed * 1000, server_timing(response.headers["Server-Timing"])["app"], payload


def server_timing(header: str) -> dict[str, float]:
    """The metrics of a `Server-Timing` header: `app;dur=2.51, cpu;dur=2.50` -> {"app": 2.51, "cpu": 2.5}."""
    metrics = {}
    for part in header.split(","):
        name, _, duration = part.strip().partition(";dur=")
        metrics[name] = float(duration)
    return metrics


FIRST_REQUEST_MS = 50  # a worker's first request with a token runs argon2 (~180 ms here); later ones are cached


def warm_every_worker(port: int, body: bytes, headers: dict, workers: int) -> int:
    """Have every worker verify the bench's token before the clock runs, and return the rounds it took. Each
    worker runs argon2 once per token (~180 ms on this box) and caches the result. A worker first met inside a
    measured run would count that request. wrk then adds its coordinated-omission correction: one 180 ms
    request among ~3,000 at 2 ms becomes ~90 samples of 2-180 ms, a p99 of 100-200 ms. That was the
    single-connection p99 seen in about a third of `--workers 2` runs, whenever wrk's connection landed on the
    worker the warm-up had missed. Each round holds 2 x workers connections open at once, and the balance board
    spreads held connections over the workers. A round whose first requests are all fast has met every worker warm."""
    for rounds in range(1, 21):
        conns = [http.client.HTTPConnection("127.0.0.1", port) for _ in range(2 * workers)]
        for conn in conns:
            conn.connect()
        time.sleep(0.2)  # every worker's accept loop turns (balance.LOOP_S) and takes its share
        slow = [post(conn, body, headers)[1] > FIRST_REQUEST_MS for conn in conns]
        for conn in conns:
            conn.close()
        if not any(slow):
            return rounds
    # A box loaded by something else may keep ordinary requests above the mark: go on, and say so.
    print(f"note: first requests still above {FIRST_REQUEST_MS} ms after 20 warm-up rounds; the p99 may count "
          "a worker's first request", file=sys.stderr)
    return 20


def client(port: int, bodies: list[bytes], headers: dict, start_at: float, stop_at: float, counts) -> None:
    """One concurrent client: its own process and keep-alive connection, posting `bodies` in turn until
    `stop_at`."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    post(conn, bodies[0], headers)
    n = 0
    while time.time() < start_at:
        time.sleep(0.001)
    while time.time() < stop_at:
        post(conn, bodies[n % len(bodies)], headers)
        n += 1
    counts.put(n)


WRK_SCRIPT = """-- POST /v1/evaluate with one account (picked at random from a file of one body per line) and the bearer
-- token; note each answer's server time
local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end
local bodies = {}
for line in io.lines(%(body)s) do
  table.insert(bodies, line)
end
wrk.method = "POST"
wrk.body = bodies[1]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. read(%(token)s)

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  server_ms = {}
  server_cpu_ms = {}
  math.randomseed(os.time() + #threads)
end

function request()
  return wrk.format(nil, nil, nil, bodies[math.random(#bodies)])
end
%(response)s
local function median(name)
  local all = {}
  for _, thread in ipairs(threads) do
    for _, ms in ipairs(thread:get(name) or {}) do
      table.insert(all, ms)
    end
  end
  table.sort(all)
  return all[math.floor((#all + 1) / 2)]
end

function done(summary, latency, requests)
  local app, cpu = median("server_ms"), median("server_cpu_ms")
  if app then
    io.write(string.format("server time p50 %%.3f ms\\n", app))
  end
  if cpu then
    io.write(string.format("server cpu p50 %%.3f ms\\n", cpu))
  end
end
"""

# Reading every answer's headers costs wrk time: only where the server time is reported (one connection).
WRK_SERVER_TIME = """
function response(status, headers, body)
  local timing = headers["Server-Timing"] or headers["server-timing"]
  if timing then
    table.insert(server_ms, tonumber(timing:match("app;dur=([%d.]+)")))
    table.insert(server_cpu_ms, tonumber(timing:match("cpu;dur=([%d.]+)")))
  end
end
"""

UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


class ServerCPU:
    """CPU seconds used by a server process and its children (the workers), read from /proc (Linux)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start = self.wall = 0.0
        self.used: float | None = None

    def seconds(self) -> float | None:
        try:
            children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        except OSError:
            return None
        total = 0
        for pid in [str(self.pid), *children]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # a worker that just exited
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (this process, not its waited-for children)
        return total / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> ServerCPU:
        self.start, self.wall = self.seconds() or 0.0, time.monotonic()
        return self

    def __exit__(self, *_: object) -> None:
        end = self.seconds()
        self.wall = time.monotonic() - self.wall
        self.used = None if end is None else end - self.start

    def line(self, requests: int) -> str:
        if self.used is None:
            return "server CPU: not measured (no /proc)"
        return (f"server CPU: {self.used / self.wall:.2f} of {os.cpu_count()} cores busy, "
                f"{self.used * 1000 / max(requests, 1):.2f} ms CPU per request")


def wrk(port: int, folder: Path, bodies: list[bytes], bearer: str, connections: int, seconds: float,
        server_time: bool, check: bool = True) -> dict[str, float]:
    """One wrk run, each request one of `bodies` at random: requests/s, p50 and p99 latency (ms), requests, and
    when asked for the p50s of the server's time and its CPU time (`Server-Timing` app and cpu); `check`: stop on
    any failed or timed-out request."""
    (folder / "body.json").write_bytes(b"\n".join(bodies) + b"\n")  # JSON bodies hold no raw newline
    (folder / "token").write_text(bearer)
    script = folder / "evaluate.lua"
    script.write_text(WRK_SCRIPT % {"body": json.dumps(str(folder / "body.json")),
                                    "token": json.dumps(str(folder / "token")),
                                    "response": WRK_SERVER_TIME if server_time else ""})
    out = run_wrk(["-s", str(script), f"http://127.0.0.1:{port}/v1/evaluate"], connections, seconds, check)
    figures = wrk_figures(out)
    if server_time:
        figures["server"] = float(re.search(r"server time p50 ([\d.]+) ms", out).group(1))
        figures["server_cpu"] = float(re.search(r"server cpu p50 ([\d.]+) ms", out).group(1))
    return figures


def run_wrk(target: list[str], connections: int, seconds: float, check: bool = True) -> str:
    """wrk's report of a run against `target` (its script and URL); `check`: stop on any failed request."""
    threads = min(connections, os.cpu_count() or 1)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "60s",
               "--latency", *target]
    out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=seconds + 120).stdout
    if check and ("Non-2xx" in out or "Socket errors" in out):
        raise SystemExit(f"wrk saw failed requests:\n{out}")
    return out


def wrk_figures(out: str) -> dict[str, float]:
    """Requests/s, requests, and p50 and p99 latency (ms) from a wrk --latency report."""
    figures = {"rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
               "requests": int(re.search(r"(\d+) requests in", out).group(1))}
    for name, percent in (("p50", "50"), ("p99", "99")):
        value, unit = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M).groups()
        figures[name] = float(value) * UNITS_MS[unit]
    return figures


def stack_floor(pid: int, port: int, connections: int, seconds: float) -> str:
    """The same server's HTTP stack with no work behind it (`GET /healthz`: waitress, Flask, the access hooks, no
    token, no rules, no log): its p50 at one connection, and its requests/s and server CPU per request at
    `connections`. What a single-account evaluate costs beyond these is its own: its body read and parsed, the
    token looked up, the rules evaluated, the decision logged and the answer written."""
    alone = wrk_figures(run_wrk([f"http://127.0.0.1:{port}/healthz"], 1, seconds))
    with ServerCPU(pid) as cpu:
        many = wrk_figures(run_wrk([f"http://127.0.0.1:{port}/healthz"], connections, seconds))
    return (f"the HTTP stack alone (GET /healthz, wrk {round(seconds)} s each): p50 {alone['p50']:.2f} ms at 1 "
            f"connection; at {connections}, {many['rate']:,.0f} req/s, {cpu.line(many['requests'])}")


def reference_ms(runs: int = 7) -> float:
    """The median time of a fixed piece of Python work much like a request's (JSON read and written, dicts built,
    a sort), on one core with the server idle: the box's own speed, so that runs on a shared machine can be
    compared by the ratio of their figures to this one. Steal alone does not show a neighbour's cache misses."""
    rows = [{"account_id": f"C{i:05d}", "revenue": i * 1234.5, "tier": "ABCD"[i % 4], "tags": ["x", "y"][: i % 3]}
            for i in range(5_000)]
    text = json.dumps(rows)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        read = json.loads(text)
        built = [{"id": r["account_id"], "value": r["revenue"] * 1.1, "tier": r["tier"]} for r in read]
        built.sort(key=lambda r: (r["tier"], -r["value"]))
        json.dumps(built)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


class HostSteal:
    """The share of this (virtual) machine's CPU time the host gave to others (`steal` in /proc/stat): on a shared
    box the same code measures up to twice as slow when this is high, so each run says how it ran."""

    def __init__(self) -> None:
        self.start = self.ticks()

    @staticmethod
    def ticks() -> tuple[int, int] | None:
        try:
            cpu = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        except OSError:
            return None
        values = [int(v) for v in cpu[1:9]]  # user nice system idle iowait irq softirq steal
        return values[7], sum(values)

    def line(self) -> str:
        end = self.ticks()
        if self.start is None or end is None or end[1] <= self.start[1]:
            return "host: steal not readable here"
        share = (end[0] - self.start[0]) / (end[1] - self.start[1])
        return f"host: {share:.1%} of this machine's CPU time was stolen by the host during the run"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--client", choices=("wrk", "python"), default="wrk" if shutil.which("wrk") else "python",
                        help="what drives the single-account requests (default: wrk when installed)")
    parser.add_argument("--requests", type=int, default=2000, help="python client: latency requests")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=1, help="`kam serve --workers`: server processes")
    parser.add_argument("--threads", type=int, default=4, help="waitress threads per worker (kam serve's default)")
    parser.add_argument("--access-log", action="store_true", help="keep the server's JSON access log on")
    parser.add_argument("--batch", type=int, default=10_000, help="accounts in the batch request")
    parser.add_argument("--distinct", type=int, default=1000,
                        help="single-account requests pick one of this many different accounts (1: the same one)")
    args = parser.parse_args()

    steal = HostSteal()
    reference = reference_ms()
    data = Path(tempfile.mkdtemp(prefix="kam-bench-http-"))
    port = free_port()
    proc = start_server(data, port, args.threads, args.workers, args.access_log)
    try:
        headers = {"Authorization": f"Bearer {token(data)}", "Content-Type": "application/json"}
        # Different accounts, so nothing the service remembers between requests (date texts read, header
        # lookups) flatters it more than real traffic would.
        ones = [json.dumps({"accounts": [account]}).encode() for account in json.loads(synthetic_portfolio(
            max(1, args.distinct), seed=11).to_json(orient="records", date_format="iso"))]
        one = ones[0]
        setup = f"{args.workers} worker(s) x {args.threads} threads"

        warm_every_worker(port, one, headers, args.workers)
        conn = http.client.HTTPConnection("127.0.0.1", port)
        for _ in range(50):
            post(conn, one, headers)
        if args.client == "wrk":
            bearer = headers["Authorization"].removeprefix("Bearer ")
            # Warm every worker (each loads its rule book on its first request) before the clock runs.
            wrk(port, data, ones, bearer, max(args.clients, 2 * args.workers), 2, server_time=False, check=False)
            alone = wrk(port, data, ones, bearer, 1, args.seconds, server_time=True)
            print(f"single account (of {len(ones):,} distinct), 1 connection, wrk {args.seconds:g} s, "
                  f"{alone['requests']} requests ({setup}): "
                  f"p50 {alone['p50']:.2f} ms, p99 {alone['p99']:.2f} ms (server time p50 {alone['server']:.2f} ms, "
                  f"of it CPU {alone['server_cpu']:.2f} ms)")
            with ServerCPU(proc.pid) as cpu:
                many = wrk(port, data, ones, bearer, args.clients, args.seconds, server_time=True)
            print(f"single account, {args.clients} connections, wrk {args.seconds:g} s ({setup}): "
                  f"{many['rate']:,.0f} req/s (p50 {many['p50']:.2f} ms, p99 {many['p99']:.2f} ms)")
            print(f"  {cpu.line(many['requests'])}, of it the app's (Server-Timing cpu) p50 {many['server_cpu']:.2f} "
                  f"ms (server time p50 {many['server']:.2f} ms)")
            print(f"  {stack_floor(proc.pid, port, args.clients, max(1.0, args.seconds / 2))}")
        else:
            python_clients(args, proc.pid, port, ones, headers, conn, setup)
        batch_time(args, conn, headers, setup)
        print(f"{steal.line()}; reference work {reference:.1f} ms before, {reference_ms():.1f} ms after (the box's "
              "own speed: compare runs by their ratio to it)")
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(data, ignore_errors=True)


def python_clients(args: argparse.Namespace, server: int, port: int, ones: list[bytes], headers: dict,
                   conn: http.client.HTTPConnection, setup: str) -> None:
    """Without wrk: latency from one keep-alive client, requests/s from one process per client (each request one
    of `ones`, in turn)."""
    client_ms, server_ms = [], []
    for k in range(args.requests):
        c, s, _ = post(conn, ones[k % len(ones)], headers)
        client_ms.append(c)
        server_ms.append(s)
    q = statistics.quantiles(client_ms, n=100)
    print(f"single account, 1 client, {args.requests} requests ({setup}): p50 {statistics.median(client_ms):.2f} "
          f"ms, p99 {q[98]:.2f} ms (server time p50 {statistics.median(server_ms):.2f} ms)")

    fork = multiprocessing.get_context("fork")
    counts = fork.Queue()
    start_at = time.time() + 2  # every client connected and warmed before the clock starts
    stop_at = start_at + args.seconds
    clients = [fork.Process(target=client, args=(port, ones, headers, start_at, stop_at, counts))
               for _ in range(args.clients)]
    for p in clients:
        p.start()
    time.sleep(max(0.0, start_at - time.time()))
    with ServerCPU(server) as cpu:
        time.sleep(max(0.0, stop_at - time.time()))
    done = [counts.get(timeout=args.seconds + 120) for _ in clients]
    for p in clients:
        p.join()
    rate = sum(done) / args.seconds
    print(f"single account, {args.clients} concurrent client processes for {args.seconds:g} s ({setup}): "
          f"{rate:,.0f} req/s")
    print(f"  {cpu.line(sum(done))}")


def batch_time(args: argparse.Namespace, conn: http.client.HTTPConnection, headers: dict, setup: str) -> None:
    """The server time of a `--batch`-account request: the first FIRST_BATCHES on their own (a worker's first
    batches also grow its memory, server/heap.py), then the median of BATCHES more."""
    batch = json.dumps({"accounts": json.loads(synthetic_portfolio(args.batch, seed=12).to_json(
        orient="records", date_format="iso"))}).encode()
    first = [post(conn, batch, headers) for _ in range(FIRST_BATCHES)]
    runs = [post(conn, batch, headers) for _ in range(BATCHES)]
    server = statistics.median(r[1] for r in runs)
    client_total = statistics.median(r[0] for r in runs)
    print(f"{args.batch:,}-row batch ({len(batch) / 2**20:.1f} MiB JSON), median of {BATCHES} after the first "
          f"{FIRST_BATCHES} ({setup}): server time {server:.0f} ms, round trip {client_total:.0f} ms, "
          f"{len(json.loads(runs[0][2])['results'])} results; the first {FIRST_BATCHES}: "
          f"{', '.join(f'{r[1]:.0f}' for r in first)} ms")


FIRST_BATCHES, BATCHES = 3, 7


if __name__ == "__main__":
    main()
