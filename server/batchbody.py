"""A large JSON evaluate body read by Arrow's JSON reader straight into the accounts' DataFrame.

A `POST /v1/evaluate` of 10,000 accounts is 5 MB of JSON. Parsed to Python (`encoding.loads`), it is 10,000 dicts
holding 170,000 values, which pandas reads into the columns the engine wants (`pd.DataFrame(accounts)`), and
which are freed again when the request ends: ~60 ms of work, all of it holding the interpreter lock. Arrow's
reader parses the body into those columns in C++ in ~25 ms without the lock, and pandas takes its columns as they
are.

The frame must be the one the usual reading makes (`loads`, `load_evaluate_request`, `pd.DataFrame(accounts)`),
so that what the rules read, what the decision log records and every error stay the same; the tests compare the
two over generated bodies. `read_batch` gives None wherever that is not certain, and the caller reads the body
the usual way (after Arrow's ~25 ms, off the lock, where Arrow was asked):
- brackets other than those of one object holding one list of flat objects (`{"accounts": [{...}, ...]}`),
  brackets in text included: a cell that is a list or an object, or anything nested deeper, is never given to
  Arrow (its reader crashes the process on values nested ~10,000 deep), nor anything but whitespace around the
  object (it crashes on a `null` before it, and reads past a byte-order mark); bytes that are not UTF-8 (Arrow
  lets them through);
- whatever Arrow refuses: invalid JSON (the usual reading says where), a key twice in one account, a key holding
  text in one account and a number in another, a lone surrogate, a number beyond a double;
- top-level keys other than `accounts`, `explain` (true or false) and `as_of` (text, read by the schema as usual);
- a column of flags with a gap (pandas holds None and NaN apart there), a number of 2**63 or more (Arrow reads a
  whole number beyond int64 as a double; `loads` keeps it whole), `-0` among floats (Arrow's -0.0, `loads`'s 0),
  `NaN` (Arrow reads `-NaN` too, which `loads` refuses).
A key with no value in any account (null, or missing) is a column of None, where pandas makes it float64 NaN if
an account lacks the key: read alike (empty), and recorded as null.
Arrow takes text that looks like a moment (`2024-03-01`) for a timestamp. The keys the first FIRST_ACCOUNTS
accounts hold text under (read by `loads` first, a few hundred bytes) are read as text from the start; a key
Arrow took for moments all the same (and such an `as_of`) is read again, as text."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.json as pa_json

from .schemas import load_evaluate_request

ARROW_BODY_BYTES = 256 * 1024  # a JSON body this large (about 500 accounts) is read by Arrow first
FIRST_ACCOUNTS = 16  # the accounts read first, whose text keys Arrow is told are text
_TOP = frozenset({"accounts", "explain", "as_of"})
_WHITESPACE = b" \t\r\n"  # JSON's
_LARGEST = 2**31 - 1  # Arrow's block size is an int32: a larger body is read as usual
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_PLAIN = (pa.types.is_string, pa.types.is_large_string, pa.types.is_int64, pa.types.is_float64,
          pa.types.is_boolean, pa.types.is_null)


def read_batch(data: bytes) -> tuple[pd.DataFrame, bool, Any] | None:
    """A large evaluate body's accounts (as the DataFrame pandas makes of them), `explain` and `as_of` (None when
    the body has none), as `load_evaluate_request` reads them; None where the usual reading must decide (see the
    module doc), or the body is small. Raises ValidationError for an `as_of` the schema refuses, as it would."""
    if not ARROW_BODY_BYTES <= len(data) < _LARGEST or not _skeleton(data) or not _utf8(data):
        return None
    first = _first_accounts(data, FIRST_ACCOUNTS)
    if first is None:
        return None
    # The first accounts' text keys are read as text from the start: Arrow would take `2024-03-01` for a moment,
    # and the body would be read twice. (A number under one of them: Arrow refuses, as it would anyway.)
    text = [key for key, value in first.items() if type(value) is str]
    table = _parse(data, text)
    if table is None or table.num_rows != 1 or not set(table.column_names) <= _TOP or \
            "accounts" not in table.column_names:
        return None
    accounts = table.column("accounts")
    kind = accounts.type
    if not (pa.types.is_list(kind) and pa.types.is_struct(kind.value_type)) or accounts.null_count:
        return None
    # Keys read as text come first in Arrow's struct; pandas orders the columns as the keys are met (`first`
    # holds the first accounts' keys in that order; Arrow's struct the others after them, as they are met)
    keys = [*first, *(f.name for f in kind.value_type if f.name not in first)]
    moments = [f.name for f in kind.value_type if pa.types.is_timestamp(f.type)]
    as_of_moment = "as_of" in table.column_names and pa.types.is_timestamp(table.column("as_of").type)
    if moments or as_of_moment:  # read those keys again, as the text they are
        table = _parse(data, text + moments, as_of_moment)
        if table is None:
            return None
        accounts = table.column("accounts")
        kind = accounts.type
    rows = accounts.combine_chunks() if isinstance(accounts, pa.ChunkedArray) else accounts
    values = rows.flatten()  # the accounts: one struct per account
    if not len(values) or not keys or values.null_count or len(keys) != kind.value_type.num_fields:
        return None
    columns = [values.field(key) for key in keys]
    for column in columns:
        if not any(test(column.type) for test in _PLAIN):
            return None
        if pa.types.is_boolean(column.type) and column.null_count:
            return None
        if pa.types.is_float64(column.type):
            numbers = column.to_numpy(zero_copy_only=False)
            with np.errstate(invalid="ignore"):
                if (np.abs(numbers) >= 2.0**63).any():
                    return None
            if (np.signbit(numbers) & (numbers == 0)).any():
                return None  # `-0` among floats: Arrow's -0.0, where `loads` reads the whole number 0
            if column.null_count < len(column) and \
                    (np.isnan(numbers) & column.is_valid().to_numpy(zero_copy_only=False)).any():
                return None  # a `NaN` (or `-NaN`, which `loads` refuses) among the numbers, not a null
    body: dict[str, Any] = {"accounts": []}
    for name in ("explain", "as_of"):
        if name in table.column_names:
            cell = table.column(name)
            wanted = pa.types.is_boolean if name == "explain" else pa.types.is_string
            if not wanted(cell.type) or cell.null_count:
                return None
            body[name] = cell[0].as_py()
    read = load_evaluate_request(body)  # `explain` as is; `as_of` by the schema (its own error if refused)
    frame = pa.Table.from_arrays(columns, names=keys).to_pandas()
    return frame, read["explain"], read.get("as_of")


def _skeleton(data: bytes) -> bool:
    """Whether the body's brackets are those of one object holding one list of flat objects, `{[{}{}...{}]}`,
    and no others (none in text either): so no value nests deeper, and each account ends at the first `}` after it.
    One C pass (`translate`), ~4 ms for 5 MB."""
    brackets = data.translate(None, _NOT_BRACKETS)
    accounts = (len(brackets) - 4) // 2
    if accounts <= 0 or brackets != b"{[" + b"{}" * accounts + b"]}":
        return False
    # nothing but whitespace around the object: Arrow's reader crashes on a `null` before it (apache/arrow#47409),
    # and reads past a byte-order mark
    return not data[:data.index(b"{")].strip(_WHITESPACE) and not data[data.rindex(b"}") + 1:].strip(_WHITESPACE)


def _first_accounts(data: bytes, most: int) -> dict[str, Any] | None:
    """The keys of the body's first `most` accounts as they are met, each with its first text value if any (else
    its first value), as `loads` reads them; None when one of them is not valid JSON. For a body that passed
    `_skeleton`: the accounts are the `{...}` inside its one `[`."""
    keys: dict[str, Any] = {}
    end = data.index(b"[")
    for _ in range(most):
        start = data.find(b"{", end)
        if start < 0:
            break
        end = data.index(b"}", start) + 1
        try:
            account = orjson.loads(data[start:end])
        except orjson.JSONDecodeError:
            return None
        if type(account) is not dict:
            return None
        for key, value in account.items():
            if type(keys.setdefault(key, value)) is not str and type(value) is str:
                keys[key] = value
    return keys


def _utf8(data: bytes) -> bool:
    """Whether `data` is UTF-8 throughout, checked by Arrow (~1 ms for 5 MB; Python's decoding takes ten)."""
    text = pa.LargeStringArray.from_buffers(1, pa.py_buffer(np.array([0, len(data)], dtype=np.int64)),
                                           pa.py_buffer(data))
    try:
        text.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _parse(data: bytes, text: list[str], as_of_text: bool = False) -> pa.Table | None:
    """The body as Arrow reads it (one block: the whole body is one JSON object), the accounts' keys `text` (and
    `as_of`) as text; None when Arrow refuses it."""
    fields = [("accounts", pa.list_(pa.struct([(key, pa.string()) for key in dict.fromkeys(text)])))]
    if as_of_text:
        fields.append(("as_of", pa.string()))
    options = pa_json.ParseOptions(newlines_in_values=True, explicit_schema=pa.schema(fields),
                                   unexpected_field_behavior="infer")
    try:
        return pa_json.read_json(io.BytesIO(data), read_options=pa_json.ReadOptions(block_size=len(data) + 1),
                                 parse_options=options)
    except pa.ArrowException:  # (what it refuses; also out of memory, or capacity)
        return None
