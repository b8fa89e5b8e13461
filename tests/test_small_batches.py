"""A request's few accounts take faster paths than a portfolio (cell-by-cell input reading, see
`vectors.coerce_cells`; rules evaluated account by account, see `expressions.scalar`). Those paths must give
exactly what the whole-column engine gives: these tests evaluate random accounts (empty and unreadable cells,
values on thresholds, ties, 中文 headers) both ways and compare every output, row error, warning and explain
trace; and the per-account rules against the same engine with only them switched off.

More examples than CI runs: KAM_EXAMPLES_SCALE=20 pytest tests/test_small_batches.py"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kamcore import RuleBook
from kamcore.decisions import output_table
from kamcore.expressions import scalar as S
from kamcore.expressions import vectors as V
from kamcore.expressions.types import Type
from kamcore.portfolio import read_columns, records_of
from server.encoding import result_rows
from tests.kinds import test_decision_table as dt_tests
from tests.kinds import test_ranking as ranking_tests
from tests.kinds import test_scorecard as scorecard_tests

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = RuleBook.load(ROOT / "rules")
AS_OF = "2026-11-23"
SCALE = float(os.environ.get("KAM_EXAMPLES_SCALE", "1"))


def examples(n: int) -> int:
    return max(1, int(n * SCALE))


# --- cells ---------------------------------------------------------------------------------------------------

UNREADABLE = ["abc", "1.2万", "(1,000)", "１２３", "12.5%", "¥1,234", "1,234.50", "n/a", "-", "", " ", "\u3000",
              "2024-03-01", "2024年3月1日", "20240301", "45000", "true", "是", "NA", "(12)", "1e3", "--"]
THRESHOLDS = [0, 1, 3, 5, 10, 20, 30, 45, 50, 60, 70, 80, 90, 100, 120, 180, 365, 1000, 10_000, 50_000,
              100_000, 200_000, 300_000, 500_000, 1_000_000, 2_000_000, 3_000_000, 5_000_000, 10_000_000]
numbers = st.one_of(
    st.sampled_from(THRESHOLDS), st.sampled_from(THRESHOLDS).map(float), st.sampled_from(THRESHOLDS).map(lambda x: -x),
    st.floats(-1e7, 2e7, allow_nan=False), st.integers(-10, 10_000_000), st.just(math.nan), st.just(math.inf))
dates = st.one_of(
    st.dates(dt.date(2015, 1, 1), dt.date(2030, 12, 31)),
    st.dates(dt.date(2015, 1, 1), dt.date(2030, 12, 31)).map(pd.Timestamp),
    st.dates(dt.date(2015, 1, 1), dt.date(2030, 12, 31)).map(lambda d: f"{d.year}/{d.month}/{d.day}"),
    st.dates(dt.date(2015, 1, 1), dt.date(2030, 12, 31)).map(lambda d: f"{d.year}年{d.month}月{d.day}日"),
    st.sampled_from([dt.date(2026, 11, 23), dt.date(2025, 11, 23), dt.date(2026, 5, 23), 45000, 20240301]))
texts = st.one_of(st.sampled_from(["manufacturing", "制造业", "Manufacturing", " retail ", "汽车", "energy", "finance",
                                   "政府", "east", "华南", "South", "KH000001", "KH000002", "客户A", "ＡＢＣ", "1001"]),
                  st.text("ab中文 -", max_size=4))
odd = st.one_of(st.sampled_from(UNREADABLE), st.none(), st.booleans(), st.just([1, 2]), st.just({"a": 1}))


def cells(kind: Type) -> st.SearchStrategy[Any]:
    main = {Type.NUMBER: numbers, Type.DATE: dates}.get(kind, texts)
    return st.one_of(main, main, main, odd, numbers, texts)


# --- comparing -----------------------------------------------------------------------------------------------


def same_vec(a: V.Vec, b: V.Vec) -> None:
    assert a.type == b.type
    assert a.data.dtype == b.data.dtype and a.data.shape == b.data.shape
    if a.data.dtype.kind in "mM":
        assert np.array_equal(a.data.view(np.int64), b.data.view(np.int64))
    elif a.data.dtype.kind == "f":
        assert np.array_equal(a.data, b.data, equal_nan=True)
    else:
        assert np.array_equal(a.data, b.data)
    if a.cats is None or b.cats is None:
        assert a.cats is None and b.cats is None
    else:
        assert a.cats.tolist() == b.cats.tolist()


@contextlib.contextmanager
def whole_columns():
    """Every small-batch path off: the engine as it runs over a portfolio."""
    saved = V.SMALL_COLUMN, S.ENABLED
    V.SMALL_COLUMN, S.ENABLED = -1, False
    try:
        yield
    finally:
        V.SMALL_COLUMN, S.ENABLED = saved


@contextlib.contextmanager
def vectorized_rules():
    """Only the per-account rule path off: every rule vectorized, over inputs read as for a few accounts."""
    saved = S.ENABLED
    S.ENABLED = False
    try:
        yield
    finally:
        S.ENABLED = saved


def run(book: RuleBook, accounts: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything an evaluation shows its callers, as comparable values (or the error it raised)."""
    try:
        ev = book.evaluate(accounts, as_of=AS_OF)
    except Exception as e:  # noqa: BLE001 - both paths must fail alike
        return {"raised": repr(e)}
    frame = ev.frame
    return {
        "frame": frame, "ok": ev.ok.tolist(), "errors": [e.to_dict() for e in ev.errors],
        "warnings": [e.to_dict() for e in ev.warnings], "outputs": [ev.outputs(i) for i in range(len(frame))],
        "explain": [ev.explain(i).to_dict() for i in range(len(frame))], "missing": ev.missing_fields,
        "headers": ev.headers, "names": ev.output_names,
        # what the service answers and logs, read from the engine's columns (not from `frame`)
        "results": result_rows(ev, np.flatnonzero(ev.ok)), "logged": output_table(ev),
    }


