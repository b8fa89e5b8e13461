"""Rule store benchmark: commit latency on the shipped rule book, and what part of it is validation.

A commit loads the changed book, runs its rule tests, then writes blobs, tree and commit and moves the branch.
Reported: median commit latency, median validation-only time (the same load + tests, nothing written), their
ratio, and history / blame times after the commits. Medians of interleaved runs.

    python bench/store.py [--commits 30]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kamcore.store import RuleStore  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commits", type=int, default=30)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="kam-bench-store-"))
    try:
        store = RuleStore.open(data, seed=ROOT / "rules")
        text = store.read("tiering.yaml")
        marker = "description: >"
        assert marker in text
        commit_ms, validate_ms = [], []
        for i in range(args.commits):
            changed = {"tiering.yaml": text.replace(marker, f"description: >\n      Revision {i}.", 1)}
            start = time.perf_counter()
            store.validate(changed, store.head())
            validate_ms.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            store.commit(changed, store.head(), "bench", f"Revision {i}")
            commit_ms.append((time.perf_counter() - start) * 1000)
        c, v = statistics.median(commit_ms), statistics.median(validate_ms)
        print(f"{args.commits} commits on the shipped book: median commit {c:.0f} ms, validation alone {v:.0f} ms "
              f"(validation is {v / c:.0%} of a commit; the git write and ref move {c - v:.0f} ms)")
        start = time.perf_counter()
        n = len(store.history(rule_id="tier"))
        print(f"history of one rule over {args.commits + 1} revisions: {(time.perf_counter() - start) * 1000:.0f} ms "
              f"({n} revisions touched it)")
        start = time.perf_counter()
        store.blame("tier")
        print(f"blame of the tier table: {(time.perf_counter() - start) * 1000:.0f} ms")
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
