"""The per-account compiler gives, value for value, what the vectorized compiler gives: each expression below is
evaluated over a grid of awkward values (nulls, signed zeros, halves, huge numbers, month ends, leap days) both
ways and compared exactly (NaN with NaN, -0.0 apart from 0.0)."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kamcore.expressions import Expression, UnaryTest
from kamcore.expressions import scalar as S
from kamcore.expressions import vectors as V
from kamcore.expressions.types import Type

NUMBERS = [math.nan, 0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 2.5, -2.5, 3.0, 0.1, 1.005, 7.0, 49.999, 123456.789, 1e300,
           -1e300, 1e-300]
DAYS = [dt.date(2024, 1, 31), dt.date(2024, 2, 29), dt.date(2024, 3, 1), dt.date(2023, 2, 28), dt.date(2025, 1, 31),
        dt.date(1969, 12, 31), dt.date(1900, 3, 1), dt.date(2400, 2, 29), dt.date(2024, 3, 31), None]
TEXTS = [None, "finance", "Fin", "制造业", "a", "A", "financial", "x!"]
BOOLS = [True, False, None]
AS_OF = np.datetime64("2026-11-23", "D")
TYPES = {"x": Type.NUMBER, "y": Type.NUMBER, "d": Type.DATE, "e": Type.DATE, "s": Type.STRING, "t": Type.STRING,
         "b": Type.BOOLEAN}
GRID = {Type.NUMBER: NUMBERS, Type.DATE: DAYS, Type.STRING: TEXTS, Type.BOOLEAN: BOOLS}

EXPRESSIONS = [
    "x + y", "x - y", "x * y", "x / y", "-x", "x / 0", "round(x)", "round(x, 2)", "round(x, -1)", "round(x, 6)",
    "floor(x)", "ceil(x)", "ceiling(x)", "abs(x)", "min(x, y)", "max(x, y)", "min(x, null)", "max(x, y, 1)",
    "coalesce(x, y)", "coalesce(null, x, 0)", "is_null(x)", "x = y", "x != y", "x < y", "x <= y", "x > y", "x >= y",
    "x = null", "null != y", "x < null", "x > 1 and y < 1", "x > 1 or y < 1", "not(x > y)", "if x > y then x else y",
    "if x > y then null else x", "x in (1, 2.5, -0.5)", "x in [0..1)", "x in (< 0, > 100)", "x in (null)",
    "not(x in (0.5, null))", "months_between(d, e)", "days_between(d, e)", "year(d)", "month(e)", "d < e", "d = e",
    "min(d, e)", "max(d, e)", 'd in [@"2024-02-01"..@"2024-03-01"]', "days_between(d, today())", "s = t", "s < t",
    "s >= t", "s + t", 'contains(s, t)', 'starts_with(s, "fin")', 'ends_with(s, t)', "lower(s) = lower(t)",
    'upper(s) in ("FIN", "A")', 's in ("finance", "a")', "coalesce(s, t)", "is_null(s)", "b and x > 0",
    "b or not(b)", "not(b)", "b = true", "b != null", "if b then d else e", "coalesce(d, e)", "is_null(d)",
    # a test of `?` against constants is one fused closure (scalar._fused, _fused_interval): every form of it
    "x in (<= 0.5)", "x in (>= -0.5)", "x in (> 1e300)", "x in (< -0.0)", "x in (0..1]", "x in [0..1]", "x in (0..1)",
    "x in [-1e300..0.5)", "x in [1..0]", 'd in (< @"2024-03-01")', 'd in (<= @"2024-02-29")', 'd in (> @"1969-12-31")',
    'd in (>= @"2024-03-01")', 'd in (@"2024-01-31"..@"2024-03-01")', 'd in [@"2024-01-31"..@"2024-03-01"]',
    'd in (@"2024-01-31"..@"2024-03-01"]', 'd in (< null)', "x in (< null)", "x in [null..1]",
]


def _columns(names: list[str]) -> tuple[dict[str, V.Vec], int]:
    rows = list(itertools.product(*(GRID[TYPES[n]] for n in names)))
    return {n: V.from_values([r[k] for r in rows], TYPES[n]) for k, n in enumerate(names)}, len(rows)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_an_expression_gives_the_same_per_account(text: str) -> None:
    expr = Expression.compile(text, TYPES.get, list(TYPES))
    names = sorted(expr.names)
    columns, n = _columns(names)
    whole = S.to_list(V.cast_null(expr.evaluate(columns, n, AS_OF), expr.type).full(n), expr.type, n) \
        if expr.type != Type.NULL else [None] * n
    compiler = S.Compiler()
    fn = compiler.expression(expr.tree)
    cols = S.Columns(columns, n, AS_OF).lists(compiler.fields)
    per_account = [fn(cols, i, None) for i in range(n)]
    if expr.type == Type.NULL:
        per_account = [None if v is None else v for v in per_account]
    bad = [(i, whole[i], per_account[i]) for i in range(n) if not _same(whole[i], per_account[i])]
    assert not bad, bad[:5]


CELLS = [("< 5", Type.NUMBER), ("[1..2.5]", Type.NUMBER), ("(0..1)", Type.NUMBER), ("null", Type.NUMBER),
         ("not(null)", Type.NUMBER), ("not(< 1)", Type.NUMBER), ("1, 2.5, > 100", Type.NUMBER), ("? > y", Type.NUMBER),
         ("[y..100]", Type.NUMBER), ("-", Type.NUMBER), ('"finance", "a"', Type.STRING), ('not("a")', Type.STRING),
         ("> t", Type.STRING), ('< @"2024-03-01"', Type.DATE), ('[@"2024-01-31"..@"2024-02-29")', Type.DATE),
         ("true", Type.BOOLEAN), ("not(true)", Type.BOOLEAN), ("null, false", Type.BOOLEAN), ("[]", Type.NUMBER)]


@pytest.mark.parametrize(("text", "input_type"), CELLS)
def test_a_cell_matches_the_same_per_account(text: str, input_type: Type) -> None:
    test = UnaryTest.compile(text, input_type, TYPES.get, list(TYPES))
    other = {Type.NUMBER: "y", Type.STRING: "t", Type.DATE: "e", Type.BOOLEAN: "b"}[input_type]
    names = sorted({other, *test.names})
    columns, n = _columns(names)
    value = columns[other]
    whole = np.broadcast_to(test.matches(value, columns, n, AS_OF), (n,)).tolist()
    compiler = S.Compiler()
    fn = compiler.tests(test.tree, input_type)
    cols = S.Columns(columns, n, AS_OF).lists(compiler.fields)
    xs = S.to_list(value, input_type, n)
    assert [fn(cols, i, xs[i]) == S.T for i in range(n)] == whole


@pytest.mark.parametrize(("text", "input_type"), [("< 5", Type.NUMBER), (">= 1e300", Type.NUMBER),
                                                  ("(0..1]", Type.NUMBER), ('> @"2024-03-01"', Type.DATE),
                                                  ('[@"2024-01-31"..@"2024-03-01")', Type.DATE)])
def test_a_test_against_constants_is_fused(text: str, input_type: Type) -> None:
    """The grids above reach the fused closures, not only the general comparison (which gives the same codes)."""
    fn = S.Compiler().tests(UnaryTest.compile(text, input_type, TYPES.get, list(TYPES)).tree, input_type)
    assert fn.__code__.co_name == "<lambda>" and fn.__qualname__.startswith("_fused")


@pytest.mark.parametrize("text", ["x ** 2", 'time("10:30:00")', "d + 1", "time(s) < time(t)", 'date(s)'])
def test_what_it_cannot_reproduce_is_refused(text: str) -> None:
    expr = Expression.compile(text, TYPES.get, list(TYPES))
    with pytest.raises(S.Unsupported):
        S.Compiler().expression(expr.tree)


def test_civil_dates_agree_with_numpy() -> None:
    for days in range(-800_000, 3_000_000, 997):
        y, m, d = S.civil(days)
        assert str(np.datetime64(days, "D")).lstrip("+") == f"{y:04d}-{m:02d}-{d:02d}" or y > 9999 or y < 1


@pytest.mark.parametrize("kind", [Type.NUMBER, Type.DATE, Type.STRING, Type.BOOLEAN])
def test_a_list_column_builds_the_arrays_its_values_stand_for(kind: Type) -> None:
    """A ListVec (a column of a few accounts kept as plain values) is, once its arrays are asked for, the column
    `from_values` makes of the same values; `value(i)` reads what the built column reads."""
    values = GRID[kind]
    vec = V.from_values(values, kind)
    plain = S.to_list(vec, kind, len(values))
    listed = S.ListVec(kind, list(plain), vec.cats if kind == Type.STRING else None)
    assert [listed.value(i) for i in range(len(values))] == [vec.value(i) for i in range(len(values))]
    assert listed.data.dtype == vec.data.dtype and listed.data.shape == vec.data.shape
    assert np.array_equal(listed.data.view(np.int64) if kind == Type.DATE else listed.data,
                          vec.data.view(np.int64) if kind == Type.DATE else vec.data, equal_nan=kind == Type.NUMBER)
    if kind == Type.STRING:
        assert listed.cats.tolist() == vec.cats.tolist()
        # without the categories it must keep: the sorted distinct texts, as the readers make them
        bare = S.ListVec(kind, list(plain))
        assert bare.cats.tolist() == sorted(t for t in set(plain) if t is not None)
        assert [bare.value(i) for i in range(len(values))] == [vec.value(i) for i in range(len(values))]


def test_rounding_a_score_to_nine_places_is_numpys() -> None:
    from kamcore.kinds.scorecard import _round9

    awkward = [*NUMBERS, math.inf, -math.inf, 0.5e-9, -0.5e-9, 1.5e-9, 2.5e-9, 0.1 + 0.2, 1e10 + 0.5e-9, 2.0**53,
               9.999999999500001, -4.4e-10, 5e-324, 1.7976931348623157e308]
    rng = np.random.default_rng(7)
    for v in [*awkward, *rng.normal(0, 100, 2000).tolist(), *(rng.integers(-10**6, 10**6, 500) / 8).tolist()]:
        with np.errstate(over="ignore"):  # the largest floats overflow when scaled, to inf both ways
            mine, numpys = _round9(v), float(np.round(np.float64(v), 9))
        assert (mine == numpys or (mine != mine and numpys != numpys)) and \
            math.copysign(1, mine) == math.copysign(1, numpys), v


def test_a_list_column_pickles_and_copies_as_its_values() -> None:
    """Dask ships rank keys (which may hold per-account columns) between processes: found in review, a ListVec did
    not survive pickle or deepcopy (its dataclass state setter wrote the read-only `data`)."""
    import copy
    import pickle

    vec = S.ListVec(Type.STRING, ["b", None, "a"], np.array(["a", "b", "c"], dtype=object))
    for back in (pickle.loads(pickle.dumps(vec)), copy.deepcopy(vec)):
        assert type(back) is S.ListVec and back.values == vec.values
        assert back.cats.tolist() == ["a", "b", "c"] and back.data.tolist() == [1, -1, 0]


# Cells that only compare `?` with constants (one group per input, as a decision table's column or a scorecard's
# bands): their results are looked up by the piece a value falls in (scalar.pieces), each cell run once per piece.
PIECEWISE = [
    (Type.NUMBER, ["< 5", "<= 5", "> 5", ">= 5", "[1..2.5]", "(0..1)", "[0..1)", "(0..1]", "null", "not(null)", "-",
                   "not(< 1)", "1, 2.5, > 100", "[]", "? > 1000 and ? < 2000", "not(1, 2)", "? = 3", "? != 3",
                   "? = null", "[-0.0..0.0]", "0.0", "-0.0", "1e300, -1e300", ">= 1e308", "< -1e308", "[1..0]",
                   "(49.999..50)", "> 0.1 + 0.2", "not(? > 7 or ? <= 1)"]),
    (Type.NUMBER, [">= 3000000", "[1000000..3000000)", "[300000..1000000)", "< 300000"]),
    (Type.NUMBER, ["[50..65), null", ">= 80", "[65..80)", "< 50"]),
    (Type.NUMBER, ["null"]),
    (Type.DATE, ['< @"2024-03-01"', '[@"2024-01-31"..@"2024-03-01")', '@"2024-02-29"', "null", "-",
                 'not(@"2024-02-29", null)', '? = @"2024-01-31"', '(@"1969-12-31"..@"1970-01-02"]', '> @"2400-02-29"',
                 '? != null']),
    (Type.STRING, ['"finance", "a"', 'not("a")', "null", "not(null)", '"制造业"', '? = "x"', '? != "finance"', "-",
                   '"", " "', '? = null']),
    (Type.STRING, ['"hold"', '"warn"', '"guarantee_required"']),
    (Type.BOOLEAN, ["true", "false", "null", "not(true)", "null, false", "-", "? = true", "? != null"]),
]
# Cells that read something else, or `?` otherwise than by comparing it with constants: run per account.
NOT_PIECEWISE = [("? > y", Type.NUMBER), ("[y..100]", Type.NUMBER), ("? * 2 > 5", Type.NUMBER),
                 ("round(?) = 3", Type.NUMBER), ("> t", Type.STRING), ('lower(?) = "a"', Type.STRING),
                 ('> "m"', Type.STRING), ("? < today()", Type.DATE), ("b", Type.BOOLEAN), ("? = b", Type.BOOLEAN)]


def _near(cuts: list[Any], kind: Type) -> list[Any]:
    """Values on, just beside and between the constants, the ends, and null."""
    if kind == Type.NUMBER:
        out = [math.nan, math.inf, -math.inf, 0.0, -0.0, 5e-324, -5e-324, *NUMBERS]
        for c in cuts:
            if isinstance(c, float) and c == c:
                out += [c, -c, math.nextafter(c, math.inf), math.nextafter(c, -math.inf), c + 0.5, c - 0.5, c * 2]
        return out
    if kind == Type.DATE:
        out = [None, 0, -1, 1, -10**7, 10**7]
        for c in cuts:
            if isinstance(c, int):
                out += [c - 2, c - 1, c, c + 1, c + 2]
        return out
    if kind == Type.STRING:
        return [*TEXTS, "", " ", "hold", "warn", "guarantee", "finance ", "制造", *[c for c in cuts if c is not None]]
    return [S.F, S.N, S.T]


@pytest.mark.parametrize(("kind", "texts"), PIECEWISE)
def test_a_value_s_piece_gives_what_its_cells_give(kind: Type, texts: list[str]) -> None:
    tests = [S.Compiler().tests(UnaryTest.compile(t, kind, TYPES.get, list(TYPES)).tree, kind) for t in texts]
    placed = S.pieces(tests, kind)
    assert placed is not None, texts
    piece_of, values = placed
    cuts = [v for t in tests for v in t.cuts]
    for x in _near(cuts, kind):
        p = piece_of(x)
        got = [t({}, 0, x) for t in tests]
        assert got == [t({}, 0, values[p]) for t in tests], (x, p, values[p])
    for k, v in enumerate(values):  # each value stands in its own piece (an empty piece holds null, placed apart)
        if k and not (v is None or v != v):
            assert piece_of(v) == k


@settings(max_examples=300, deadline=None)
@given(x=st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(NUMBERS),
       group=st.sampled_from([texts for kind, texts in PIECEWISE if kind == Type.NUMBER]))
def test_any_number_s_piece_gives_what_its_cells_give(x: float, group: list[str]) -> None:
    tests = [S.Compiler().tests(UnaryTest.compile(t, Type.NUMBER, TYPES.get, list(TYPES)).tree, Type.NUMBER)
             for t in group]
    piece_of, values = S.pieces(tests, Type.NUMBER)
    assert [t({}, 0, x) for t in tests] == [t({}, 0, values[piece_of(x)]) for t in tests]


@pytest.mark.parametrize(("text", "kind"), NOT_PIECEWISE)
def test_cells_reading_more_than_their_input_have_no_pieces(text: str, kind: Type) -> None:
    fn = S.Compiler().tests(UnaryTest.compile(text, kind, TYPES.get, list(TYPES)).tree, kind)
    assert S.pieces([fn], kind) is None
    assert S.pieces([fn, S.Compiler().tests(UnaryTest.compile("null", kind, TYPES.get, list(TYPES)).tree, kind)],
                    kind) is None
