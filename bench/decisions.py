"""Benchmark: decisions/s written to the decision log, for 1 and 100 accounts per decision, durable and not; the
time to record one 10,000-account decision (`--large`), the log's share of a large evaluate request; and the
latency of each write (p50, p99) with writers in 1 process x 1 thread, 1 x 8 and 2 processes x 4 threads, as the
service's request threads and `kam serve --workers 2` write (`--latency`), optionally against another checkout of
the code (`--against DIR`, e.g. a `git worktree` of an older commit), the two taking turns run by run."""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python bench/decisions.py` without an installed kamcore
    sys.path.insert(0, str(ROOT))

from kamcore import RuleBook  # noqa: E402
from kamcore.decisions import DecisionLog  # noqa: E402
from kamcore.demo import synthetic_portfolio  # noqa: E402

AS_OF = "2026-11-23"
BATCHES = (1, 100)
LATENCY_CASES = ((1, 1), (1, 8), (2, 4))  # (processes, threads per process)

# One writer process of a latency run: the code under test first on the path; a 1-account evaluation recorded
# (as JSON records) by each thread `count` times (synchronous=NORMAL, as the service by default), each write timed.
WRITER = """
import json, sys, threading, time
code, path, threads, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sys.path.insert(0, code)
from kamcore import RuleBook
from kamcore.decisions import DecisionLog
from kamcore.demo import synthetic_portfolio

# as an evaluate request brings them: JSON records, dates as ISO text
account = json.loads(synthetic_portfolio(1, seed=1).to_json(orient="records", date_format="iso"))
evaluation = RuleBook.load(code + "/rules", revision="bench").evaluate(account, as_of="2026-11-23")
log = DecisionLog.open(path, durable=False)
times = [[] for _ in range(threads)]

def write(mine):
    for _ in range(count):
        start = time.perf_counter()
        log.record_evaluation("bench", evaluation)
        mine.append(time.perf_counter() - start)

workers = [threading.Thread(target=write, args=(t,)) for t in times]
print("ready", flush=True)
sys.stdin.readline()
start, cpu = time.perf_counter(), time.process_time()
for w in workers:
    w.start()
for w in workers:
    w.join()
end, cpu = time.perf_counter(), time.process_time() - cpu
log.close()
print(json.dumps({"times": [x for t in times for x in t], "start": start, "end": end, "cpu": cpu}))
"""


def write_rate(folder: Path, evaluation, decisions: int, durable: bool) -> tuple[float, float, float]:
    """decisions/s of `record_evaluation` into a fresh log (by the wall clock and by this process's CPU time,
    which a busy machine disturbs less), and records/s of verifying it afterwards."""
    path = folder / f"run-{time.perf_counter_ns()}.sqlite3"
    with DecisionLog.open(path, durable=durable) as log:
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(decisions):
            log.record_evaluation("bench", evaluation)
        written, cpu = time.perf_counter() - start, time.process_time() - cpu
        start = time.perf_counter()
        result = log.verify()
        checked = time.perf_counter() - start
    if not result.ok or result.records != decisions:
        raise SystemExit(f"{path}: {result}")
    return decisions / written, decisions / cpu, decisions / checked


def latency_run(code: Path, path: Path, processes: int, threads: int,
                decisions: int) -> tuple[list[float], float, float]:
    """Each write's time (ms), decisions/s by the wall clock and per CPU-second, for `decisions` written into a
    fresh log at `path` by `processes` x `threads` writers, all let go at once. perf_counter is the system's
    monotonic clock, the same in every process."""
    count = max(1, decisions // (processes * threads))
    env = {**os.environ, "PYTHONPATH": str(code)}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(code), str(path), str(threads), str(count)],
                                cwd=code, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
               for _ in range(processes)]
    for proc in writers:
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"a writer of {code} did not start")
    for proc in writers:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in writers:
        out, _ = proc.communicate(timeout=600)
        if proc.returncode:
            raise SystemExit(f"a writer of {code} failed ({proc.returncode})")
        results.append(json.loads(out))
    times = [t * 1000 for r in results for t in r["times"]]
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    return times, len(times) / wall, len(times) / sum(r["cpu"] for r in results)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def latency(folder: Path, decisions: int, runs: int, against: Path | None) -> None:
    """p50 / p99 of each write and decisions/s per case (medians of the runs), for this code and `against`."""
    from kamcore.decisions import DecisionLog

    codes = {"this": ROOT} | ({"against": against.resolve()} if against else {})
    print(f"write latency, 1-account decisions, synchronous=NORMAL: {decisions} decisions per run, median of "
          f"{runs} runs" + (f"; 'against' is {codes['against']}" if against else ""))
    stats: dict[tuple[str, int, int], list[tuple[float, float, float, float]]] = {}
    for run in range(runs):  # every case and both codes take turns, so a change in machine load touches all alike
        for processes, threads in LATENCY_CASES:
            for name, code in codes.items():
                path = folder / f"latency-{name}-{processes}x{threads}-{run}.sqlite3"
                times, rate, cpu_rate = latency_run(code, path, processes, threads, decisions)
                with DecisionLog.open(path, create=False) as log:
                    check = log.verify()
                if not check.ok or check.records != len(times):
                    raise SystemExit(f"{path}: {check}")
                stats.setdefault((name, processes, threads), []).append(
                    (percentile(times, 50), percentile(times, 99), rate, cpu_rate))
    for processes, threads in LATENCY_CASES:
        medians = {}
        for name in codes:
            runs_ = stats[name, processes, threads]
            medians[name] = [statistics.median(r[k] for r in runs_) for k in range(4)]
            p50, p99, rate, cpu_rate = medians[name]
            print(f"{processes} process(es) x {threads} thread(s), {name:7}: p50 {p50:6.2f} ms  p99 {p99:7.2f} ms  "
                  f"{rate:6,.0f} decisions/s  {cpu_rate:6,.0f} per CPU-second")
        if against:
            new, old = medians["this"], medians["against"]
            print(f"{processes} process(es) x {threads} thread(s): this / against: p50 {new[0] / old[0]:.2f}x, "
                  f"p99 {new[1] / old[1]:.2f}x, decisions/s {new[2] / old[2]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--decisions", type=int, default=300, help="decisions written per run")
    parser.add_argument("--runs", type=int, default=5, help="runs per case; medians are reported")
    parser.add_argument("--dir", type=Path, default=None, help="where the logs go (default: a temp dir on disk)")
    parser.add_argument("--large", type=int, default=10_000, help="accounts in the one large decision (0: skip)")
    parser.add_argument("--latency", type=int, default=3000, help="decisions per latency run (0: skip)")
    parser.add_argument("--against", type=Path, default=None,
                        help="another checkout of the code to time the latency cases on as well")
    parser.add_argument("--only-latency", action="store_true", help="the latency cases only")
    args = parser.parse_args()
    book = RuleBook.load(ROOT / "rules", revision="bench")
    folder = Path(tempfile.mkdtemp(prefix="kam-decisions-", dir=args.dir))
    try:
        if args.latency:
            latency(folder, args.latency, args.runs, args.against)
        if args.only_latency:
            return
        print(f"{args.decisions} decisions per run, median of {args.runs} runs; logs in {folder}")
        cases = [(batch, durable) for durable in (True, False) for batch in BATCHES]
        evaluations = {batch: book.evaluate(synthetic_portfolio(batch, seed=batch), as_of=AS_OF) for batch in BATCHES}
        runs: dict[tuple[int, bool], list[tuple[float, float, float]]] = {case: [] for case in cases}
        for _ in range(args.runs):  # the cases take turns, so a change in machine load touches them all alike
            for batch, durable in cases:
                runs[batch, durable].append(write_rate(folder, evaluations[batch], args.decisions, durable))
        rates = {}
        for batch, durable in cases:
            write = statistics.median(r[0] for r in runs[batch, durable])
            cpu = statistics.median(r[1] for r in runs[batch, durable])
            verify = statistics.median(r[2] for r in runs[batch, durable])
            rates[batch, durable] = write
            sync = "synchronous=FULL  " if durable else "synchronous=NORMAL"
            accounts = "1 account per decision   " if batch == 1 else f"{batch} accounts per decision"
            print(f"{sync}  {accounts}: {write:6,.0f} decisions/s ({write * batch:7,.0f} accounts/s), "
                  f"{cpu:6,.0f} per CPU-second; verify {verify:7,.0f} records/s")
        for durable in (True, False):
            ratio = rates[1, durable] / rates[100, durable]
            print(f"{'FULL' if durable else 'NORMAL'}: 1-account decisions are written {ratio:.1f}x as fast as "
                  f"100-account ones")
        for batch in BATCHES:
            print(f"{batch} account(s): NORMAL / FULL = {rates[batch, False] / rates[batch, True]:.1f}x")
        if args.large:
            # as an evaluate request brings them: JSON records, dates as ISO text
            accounts = json.loads(synthetic_portfolio(args.large, seed=12).to_json(orient="records", date_format="iso"))
            large = book.evaluate(accounts, as_of=AS_OF)
            with DecisionLog.open(folder / "large.sqlite3", durable=False) as log:
                log.record_evaluation("bench", large)  # warm
                times = []
                for _ in range(7):
                    start = time.perf_counter()
                    log.record_evaluation("bench", large)
                    times.append((time.perf_counter() - start) * 1000)
                if not log.verify().ok:
                    raise SystemExit(f"{log.path}: {log.verify()}")
            print(f"one {args.large:,}-account decision (synchronous=NORMAL): {statistics.median(times):.0f} ms, "
                  "median of 7")
        print("every log written verified")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
