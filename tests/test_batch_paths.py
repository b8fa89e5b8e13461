"""The C-loop shortcuts a 10,000-account batch takes (checking cell types by `set(map(type, cells))` rather than
per cell) must give exactly what the per-cell paths give, on odd cells too: str and list subclasses, lists
holding numbers or nothing, NaN, numpy scalars, dicts, tuples."""

from __future__ import annotations

import collections
import math
import types

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kamcore import decisions
from kamcore.errors import InputError
from kamcore.portfolio import to_frame
from server.encoding import plain, text_lists


class Text(str):
    pass


class Items(list):
    pass


atoms = st.one_of(st.none(), st.text(max_size=3), st.integers(-5, 5), st.booleans(),
                  st.floats(allow_nan=True, allow_infinity=True), st.builds(Text, st.text(max_size=2)),
                  st.builds(np.float64, st.floats(-1, 1)), st.builds(np.int64, st.integers(-3, 3)))
text_lists_ = st.lists(st.text(max_size=3), max_size=3)
cells = st.one_of(atoms, text_lists_, st.lists(atoms, max_size=3), st.builds(Items, text_lists_),
                  st.builds(tuple, text_lists_), st.dictionaries(st.text(max_size=2), st.text(max_size=2), max_size=2))
columns = st.one_of(st.lists(cells, max_size=8), st.lists(st.one_of(st.none(), text_lists_), max_size=8),
                    st.lists(st.one_of(st.none(), st.text(max_size=3), st.integers(), st.booleans()), max_size=8))


def _reference_column_cells(values):
    """decisions._column_cells as it was, cell by cell."""
    return [v if (t := type(v)) in decisions._PLAIN or t is float and v - v == 0
            or t is list and all(type(x) is str for x in v) else decisions._cell(v) for v in values]


def _same_cells(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert type(x) is type(y)
        assert x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))


@settings(max_examples=300, deadline=None)
@given(columns)
def test_text_lists_says_what_the_cell_by_cell_check_says(values):
    expected = all(v is None or type(v) is list and all(type(x) is str for x in v) for v in values)
    assert text_lists(values) is expected


@settings(max_examples=300, deadline=None)
@given(columns)
def test_result_list_cells_are_what_they_were(values):
    data = np.empty(len(values), dtype=object)
    data[:] = [None] * len(values)
    for i, v in enumerate(values):
        data[i] = v
    cells = data.tolist()
    fast = cells if text_lists(cells) else [v if v is None or type(v) is list and all(type(x) is str for x in v)
                                            else plain(v) for v in cells]
    slow = [v if v is None or type(v) is list and all(type(x) is str for x in v) else plain(v) for v in cells]
    _same_cells(fast, slow)


@settings(max_examples=300, deadline=None)
@given(columns)
def test_recorded_cells_are_what_they_were(values):
    try:
        expected = _reference_column_cells(values)
    except decisions._Unsupported:
        with pytest.raises(decisions.DecisionLogError):
            decisions._column_cells(values, "inputs", "c")
        return
    got = decisions._column_cells(values, "inputs", "c")
    _same_cells(got, expected)
    assert decisions.canonical_json(got) == decisions.canonical_json(expected)


def test_recorded_cells_are_a_new_list():
    names = ["a", "b"]
    cells = decisions._column_cells(names, "outputs")
    assert cells == names and cells is not names


@pytest.mark.parametrize("accounts", [
    [{"a": 1}, collections.OrderedDict(b=2)],
    [types.MappingProxyType({"a": 1.5}), {"a": None, "b": "x"}],
    [{"a": 1}, {}],
    [],
])
def test_to_frame_takes_any_mappings_as_before(accounts):
    pd.testing.assert_frame_equal(to_frame(accounts), pd.DataFrame(list(accounts)))


def test_to_frame_refuses_a_row_that_is_not_a_mapping():
    with pytest.raises(InputError, match="a table"):
        to_frame([{"a": 1}, ["a", 1]])


def test_dumps_writes_non_text_keys_and_huge_integers_as_before():
    from server.encoding import dumps

    assert dumps({"a": [1, 2.5, None], "b": "中文"}) == '{"a":[1,2.5,null],"b":"中文"}'.encode()
    assert dumps({1: "x", "y": {2: None}}) == b'{"1":"x","y":{"2":null}}'  # orjson's OPT_NON_STR_KEYS, as before
    assert dumps({"n": 2**70}) == b'{"n": 1180591620717411303424}'  # beyond 64 bits: the standard library's form


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=4)), max_size=10),
       st.sampled_from(["str", "string", "string[python]", "string[pyarrow]"]))
def test_a_recorded_text_column_is_what_it_was(texts, dtype):
    series = pd.Series(texts, dtype=dtype)
    expected = decisions._column_cells(series.tolist(), "inputs", "c")
    got = decisions._text_cells(series, "inputs", "c")
    assert decisions.canonical_json(got) == decisions.canonical_json(expected)
    tags = [c for c in got if isinstance(c, dict)]
    assert len({id(c) for c in tags}) == len(tags)  # no cell shares its tag with another


def test_a_frame_with_text_gaps_is_recorded_as_before():
    frame = pd.DataFrame({"name": ["甲", None, "乙"], "n": [1.0, float("nan"), float("inf")], "k": [1, 2, 3]})
    table = decisions.table_of(frame, "inputs")
    assert table["values"] == [["甲", {"$float": "nan"}, "乙"], [1.0, {"$float": "nan"}, {"$float": "inf"}], [1, 2, 3]]