def assert_same(small: dict[str, Any], whole: dict[str, Any]) -> None:
    assert small.keys() == whole.keys()
    if "raised" in small:
        assert small == whole
        return
    pd.testing.assert_frame_equal(small.pop("frame"), whole.pop("frame"), check_exact=True)
    assert repr(small) == repr(whole)  # repr: NaN in a trace equals NaN, and 1 vs 1.0 or True vs 1 still differ


def both_ways(book: RuleBook, accounts: list[dict[str, Any]]) -> None:
    small = run(book, accounts)
    with vectorized_rules():
        vectorized = run(book, accounts)
    with whole_columns():
        whole = run(book, accounts)
    if "frame" in small:
        assert_same(dict(small, frame=small["frame"].copy()), vectorized)
    else:
        assert_same(dict(small), vectorized)
    assert_same(small, whole)


def accounts_for(book: RuleBook, most: int = 8) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Accounts with the book's input fields, each under its name or its 中文 / English label, some left out."""
    fields = sorted(book.inputs)

    @st.composite
    def accounts(draw: st.DrawFn) -> list[dict[str, Any]]:
        spelling = {f: draw(st.sampled_from([f, book.dictionary.label(f, "zh") or f,
                                             book.dictionary.label(f, "en") or f])) for f in fields}
        n = draw(st.integers(1, most))
        out = []
        for _ in range(n):
            record = {}
            for f in fields:
                if draw(st.integers(0, 9)) == 0:
                    continue  # left out of this record
                header = spelling[f] if draw(st.integers(0, 5)) else f  # records of one batch may spell it apart
                record[header] = draw(cells(book.inputs[f] or Type.STRING))
            out.append(record)
        if n > 1 and draw(st.booleans()):  # ties: a copy of an earlier account
            out.append(dict(out[draw(st.integers(0, n - 1))]))
        return out

    return accounts()


# --- input reading -------------------------------------------------------------------------------------------


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from([Type.NUMBER, Type.STRING, Type.DATE]), data=st.data(),
       exponent=st.sampled_from([0, 0, 4, -2]))
