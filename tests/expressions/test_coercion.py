"""Reading sheet cells as numbers, dates, text and booleans: the forms people type, and what cannot be read."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from kamcore.expressions import vectors as V
from kamcore.expressions.types import Type


def numbers(cells, exponent=0):
    vec, bad = V.coerce(pd.Series(cells, dtype=object), Type.NUMBER, exponent)
    return [vec.value(i) for i in range(len(cells))], bad.tolist()


def dates(cells):
    vec, bad = V.coerce(pd.Series(cells, dtype=object), Type.DATE)
    return [vec.value(i) for i in range(len(cells))], bad.tolist()


@pytest.mark.parametrize(("cell", "value"), [
    ("1,234.50", 1234.5), ("¥1,234", 1234), ("￥1,234", 1234), ("RMB 1 000 元", 1000), ("12.5%", 0.125),
    ("12.5 %", 0.125), ("1.2万", 12000), ("1.2万元", 12000), ("3.4亿", 340_000_000), ("5千", 5000),
    ("(1,000)", -1000), ("(¥1,000.50)", -1000.5), ("-3", -3), ("¥-3", -3), ("+7", 7), ("−4", -4),
    ("１２３４", 1234), ("１，２３４．５", 1234.5), ("１２．５％", 0.125), ("５万", 50000), (" 42 ", 42),
    ("1e3", 1000), ("3‰", 0.003), (".5", 0.5), ("7.", 7),
])
def test_number_forms(cell, value):
    got, bad = numbers([cell])
    assert bad == [False]
    assert got[0] == value  # exact, not approximately


@pytest.mark.parametrize("cell", ["", "  ", "-", "--", "—", "——", "－", "N/A", "n/a", "#N/A", "null", "None", "/",
                                  "\u3000"])
def test_blank_and_dash_are_null_not_errors(cell):
    assert numbers([cell]) == ([None], [False])
    assert dates([cell]) == ([None], [False])


@pytest.mark.parametrize("cell", ["lots", "12abc", "1,2,3x", "#DIV/0!", "¥", "%", "1.2.3", "万", "12 万 5", "inf",
                                  "1e999"])
def test_what_is_no_number_is_flagged(cell):
    assert numbers([cell]) == ([None], [True])


def test_percent_and_wan_are_read_as_exact_decimals():
    # 12.3 / 100 in floating point is 0.12300000000000001; a sheet's 12.3% must equal another sheet's 0.123
    got, _ = numbers(["12.3%", "123.45万", "0.07%", "1.1亿"])
    assert got == [0.123, 1234500, 0.0007, 110_000_000]


def test_a_column_unit_scales_cells_without_their_own():
    got, bad = numbers(["120.5", 3, "1.2万", "50%", None, "x"], exponent=4)
    assert got == [1_205_000, 30000, 12000, 0.5, None, None]
    assert bad == [False, False, False, False, False, True]


def test_numeric_columns_are_taken_as_they_are_or_scaled_exactly():
    vec, bad = V.coerce(pd.Series([1.5, np.nan, 123.45]), Type.NUMBER)
    assert [vec.value(i) for i in range(3)] == [1.5, None, 123.45] and not bad.any()
    vec, bad = V.coerce(pd.Series([1.5, np.nan, 123.45]), Type.NUMBER, exponent=4)
    assert [vec.value(i) for i in range(3)] == [15000, None, 1_234_500] and not bad.any()


def test_a_date_or_boolean_where_a_number_belongs_is_flagged():
    assert numbers([dt.datetime(2024, 1, 1), True, 5]) == ([None, None, 5], [True, True, False])


def test_mixed_object_column_of_numbers_and_text():
    assert numbers([1200, "1,300", 1.5, "x"]) == ([1200, 1300, 1.5, None], [False, False, False, True])


@pytest.mark.parametrize(("cell", "day"), [
    ("2024-03-01", dt.date(2024, 3, 1)), ("2024/3/1", dt.date(2024, 3, 1)), ("2024.03.01", dt.date(2024, 3, 1)),
    ("2024年3月1日", dt.date(2024, 3, 1)), ("２０２４年３月１日", dt.date(2024, 3, 1)),
    ("20240301", dt.date(2024, 3, 1)),
    ("2024-03-01 14:30", dt.date(2024, 3, 1)), ("2024-03-01T14:30:00+08:00", dt.date(2024, 3, 1)),
    ("45352", dt.date(2024, 3, 1)), (" 2024/12/31 ", dt.date(2024, 12, 31)),
    (45352, dt.date(2024, 3, 1)), (45352.75, dt.date(2024, 3, 1)), (20240301, dt.date(2024, 3, 1)),
    (dt.datetime(2024, 3, 1, 9, 0), dt.date(2024, 3, 1)), (dt.date(2024, 3, 1), dt.date(2024, 3, 1)),
    (pd.Timestamp("2024-03-01"), dt.date(2024, 3, 1)),
])
def test_date_forms(cell, day):
    assert dates([cell]) == ([day], [False])


@pytest.mark.parametrize("cell", ["2024-02-30", "2024-13-01", "3/1/2024", "soon", "2024", "20241301", -5, 3e7, True])
def test_what_is_no_date_is_flagged(cell):
    assert dates([cell]) == ([None], [True])


def test_excel_day_numbers_in_a_numeric_column():
    vec, bad = V.coerce(pd.Series([45000.0, np.nan, 45352.0]), Type.DATE)
    assert [vec.value(i) for i in range(3)] == [dt.date(2023, 3, 15), None, dt.date(2024, 3, 1)]
    assert not bad.any()


def test_each_distinct_cell_is_read_once_and_spread_to_its_rows():
    cells = ["1,000", "2万", "1,000", None, "2万", "x", "x"]
    assert numbers(cells) == ([1000, 20000, 1000, None, 20000, None, None],
                              [False, False, False, False, False, True, True])


def test_text_keeps_its_content_and_drops_padding():
    vec, bad = V.coerce(pd.Series([" 华东 ", 1001.0, None, "ＡＢ", "NA"], dtype=object), Type.STRING)
    assert [vec.value(i) for i in range(5)] == ["华东", "1001", None, "ＡＢ", "NA"] and not bad.any()


@pytest.mark.parametrize("cell", ["-", " — ", "--", "－", "", "  "])
def test_a_dash_or_blank_in_a_text_column_is_empty(cell):
    vec, bad = V.coerce(pd.Series(["华东", cell], dtype=object), Type.STRING)
    assert [vec.value(i) for i in range(2)] == ["华东", None] and not bad.any()


def test_boolean_words():
    vec, bad = V.coerce(pd.Series(["是", "否", "yes", "N", "", "maybe"], dtype=object), Type.BOOLEAN)
    assert [vec.value(i) for i in range(6)] == [True, False, True, False, None, None]
    assert bad.tolist() == [False, False, False, False, False, True]


@pytest.mark.parametrize("cells", [["b", "a", None, "b"], ["華東", " x", "-", "y"], ["", None], ["z", "Z", "é"]])
@pytest.mark.parametrize("dtype", ["string", pd.StringDtype(na_value=np.nan), "category"])
def test_text_reads_the_same_whatever_pandas_dtype_holds_it(cells, dtype):
    want, _ = V.coerce(pd.Series(cells, dtype=object), Type.STRING)
    got, bad = V.coerce(pd.Series(cells, dtype=dtype), Type.STRING)
    assert [got.value(i) for i in range(len(cells))] == [want.value(i) for i in range(len(cells))]
    assert list(got.cats) == sorted(got.cats) and not bad.any()  # categories stay sorted: codes order as text
