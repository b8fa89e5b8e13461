"""server.encoding.loads: orjson's speed, with the standard library's reading where orjson refuses."""

import math

import pytest

from server.encoding import loads


def test_what_orjson_refuses_the_standard_library_reads():
    assert math.isnan(loads(b'{"revenue_12m": NaN}')["revenue_12m"])
    assert loads(b"[1e400, -Infinity]") == [math.inf, -math.inf]


def test_an_integer_beyond_64_bits_is_read_as_the_nearest_float_as_the_docstring_says():
    assert loads(b"[18446744073709551615]") == [2**64 - 1]  # the largest orjson keeps whole
    big = loads(b"[1180591620717411303424]")[0]
    assert type(big) is float and big == float(2**70)


def test_invalid_json_gets_the_standard_librarys_error_with_line_and_column():
    with pytest.raises(ValueError, match=r"line 2 column 15"):
        loads(b'{"accounts": [\n  {"revenue": }]}')


def test_text_that_is_not_unicode_is_refused_and_nesting_has_a_bound():
    with pytest.raises(ValueError, match="not valid Unicode"):
        loads(b'["\\ud800"]')
    with pytest.raises(ValueError, match="nested too deeply"):
        loads(b"[" * 100_000 + b"]" * 100_000)


def test_an_encoded_part_is_placed_as_it_is_and_read_back_when_the_answer_takes_the_standard_librarys_path():
    from server.encoding import Encoded, dumps

    rows = [{"row": 0, "tier": "A", "名称": "华瑞"}, {"row": 1, "tier": None}]
    fast = dumps({"results": Encoded(dumps(rows)), "errors": []})
    assert fast == dumps({"results": rows, "errors": []})  # byte for byte
    slow = dumps({"results": Encoded(dumps(rows)), "errors": [{"ref": 2**70}]})  # orjson refuses 2**70
    assert loads(slow) == {"results": rows, "errors": [{"ref": 2**70 * 1.0}]} and b"1180591620717411303424" in slow
