"""HTTP benchmark: `kam serve` (waitress) on loopback, driven by keep-alive clients in this process.

Reports single-account evaluate latency (p50 / p99, one client), requests/s with concurrent clients, and the
server time (`Server-Timing`) of a 10,000-row batch. The clients share the machine's cores with the server, so
the requests/s figure is a floor, not a ceiling.

    python bench/service.py [--requests 2000] [--clients 8] [--seconds 10]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kamcore.demo import synthetic_portfolio  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data: Path, port: int, threads: int) -> subprocess.Popen:
    kam = Path(sys.executable).with_name("kam")
    env = dict(os.environ, KAM_ACCESS_LOG="false")
    proc = subprocess.Popen([str(kam), "serve", "--data", str(data), "--port", str(port), "--threads", str(threads)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start")


def token(data: Path) -> str:
    kam = Path(sys.executable).with_name("kam")
    out = subprocess.run([str(kam), "token", "create", "--name", "bench", "--role", "viewer", "--data", str(data)],
                         check=True, capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1]


def post(conn: http.client.HTTPConnection, body: bytes, headers: dict) -> tuple[float, float, dict]:
    start = time.perf_counter()
    conn.request("POST", "/v1/evaluate", body=body, headers=headers)
    response = conn.getresponse()
    payload = response.read()
    elapsed = time.perf_counter() - start
    if response.status != 200:
        raise SystemExit(f"HTTP {response.status}: {payload[:300]!r}")
    server = float(response.headers["Server-Timing"].split("dur=")[1])
    return elapsed * 1000, server, json.loads(payload)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--threads", type=int, default=8, help="waitress threads")
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="kam-bench-http-"))
    port = free_port()
    proc = start_server(data, port, args.threads)
    try:
        headers = {"Authorization": f"Bearer {token(data)}", "Content-Type": "application/json"}
        one = json.dumps({"accounts": json.loads(synthetic_portfolio(1, seed=11).to_json(
            orient="records", date_format="iso"))}).encode()

        conn = http.client.HTTPConnection("127.0.0.1", port)
        for _ in range(50):
            post(conn, one, headers)
        client_ms, server_ms = [], []
        for _ in range(args.requests):
            c, s, _ = post(conn, one, headers)
            client_ms.append(c)
            server_ms.append(s)
        q = statistics.quantiles(client_ms, n=100)
        print(f"single account, 1 client, {args.requests} requests: p50 {statistics.median(client_ms):.2f} ms, "
              f"p99 {q[98]:.2f} ms (server time p50 {statistics.median(server_ms):.2f} ms)")

        done = []
        stop = time.monotonic() + args.seconds

        def client() -> None:
            c = http.client.HTTPConnection("127.0.0.1", port)
            n = 0
            while time.monotonic() < stop:
                post(c, one, headers)
                n += 1
            done.append(n)

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rate = sum(done) / (time.monotonic() - start)
        print(f"single account, {args.clients} concurrent clients for {args.seconds:g} s: {rate:,.0f} req/s")

        batch = json.dumps({"accounts": json.loads(synthetic_portfolio(10_000, seed=12).to_json(
            orient="records", date_format="iso"))}).encode()
        runs = [post(conn, batch, headers) for _ in range(7)]
        server = statistics.median(r[1] for r in runs)
        client_total = statistics.median(r[0] for r in runs)
        print(f"10,000-row batch ({len(batch) / 2**20:.1f} MiB JSON), median of 7: server time {server:.0f} ms, "
              f"round trip {client_total:.0f} ms, {len(runs[0][2]['results'])} results")
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
