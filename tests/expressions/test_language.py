"""The expression language end to end: parsing, type checking, and vectorized evaluation with FEEL nulls."""

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kamcore.errors import ExpressionSyntaxError, ExpressionTypeError, UnknownName
from kamcore.expressions import Expression, UnaryTest, ast, parse_expression, parse_unary_tests
from kamcore.expressions import vectors as V
from kamcore.expressions.types import Type

TYPES = {
    "revenue": Type.NUMBER, "profit": Type.NUMBER, "industry": Type.STRING, "since": Type.DATE,
    "vip": Type.BOOLEAN, "近12个月销售额": Type.NUMBER, "Revenue (12m)": Type.NUMBER,
}
AS_OF = np.datetime64("2026-06-30")


def columns(**values):
    cols = {
        "revenue": V.number([100.0, np.nan, 5e6, 0.0]),
        "profit": V.number([10.0, 5.0, 1e6, 3.0]),
        "industry": V.strings(["finance", "retail", None, "gov"]),
        "since": V.date(np.array(["2024-01-31", "NaT", "2023-06-15", "2020-02-29"], dtype="datetime64[D]")),
        "vip": V.boolean(np.array([True, False, True, False]), np.array([False, False, True, False])),
        "近12个月销售额": V.number([1.0, 2.0, 3.0, 4.0]),
        "Revenue (12m)": V.number([5.0, 6.0, 7.0, 8.0]),
    }
    cols.update(values)
    return cols


def run(text, **cols):
    e = Expression.compile(text, TYPES.get, list(TYPES))
    vec = e.evaluate(columns(**cols), 4, AS_OF).full(4)
    return [vec.value(i) for i in range(4)]


def test_arithmetic_and_null_propagation():
    assert run("profit / revenue") == [0.1, None, 0.2, None]  # null in, null out; x / 0 is null
    assert run("revenue * 2 + 1") == [201, None, 10000001, 1]
    assert run("-revenue") == [-100, None, -5000000, 0]
    assert run("2 ** 10 + revenue * 0") == [1024, None, 1024, 1024]


def test_percent_literal_and_precedence():
    assert run("25% * revenue") == [25, None, 1250000, 0]
    assert run("1 + 2 * 3") == [7] * 4
    assert run("(1 + 2) * 3") == [9] * 4


def test_comparisons_are_three_valued_but_equality_is_total():
    assert run("revenue >= 100") == [True, None, True, False]
    assert run("revenue = null") == [False, True, False, False]
    assert run("industry != \"gov\"") == [True, True, True, False]  # null != "gov" is true (equality is total)
    assert run("industry < \"h\"") == [True, False, None, True]


def test_kleene_and_or_not():
    # vip: true, false, null, false; revenue > 10: true, null, true, false
    assert run("vip and revenue > 10") == [True, False, None, False]
    assert run("vip or revenue > 10") == [True, None, True, False]
    assert run("not vip") == [False, True, None, True]


def test_if_takes_else_on_null_condition():
    assert run('if revenue > 50 then "big" else "small"') == ["big", "small", "big", "small"]
    assert run("if revenue > 50 then 1 else null") == [1, None, 1, None]
    assert run("if(vip, 1, 2)") == [1, 2, 2, 2]


def test_in_lists_intervals_and_between():
    assert run('industry in ("finance", "retail")') == [True, True, False, False]
    assert run("revenue in [0..100]") == [True, None, False, True]  # null in a range is null
    assert run("revenue in (0..100]") == [True, None, False, False]
    assert run("revenue between 0 and 100") == [True, None, False, True]


def test_functions():
    assert run("min(revenue, profit)") == [10, None, 1000000, 0]
    assert run("max(revenue, profit, 50)") == [100, None, 5000000, 50]
    assert run("coalesce(revenue, profit, 0)") == [100, 5, 5000000, 0]
    assert run("is_null(revenue)") == [False, True, False, False]
    assert run("round(profit / 3, 2)") == [3.33, 1.67, 333333.33, 1]
    assert run("round(2.5 + revenue * 0)") == [3, None, 3, 3]  # half away from zero, like Excel
    assert run("floor(profit / 4)") == [2, 1, 250000, 0]
    assert run("ceil(profit / 4)") == [3, 2, 250000, 1]
    assert run("abs(0 - profit)") == [10, 5, 1000000, 3]


