"""Benchmark: the engine's time for one evaluation of a few accounts (`.frame` included), as a request pays it.

Optionally against an earlier revision of the engine, run in interleaved subprocesses on this machine, so a
before / after ratio comes from one run under the same load:

    python bench/latency.py [--rules rules] [--accounts 1] [--calls 200] [--rounds 5] [--against REV]
                            [--answer frame|outputs|state] [--input records|json]

`--answer outputs` times what the JSON API reads (`Evaluation.outputs(i)` per account) instead of `.frame`;
`--answer state` the evaluation alone (the state columns a batch answer is made from).
`--input json` hands the engine what `POST /v1/evaluate` does with a batch: the accounts as JSON records made
into a DataFrame (`pd.DataFrame(json.loads(...))`: text columns, dates as ISO text, nulls), seed 12; the default
is a list of record dicts as Python holds them.

`--stages` instead prints where this tree's time goes (CPU µs per evaluation: building the input frame, reading
the inputs, each rule kind, the result frame), to see what is left to make faster.
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

# Run in a child process with the engine of one source tree first on sys.path; prints per-call ms as JSON.
MEASURE = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from kamcore.rulebook import RuleBook
from kamcore.demo import synthetic_portfolio
book = RuleBook.load(sys.argv[2])
{ACCOUNTS}
calls = int(sys.argv[4])
if sys.argv[5] == "frame":
    def answer(ev):
        return ev.frame
elif sys.argv[5] == "state":
    def answer(ev):
        return [ev.state.columns[name] for name in ev.output_names]
else:
    def answer(ev):
        return [ev.outputs(i) for i in range(len(accounts))]
for _ in range(max(calls // 10, 5)):
    answer(book.evaluate(accounts, as_of="2026-11-23"))
wall, cpu = [], []
for _ in range(calls):
    start, start_cpu = time.perf_counter(), time.process_time()
    answer(book.evaluate(accounts, as_of="2026-11-23"))
    wall.append((time.perf_counter() - start) * 1000)
    cpu.append((time.process_time() - start_cpu) * 1000)
print(json.dumps([wall, cpu]))
"""


# The same evaluation taken apart (kamcore.evaluation.evaluate, step by step); prints median CPU µs per stage.
STAGES = """
import collections, json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
from kamcore.demo import synthetic_portfolio
from kamcore.evaluation import Evaluation, as_of_date, begin
from kamcore.expressions import scalar as S
from kamcore.portfolio import records_of, to_frame
from kamcore.rulebook import RuleBook
book = RuleBook.load(sys.argv[2])
{ACCOUNTS}
day, clock = as_of_date("2026-11-23"), time.process_time
samples = collections.defaultdict(list)
for k in range(int(sys.argv[4]) + 20):
    took = collections.Counter()
    t = clock()
    frame = records_of(accounts, S.MOST_ACCOUNTS) if S.applies(1) else None  # as evaluate() does
    frame = to_frame(accounts) if frame is None else frame
    took["input frame"] += clock() - t
    t = clock(); state, columns = begin(book, frame, day); took["read inputs"] += clock() - t
    for rule in book.rules:
        t = clock(); rule.evaluate(state); took[rule.kind] += clock() - t
    ev = Evaluation(book, frame, state, day, columns.missing, columns.headers)
    if len(accounts) <= 1000:  # per account: what the JSON API reads of a few
        t = clock(); [ev.outputs(i) for i in range(len(accounts))]; took["outputs(i)"] += clock() - t
    t = clock(); ev.frame; took["result frame"] += clock() - t
    for stage, seconds in took.items():
        if k >= 20:
            samples[stage].append(seconds * 1e6)
print(json.dumps({stage: statistics.median(us) for stage, us in samples.items()}))
"""

# The accounts each child evaluates (argv[3] of them, argv[6] their shape).
ACCOUNTS = """
if sys.argv[6] == "json":  # as POST /v1/evaluate makes a batch's JSON records into a frame
    import pandas as pd
    accounts = pd.DataFrame(json.loads(synthetic_portfolio(int(sys.argv[3]), seed=12).to_json(orient="records",
                                                                                             date_format="iso")))
else:
    accounts = synthetic_portfolio(int(sys.argv[3])).to_dict("records")
"""
MEASURE = MEASURE.replace("{ACCOUNTS}", ACCOUNTS.strip())
STAGES = STAGES.replace("{ACCOUNTS}", ACCOUNTS.strip())


