"""Benchmark: decisions/s written to the decision log, for 1 and 100 accounts per decision, durable and not; and the
time to record one 10,000-account decision (`--large`), the log's share of a large evaluate request."""

import argparse
import json
import shutil
import statistics
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--decisions", type=int, default=300, help="decisions written per run")
    parser.add_argument("--runs", type=int, default=5, help="runs per case; medians are reported")
    parser.add_argument("--dir", type=Path, default=None, help="where the logs go (default: a temp dir on disk)")
    parser.add_argument("--large", type=int, default=10_000, help="accounts in the one large decision (0: skip)")
    args = parser.parse_args()
    book = RuleBook.load(ROOT / "rules", revision="bench")
    folder = Path(tempfile.mkdtemp(prefix="kam-decisions-", dir=args.dir))
    try:
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