def test_string_functions_work_per_category():
    assert run("upper(industry)") == ["FINANCE", "RETAIL", None, "GOV"]
    assert run('contains(industry, "ai")') == [False, True, None, False]
    assert run('starts_with(industry, "fin")') == [True, False, None, False]
    assert run('industry + "-x"') == ["finance-x", "retail-x", None, "gov-x"]
    assert run('coalesce(industry, "unknown")') == ["finance", "retail", "unknown", "gov"]


def test_dates_and_as_of():
    assert run("days_between(since, today())") == [881, None, 1111, 2313]
    assert run("months_between(since, today())") == [28, None, 36, 76]
    assert run('date("2024-01-01") + 30') == [dt.date(2024, 1, 31)] * 4
    assert run('since < @"2024-01-01"') == [False, None, True, True]
    assert run("year(since)") == [2024, None, 2023, 2020]
    assert run("date(2024, 2, 30) = null") == [True] * 4  # an impossible date is null, not a crash


def test_months_between_counts_whole_months_like_datedif():
    e = Expression.compile("months_between(a, b)", {"a": Type.DATE, "b": Type.DATE}.get)
    a = V.date(np.array(["2024-01-31", "2024-01-15", "2024-03-15"], dtype="datetime64[D]"))
    b = V.date(np.array(["2024-02-29", "2024-02-15", "2024-01-20"], dtype="datetime64[D]"))
    out = e.evaluate({"a": a, "b": b}, 3, AS_OF)
    assert [out.value(i) for i in range(3)] == [0, 1, -1]


def test_chinese_and_quoted_names():
    assert run("近12个月销售额 * 2") == [2, 4, 6, 8]
    assert run("`Revenue (12m)` + 1") == [6, 7, 8, 9]


def test_names_read_by_an_expression():
    e = Expression.compile("if vip then revenue else profit", TYPES.get)
    assert e.names == {"vip", "revenue", "profit"}
    assert e.type == Type.NUMBER


def test_constant_subtrees_are_folded_but_today_is_not():
    e = Expression.compile('date("2024-01-01") + 1', TYPES.get)
    assert e.compiled.__class__.__name__ == "Const"
    later = Expression.compile("today()", TYPES.get)
    assert later.evaluate({}, 1, np.datetime64("2030-01-02")).value(0) == dt.date(2030, 1, 2)


# --- errors ---


@pytest.mark.parametrize("text, offset, hint", [
    ("revenue + ", 9, None),
    ("revenue == 1", 9, "single ="),
    ("“finance”", 0, "double quotes"),
    ("revenue > 5,000,000", 11, "thousands"),
    ("revenue && vip", 8, "and / or"),
])
def test_syntax_errors_carry_position_and_hint(text, offset, hint):
    with pytest.raises(ExpressionSyntaxError) as e:
        parse_expression(text)
    assert e.value.offset == offset
    if hint:
        assert hint in e.value.hint
    assert f"column {offset + 1}" in str(e.value)


@pytest.mark.parametrize("text, message", [
    ('"a" + 1', "cannot add text and a number"),
    ("revenue > \"big\"", "cannot compare a number with text"),
    ("if revenue then 1 else 2", "condition of 'if' must be true/false"),
    ('if vip then 1 else "x"', "both must be the same type"),
    ("round(industry)", "round()"),
    ("vip and revenue", "needs true/false"),
    ("vip < true", "no order"),
    ("days_between(since, revenue)", "argument 2 must be a date"),
])
def test_type_errors_before_evaluation(text, message):
    with pytest.raises(ExpressionTypeError) as e:
        Expression.compile(text, TYPES.get, list(TYPES))
    assert message in e.value.message


def test_unknown_names_suggest_the_closest():
    with pytest.raises(UnknownName) as e:
        Expression.compile("revenu * 2", TYPES.get, list(TYPES))
    assert e.value.hint.startswith("did you mean revenue?")
    with pytest.raises(UnknownName) as e:
        Expression.compile("industry = finance", TYPES.get, list(TYPES))
    assert '"finance"' in e.value.hint and e.value.offset == 11
    with pytest.raises(UnknownName, match="unknown function"):
        Expression.compile("median(revenue)", TYPES.get, list(TYPES))


def test_question_mark_outside_a_cell_is_an_error():
    with pytest.raises(ExpressionTypeError, match="input cell"):
        Expression.compile("? > 1", TYPES.get)


def test_overlong_text_is_refused():
    with pytest.raises(ExpressionSyntaxError, match="too long"):
        parse_expression("1 + " * 5000 + "1")


