"""Reading a large column takes fast paths (ISO dates read with numpy or from Arrow's bytes, clean text sorted by
numpy): each must read every cell exactly as the general reader does, one distinct cell at a time with
`_date_cell` / `_as_text`, whatever holds the column (Python objects or pandas' Arrow-backed `str`)."""

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kamcore.demo import synthetic_portfolio
from kamcore.dictionary import Dictionary, FieldDef
from kamcore.expressions import vectors as V
from kamcore.expressions.types import Type
from kamcore.portfolio import read_columns

ROWS = V.SMALL_COLUMN + 36  # past the few-cells path: the whole-column readers


def general_dates(cells):
    """Every distinct cell read by _date_cell (the reference)."""
    days, ok = [], []
    for c in cells:
        d, good = (V._NAT, True) if c is None else V._date_cell(c)
        days.append(d)
        ok.append(good)
    return np.array(days, dtype="datetime64[D]"), ~np.array(ok)


def general_text(cells):
    """Each cell cleaned by _as_text, categories sorted as Python sorts str (the reference)."""
    texts = [None if c is None else V._as_text(c) for c in cells]
    cats = sorted({t for t in texts if t})
    code = {t: k for k, t in enumerate(cats)}
    return [code[t] if t else -1 for t in texts], cats


def holders(cells):
    """The column as pandas holds it: Python objects, and Arrow-backed text when every cell is text."""
    yield pd.Series(cells, dtype=object)
    if all(c is None or isinstance(c, str) for c in cells) and not any(c and "\ud800" <= max(c) <= "\udfff"
                                                                       for c in cells):
        yield pd.Series(cells, dtype="str")


def assert_dates_as_general(cells):
    want, want_bad = general_dates(cells)
    for series in holders(cells):
        vec, bad = V.coerce_series(series, Type.DATE)
        assert vec.data.dtype == np.dtype("datetime64[D]")
        assert np.array_equal(vec.data, want, equal_nan=True), (series.dtype, cells)
        assert bad.tolist() == want_bad.tolist(), (series.dtype, cells)


def assert_text_as_general(cells):
    want_codes, want_cats = general_text(cells)
    for series in holders(cells):
        vec, bad = V.coerce_series(series, Type.STRING)
        assert list(vec.cats) == want_cats, series.dtype
        assert vec.data.tolist() == want_codes, series.dtype
        assert vec.data.dtype == np.int32 and not bad.any()


def column(cells, rows=ROWS):
    """`cells` repeated to a column of `rows` cells."""
    return [cells[k % len(cells)] for k in range(rows)]


# --- dates -------------------------------------------------------------------------------------------------------

ISO_ODD = [
    "2023-11-27T00:00:00.000", "2024-02-29T00:00:00.000", "2023-02-29T00:00:00.000", "1900-02-29T00:00:00.000",
    "2000-02-29T00:00:00.000", "0000-01-01T00:00:00.000", "0001-01-01T00:00:00.000", "9999-12-31T00:00:00.000",
    "2024-13-01T00:00:00.000", "2024-00-10T00:00:00.000", "2024-01-00T00:00:00.000", "2024-04-31T00:00:00.000",
    "2024-01-32T00:00:00.000", "2024-05-06", "2024-05-06 ", "2024-05-06t12:30", "2024-05-06 1:02:03.5Z",
    "2024-05-06T00:00:00+08:00", "2024-05-06T00:00:00+0800", "2024-05-06T", "2024-05-06x", "2024-05-06\x00",
    "2024-05-06T00:00\x00", "2024-05-06日", "2024-05-06\u3000", "2024-05-06\x1c", "2024-05-06T٠٠:00",
    "２０２４-０５-０６", "2024/5/6", "2024年5月6日", "20240506", "45000", "45000.5", "1.2万", "-", "", "n/a",
    " 2024-05-06", "2024-5-06", "abcd-ef-gh", None,
]


def test_iso_dates_and_their_odd_neighbours_read_as_the_general_reader():
    assert_dates_as_general(column(ISO_ODD))


