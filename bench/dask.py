"""Benchmark: the shipped rule book over synthetic portfolios read from parquet parts, on a local Dask cluster
(kamcore.partitioned) and in one process (RuleBook.evaluate): accounts/s and peak memory per process, the
outputs checked equal wherever both ran. The single process is skipped where its measured memory per account
says it would not fit in the memory available."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as `python bench/dask.py`, this file's folder comes first on sys.path, where `import dask` would find
# this file: take the folder off before anything imports dask.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:  # run without an installed kamcore
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from kamcore import RuleBook, partitioned  # noqa: E402
from kamcore.demo import synthetic_portfolio  # noqa: E402

AS_OF = "2026-11-23"
SEED = 7
RULES = ROOT / "rules"


def peak_mb() -> float:
    """This process's peak resident memory so far, in MiB. VmHWM, not getrusage's ru_maxrss: Linux carries
    ru_maxrss over fork and exec, so a worker or subprocess would report its parent's peak."""
    with open("/proc/self/status", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def warm_up() -> None:
    """Import the engine in a worker: a fresh worker's imports are not the engine's work."""
    import kamcore.partitioned  # noqa: F401


def available_mb() -> float:
    with open("/proc/meminfo", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("MemAvailable:")) / 1024


# --- data --------------------------------------------------------------------------------------------------


def generate(folder: Path, n: int, chunk: int) -> None:
    """n accounts in parquet parts of `chunk` accounts, account ids unique over all parts; parts already there
    (from an earlier run with the same --data) are kept."""
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n // chunk):
        path = folder / f"accounts-{k:05d}.parquet"
        if path.exists():
            continue
        frame = synthetic_portfolio(chunk, seed=SEED + k)
        frame["account_id"] = [f"C{k * chunk + i:09d}" for i in range(1, chunk + 1)]
        frame.to_parquet(path, index=False)


def parts_of(data: Path, n: int, chunk: int, folder: Path) -> Path:
    """A folder holding (links to) the first n accounts' parts."""
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n // chunk):
        link = folder / f"accounts-{k:05d}.parquet"
        if not link.exists():
            link.symlink_to(data / link.name)
    return folder


# --- the two contenders ------------------------------------------------------------------------------------


def single(data: Path, n: int, chunk: int, out: Path) -> dict:
    """One process: read every part, evaluate, write the good rows. Run in its own process for a clean peak."""
    book = RuleBook.load(RULES)
    start = time.perf_counter()
    frame = pd.concat([pd.read_parquet(data / f"accounts-{k:05d}.parquet") for k in range(n // chunk)],
                      ignore_index=True)
    read = time.perf_counter()
    ev = book.evaluate(frame, as_of=AS_OF)
    result = ev.frame[ev.ok]
    evaluated = time.perf_counter()
    result.to_parquet(out, index=False)
    written = time.perf_counter()
    return {"read": read - start, "evaluate": evaluated - read, "write": written - evaluated,
            "total": written - start, "peak_mb": peak_mb()}


def run_single(data: Path, n: int, chunk: int, out: Path) -> dict | str:
    done = subprocess.run([sys.executable, __file__, "--single", str(n), "--data", str(data), "--chunk", str(chunk),
                           "--out", str(out)], capture_output=True, text=True)
    if done.returncode != 0:
        return f"failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:] or ''}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_dask(book: RuleBook, source: Path, out: Path, args: argparse.Namespace) -> dict:
    """Both passes through the cluster: pass 1 reads every part and ranks the whole portfolio, pass 2 reads,
    evaluates and writes every part. A new local cluster per run, so its workers' peak memory is this run's."""
    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        cluster = None if args.scheduler else stack.enter_context(LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0",
            silence_logs=logging.ERROR))
        client = stack.enter_context(Client(args.scheduler or cluster))
        return timed_passes(client, book, source, out)


def timed_passes(client, book: RuleBook, source: Path, out: Path) -> dict:
    client.run(warm_up)
    accounts = partitioned.read_accounts(source)
    start = time.perf_counter()
    ev = partitioned.evaluate(book, accounts.frame, as_of=AS_OF)
    ranked = time.perf_counter()
    written = ev.write(out, "parquet")
    end = time.perf_counter()
    return {"pass1": ranked - start, "pass2": end - ranked, "total": end - start, "parts": len(written.lengths),
            "accounts": written.accounts, "workers_mb": sorted(client.run(peak_mb).values(), reverse=True),
            "driver_mb": peak_mb()}


def differences(single_out: Path, dask_out: Path) -> list[str]:
    """One line per column where the two outputs disagree (values compared as plain Python values)."""
    a = pd.read_parquet(single_out)
    b = pd.read_parquet(dask_out).drop(columns="rules_version")
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return [f"shapes differ: {a.shape} {list(a.columns)} vs {b.shape} {list(b.columns)}"]
    problems = []

    def as_text(v):  # list outputs: a list column in one file, "a, b" text in the Dask parts
        return ", ".join(map(str, v)) if isinstance(v, (list, np.ndarray)) else v

    for c in a.columns:
        x = np.array([as_text(v) for v in a[c].astype(object).where(a[c].notna(), None)], dtype=object)
        y = np.array([as_text(v) for v in b[c].astype(object).where(b[c].notna(), None)], dtype=object)
        bad = x != y
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            problems.append(f"{c}: {int(bad.sum()):,} rows differ (row {i}: {x[i]!r} vs {y[i]!r})")
    return problems


# --- the run -----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000], help="portfolio sizes")
    parser.add_argument("--chunk", type=int, default=1_000_000, help="accounts per parquet part (one partition)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the local cluster")
    parser.add_argument("--scheduler", help="use this running scheduler instead of a local cluster")
    parser.add_argument("--data", type=Path, help="folder for the generated parts (kept, and reused if there)")
    parser.add_argument("--fit", type=float, default=0.7,
                        help="run one process only if its predicted peak is below this share of available memory")
    parser.add_argument("--single", type=int, help=argparse.SUPPRESS)  # internal: one single-process run
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.single:
        print(json.dumps(single(args.data, args.single, args.chunk, args.out)))
        return
    if any(n < args.chunk or n % args.chunk for n in args.sizes):
        parser.error("every size must be a multiple of --chunk")
    scratch = Path(tempfile.mkdtemp(prefix="kam-bench-dask-"))
    data = args.data or scratch / "data"
    try:
        start = time.perf_counter()
        generate(data, max(args.sizes), args.chunk)
        print(f"{max(args.sizes):,} accounts in parts of {args.chunk:,} in {data} "
              f"({time.perf_counter() - start:.0f} s to generate)", flush=True)
        book = RuleBook.load(RULES)
        rows = []
        per_account = None  # single-process peak MiB per account, once measured
        for n in sorted(args.sizes):
            row: dict = {"n": n}
            single_out, dask_out = scratch / f"single-{n}.parquet", scratch / f"dask-{n}.parquet"
            predicted = per_account * n if per_account else None
            if predicted and predicted > args.fit * available_mb():
                row["single"] = (f"not run: needs ~{predicted / 1024:.1f} GiB, "
                                 f"{available_mb() / 1024:.1f} GiB available")
            else:
                row["single"] = run_single(data, n, args.chunk, single_out)
                if isinstance(row["single"], dict):
                    per_account = row["single"]["peak_mb"] / n
            print(f"{n:,} single process: {row['single']}", flush=True)
            source = parts_of(data, n, args.chunk, scratch / f"in-{n}")
            row["dask"] = run_dask(book, source, dask_out, args)
            print(f"{n:,} dask: {row['dask']}", flush=True)
            if isinstance(row["single"], dict):
                problems = differences(single_out, dask_out)
                if problems:
                    sys.exit(f"dask and one process disagree on {n:,} accounts:\n  " + "\n  ".join(problems))
                row["equal"] = True
            shutil.rmtree(dask_out, ignore_errors=True)
            single_out.unlink(missing_ok=True)
            rows.append(row)
        report(rows, args)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def report(rows: list[dict], args: argparse.Namespace) -> None:
    print()
    header = f"{'accounts':>11}  {'engine':<18}  {'pass 1 s':>8}  {'pass 2 s':>8}  {'total s':>8}  " \
             f"{'accounts/s':>10}  peak MiB per process"
    print(header)
    print("-" * len(header))
    for r in rows:
        s, d = r["single"], r["dask"]
        if isinstance(s, dict):
            print(f"{r['n']:>11,}  {'one process':<18}  {s['read']:>8.1f}  {s['evaluate'] + s['write']:>8.1f}  "
                  f"{s['total']:>8.1f}  {r['n'] / s['total']:>10,.0f}  {s['peak_mb']:,.0f} "
                  f"(evaluate alone {r['n'] / s['evaluate']:,.0f} accounts/s)")
        else:
            print(f"{r['n']:>11,}  {'one process':<18}  {s}")
        workers = ", ".join(f"{m:,.0f}" for m in d["workers_mb"])
        engine = f"dask, {len(d['workers_mb'])} workers"
        print(f"{r['n']:>11,}  {engine:<18}  {d['pass1']:>8.1f}  "
              f"{d['pass2']:>8.1f}  {d['total']:>8.1f}  {r['n'] / d['total']:>10,.0f}  {workers} "
              f"(driver {d['driver_mb']:,.0f}; {d['parts']} parts)"
              + ("; outputs equal to one process" if r.get("equal") else ""))
    print()
    print("One process: pass 1 = read all parts, pass 2 = evaluate + write. Dask: pass 1 = read every part, rank "
          "keys, rank the whole portfolio; pass 2 = read, evaluate, write every part.")
    print("Peak memory is each process's VmHWM: one process; the dask workers; the driver (client and local "
          "scheduler), so far in the run.")
    print(f"Figures from one run on a machine with {len(os.sched_getaffinity(0))} cores shared with other work; "
          "expect noise.")


if __name__ == "__main__":
    main()