def stages(rules: Path, accounts: int, calls: int, shape: str = "records") -> None:
    done = subprocess.run([sys.executable, "-c", STAGES, str(ROOT), str(rules), str(accounts), str(calls), "-",
                           shape],
                          capture_output=True, text=True, check=True)
    medians = json.loads(done.stdout)
    for stage, us in medians.items():
        print(f"{stage:>15}: {us:8.0f} µs CPU (median)")
    print(f"{'sum':>15}: {sum(medians.values()):8.0f} µs CPU, {accounts} account(s), {calls} evaluations")


def measure(source: Path, rules: Path, accounts: int, calls: int, answer: str = "frame",
            shape: str = "records") -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds of each timed call."""
    done = subprocess.run([sys.executable, "-c", MEASURE, str(source), str(rules), str(accounts), str(calls),
                           answer, shape], capture_output=True, text=True, check=True)
    wall, cpu = json.loads(done.stdout)
    return wall, cpu


def export(revision: str, into: Path) -> Path:
    """The kamcore package of `revision`, unpacked under `into` (git archive, no checkout)."""
    archive = into / "engine.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), revision, "kamcore"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def summary(wall: list[float], cpu: list[float]) -> dict[str, float]:
    ordered = sorted(wall)
    return {"p50": statistics.median(ordered), "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
            "cpu": statistics.median(cpu)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", type=Path, default=ROOT / "rules", help="rule book folder")
    parser.add_argument("--accounts", type=int, default=1, help="accounts per evaluation")
    parser.add_argument("--calls", type=int, default=200, help="timed evaluations per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (one subprocess per tree per round)")
    parser.add_argument("--against", metavar="REV", help="also time the engine at this git revision")
    parser.add_argument("--stages", action="store_true", help="where this tree's time goes, stage by stage")
    parser.add_argument("--answer", choices=("frame", "outputs", "state"), default="frame",
                        help="what each call builds: the result frame, outputs(i) per account (as the API), or "
                             "nothing beyond the evaluation's state columns")
    parser.add_argument("--input", choices=("records", "json"), default="records",
                        help="the accounts as record dicts, or as the frame the service makes of JSON records")
    args = parser.parse_args(argv)
    if args.accounts < 1 or args.calls < 1 or args.rounds < 1:
        parser.error("--accounts, --calls and --rounds must be positive")
    if args.stages:
        stages(args.rules.resolve(), args.accounts, args.calls, args.input)
        return
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this tree": ROOT}
        if args.against:
            trees = {args.against: export(args.against, Path(tmp)), **trees}
        medians: dict[str, list[float]] = {name: [] for name in trees}
        cpus: dict[str, list[float]] = {name: [] for name in trees}
        for r in range(args.rounds):  # interleaved, so drift on a shared machine hits every tree alike
            for name, source in trees.items():
                s = summary(*measure(source, args.rules.resolve(), args.accounts, args.calls, args.answer,
                                        args.input))
                medians[name].append(s["p50"])
                cpus[name].append(s["cpu"])
                print(f"round {r + 1}: {name:>12}  p50 {s['p50']:7.3f} ms  p99 {s['p99']:7.3f} ms  "
                      f"cpu p50 {s['cpu']:7.3f} ms", flush=True)
    print()
    result = {name: statistics.median(m) for name, m in medians.items()}
    cpu = {name: statistics.median(m) for name, m in cpus.items()}
    for name, ms in result.items():
        print(f"{name:>12}: median of {args.rounds} round p50s {ms:.3f} ms wall, {cpu[name]:.3f} ms CPU, per "
              f"evaluation of {args.accounts} account(s) ({args.rounds} × {args.calls} calls)")
    if args.against:
        print(f"{'speed-up':>12}: {result[args.against] / result['this tree']:.1f}x wall, "
              f"{cpu[args.against] / cpu['this tree']:.1f}x CPU ({args.against} / this tree, same run)")
    print("Wall-clock figures include waiting for a core on a shared machine; CPU time is this process's only.")


if __name__ == "__main__":
    main()