@pytest.mark.parametrize("width", [10, 16, 23])
def test_json_dates_of_one_width_read_from_arrow_as_the_general_reader(width):
    days = ["2023-11-27", "2024-02-29", "2023-02-29", "2024-04-31", "0000-01-01", "9999-12-31", "2024-13-01"]
    times = ["T00:00:00.000", "T12:34:56.789", "xxxxxxxxxxxxx", "T00:00:00.00 ", "T00:00:00.0\x00\x00"]
    cells = [None if k % 11 == 0 else (days[k % 7] + times[k % 5])[:width] for k in range(ROWS)]
    series = pd.Series(cells, dtype="str")
    assert V._arrow_iso_dates(series) is not None  # the fast path is the one under test
    assert_dates_as_general(cells)
    sliced = cells[7:7 + ROWS - 10]  # an Arrow array that starts at an offset into its buffers
    want, want_bad = general_dates(sliced)
    vec, bad = V.coerce_series(series.iloc[7:7 + ROWS - 10], Type.DATE)
    assert np.array_equal(vec.data, want, equal_nan=True) and bad.tolist() == want_bad.tolist()


def test_json_dates_in_pieces_read_as_the_general_reader():
    """A column made of several Arrow arrays (pd.concat, a parquet file's row groups)."""
    head = ["2024-01-31T00:00:00.000", None, "2024-02-30T00:00:00.000"] * 30
    tail = ["2025-03-01T00:00:00.000", "2025-03-02T00:00:00.000", None] * 30
    series = pd.concat([pd.Series(head, dtype="str"), pd.Series(tail, dtype="str")], ignore_index=True)
    assert isinstance(pa.array(series.array), pa.ChunkedArray) or pa.array(series.array).offset == 0
    want, want_bad = general_dates(head + tail)
    vec, bad = V.coerce_series(series, Type.DATE)
    assert np.array_equal(vec.data, want, equal_nan=True) and bad.tolist() == want_bad.tolist()


def test_mixed_date_columns_read_as_the_general_reader():
    """Date objects, Excel day numbers and text in one column: only the ISO text takes the fast path."""
    cells = column([dt.date(2024, 3, 1), dt.datetime(2024, 3, 2, 15, 0), pd.Timestamp("2024-03-03"), 45000,
                    45000.75, 20240301, "2024-03-04", "2024-03-05T00:00:00.000", "45001", "2024/3/6", True, None])
    vec, bad = V.coerce_series(pd.Series(cells, dtype=object), Type.DATE)
    assert vec.value(0) == dt.date(2024, 3, 1) and vec.value(3) == dt.date(2023, 3, 15)
    assert vec.value(6) == dt.date(2024, 3, 4) and vec.value(7) == dt.date(2024, 3, 5)
    assert vec.value(8) == dt.date(2023, 3, 16) and bad.tolist()[10] is True
    want, want_bad = general_dates([c if not isinstance(c, bool) else c for c in cells])
    assert np.array_equal(vec.data, want, equal_nan=True) and bad.tolist() == want_bad.tolist()


DATE_PIECES = st.sampled_from(["2024", "1999", "0000", "9999", "-", "/", "01", "02", "12", "13", "29", "30", "31",
                               "00", "T", "t", " ", ":", ".", "000", "Z", "+08:00", "日", "年", "\x00", "５", "x"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.none(), st.lists(DATE_PIECES, min_size=1, max_size=9).map("".join),
                          st.builds(lambda y, m, d, rest: f"{y:04d}-{m:02d}-{d:02d}{rest}",
                                    st.integers(0, 9999), st.integers(0, 13), st.integers(0, 32),
                                    st.sampled_from(["", "T00:00:00.000", " 12:00", "T1:2", "x", " ", "\x00"]))),
                min_size=1, max_size=12))
def test_any_date_text_reads_as_the_general_reader(cells):
    assert_dates_as_general(column(cells))


def test_civil_days_agree_with_numpy_for_every_day_of_the_calendar():
    days = np.arange(np.datetime64("0001-01-01"), np.datetime64("9999-12-31") + 1)
    months = days.astype("datetime64[M]")
    year = days.astype("datetime64[Y]").astype(np.int64) + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (days - months.astype("datetime64[D]")).astype(np.int64) + 1
    assert np.array_equal(V._civil_days(year, month, day), days.astype(np.int64))


# --- text --------------------------------------------------------------------------------------------------------

