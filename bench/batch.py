"""In-process benchmark of one large `POST /v1/evaluate`: the real app (a temp data dir seeded with the shipped
rules), its WSGI callable called with a 10,000-account JSON body, the `Server-Timing` server time as the figure
(median of `--runs`); `--profile` adds a cProfile of one request, sorted by cumulative time. `--xlsx` sends the
same accounts as an xlsx upload (the sheet an account manager would send) instead of JSON.

    python bench/batch.py [--accounts 10000] [--runs 7] [--profile] [--xlsx]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Run as `python bench/batch.py`, this file's folder leads sys.path, and its http.py would stand in for `http`.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from werkzeug.test import Client  # noqa: E402

from bench.http import server_timing  # noqa: E402
from kamcore.demo import synthetic_portfolio  # noqa: E402
from server import create_app  # noqa: E402
from server.api.evaluate import XLSX  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one request")
    parser.add_argument("--gc", choices=("on", "freeze", "off"), default="on",
                        help="garbage collection as is, with the warmed heap frozen, or off (to see its cost)")
    parser.add_argument("--top", type=int, default=45, help="profile lines shown")
    parser.add_argument("--xlsx", action="store_true", help="send the accounts as an xlsx upload, not JSON")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="kam-bench-batch-"))
    try:
        app = create_app({"data_dir": data / "data", "access_log": False, "events_sweep_s": 0,
                          "token_memory_kib": 1024})
        token = app.extensions["kam"].tokens.create("bench", "viewer")
        portfolio = synthetic_portfolio(args.accounts, seed=12)
        if args.xlsx:
            sheet = io.BytesIO()
            portfolio.to_excel(sheet, index=False)
            body, kind, content_type = sheet.getvalue(), "xlsx", XLSX
        else:
            records = json.loads(portfolio.to_json(orient="records", date_format="iso"))
            body, kind, content_type = json.dumps({"accounts": records}).encode(), "JSON", "application/json"
        headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
        client = Client(app)

        collecting = {"since": 0.0, "ms": 0.0, "full": 0}

        def gc_clock(phase: str, info: dict) -> None:  # time spent collecting garbage, and full collections
            if phase == "start":
                collecting["since"] = time.perf_counter()
            else:
                collecting["ms"] += (time.perf_counter() - collecting["since"]) * 1000
                collecting["full"] += info["generation"] == 2

        gc.callbacks.append(gc_clock)

        def post() -> tuple[float, float, float, int, float]:
            collecting.update(ms=0.0, full=0)
            start, cpu = time.perf_counter(), time.thread_time()
            response = client.post("/v1/evaluate", data=body, headers=headers)
            wall = (time.perf_counter() - start) * 1000
            cpu = (time.thread_time() - cpu) * 1000
            if response.status_code != 200:
                raise SystemExit(f"HTTP {response.status_code}: {response.get_data()[:300]!r}")
            return (server_timing(response.headers["Server-Timing"])["app"], wall, collecting["ms"], collecting["full"],
                    cpu)

        post()  # warm: the rule book compiled, caches filled
        if args.gc == "freeze":
            gc.freeze()
        elif args.gc == "off":
            gc.disable()
        runs = [post() for _ in range(args.runs)]
        print(f"{args.accounts:,} accounts ({len(body) / 2**20:.1f} MiB {kind}), median of {args.runs}: server time "
              f"{statistics.median(r[0] for r in runs):.0f} ms (min {min(r[0] for r in runs):.0f}), "
              f"CPU time {statistics.median(r[4] for r in runs):.0f} ms (a busy machine disturbs it less); "
              f"in-process round trip {statistics.median(r[1] for r in runs):.0f} ms; garbage collection "
              f"{statistics.median(r[2] for r in runs):.0f} ms a request, {sum(r[3] for r in runs)} full collections "
              f"in {args.runs} requests")
        if args.profile:
            profiler = cProfile.Profile(time.thread_time)
            profiler.enable()
            post()
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(args.top)
            print(out.getvalue())
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