def test_reading_a_few_cells_gives_what_reading_the_column_gives(kind: Type, data: st.DataObject,
                                                                 exponent: int) -> None:
    values = data.draw(st.lists(cells(kind) | cells(Type.STRING), min_size=1, max_size=6))
    column = pd.DataFrame([{"c": v} for v in values])["c"]
    exponent = exponent if kind == Type.NUMBER else 0
    small = V.coerce_cells(column.to_numpy() if isinstance(column.dtype, np.dtype) else column.array, kind, exponent)
    whole_vec, whole_bad = V.coerce_series(column, kind, exponent)
    if small is not None:
        same_vec(small[0], whole_vec)
        assert small[1].tolist() == whole_bad.tolist()


@pytest.mark.parametrize("values", [[1, True], [True, 1], [False, 0, "0"], [0.0, -0.0, "x"], ["b", "a", None, "a"],
                                    [" a", "a", "-", ""], [math.nan, None], ["abc", [1], {"a": 1}],
                                    [[1, 2], pd.NaT], [pd.NaT, "2024-03-01", 5]])
@pytest.mark.parametrize("kind", [Type.NUMBER, Type.STRING, Type.DATE])
def test_awkward_columns_read_alike(values: list[Any], kind: Type) -> None:
    column = pd.DataFrame([{"c": v} for v in values])["c"]
    small = V.coerce_cells(column.array, kind)
    whole_vec, whole_bad = V.coerce_series(column, kind)
    if small is not None:
        same_vec(small[0], whole_vec)
        assert small[1].tolist() == whole_bad.tolist()


# --- whole evaluations ---------------------------------------------------------------------------------------