# --- unary tests ---


def cell(text, column, input_type):
    test = UnaryTest.compile(text, input_type, TYPES.get, list(TYPES))
    cols = columns()
    return list(np.broadcast_to(test.matches(cols[column], cols, 4, AS_OF), (4,)))


def test_unary_tests_over_numbers():
    assert cell(">= 100", "revenue", Type.NUMBER) == [True, False, True, False]
    assert cell("[100..500)", "revenue", Type.NUMBER) == [True, False, False, False]
    assert cell("]0..100]", "revenue", Type.NUMBER) == [True, False, False, False]
    assert cell("0, 100", "revenue", Type.NUMBER) == [True, False, False, True]
    assert cell("-", "revenue", Type.NUMBER) == [True, True, True, True]
    assert cell("null", "revenue", Type.NUMBER) == [False, True, False, False]
    assert cell("not(null)", "revenue", Type.NUMBER) == [True, False, True, True]
    assert cell("not(< 50)", "revenue", Type.NUMBER) == [True, False, True, False]  # null: not(null) is null
    assert cell("? > profit * 5", "revenue", Type.NUMBER) == [True, False, False, False]
    assert cell("-5", "revenue", Type.NUMBER) == [False, False, False, False]


def test_unary_tests_over_text_and_negation_with_null():
    assert cell('"finance", "gov"', "industry", Type.STRING) == [True, False, False, True]
    assert cell('not("gov")', "industry", Type.STRING) == [True, True, True, False]  # null matches not("gov")
    assert cell('"nowhere"', "industry", Type.STRING) == [False] * 4


def test_unary_tests_over_booleans_and_dates():
    assert cell("true", "vip", Type.BOOLEAN) == [True, False, False, False]
    assert cell("false", "vip", Type.BOOLEAN) == [False, True, False, True]
    assert cell('< @"2024-01-01"', "since", Type.DATE) == [False, False, True, True]


def test_a_boolean_expression_in_a_cell_is_a_condition():
    assert cell("revenue > 50", "industry", Type.STRING) == [True, False, True, False]


def test_unary_test_shapes():
    t = parse_unary_tests('not("a", [1..2))')
    assert t.negated and len(t.tests) == 2
    assert isinstance(t.tests[1], ast.IntervalTest) and t.tests[1].low_closed and not t.tests[1].high_closed
    assert parse_unary_tests("  -  ").is_any


def test_unary_test_type_errors():
    with pytest.raises(ExpressionTypeError, match="compare text with a number|compare a number with text"):
        UnaryTest.compile(">= 5", Type.STRING, TYPES.get)
    with pytest.raises(ExpressionTypeError, match="must be a condition"):
        UnaryTest.compile("? + 1", Type.NUMBER, TYPES.get)


# --- one compiled form serves one account and a million ---

NUMBERS = st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from([0.0, 1.0, 100.0]))
TEXTS = st.one_of(st.none(), st.sampled_from(["finance", "retail", "gov", "能源"]))
FORMULAS = [
    "profit / revenue", "if revenue > profit then revenue - profit else coalesce(profit, 0)",
    "round(revenue * 0.15, 1) + min(revenue, profit)", 'industry in ("finance", "gov") or revenue >= 100',
    'if industry = "retail" then "R" else upper(coalesce(industry, "none"))', "not (revenue between 0 and 100)",
    "is_null(profit) and industry != \"gov\"",
]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(NUMBERS, NUMBERS, TEXTS), min_size=1, max_size=30))
def test_batch_evaluation_equals_account_by_account(rows):
    types = {"revenue": Type.NUMBER, "profit": Type.NUMBER, "industry": Type.STRING}
    rev = [r[0] for r in rows]
    prof = [r[1] for r in rows]
    ind = [r[2] for r in rows]

    def cols(sl):
        return {"revenue": V.number([np.nan if v is None else v for v in rev[sl]]),
                "profit": V.number([np.nan if v is None else v for v in prof[sl]]),
                "industry": V.strings(ind[sl])}

    n = len(rows)
    for text in FORMULAS:
        e = Expression.compile(text, types.get)
        batch = e.evaluate(cols(slice(None)), n, AS_OF).full(n)
        for i in range(n):
            single = e.evaluate(cols(slice(i, i + 1)), 1, AS_OF).full(1)
            assert batch.value(i) == single.value(0), (text, rows[i])