def test_python_whitespace_is_all_below_the_table_end():
    """_clean_text looks up str.isspace in a table up to U+3000; no whitespace lies beyond it."""
    assert not any(chr(c).isspace() for c in range(V._SPACES_BELOW, 0x110000))
    assert V._SPACE[0x3000] and V._SPACE[0x85] and V._SPACE[0x1C] and not V._SPACE[0x200B]


CLEAN = ["KH000001", "KH000002", "重庆万向汽车零部件有限公司", "a", "A", "é", "e\u0301", "𝔘", "Ω", "ß", "ǅ", "\x7f",
         "\u3001", "\uff21", "x\ty", "a b", "na", "None", "1.0", "—a", "-1"]


def test_clean_text_takes_the_fast_path_and_sorts_as_python():
    cells = column(CLEAN + [None])
    assert V._clean_text(pd.Series(cells, dtype=object)) is not None
    assert_text_as_general(cells)


@pytest.mark.parametrize("odd", [" a", "a ", "\u3000a", "a\u3000", "a\x1c", "\x85a", "-", "—", "", "  ",
                                 "a\x00", "\x00"])
def test_text_that_needs_cleaning_reads_as_the_general_reader(odd):
    assert_text_as_general(column(CLEAN + [odd, None]))


# (no NUL: the general path, for a column with padded cells, loses a cell's trailing NULs to numpy's text)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.none(), st.text(st.sampled_from(["a", "B", " ", "\u3000", "-", "—", "中", "é", "e",
                                                              "\u0301", "𝔘", "\t", "\x1c", "1", "."]),
                                             max_size=4)), min_size=1, max_size=12))
def test_any_text_reads_as_the_general_reader(cells):
    assert_text_as_general(column(cells))


def test_text_numbers_held_by_arrow_read_as_held_by_objects():
    cells = column(["1.2万", "(1,000)", "１２３４", "12.5%", "¥1,234", "-", None, "abc", "45000"])
    a, a_bad = V.coerce_series(pd.Series(cells, dtype=object), Type.NUMBER)
    b, b_bad = V.coerce_series(pd.Series(cells, dtype="str"), Type.NUMBER)
    assert np.array_equal(a.data, b.data, equal_nan=True) and a_bad.tolist() == b_bad.tolist()
    assert [a.value(k) for k in range(4)] == [12000, -1000, 1234, 0.125] and a_bad[7]


# --- a whole table -----------------------------------------------------------------------------------------------

def test_a_json_batch_reads_as_its_object_columns():
    """The service's batch (JSON records made a frame: Arrow text, ISO date text, nulls) and the same cells as
    Python objects read to the same typed columns, 中文 headers and a column of spelled-out numbers included."""
    portfolio = synthetic_portfolio(300, seed=12)
    frame = pd.DataFrame(json.loads(portfolio.to_json(orient="records", date_format="iso")))
    frame["合同到期日"] = frame.pop("contract_end_date")
    frame["revenue_12m"] = [f"{v / 10_000}万" if k % 3 == 0 else v for k, v in enumerate(frame["revenue_12m"])]
    frame.loc[5, "first_order_date"] = "2024/3/1"
    frame.loc[6, "first_order_date"] = "45000"
    frame.loc[7, "first_order_date"] = "2024-02-30T00:00:00.000"
    dictionary = Dictionary([FieldDef("contract_end_date", Type.DATE, aliases=("合同到期日",)),
                             FieldDef("first_order_date", Type.DATE), FieldDef("revenue_12m", Type.NUMBER),
                             FieldDef("account_id", Type.STRING), FieldDef("industry", Type.STRING)])
    needed = {"contract_end_date": Type.DATE, "first_order_date": Type.DATE, "revenue_12m": Type.NUMBER,
              "account_id": Type.STRING, "industry": Type.STRING}
    assert isinstance(frame["account_id"].dtype, pd.StringDtype)
    fast = read_columns(frame, needed, dictionary)
    general = read_columns(frame.astype(object), needed, dictionary)
    assert fast.missing == general.missing == []
    assert [e.row for e in fast.errors] == [e.row for e in general.errors] == [7]
    for name in needed:
        a, b = fast.values[name], general.values[name]
        assert [a.value(i) for i in range(len(frame))] == [b.value(i) for i in range(len(frame))], name
    assert fast.values["first_order_date"].value(6) == dt.date(2023, 3, 15)
    assert fast.values["revenue_12m"].value(0) == portfolio["revenue_12m"][0]  # `65.29万`, exactly
