"""The expression language's FEEL additions: times, dates and times, both duration kinds, list tests, `?` in cells,
FEEL string escapes, and unary_test() applying one cell to one value. Section numbers are DMN 1.5's."""

import datetime as dt
import textwrap

import numpy as np
import pytest

from kamcore import RuleBook
from kamcore.errors import ExpressionSyntaxError, ExpressionTypeError
from kamcore.expressions import Expression, parse_expression, unary_test
from kamcore.expressions import vectors as V
from kamcore.expressions.temporal import YearsMonths
from kamcore.expressions.types import Type

AS_OF = np.datetime64("2026-06-30")
TYPES = {"d": Type.DATE, "t": Type.TIME, "ts": Type.DATE_TIME, "wait": Type.DAYS_DURATION,
         "term": Type.YEARS_DURATION, "n": Type.NUMBER}


def value(text, **columns):
    e = Expression.compile(text, TYPES.get, list(TYPES))
    return e.type, e.evaluate(columns, 1, AS_OF).full(1).value(0)


@pytest.mark.parametrize("text, type_, expected", [
    ('@"2024-01-31"', Type.DATE, dt.date(2024, 1, 31)),
    ('@"10:30:00"', Type.TIME, dt.time(10, 30)),
    ('@"2024-01-31T10:30:00"', Type.DATE_TIME, dt.datetime(2024, 1, 31, 10, 30)),
    ('@"P1DT2H"', Type.DAYS_DURATION, dt.timedelta(days=1, hours=2)),
    ('@"-P1Y2M"', Type.YEARS_DURATION, YearsMonths(-14)),
    ('time("10:30:00")', Type.TIME, dt.time(10, 30)),
    ("time(23, 59, 30)", Type.TIME, dt.time(23, 59, 30)),
    ('date and time("2024-01-31T10:30:00")', Type.DATE_TIME, dt.datetime(2024, 1, 31, 10, 30)),
    ('date and time(date("2024-01-31"), time("08:00:00"))', Type.DATE_TIME, dt.datetime(2024, 1, 31, 8)),
    ('date(date and time("2024-01-31T23:59:00"))', Type.DATE, dt.date(2024, 1, 31)),
    ('time(date and time("2024-01-31T23:59:00"))', Type.TIME, dt.time(23, 59)),
    ('duration("PT90M")', Type.DAYS_DURATION, dt.timedelta(minutes=90)),
    ('duration("P2Y")', Type.YEARS_DURATION, YearsMonths(24)),
    ('years and months duration(date("2011-12-22"), date("2013-08-24"))', Type.YEARS_DURATION, YearsMonths(20)),
])
def test_temporal_literals_and_constructors(text, type_, expected):
    assert value(text) == (type_, expected)


@pytest.mark.parametrize("text, expected", [
    ('date("2024-01-31") + duration("P1M")', dt.date(2024, 2, 29)),  # the day is clamped to the month's end
    ('date("2024-03-01") - duration("P1D")', dt.date(2024, 2, 29)),
    ('date("2024-01-01") - duration("PT1H")', dt.date(2023, 12, 31)),  # the date part of midnight minus an hour
    ('date and time("2024-01-31T22:00:00") + duration("PT3H")', dt.datetime(2024, 2, 1, 1)),
    ('date and time("2024-02-29T10:00:00") + duration("P1Y")', dt.datetime(2025, 2, 28, 10)),
    ('time("23:00:00") + duration("PT2H")', dt.time(1)),  # clock arithmetic wraps at midnight
    ('time("10:00:00") - time("08:30:00")', dt.timedelta(hours=1, minutes=30)),
    ('date and time("2024-01-02T00:00:00") - date and time("2024-01-01T12:00:00")', dt.timedelta(hours=12)),
    ('duration("P1D") * 1.5', dt.timedelta(days=1, hours=12)),
    ('2 * duration("PT1H")', dt.timedelta(hours=2)),
    ('duration("P1D") / 4', dt.timedelta(hours=6)),
    ('duration("PT12H") / duration("P1D")', 0.5),
    ('duration("P1Y") - duration("P1M")', YearsMonths(11)),
    ('duration("P1Y") / 12', YearsMonths(1)),
    ('-duration("P1D")', dt.timedelta(days=-1)),
    ('duration("P1D") / 0', None),  # x / 0 is null, as for numbers
    ('min(duration("P1D"), duration("PT3H"))', dt.timedelta(hours=3)),
])
def test_temporal_arithmetic_follows_feel(text, expected):
    """§10.3.2.3: date ± duration is a date, date and time - date and time a days and time duration, ..."""
    assert value(text)[1] == expected


def test_comparisons_and_nulls_of_the_new_types():
    cols = {"t": V.from_values([None], Type.TIME), "ts": V.from_values([dt.datetime(2024, 1, 1, 9)], Type.DATE_TIME),
            "wait": V.from_values([dt.timedelta(days=3)], Type.DAYS_DURATION),
            "term": V.from_values([YearsMonths(6)], Type.YEARS_DURATION)}
    assert value('t < time("12:00:00")', **cols) == (Type.BOOLEAN, None)  # null in an ordering is null
    assert value("t = null", **cols)[1] is True
    assert value('ts > date and time("2024-01-01T08:00:00")', **cols)[1] is True
    assert value('wait >= duration("P3D")', **cols)[1] is True
    assert value('term < duration("P1Y")', **cols)[1] is True
    assert value('t + duration("PT1H")', **cols)[1] is None