@settings(max_examples=examples(150), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(accounts=accounts_for(SHIPPED))
def test_the_shipped_book_gives_the_same_for_a_few_accounts_either_way(accounts: list[dict[str, Any]]) -> None:
    both_ways(SHIPPED, accounts)


def test_the_shipped_book_gives_the_same_for_its_demo_accounts() -> None:
    from kamcore.demo import synthetic_portfolio
    both_ways(SHIPPED, synthetic_portfolio(20).to_dict("records"))


KIND_BOOKS = {
    "unique": dt_tests.tier_table("UNIQUE", """
        - {when: {revenue: ">= 100"}, then: A, note: big}
        - {when: {revenue: "[10..100)"}, then: "= if industry = \\"finance\\" then \\"A\\" else \\"B\\""}
    """),
    "any": dt_tests.tier_table("ANY", """
        - {when: {revenue: ">= 100"}, then: A}
        - {when: {revenue: ">= 50"}, then: "= if revenue > 150 then \\"A\\" else \\"B\\""}
    """),
    "priority": dt_tests.tier_table("PRIORITY", """
        - {when: {revenue: ">= 100"}, then: A}
        - {when: {revenue: ">= 10"}, then: B}
        - {when: {industry: "not(null)"}, then: C}
    """, default="label: tier"),
    "first": dt_tests.tier_table("FIRST", """
        - {when: {revenue: "> 100", industry: "-"}, then: A}
        - {when: {revenue: "null"}, then: B}
    """),
    "rule order": dt_tests.tier_table("RULE ORDER", """
        - {when: {revenue: ">= 10"}, then: A}
        - {when: {industry: '"finance"'}, then: B}
        - {when: {revenue: "< 10"}, then: C}
    """),
    "output order": dt_tests.tier_table("OUTPUT ORDER", """
        - {when: {revenue: ">= 10"}, then: C}
        - {when: {industry: '"finance"'}, then: A}
        - {when: {revenue: ">= 100"}, then: B}
    """),
    "quantile": ranking_tests.ranking(tie_break="[account_id]"),
    "quantile within": ranking_tests.ranking(within="region", ties="together"),
    "pareto": ranking_tests.ranking("pareto", ranking_tests.PARETO),
    "pareto together": ranking_tests.ranking("pareto", ranking_tests.PARETO, ties="together", order="descending"),
}
KIND_BOOKS["collect dates"] = dt_tests.book("""
    rules:
      - id: t
        kind: decision_table
        label: Due dates
        hit_policy: COLLECT
        inputs: [revenue, score]
        outputs: [{name: due, type: date}]
        rows:
          - {when: {revenue: ">= 100"}, then: '= date("2024-01-01")'}
          - {when: {score: "[1..5]"}, then: '= date("2025-02-03")'}
          - {when: {revenue: "> 0"}, then: '= date("2026-11-23")'}
    """)
for _name in ("SUM", "COUNT", "MIN", "MAX"):
    KIND_BOOKS[f"collect {_name}"] = dt_tests.book(f"""
        rules:
          - id: t
            kind: decision_table
            label: Points
            hit_policy: COLLECT
            aggregation: {_name}
            inputs: [revenue, score]
            outputs: [{{name: points, type: number}}]
            rows:
              - {{when: {{revenue: ">= 100"}}, then: 10}}
              - {{when: {{score: "[1..5]"}}, then: "= score * 2"}}
              - {{when: {{revenue: "> 0"}}, then: 10}}
              - {{when: {{score: "> 3"}}, then: "= if score > 4 then null else 1"}}
        """)
KIND_BOOKS["scorecard"] = RuleBook.from_files({"fields.yaml": scorecard_tests.FIELDS,
                                               "card.yaml": scorecard_tests.TWO_INDICATORS})

# Books that reach every construct of the per-account compiler (and some it leaves to the vectorized path).
SCALAR_FIELDS = """
fields:
  - {name: revenue, type: number}
  - {name: score, type: number}
  - {name: industry, type: string}
  - {name: since, type: date}
  - {name: until, type: date}
  - {name: flag, type: boolean}
"""
KIND_BOOKS["formulas"] = RuleBook.from_files({"fields.yaml": SCALAR_FIELDS, "rules.yaml": """
rules:
  - id: f
    kind: formula
    label: Formulas
    formulas:
      a:
        expr: revenue / score
      b:
        expr: "round(revenue / 3, 2) + round(-score) + round(score * 1.005, 2) - round(revenue, -3)"
      c:
        expr: floor(score / 7) + ceil(-score / 7) + ceiling(score / 3) + abs(score - 50)
      d:
        expr: min(revenue, score * 1000, 5000) + max(coalesce(revenue, 0), coalesce(score, -1))
      e:
        expr: min(revenue, null) + max(null, score)
      mb:
        expr: months_between(since, until)
      db:
        expr: days_between(since, today()) - days_between(until, since)
      ym:
        expr: year(since) * 100 + month(coalesce(until, today()))
      i:
        expr: >-
          if contains(lower(industry), "fin") then 1 else if starts_with(industry, "制") then 2
          else if ends_with(upper(industry), "A") then 3 else null
      j:
        expr: revenue > 100 and (score < 5 or not(flag))
      k:
        expr: 'industry in ("finance", "retail", "制造业") or revenue in [10..100) or score in (1, 2, 3)'
      l:
        expr: min(since, until)
      m:
        expr: is_null(revenue) or flag or is_null(null)
      n:
        expr: revenue - score * 2 + -revenue + a * 0
      o:
        expr: if flag then since else until
      p:
        expr: 'industry = "energy" or industry != "finance" and revenue >= score'
      q:
        expr: if revenue > score then null else revenue / 0
      r:
        expr: 'since < until or since = until or since in [@"2024-01-01"..@"2025-12-31"]'
      s:
        expr: revenue * 1e300 * 1e300 - revenue * 1e300 * 1e300
      t:
        expr: 'score in (> 50, [10..20], null) and not(industry in ("x"))'
      u:
        expr: 'max(since, @"2026-01-01")'
      v:
        expr: 'if industry + "!" = "finance!" then 1 else 0'
  - id: text
    kind: formula
    label: Text formulas (vectorized)
    formulas:
      w:
        expr: 'upper(industry) + "x"'
      y:
        expr: score ** 2
"""})
KIND_BOOKS["cells"] = RuleBook.from_files({"fields.yaml": SCALAR_FIELDS, "rules.yaml": """
rules:
  - id: u
    kind: decision_table
    label: Cells
    hit_policy: UNIQUE
    inputs:
      - revenue
      - {expr: score * 2, name: double_score}
      - {expr: lower(industry), name: sector, values: [finance, retail, 制造业, energy]}
      - since
      - flag
    outputs:
      - {name: grade, type: string, values: [A, B, C], default: C}
      - {name: weight, type: number}
    rows:
      - {when: {revenue: "> score * 2", sector: '"finance", "retail"'}, then: {grade: A, weight: 1}}
      - {when: {revenue: "[score..100]", since: '< @"2025-01-01"'}, then: {grade: B, weight: 2.5}}
      - {when: {revenue: "null", flag: true}, then: {grade: B, weight: ~}}
      - {when: {double_score: "not(< 5, null)", sector: 'not("energy")', flag: false}, then: {grade: A, weight: 0}}
      - {when: {since: "null", revenue: "? > 1000 and ? < 2000"}, then: {grade: C, weight: -1}}
  - id: any
    kind: decision_table
    label: Any
    hit_policy: ANY
    inputs: [revenue, industry]
    outputs: [{name: same, type: number}]
    rows:
      - {when: {revenue: "> score"}, then: 1}
      - {when: {revenue: ">= 50", industry: '"finance"'}, then: 1}
      - {when: {revenue: "< score * 2"}, then: 2}
      - {when: {revenue: "null", industry: "? = lower(?)"}, then: {same: ~}}
  - id: priority
    kind: decision_table
    label: Priority
    hit_policy: PRIORITY
    inputs: [revenue, since]
    outputs:
      - {name: level, type: string, values: [high, mid, low]}
      - {name: note, type: string, values: [x, y]}
    rows:
      - {when: {revenue: ">= 10"}, then: {level: mid, note: y}}
      - {when: {revenue: ">= 10"}, then: {level: mid, note: x}}
      - {when: {since: "not(null)"}, then: {level: high, note: y}}
      - {when: {revenue: "-"}, then: {level: low, note: x}}
  - id: lists
    kind: decision_table
    label: Lists
    hit_policy: COLLECT
    inputs: [level, grade, flag]
    outputs: [{name: tags, type: string, default: none}]
    rows:
      - {when: {level: '"high"'}, then: h}
      - {when: {grade: '"A", "B"', flag: "not(true)"}, then: ab}
      - {when: {level: '"mid", "low"', grade: "null"}, then: {tags: ~}}
"""})

# Tables matched by the pieces values fall in (cells comparing an input only with constants) and by running the
# cells (cells reading another field), side by side: more rows than an int64 holds, overlapping rows under every
# policy, text in 中文, dates, booleans, an input computed from fields, nulls and infinities in the values.
_MANY = "\n".join(f'      - {{when: {{revenue: "[{k * 10}..{k * 10 + 25})", score: "{f"< {k}" if k % 3 else "-"}"}}, '
                   f'then: {{band: b{k % 7}}}}}' for k in range(70))
KIND_BOOKS["pieces"] = RuleBook.from_files({"fields.yaml": SCALAR_FIELDS, "rules.yaml": f"""
rules:
  - id: many_first
    kind: decision_table
    label: Many rows, first
    hit_policy: FIRST
    inputs: [revenue, score]
    outputs: [{{name: band, type: string, default: none}}]
    rows:
{_MANY}
  - id: many_collect
    kind: decision_table
    label: Many rows, collected
    hit_policy: COLLECT
    inputs: [revenue, score]
    outputs: [{{name: bands, type: string}}]
    rows:
{_MANY.replace("band:", "bands:")}
  - id: mixed_unique
    kind: decision_table
    label: Unique, some rows overlapping at run time
    hit_policy: UNIQUE
    inputs:
      - revenue
      - {{expr: score * 2, name: double}}
      - industry
      - since
      - flag
    outputs: [{{name: grade, type: string, values: [甲, 乙, 丙], default: 丙}}, {{name: w, type: number}}]
    rows:
      - {{when: {{revenue: "> score", industry: '"制造业", "finance"'}}, then: {{grade: 甲, w: 1}}}}
      - {{when: {{revenue: ">= 100", industry: 'not("制造业", "finance")', since: '< @"2025-01-01"'}},
         then: {{grade: 乙, w: 2}}}}
      - {{when: {{revenue: ">= 100", industry: 'not("制造业", "finance")', since: '>= @"2025-01-01", null'}},
         then: {{grade: 乙, w: 3}}}}
      - {{when: {{revenue: "< 100, null", double: "[10..20]", flag: "true"}}, then: {{grade: 丙, w: ~}}}}
      - {{when: {{revenue: "< 100, null", double: "not([10..20])", flag: "false, null"}}, then: {{grade: 甲, w: 0}}}}
      - {{when: {{revenue: "? < score * 3", since: "null"}}, then: {{grade: 乙, w: -1}}}}
  - id: mixed_any
    kind: decision_table
    label: Any, equal and different outputs
    hit_policy: ANY
    inputs: [revenue, until, industry]
    outputs: [{{name: same, type: number}}]
    rows:
      - {{when: {{revenue: "> 0"}}, then: 1}}
      - {{when: {{until: '> @"2026-01-01"'}}, then: 1}}
      - {{when: {{revenue: "? > score"}}, then: 1}}
      - {{when: {{revenue: "? < score", industry: '"energy", "汽车"'}}, then: 2}}
      - {{when: {{revenue: "null", until: "null", industry: "null"}}, then: {{same: ~}}}}
  - id: mixed_priority
    kind: decision_table
    label: Priority over overlapping rows
    hit_policy: PRIORITY
    inputs: [revenue, since, industry]
    outputs:
      - {{name: level, type: string, values: [high, mid, low]}}
      - {{name: note, type: string, values: [x, y, z]}}
    rows:
      - {{when: {{revenue: "[0..1000]"}}, then: {{level: low, note: z}}}}
      - {{when: {{revenue: "[0..1000]", since: '[@"2020-01-01"..@"2026-11-23"]'}}, then: {{level: mid, note: z}}}}
      - {{when: {{revenue: "? >= score", industry: "not(null)"}}, then: {{level: mid, note: x}}}}
      - {{when: {{since: "null", industry: '"制造业"'}}, then: {{level: high, note: y}}}}
  - id: mixed_order
    kind: decision_table
    label: Rule and output order
    hit_policy: OUTPUT ORDER
    inputs: [level, grade, flag, revenue]
    outputs: [{{name: tags, type: string, values: [t1, t2, t3, t4]}}]
    rows:
      - {{when: {{level: '"low", "mid"'}}, then: t3}}
      - {{when: {{grade: '"甲"', flag: "not(false)"}}, then: t1}}
      - {{when: {{level: "null", grade: "null"}}, then: t4}}
      - {{when: {{revenue: "> 1000000", flag: "? = true"}}, then: t2}}
      - {{when: {{revenue: "-"}}, then: t4}}
"""})
# A scorecard whose bands are found by the piece of each indicator's value (text in 中文, dates, booleans, an
# indicator computed from fields) and, where a band reads another field, by running the bands.
KIND_BOOKS["scorecard pieces"] = RuleBook.from_files({"fields.yaml": SCALAR_FIELDS, "rules.yaml": """
rules:
  - id: card
    kind: scorecard
    label: Card
    indicators:
      - name: rev
        expr: revenue
        weight: 0.25
        bands:
          - {when: ">= 1000000", points: 100}
          - {when: "[10..1000000)", points: 60}
          - {when: "(-1e300..10)", points: 10}
          - {when: "null", points: 3}
        missing_points: 1
      - name: sector
        expr: industry
        weight: 0.2
        bands:
          - {when: '"制造业", "汽车"', points: 90}
          - {when: '"finance"', points: 70}
          - {when: 'not(null, "")', points: 30}
        missing_points: 5
      - name: age
        expr: since
        weight: 0.2
        bands:
          - {when: '< @"2020-01-01"', points: 100}
          - {when: '[@"2020-01-01"..@"2026-11-23"]', points: 50}
        missing_points: 0
      - name: flagged
        expr: flag
        weight: 0.1
        bands:
          - {when: "true", points: 0}
          - {when: "false", points: 80}
        missing_points: 40
      - name: ratio
        expr: revenue / score
        weight: 0.15
        bands:
          - {when: "> 100", points: 100}
          - {when: "[0..100]", points: 50}
      - name: versus
        expr: score
        weight: 0.1
        bands:
          - {when: "? > revenue", points: 100}
          - {when: "< 3", points: 20}
    score: points
    grade:
      name: grade
      cutoffs:
        - {min: 70, grade: 甲}
        - {min: 40.5, grade: 乙}
        - {grade: 丙}
"""})

@pytest.mark.parametrize("name", sorted(KIND_BOOKS))
@settings(max_examples=examples(60), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_kinds_test_books_give_the_same_either_way(name: str, data: st.DataObject) -> None:
    book = KIND_BOOKS[name]
    both_ways(book, data.draw(accounts_for(book)))


@pytest.mark.parametrize("name", ["quantile", "quantile within", "pareto", "pareto together", "shipped"])
@settings(max_examples=examples(60), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_one_account_alone_ranks_the_same_either_way(name: str, data: st.DataObject) -> None:
    book = SHIPPED if name == "shipped" else KIND_BOOKS[name]
    both_ways(book, data.draw(accounts_for(book, most=1)))


@pytest.mark.parametrize("name", ["shipped", *sorted(KIND_BOOKS)])
@settings(max_examples=examples(25), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_one_accounts_result_row_is_the_column_by_column_row(name: str, data: st.DataObject) -> None:
    """An answer of one account is made cell by cell (server.encoding._one_row); it must hold what the column
    by column conversion of a portfolio's answer holds for it, its outputs held per account or as columns."""
    from server import encoding

    book = SHIPPED if name == "shipped" else KIND_BOOKS[name]
    accounts = data.draw(accounts_for(book, most=1))
    for per_account in (True, False):
        with contextlib.nullcontext() if per_account else whole_columns():
            ev = book.evaluate(accounts, as_of=AS_OF)
        everyone = np.flatnonzero(ev.ok)
        with mock.patch.object(encoding, "_one_row", wraps=encoding._one_row) as one_row:
            got = result_rows(ev, everyone)
        assert one_row.called == bool(ev.ok[0])  # the cell by cell path, whenever the account was read
        want = encoding._column_rows(ev, everyone, None)
        assert repr(got) == repr(want)  # 1 vs 1.0, True vs 1 and NaN vs null differ
        assert [list(row) for row in got] == [list(row) for row in want]


def test_the_shipped_book_runs_per_account_where_it_can() -> None:
    """The per-account path is not silently off: every rule of the shipped book has a per-account evaluation
    (rankings for one account alone)."""
    SHIPPED.evaluate([{"revenue_12m": 1}], as_of=AS_OF)
    planned = {r.id for r in SHIPPED.rules if r.__dict__.get("_per_account") is not None}
    assert planned == {r.id for r in SHIPPED.rules}
    formulas = KIND_BOOKS["formulas"]
    formulas.evaluate([{"revenue": 1}], as_of=AS_OF)
    assert [r.__dict__["_per_account"] is not None for r in formulas.rules] == [True, False]


def test_the_shipped_cells_are_looked_up_by_piece() -> None:
    """Every cell of the shipped tables and every band of its scorecards only compares its input with constants, so
    one account's rows and bands are looked up (scalar.pieces), none run per account: not silently lost."""
    from kamcore.kinds.decision_table import DecisionTableRule
    from kamcore.kinds.scorecard import ScorecardRule

    groups = []
    for rule in SHIPPED.rules:
        if isinstance(rule, DecisionTableRule):
            for k, expr in enumerate(rule.inputs):
                groups.append((expr.type, [t.tree for at, t in rule.distinct_tests if at == k]))
        elif isinstance(rule, ScorecardRule):
            groups += [(expr.type, [b.tree for b in bands]) for expr, bands in zip(rule.expressions, rule.bands,
                                                                                   strict=True)]
    assert len(groups) > 40
    for kind, trees in groups:
        assert S.pieces([S.Compiler().tests(tree, kind) for tree in trees], kind) is not None, (kind, trees)

def test_a_list_in_a_text_column_leaves_the_other_texts_matchable() -> None:
    """Found by the comparison above: a JSON list among text cells left the column's categories unsorted on the
    whole-column path, so `"finance"` no longer matched `finance` in the other rows."""
    column = pd.Series(["manufacturing", [1, 2], "finance"], dtype=object)
    vec, bad = V.coerce_series(column, Type.STRING)
    assert vec.cats.tolist() == ["finance", "manufacturing"] and bad.tolist() == [False, True, False]
    with whole_columns():
        ev = KIND_BOOKS["rule order"].evaluate([{"industry": "manufacturing"}, {"industry": [1, 2]},
                                                {"industry": "finance"}], as_of=AS_OF)
    assert ev.outputs(2)["tier"] == ["B"] and [e.row for e in ev.errors] == [1]


def test_writing_into_a_small_result_frame_leaves_the_input_alone() -> None:
    accounts = pd.DataFrame([{"revenue_12m": 100.0, "industry": "retail", "account_id": "A1"}])
    ev = SHIPPED.evaluate(accounts, as_of=AS_OF)
    frame = ev.frame
    frame.loc[0, "revenue_12m"] = 5.0
    frame.loc[0, "industry"] = "energy"
    assert ev.input.loc[0, "revenue_12m"] == 100.0 and ev.input.loc[0, "industry"] == "retail"
    assert accounts.loc[0, "revenue_12m"] == 100.0


@settings(max_examples=examples(300), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(accounts=accounts_for(SHIPPED, most=4), data=st.data())
def test_records_read_as_their_frame_reads(accounts: list[dict[str, Any]], data: st.DataObject) -> None:
    """A request's records are read without building their DataFrame (portfolio.records_of) exactly as the frame
    would be read: the same typed columns, row errors, unreadable rows, missing fields and headers."""
    extra = data.draw(st.lists(st.one_of(odd, numbers, st.just(pd.NaT), dates), max_size=len(accounts)))
    for record, cell in zip(accounts, extra, strict=False):
        record["extra"] = cell  # a column of mixed cells (read as text below)
    records = records_of(accounts, 16)
    needed = dict(SHIPPED.inputs, extra=data.draw(st.sampled_from([Type.NUMBER, Type.STRING, Type.DATE])))
    whole = read_columns(pd.DataFrame(accounts), needed, SHIPPED.dictionary)
    if records is None:
        return
    small = read_columns(records, needed, SHIPPED.dictionary)
    assert small.values.keys() == whole.values.keys()
    for name in whole.values:
        same_vec(small.values[name], whole.values[name])
    assert [e.to_dict() for e in small.errors] == [e.to_dict() for e in whole.errors]
    assert small.excluded.tolist() == whole.excluded.tolist()
    assert (small.missing, small.headers) == (whole.missing, whole.headers)
    pd.testing.assert_frame_equal(records.frame, pd.DataFrame(accounts))


@pytest.mark.parametrize("cells", [[None], [pd.NaT], [None, pd.NaT, None]])
@pytest.mark.parametrize("type_", [Type.NUMBER, Type.STRING, Type.DATE])
def test_a_null_field_is_read_without_the_frame(cells: list[Any], type_: Type) -> None:
    """A field sent as null by every record (`revenue_prev_12m: null`, one account in six of the demo portfolio)
    reads as null in any type, as the frame reads it, without building the frame."""
    accounts = [{"revenue_12m": 5, "x": cell} for cell in cells]
    records = records_of(accounts, 16)
    small = read_columns(records, {"x": type_, "revenue_12m": Type.NUMBER}, SHIPPED.dictionary)
    whole = read_columns(pd.DataFrame(accounts), {"x": type_, "revenue_12m": Type.NUMBER}, SHIPPED.dictionary)
    assert records._frame is None
    for name in whole.values:
        same_vec(small.values[name], whole.values[name])
    assert small.errors == whole.errors == [] and small.excluded.tolist() == whole.excluded.tolist()
    from kamcore.demo import synthetic_portfolio
    account = {**json.loads(synthetic_portfolio(1, seed=11).to_json(orient="records", date_format="iso"))[0],
               "revenue_prev_12m": None, "credit_score": None}
    quick = SHIPPED.evaluate([account], as_of=AS_OF)
    assert quick.source._frame is None
    pd.testing.assert_frame_equal(quick.frame, SHIPPED.evaluate(pd.DataFrame([account]), as_of=AS_OF).frame)
