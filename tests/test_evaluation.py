"""Evaluating the shipped rule book: per-row errors lose nothing, headers in 中文 map, traces explain."""

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from kamcore import RuleBook
from kamcore.demo import synthetic_portfolio


@pytest.fixture(scope="module")
def book():
    return RuleBook.load("rules/")


GOOD = {"account_id": "C1", "revenue_12m": 12_000_000, "gross_profit_12m": 3_600_000, "dso_days": 45,
        "industry": "manufacturing", "credit_score": 80, "receivables": 1_000_000, "open_orders": 200_000}


def test_a_wrong_typed_cell_in_row_7_fails_row_7_only(book):
    frame = synthetic_portfolio(12, seed=3).astype({"revenue_12m": object})
    frame.loc[7, "revenue_12m"] = "twelve million"
    ev = book.evaluate(frame, as_of="2026-11-23")
    assert [(e.row, e.field) for e in ev.errors] == [(7, "revenue_12m")]
    assert "'twelve million' is not a number" in ev.errors[0].message
    result = ev.frame
    assert result.loc[7, ["tier", "credit_limit", "loyalty_points"]].isna().all()
    good = result.drop(index=7)
    assert good["tier"].notna().all() and good["credit_status"].notna().all()
    assert list(ev.ok) == [i != 7 for i in range(12)]
    # the bad row takes no part in portfolio rankings: the rest rank as if it were absent
    alone = book.evaluate(frame.drop(index=7).reset_index(drop=True), as_of="2026-11-23").frame
    assert list(good["pareto_class"]) == list(alone["pareto_class"])
    assert list(good["order_class"]) == list(alone["order_class"])


def test_results_do_not_depend_on_batch_size(book):
    frame = synthetic_portfolio(40, seed=11)
    whole = book.evaluate(frame, as_of="2026-11-23")
    # Rankings depend on the other accounts; nothing else may (next actions read no rank on purpose).
    portfolio_relative = {"pareto_class", "order_class", "order_class_in_industry", "credit_class",
                          "credit_class_in_industry"}
    for i in (0, 17, 39):
        single = book.evaluate(frame.iloc[[i]].reset_index(drop=True), as_of="2026-11-23")
        a, b = whole.outputs(i), single.outputs(0)
        assert {k: v for k, v in a.items() if k not in portfolio_relative} == \
            {k: v for k, v in b.items() if k not in portfolio_relative}


def test_same_inputs_same_revision_same_answer(book):
    frame = synthetic_portfolio(200, seed=5)
    first = book.evaluate(frame, as_of="2026-11-23").frame
    again = RuleBook.load("rules/").evaluate(frame.copy(), as_of="2026-11-23").frame
    pd.testing.assert_frame_equal(first, again)


def test_the_input_frame_is_not_modified(book):
    frame = synthetic_portfolio(20, seed=1)
    before = frame.copy()
    book.evaluate(frame, as_of="2026-11-23")
    pd.testing.assert_frame_equal(frame, before)


def test_changing_the_result_frame_leaves_the_evaluation_alone(book):
    ev = book.evaluate(synthetic_portfolio(3, seed=2), as_of="2026-11-23")
    before = [ev.outputs(i) for i in range(3)]
    frame = ev.frame
    frame.loc[0, "credit_limit"] = -1.0
    frame["loyalty_points"] *= 2
    frame.loc[1, "tier"] = frame.loc[2, "tier"]
    assert [ev.outputs(i) for i in range(3)] == before
    assert ev.explain(0).step("credit_terms")["outputs"] == {k: before[0][k] for k in
                                                             book.rule("credit_terms").outputs}


def test_chinese_and_english_headers_map_through_the_dictionary(book):
    rows = [{"客户编号": "C1", "近12个月销售额": "12,000,000", "近12个月毛利": 3_600_000, "平均回款天数": 45,
             "行业": "manufacturing"},
            {"Account ID": "C2", "Revenue (12m)": 600_000, "Gross profit (12m)": 240_000, "DSO": 20,
             "Industry": "finance"}]
    ev = book.evaluate(rows, as_of="2026-11-23")
    assert ev.errors == []
    assert [ev.outputs(i)["tier"] for i in range(2)] == ["A", "C"]
    assert ev.headers["revenue_12m"] == "近12个月销售额"


def test_fields_missing_from_the_table_are_reported_and_treated_as_empty(book):
    ev = book.evaluate([{"revenue_12m": 500_000}], as_of="2026-11-23")
    assert "credit_score" in ev.missing_fields and "revenue_12m" not in ev.missing_fields
    assert ev.outputs(0)["tier"] == "D"


def test_one_account_as_a_mapping(book):
    ev = book.evaluate(GOOD, as_of="2026-11-23")
    assert ev.outputs(0)["tier"] == "A" and ev.outputs(0)["credit_status"] == "ok"


def test_explain_names_the_rule_rows_and_inputs(book):
    ev = book.evaluate([GOOD], as_of="2026-11-23")
    trace = ev.explain(0)
    tier = trace.step("tier")
    assert tier["hit"][0]["row"] == "r1" and tier["hit"][0]["note"] == "300万以上，毛利≥15%，回款≤90天"
    assert tier["inputs"]["revenue_12m"] == 12_000_000 and tier["outputs"] == {"tier": "A"}
    assert [s["rule"] for s in trace.steps] == [r.id for r in book.rules]
    score = trace.step("account_score")
    assert {i["indicator"] for i in score["indicators"]} == {"revenue", "profit", "growth", "strategic", "credit"}
    json.dumps(trace.to_dict(), ensure_ascii=False)  # the service sends it as JSON
    assert "客户等级 [tier]: tier = A" in trace.text("zh")
    assert "Account tier [tier]: tier = A" in trace.text("en")
    with pytest.raises(IndexError):
        ev.explain(5)


def test_explain_shows_row_errors(book):
    ev = book.evaluate([{"revenue_12m": "lots"}], as_of="2026-11-23")
    assert ev.explain(0).errors[0].field == "revenue_12m"
    assert "!! input: revenue_12m" in ev.explain(0).text()


def test_today_means_as_of(tmp_path):
    (tmp_path / "f.yaml").write_text(
        "fields:\n  - {name: last_order, type: date}\n"
        "rules:\n  - {id: idle, kind: formula, label: Idle, formulas: {idle_days: 'days_between(last_order, "
        "today())'}}\n", encoding="utf-8")
    book = RuleBook.load(tmp_path)
    accounts = [{"last_order": "2026-01-01"}]
    assert book.evaluate(accounts, as_of="2026-01-31").outputs(0)["idle_days"] == 30
    assert book.evaluate(accounts, as_of=dt.date(2026, 3, 1)).outputs(0)["idle_days"] == 59
    assert book.evaluate(accounts, as_of="2026-01-31").as_of == dt.date(2026, 1, 31)


def test_output_columns_have_useful_dtypes(book):
    frame = book.evaluate(synthetic_portfolio(50), as_of="2026-11-23").frame
    assert frame["credit_limit"].dtype == np.float64
    assert isinstance(frame["tier"].dtype, pd.CategoricalDtype)
    assert set(frame["tier"].dropna().unique()) <= {"A", "B", "C", "D"}


def test_progress_is_reported_per_rule(book):
    seen = []
    book.evaluate([GOOD], as_of="2026-11-23", progress=seen.append)
    assert seen == [r.id for r in book.rules]