@pytest.mark.parametrize("text, message", [
    ('time("10:00:00") + 1', "cannot add a time and a number"),
    ('duration("P1D") + duration("P1M")', "cannot add a days and time duration and a years and months duration"),
    ('date("2024-01-01") < date and time("2024-01-01T00:00:00")', "cannot compare a date with a date and time"),
    ("duration(n)", 'needs its text written out'),
    ("[1, 2]", "only works as a test"),
])
def test_type_errors_of_the_new_types(text, message):
    with pytest.raises(ExpressionTypeError, match=message):
        Expression.compile(text, TYPES.get)


@pytest.mark.parametrize("text, message", [
    ('@"10:00:00+02:00"', "time zone"),
    ('@"2024-01-01T10:00:00Z"', "time zone"),
    ('duration("P1Y2D")', "mixes years/months with days/time"),
    ('@"yesterday"', "not a date, time or duration"),
    ('duration("P")', "not a duration"),
])
def test_bad_temporal_text_is_a_syntax_error_with_position(text, message):
    with pytest.raises(ExpressionSyntaxError, match=message) as e:
        parse_expression("1 + 0 = 1 and " + text + " = null")
    assert e.value.offset >= len("1 + 0 = 1 and ")


def test_feel_string_escapes_and_leading_dot_numbers():
    assert value(r'"a\"b\\c\n\u00e9"')[1] == 'a"b\\c\né'
    assert value(".5 + 1")[1] == 1.5


# --- unary_test(text, value, context) ------------------------------------------------------------------------

@pytest.mark.parametrize("text, given, expected", [
    ("[1..10)", 5, True), ("[1..10)", 10, False), ("[1..10)", None, None),  # §10.3.2.9: null in a range is null
    ("< 5", None, None), ("null", None, True), ("-", None, True), ("not(< 5)", None, None),
    ('"a", "b"', "b", True), ('"a", "b"', None, False),  # equality is total: null = "a" is false
    ('not("gov")', None, True), ("[1, 2, 3]", 2, True), ("[1, 2, 3]", 4, False),
    ("]0..1[", 1, False), ("(0..1]", 1, True),
    ('>= date("2024-01-01")', dt.date(2024, 5, 1), True),
    ('< @"P1D"', dt.timedelta(hours=3), True),
    ('[time("09:00:00")..time("17:00:00")]', dt.time(12), True),
    ('> date and time("2024-01-01T00:00:00")', dt.datetime(2023, 12, 31, 23), False),
    ('>= duration("P1Y")', YearsMonths(18), True),
    ("true", True, True), ("true", None, False),
])
def test_unary_test(text, given, expected):
    assert unary_test(text, given) is expected


def test_unary_test_with_context_and_question_mark():
    assert unary_test("? > limit", 7, context={"limit": 5}) is True
    assert unary_test("? > limit", 7, context={"limit": None}) is None
    assert unary_test("? > 0 and ? < limit", 3, context={"limit": 5}) is True
    assert unary_test("< today()", dt.date(2020, 1, 1), as_of=dt.date(2024, 1, 1)) is True


def test_unary_test_refuses_what_it_cannot_type():
    with pytest.raises(ExpressionTypeError):
        unary_test("< 5", "text")
    with pytest.raises(TypeError, match="not a value"):
        unary_test("< 5", object())


def test_in_with_lists_and_list_cells():
    cols = {"n": V.number([2.0])}
    assert value("n in [1, 2, 3]", **cols)[1] is True
    assert value("n in [5, 6]", **cols)[1] is False


# --- account columns of the new types ------------------------------------------------------------------------

def test_account_tables_read_times_and_durations_with_row_errors_for_bad_cells():
    book = RuleBook.from_files({
        "fields.yaml": textwrap.dedent("""
            fields:
              - {name: opens, type: time}
              - {name: wait, type: days and time duration}
              - {name: term, type: years and months duration}
              - {name: seen, type: date and time}
        """),
        "rules.yaml": textwrap.dedent("""
            rules:
              - id: service
                kind: decision_table
                label: Service
                hit_policy: FIRST
                inputs: [opens, wait, term, seen]
                outputs: [{name: slot, type: time, default: "12:00:00"}]
                rows:
                  - {when: {opens: '< time("09:00:00")', wait: '<= duration("PT4H")'}, then: '= opens + wait'}
                  - {when: {term: '>= duration("P1Y")', seen: '> @"2024-01-01T00:00:00"'}, then: '= @"08:00:00"'}
        """),
    })
    ev = book.evaluate([
        {"opens": "08:00:00", "wait": "PT2H"},
        {"opens": dt.time(10), "term": "P2Y", "seen": dt.datetime(2024, 5, 1, 9)},
        {"opens": "late", "wait": "PT1H"},
        {},
    ])
    assert [ev.outputs(i)["slot"] for i in range(4)] == [dt.time(10), dt.time(8), None, dt.time(12)]
    assert [(e.row, e.field) for e in ev.errors] == [(2, "opens")]
    assert list(ev.frame["slot"])[:2] == [dt.time(10), dt.time(8)]
