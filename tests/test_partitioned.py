"""Partitioned evaluation on Dask gives what one process gives (ties, nulls, groups, row errors, rankings of
rankings), on a real two-worker cluster; and `kam evaluate --engine dask`."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from distributed import Client, LocalCluster, get_task_stream

from kamcore import RuleBook, partitioned
from kamcore.cli import main
from kamcore.demo import synthetic_portfolio
from kamcore.evaluation import as_of_date, begin
from kamcore.kinds.ranking import RankingRule, RankKeys
from kamcore.portfolio import read_table

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "rules"
AS_OF = "2026-11-23"
QUANTILE = "[{label: A, share: 20%}, {label: B, share: 30%}, {label: C, share: 30%}, {label: D, share: 20%}]"
# Every kind of portfolio-relative rule: Pareto with split and together ties, quantiles within groups with
# text and date tie-breaks, ascending order, a measure computed by a formula, a ranking within another
# ranking's classes (two key passes), and a table whose UNIQUE overlaps show only in the data (row errors).
BOOK = {
    "fields.yaml": """
fields:
  - {name: account_id, type: string}
  - {name: region, type: string}
  - {name: revenue, type: number}
  - {name: orders, type: number}
  - {name: opened, type: date}
  - {name: score, type: number}
""",
    "ranks.yaml": f"""
rules:
  - id: weighting
    kind: formula
    label: Weighted revenue
    formulas:
      weighted: revenue * 1.1 + coalesce(orders, 0)
  - id: key_accounts
    kind: ranking
    label: Key accounts
    method: pareto
    measure: weighted
    tie_break: [account_id]
    bands: [{{label: key, share: 80%}}, {{label: other, share: 20%}}]
    output: key_class
  - id: revenue_bands
    kind: ranking
    label: Revenue bands
    method: pareto
    measure: revenue
    within: region
    ties: together
    bands: [{{label: top, share: 50%}}, {{label: mid, share: 30%}}, {{label: tail, share: 20%}}]
    output: revenue_band
  - id: order_class
    kind: ranking
    label: Order class
    method: quantile
    measure: orders
    within: region
    tie_break: [opened, account_id]
    bands: {QUANTILE}
    output: order_class
  - id: order_rank_together
    kind: ranking
    label: Order class, ties together
    method: quantile
    measure: orders
    order: ascending
    ties: together
    bands: {QUANTILE}
    output: order_together
  - id: key_tiers
    kind: ranking
    label: Tiers within the key class
    method: quantile
    measure: revenue
    within: key_class
    tie_break: [account_id]
    bands: [{{label: gold, share: 50%}}, {{label: silver, share: 50%}}]
    output: key_tier
  - id: service
    kind: decision_table
    label: Service
    hit_policy: UNIQUE
    inputs: [score]
    outputs: [{{name: service, type: string, default: basic}}]
    rows:
      - {{when: {{score: "? > orders * 10"}}, then: priority}}
      - {{when: {{score: ">= 90"}}, then: standard}}
