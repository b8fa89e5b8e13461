"""Benchmark: the rule engine vs hand-written numpy for the same rules (bench/book/), checked equal first."""

import os

# Single core for both contenders: set before numpy is first imported.
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import gc  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python bench/evaluate.py` without an installed kamcore
    sys.path.insert(0, str(ROOT))

from kamcore import RuleBook  # noqa: E402
from kamcore.demo import synthetic_portfolio  # noqa: E402

BOOK = ROOT / "bench" / "book"
AS_OF = "2026-11-23"
SEED = 7
TIERS = ["A", "B", "C", "D"]  # text outputs are computed as codes into these, then made categorical
STATUSES = ["ok", "warn", "require_guarantee", "hold"]
ORDER_BANDS = ["A", "B", "C", "D"]
ORDER_CUMULATIVE_PCT = np.array([20, 50, 80, 100])  # A 20% / B 30% / C 30% / D 20%, cumulated
A, B, C, D = range(4)
OK, WARN, GUARANTEE, HOLD = range(4)


# --- the same rules, written by hand ------------------------------------------------------------------------
# numpy comparisons with NaN are False, which is FEEL's "a test on null does not match"; so a condition is
# never written as the negation of another (not (x >= a) would match a null x).


def coalesce0(x: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(x), 0.0, x)


def one_of(codes: np.ndarray, uniques: np.ndarray, *values: str) -> np.ndarray:
    """text in (values...) for text factorized into (codes, uniques); a null (code -1) matches nothing."""
    return np.append(np.isin(uniques, values), False)[codes]


def tier_of(revenue: np.ndarray, margin: np.ndarray, dso: np.ndarray, industry: pd.Series) -> np.ndarray:
    """The 12-row FIRST table of bench/book/tiering.yaml (codes into TIERS), default D."""
    big = revenue >= 10_000_000
    large = (revenue >= 5_000_000) & (revenue < 10_000_000)
    mid = (revenue >= 1_000_000) & (revenue < 5_000_000)
    small = revenue < 1_000_000
    codes, uniques = pd.factorize(industry)  # compare the few distinct industries, not every row
    uniques = np.asarray(uniques, dtype=object)
    rows = [
        (big & (margin >= 0.25) & (dso <= 60), A),
        (big & (margin >= 0.15) & (dso <= 90), A),
        (big & (margin < 0.15), B),
        (big, B),
        (large & (margin >= 0.2) & (dso <= 60), A),
        (large & (margin >= 0.1), B),
        (large, C),
        (mid & (margin >= 0.3) & one_of(codes, uniques, "finance", "energy"), B),
        (mid & (margin >= 0.15) & (dso <= 90), C),
        (mid, D),
        (small & (margin >= 0.35) & one_of(codes, uniques, "finance"), C),
        (small, D),
    ]
    return np.select([m for m, _ in rows], [v for _, v in rows], default=D)


def credit_limit_of(tier: np.ndarray, score: np.ndarray, revenue: np.ndarray) -> np.ndarray:
    """The UNIQUE table of bench/book/credit.yaml, default 0. Its rows cannot overlap (each tier's score
    ranges are disjoint), so the first match is the only one; a null score matches no row."""
    a, b, c, d = (tier == A), (tier == B), (tier == C), (tier == D)
    rows = [
        (a & (score >= 70), revenue * 0.25),
        (a & (score < 70), revenue * 0.15),
        (b & (score >= 70), revenue * 0.2),
        (b & (score < 70), revenue * 0.12),
        (c & (score >= 60), np.minimum(revenue * 0.15, 1_000_000)),
        ((c | d) & (score < 60), 0.0),
        (d & (score >= 60), np.minimum(revenue * 0.12, 300_000)),
    ]
    return np.select([m for m, _ in rows], [v for _, v in rows], default=0.0)


def credit_status_of(utilisation: np.ndarray, exposure: np.ndarray, dso: np.ndarray) -> np.ndarray:
    """The FIRST table of bench/book/credit.yaml (codes into STATUSES), default ok."""
    rows = [
        (utilisation >= 1, HOLD),
        ((exposure > 0) & (dso > 120), HOLD),
        (utilisation >= 0.9, GUARANTEE),
        (dso > 90, GUARANTEE),
        (utilisation >= 0.8, WARN),
        (np.isnan(utilisation) & (exposure > 0), GUARANTEE),
    ]
    return np.select([m for m, _ in rows], [v for _, v in rows], default=OK)


def quantile_class(measure: np.ndarray) -> np.ndarray:
    """A 20% / B 30% / C 30% / D 20% by descending measure (codes into ORDER_BANDS); nulls rank last,
    ties keep input order. An account is in the first band whose cumulative share exceeds the share of
    accounts ranked above it (position / n), so band k ends at ceil(cumulative share k * n)."""
    n = len(measure)
    order = np.argsort(-measure, kind="stable")  # NaN sorts last; stable keeps input order among ties
    ends = -(-ORDER_CUMULATIVE_PCT * n // 100)  # ceil, in integers; band k holds [ends[k-1], ends[k])
    band = np.minimum(np.searchsorted(ends, np.arange(n), side="right"), len(ORDER_BANDS) - 1)
    out = np.empty(n, dtype=np.int64)
    out[order] = band
    return out


def by_hand(df: pd.DataFrame) -> pd.DataFrame:
    """Every output of bench/book, computed with plain numpy from the same columns."""
    revenue = df["revenue_12m"].to_numpy(np.float64)
    profit = df["gross_profit_12m"].to_numpy(np.float64)
    dso = df["dso_days"].to_numpy(np.float64)
    score = df["credit_score"].to_numpy(np.float64)
    nan = np.full(len(df), np.nan)

    margin = np.divide(profit, revenue, out=nan.copy(), where=revenue != 0)  # x / 0 is null
    tier = tier_of(revenue, margin, dso, df["industry"])
    limit = credit_limit_of(tier, score, revenue)
    receivables, open_orders = (df[c].to_numpy(np.float64) for c in ("receivables", "open_orders"))
    exposure = coalesce0(receivables) + coalesce0(open_orders)
    utilisation = np.divide(exposure, limit, out=nan.copy(), where=limit > 0)  # null limit: not > 0
    status = credit_status_of(utilisation, exposure, dso)
    multiplier = np.select([tier == A, tier == B, (tier == C) | (tier == D)], [2.0, 1.5, 1.0], default=1.0)
    points = np.floor(coalesce0(revenue) / 1000 * multiplier)
    order_class = quantile_class(df["order_count_12m"].to_numpy(np.float64))
    return pd.DataFrame({
        "gross_margin": margin,
        "tier": pd.Categorical.from_codes(tier, TIERS),
        "credit_limit": limit,
        "exposure": exposure,
        "utilisation": utilisation,
        "credit_status": pd.Categorical.from_codes(status, STATUSES),
        "points_multiplier": multiplier,
        "loyalty_points": points,
        "order_class": pd.Categorical.from_codes(order_class, ORDER_BANDS),
    }, index=df.index)


# --- checking and timing ------------------------------------------------------------------------------------


def engine(book: RuleBook, df: pd.DataFrame) -> pd.DataFrame:
    return book.evaluate(df, as_of=AS_OF).frame


def differences(got: pd.DataFrame, want: pd.DataFrame, names: list[str]) -> list[str]:
    """One line per output column where the engine's frame and the hand-written one disagree."""
    problems = []
    for name in names:
        if name not in want.columns:
            problems.append(f"{name}: computed by the engine but not by hand")
            continue
        g, w = got[name], want[name]
        if pd.api.types.is_numeric_dtype(g) and pd.api.types.is_numeric_dtype(w):
            a, b = g.to_numpy(np.float64), w.to_numpy(np.float64)
            bad = ~np.isclose(a, b, equal_nan=True)
        else:  # text: compare as Python objects, null equal to null
            a = g.astype(object).where(g.notna(), None).to_numpy()
            b = w.astype(object).where(w.notna(), None).to_numpy()
            bad = a != b
        if bad.any():
            rows = np.flatnonzero(bad)
            shown = ", ".join(f"row {i}: engine {a[i]!r} vs numpy {b[i]!r}" for i in rows[:3])
            problems.append(f"{name}: {len(rows):,} of {len(a):,} rows differ ({shown})")
    problems += [f"{name}: computed by hand but not by the engine"
                 for name in want.columns if name not in names]
    return problems


def peak_memory(book: RuleBook, df: pd.DataFrame) -> int:
    """Peak bytes allocated (Python and numpy) during one engine evaluation, its frame included."""
    gc.collect()
    tracemalloc.start()
    try:
        engine(book, df)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def run(book: RuleBook, n: int, repeat: int) -> dict[str, float]:
    df = synthetic_portfolio(n, seed=SEED)
    names = list(book.outputs)
    problems = differences(engine(book, df), by_hand(df), names)
    if problems:
        sys.exit(f"engine and numpy disagree on {n:,} accounts, so their timings cannot be compared:\n  "
                 + "\n  ".join(problems))
    engine_s, numpy_s = [], []
    for _ in range(repeat):  # interleaved, so drift in a shared machine hits both alike
        engine_s.append(timed(engine, book, df))
        numpy_s.append(timed(by_hand, df))
    input_bytes = int(df.memory_usage(deep=True).sum())
    return {"n": n, "engine": statistics.median(engine_s), "numpy": statistics.median(numpy_s),
            "peak": peak_memory(book, df) / input_bytes, "input_mb": input_bytes / 2**20}


def report(results: list[dict[str, float]], repeat: int, outputs: int) -> None:
    header = f"{'accounts':>11}  {'engine s':>9}  {'numpy s':>9}  {'engine M/s':>10}  {'numpy M/s':>9}  " \
             f"{'ratio':>6}  {'input MiB':>9}  {'peak/input':>10}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r['n']:>11,}  {r['engine']:>9.3f}  {r['numpy']:>9.3f}  {r['n'] / r['engine'] / 1e6:>10.2f}  "
              f"{r['n'] / r['numpy'] / 1e6:>9.2f}  {r['engine'] / r['numpy']:>5.2f}x  {r['input_mb']:>9.1f}  "
              f"{r['peak']:>9.1f}x")
    print()
    for r in results:
        print(f"{r['n']:,} accounts: engine {r['n'] / r['engine'] / 1e6:.2f} M acc/s, "
              f"numpy {r['n'] / r['numpy'] / 1e6:.2f} M acc/s, ratio {r['engine'] / r['numpy']:.2f}x, "
              f"peak mem {r['peak']:.1f}x input")
    print()
    print(f"Outputs: {outputs} columns, engine equal to numpy on every one (checked before timing).")
    print(f"Times are the median of {repeat} interleaved runs, in one process on a machine with "
          f"{os.cpu_count()} shared cores, single-threaded: figures from one run, expect some noise.")
    print("The engine's time includes building .frame (input columns + outputs); "
          "numpy returns the outputs only.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="portfolio sizes")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per size and contender")
    args = parser.parse_args(argv)
    if args.repeat < 1 or any(n < 1 for n in args.sizes):
        parser.error("sizes and --repeat must be positive")
    book = RuleBook.load(BOOK)  # loading and compiling happen once, outside the timings
    results = [run(book, n, args.repeat) for n in args.sizes]
    report(results, args.repeat, len(book.outputs))


if __name__ == "__main__":
    main()