""",
}


def portfolio(n: int, seed: int) -> pd.DataFrame:
    """Accounts with many ties (few distinct revenues, order counts and dates, repeated ids), empty cells,
    negative revenue, and unreadable cells (text for a number, a date that is not one). Ids and regions mix
    scripts, so text tie-breaks must sort the same way however the portfolio is cut."""
    rng = np.random.default_rng(seed)
    prefixes = rng.choice(np.array(["A", "a", "É", "中", "Z", "😀"], dtype=object), n)
    frame = pd.DataFrame({
        "account_id": np.array([f"{p}{i:04d}" for p, i in zip(prefixes, rng.integers(0, n // 4, n), strict=True)],
                               dtype=object),
        "region": rng.choice(np.array(["east", "West", "华东", "Zürich", None], dtype=object), n),
        "revenue": rng.choice([0.0, 100.0, 250.0, 1000.0, 5000.0, 20000.0, -50.0, np.nan], n).astype(object),
        "orders": rng.choice([*range(8), np.nan], n),
        "opened": rng.choice(np.array(["2020-01-01", "2021-06-30", "2024-02-29", None], dtype=object), n),
        "score": rng.integers(0, 101, n).astype(float),
    })
    frame.loc[rng.random(n) < 0.02, "account_id"] = None
    frame.loc[rng.choice(n, 9, replace=False), "revenue"] = "lots"
    frame.loc[rng.choice(n, 5, replace=False), "opened"] = "someday"
    return frame


def in_parts(frame: pd.DataFrame, cuts: list[int]) -> dd.DataFrame:
    """`frame` as a Dask DataFrame cut at `cuts`: uneven partitions, an empty one where two cuts are equal."""
    bounds = [0, *cuts, len(frame)]
    with dask.config.set({"dataframe.convert-string": False}):  # the cells as they are, as one process sees them
        return dd.concat([dd.from_pandas(frame.iloc[a:b], npartitions=1, sort=False)
                          for a, b in zip(bounds[:-1], bounds[1:], strict=True)])


def cells(frame: pd.DataFrame) -> dict[str, list]:
    """Every column as plain Python values, missing as None (categories and text dtypes compare alike)."""
    return {str(c): frame[c].astype(object).where(frame[c].notna(), None).tolist() for c in frame.columns}


def as_written(columns: dict[str, list]) -> dict[str, list]:
    """List outputs (COLLECT tables) as the part files hold them: "a, b" text, one schema for every part."""
    return {c: [", ".join(map(str, v)) if isinstance(v, list) else v for v in values] for c, values in columns.items()}


def row_errors(errors) -> list[tuple]:
    return [(e.row, e.rule, e.field, e.message) for e in errors]


def table_rows(table: pd.DataFrame) -> list[tuple]:
    c = cells(table)
    return list(zip(c["row"], c["rule"], c["field"], c["message"], strict=True))


@pytest.fixture(scope="module")
def cluster():
    # Worker processes, not threads: the rule book, rank keys and ranks really cross process boundaries
    # (pickled), as on a real cluster, where a thread-only cluster would share the client's objects.
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as c, \
            Client(c) as client:
        yield client


@pytest.fixture(scope="module")
def book():
    return RuleBook.from_files(BOOK)


# --- the join that makes partitions rank as one frame --------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_keys_of_parts_joined_rank_exactly_as_the_whole(book, seed):
    frame = portfolio(500, seed)
    rng = np.random.default_rng(seed)
    cuts = sorted(rng.integers(0, len(frame), rng.integers(1, 12)).tolist())
    bounds = [0, *cuts, len(frame)]
    day = as_of_date(AS_OF)
    whole, _ = begin(book, frame, day)
    parts = [begin(book, frame.iloc[a:b], day)[0] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    for state in [whole, *parts]:
        book.rule("weighting").evaluate(state)  # the Pareto measure is a formula's output
    for rule in (r for r in book.rules if isinstance(r, RankingRule) and r.id != "key_tiers"):
        want = rule.rank(rule.keys(whole))
        got = rule.rank(RankKeys.joined([rule.keys(s) for s in parts]))
        for name in ("band", "rank", "share", "size", "empty"):
            assert np.array_equal(getattr(got, name), getattr(want, name)), (rule.id, name)


def test_ranks_of_another_size_are_refused(book):
    rule = book.rule("order_class")
    state, _ = begin(book, portfolio(50, 1), as_of_date(AS_OF))
    ranks = rule.rank(rule.keys(state))
    with pytest.raises(ValueError, match="49 ranks for 50 accounts"):
        rule.apply(state, ranks.part(0, 49))


# --- on a two-worker cluster ---------------------------------------------------------------------------------


def test_equal_to_one_process_on_a_cluster_with_ties_nulls_groups_and_bad_rows(cluster, book):
    frame = portfolio(2000, seed=11)
    single = book.evaluate(frame, as_of=AS_OF)
    accounts = in_parts(frame, [7, 400, 400, 1100, 1101, 1500, 1700, 1999])  # 9 parts, one empty
    with get_task_stream(cluster) as tasks:
        ev = partitioned.evaluate(book, accounts, as_of=AS_OF, explain="en")
        result, errors, warnings = dask.compute(ev.frame, ev.errors, ev.warnings)
    ran = {t["key"][0] if isinstance(t["key"], tuple) else t["key"] for t in tasks.data}
    assert any(k.startswith("_rank_whole") for k in ran) and any(k.startswith("_partition_result") for k in ran)
    result = result.reset_index(drop=True)
    assert (result.pop("rules_version") == book.digest).all()
    explanation = result.pop("explanation")
    assert cells(result) == cells(single.frame)
    # the traces (rank, group size, share above) agree too, row by row
    assert explanation.tolist() == [single.explain(i).text("en") for i in range(len(frame))]
    assert table_rows(errors) == row_errors(single.errors)
    assert table_rows(warnings) == row_errors(single.warnings)
    # the data has what the test is about
    unreadable = {e.row for e in single.errors if e.rule is None}
    assert {e.field for e in single.errors if e.rule is None} == {"revenue", "opened"} and len(unreadable) >= 10
    assert any(e.rule == "service" for e in single.errors)  # UNIQUE overlaps, rows still ranked
    assert single.frame["order_class"].isna().sum() == len(unreadable) and len(single.warnings) > 100


def test_the_shipped_book_on_a_synthetic_portfolio_in_16_parts(cluster):
    book = RuleBook.load(RULES)
    frame = synthetic_portfolio(10_000, seed=4)
    frame.loc[::9, "order_count_12m"] = 5.0  # long runs of tied order counts, across partitions
    single = book.evaluate(frame, as_of=AS_OF)
    with dask.config.set({"dataframe.convert-string": False}):
        accounts = dd.from_pandas(frame, npartitions=16, sort=False)
    ev = partitioned.evaluate(book, accounts, as_of=AS_OF)
    result, warnings = dask.compute(ev.frame, ev.warnings)
    assert cells(result.drop(columns="rules_version")) == cells(single.frame)
    assert table_rows(warnings) == row_errors(single.warnings)


def test_a_ranking_within_another_rankings_classes_takes_a_second_key_pass(book, capsys):
    frame = portfolio(300, seed=2)
    with dask.config.set(scheduler="threads"):  # dask's local progress bar, not the cluster's
        ev = partitioned.evaluate(book, in_parts(frame, [100, 200]), as_of=AS_OF, progress=True)
        result = ev.frame.compute()
    err = capsys.readouterr().err
    assert re.search(r"ranking key_accounts, revenue_bands, order_class, order_rank_together .*\(pass 1 of 3\)", err)
    assert "ranking key_tiers over the whole portfolio (pass 2 of 3)" in err
    assert "100% Completed" in err
    assert cells(result.drop(columns="rules_version")) == cells(book.evaluate(frame, as_of=AS_OF).frame)


def test_a_book_without_rankings_needs_no_key_pass(capsys):
    book = RuleBook.from_files({"fields.yaml": BOOK["fields.yaml"], "f.yaml": """
rules:
  - {id: double, kind: formula, label: Double, formulas: {double: revenue * 2}}
"""})
    frame = portfolio(100, seed=3)
    with dask.config.set(scheduler="sync"):
        ev = partitioned.evaluate(book, in_parts(frame, [50]), as_of=AS_OF, progress=True)
        result, errors = dask.compute(ev.frame, ev.errors)
    assert "ranking" not in capsys.readouterr().err
    assert cells(result[["double"]]) == cells(book.evaluate(frame, as_of=AS_OF).frame[["double"]])
    assert errors["row"].tolist() == sorted(e.row for e in book.evaluate(frame, as_of=AS_OF).errors)


# --- kam evaluate --engine dask ------------------------------------------------------------------------------


def kam(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_cli_on_a_running_scheduler_reads_a_csv_glob_and_writes_parquet_parts(cluster, tmp_path):
    frame = synthetic_portfolio(3000, seed=8).drop(columns=["last_order_date"]).astype(object)
    frame.loc[1234, "revenue_12m"] = "lots"
    frame.loc[2990, "dso_days"] = "slow"
    source = tmp_path / "in"
    source.mkdir()
    for k in range(3):
        part = frame.iloc[k * 1000:(k + 1) * 1000]
        if k == 2:  # an export from a Chinese Excel: GBK, Chinese headers
            part = part.rename(columns={"revenue_12m": "近12个月销售额", "account_name": "客户名称"})
            part.to_csv(source / f"accounts-{k}.csv", index=False, encoding="gbk")
        else:
            part.to_csv(source / f"accounts-{k}.csv", index=False)
    out = tmp_path / "scored.parquet"
    result = kam("evaluate", source / "accounts-*.csv", "-o", out, "--engine", "dask",
                 "--scheduler", cluster.scheduler.address, "--rules", RULES, "--as-of", AS_OF)
    assert result.exit_code == 0, result.output

    book = RuleBook.load(RULES)
    files = sorted(source.glob("*.csv"))
    whole = pd.concat([read_table(f) for f in files], ignore_index=True)
    single = book.evaluate(whole, as_of=AS_OF)
    written = pd.read_parquet(out)
    assert sorted(p.name for p in out.iterdir()) == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert (written.pop("rules_version") == book.digest).all()
    assert cells(written) == as_written(cells(single.frame[single.ok].reset_index(drop=True)))
    errors = pd.read_csv(tmp_path / "scored.errors.csv", encoding="utf-8-sig")
    assert errors[["file", "row", "line", "field"]].values.tolist() == [
        [str(files[1]), 235, 236, "revenue_12m"], [str(files[2]), 991, 992, "dso_days"]]
    assert errors["message"].tolist() == [e.message for e in single.errors]
    assert "accounts-1.csv:236: input/revenue_12m: 'lots' is not a number" in result.stderr
    assert f"2998 of 3000 accounts written to {out} (3 parts, rules_version {book.digest}); 2 with errors" \
        in result.stderr
    assert "dask: 2 worker(s) at tcp://" in result.stderr
    assert "(pass 1 of 2)" in result.stderr and "100% Completed" in result.stderr


def test_cli_on_its_own_local_cluster_writes_csv_parts_and_replaces_an_earlier_run(tmp_path):
    frame = synthetic_portfolio(900, seed=9)
    source = tmp_path / "accounts"
    source.mkdir()
    for k in range(3):
        frame.iloc[k * 300:(k + 1) * 300].to_parquet(source / f"part-{k}.parquet", index=False)
    out = tmp_path / "scored.csv"
    out.mkdir()
    for stale in ("part-00000.csv", "part-00007.csv"):
        (out / stale).write_text("stale\n", encoding="utf-8")
    (tmp_path / "scored.errors.csv").write_text("stale\n", encoding="utf-8")
    result = kam("evaluate", source, "-o", out, "--engine", "dask", "--rules", RULES, "--as-of", AS_OF,
                 "--explain", "--lang", "zh")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["part-00000.csv", "part-00001.csv", "part-00002.csv"]
    assert not (tmp_path / "scored.errors.csv").exists()  # every row good: no stale errors file either
    written = pd.concat([pd.read_csv(p, encoding="utf-8-sig") for p in sorted(out.iterdir())], ignore_index=True)
    single = RuleBook.load(RULES).evaluate(frame, as_of=AS_OF)
    assert written["tier"].tolist() == single.frame["tier"].tolist()
    assert written["order_class"].tolist() == single.frame["order_class"].tolist()
    assert written["explanation"][7] == single.explain(7).text("zh")
    assert "900 of 900 accounts written" in result.stderr


def test_cli_names_an_unreadable_csv_instead_of_a_traceback(cluster, tmp_path):
    source = tmp_path / "accounts.csv"
    source.write_text("account_id,revenue_12m\nC1,100\nC2,200,surplus,cells\n", encoding="utf-8")
    result = kam("evaluate", source, "-o", tmp_path / "out.parquet", "--engine", "dask", "--rules", RULES,
                 "--scheduler", cluster.scheduler.address)
    assert result.exit_code == 1
    assert re.search(r"accounts\.csv: cannot read: .*Expected 2 fields in line 3, saw 4$", result.stderr.strip())


def test_cli_refuses_before_computing_anything(tmp_path):
    accounts = tmp_path / "accounts.csv"
    synthetic_portfolio(10).to_csv(accounts, index=False)
    busy = tmp_path / "busy.parquet"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine\n", encoding="utf-8")
    cases = [
        (["evaluate", accounts, "-o", busy, "--engine", "dask"], "busy.parquet: holds notes.txt"),
        (["evaluate", accounts, "-o", tmp_path / "out.xlsx", "--engine", "dask"], "name it *.parquet or *.csv"),
        (["evaluate", tmp_path / "none-*.csv", "-o", tmp_path / "o.parquet", "--engine", "dask"],
         "none-*.csv: no csv or parquet file there"),
        (["evaluate", shutil.copy(accounts, tmp_path / "a.json"), "-o", tmp_path / "o.parquet", "--engine", "dask"],
         "reads csv or parquet files, not .json"),
        (["evaluate", accounts, "-o", tmp_path / "o.csv", "--scheduler", "tcp://127.0.0.1:1"],
         "--scheduler needs --engine dask"),
    ]
    for args, message in cases:
        result = kam(*args, "--rules", RULES)
        assert result.exit_code != 0, args
        assert message in result.stderr, (args, result.stderr)
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        result = kam("evaluate", accounts, "-o", tmp_path / "o.parquet", "--engine", "dask", "--rules", RULES,
                     "--scheduler", "tcp://127.0.0.1:9")
    assert result.exit_code == 1
    assert "cannot reach the dask scheduler at tcp://127.0.0.1:9" in result.stderr


# --- the benchmark -------------------------------------------------------------------------------------------


def test_the_benchmark_checks_both_engines_agree_on_a_tiny_portfolio(cluster, tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "dask.py"), "--sizes", "2000", "--chunk", "1000",
                           "--scheduler", cluster.scheduler.address, "--data", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"2,000  dask, 2 workers .*\(driver [\d,]+; 2 parts\); outputs equal to one process", done.stdout)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accounts-00000.parquet", "accounts-00001.parquet"]


def test_small_parts_ranked_within_a_rule_output_ship_their_keys_between_workers(cluster):
    """Found in review: a part of a few accounts is evaluated per account, so a ranking's `within` read from
    another rule's output is a per-account column (scalar.ListVec); its keys travel to the cluster pickled."""
    book = RuleBook.from_files({"fields.yaml": """
fields:
  - {name: account_id, type: string}
  - {name: revenue, type: number}
""", "rules.yaml": """
rules:
  - id: sizing
    kind: decision_table
    label: Size
    hit_policy: FIRST
    inputs: [revenue]
    outputs: [{name: size, type: string, values: [big, small]}]
    rows:
      - {when: {revenue: ">= 100"}, then: big}
      - {when: {revenue: "-"}, then: small}
  - id: rank
    kind: ranking
    label: Class
    method: quantile
    measure: revenue
    within: size
    bands: [{label: A, share: 50%}, {label: B, share: 50%}]
    output: cls
"""})
    frame = pd.DataFrame({"account_id": list("abcdef"), "revenue": [5.0, 150.0, 300.0, 7.0, 120.0, 1.0]})
    single = book.evaluate(frame, as_of=AS_OF)
    ev = partitioned.evaluate(book, in_parts(frame, [3]), as_of=AS_OF)
    result = ev.frame.compute().reset_index(drop=True)
    result.pop("rules_version")
    assert cells(result) == cells(single.frame)
    assert result["cls"].tolist() == ["A", "A", "A", "A", "B", "B"]
