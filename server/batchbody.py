"""A large JSON evaluate body read by Arrow's JSON reader straight into the accounts' DataFrame.

A `POST /v1/evaluate` of 10,000 accounts is 5 MB of JSON. Parsed to Python (`encoding.loads`), it is 10,000 dicts
holding 170,000 values, which pandas reads into the columns the engine wants (`pd.DataFrame(accounts)`), and
which are freed again when the request ends: ~60 ms of work, all of it holding the interpreter lock. Arrow's
reader parses the body into those columns in C++ in ~25 ms without the lock, and pandas takes its columns as they
are. One object is one block to that reader, read on one core: a body of SPLIT_BODY_BYTES or more is cut between
two accounts into two bodies of the same shape, read at once on two threads (33 -> 25 ms for 10,000 accounts),
their columns joined as one reading would make them.

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

from kamcore.aside import Aside

from .schemas import load_evaluate_request

ARROW_BODY_BYTES = 256 * 1024  # a JSON body this large (about 500 accounts) is read by Arrow first
FIRST_ACCOUNTS = 16  # the accounts read first, whose text keys Arrow is told are text
SPLIT_BODY_BYTES = 1024 * 1024  # a body this large (about 2,000 accounts) is read in two halves at once
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
    parts = _halves(data)
    read = _accounts(parts, first, text)
    if read is _SPLIT_APART and len(parts) > 1:  # the halves' columns differ in a way one reading would settle
        read = _accounts([data], first, text)
    if read is None or read is _SPLIT_APART:
        return None
    keys, columns, top = read
    request = load_evaluate_request({"accounts": [], **top})  # `explain` as is; `as_of` by the schema (its error)
    frame = pa.Table.from_arrays(columns, names=keys).to_pandas()
    return frame, request["explain"], request.get("as_of")


_SPLIT_APART = object()  # `_accounts`: the parts read, but their columns are not certain to be those of one reading


def _accounts(parts: list[bytes], first: dict[str, Any], text: list[str]) \
        -> tuple[list[str], list[pa.Array], dict[str, Any]] | object | None:
    """The accounts of a body read by Arrow in `parts` (`_halves`): their keys in pandas' order, a column per key,
    and the body's `explain` and `as_of`; None where the usual reading must decide, _SPLIT_APART where one part
    holds a key as whole numbers and another as text, say (one reading of the whole body decides)."""
    tables = _parse_parts(parts, text)
    if tables is None:
        return None
    # Keys read as text come first in Arrow's struct; pandas orders the columns as the keys are met (`first`
    # holds the first accounts' keys in that order; Arrow's structs the others after them, as they are met)
    met = list(dict.fromkeys(f.name for t in tables for f in t.column("accounts").type.value_type))
    keys = [*first, *(name for name in met if name not in first)]
    moments = list(dict.fromkeys(f.name for t in tables for f in t.column("accounts").type.value_type
                                 if pa.types.is_timestamp(f.type)))
    as_of_moment = ["as_of" in t.column_names and pa.types.is_timestamp(t.column("as_of").type) for t in tables]
    if moments or any(as_of_moment):  # read those keys again, as the text they are
        tables = _parse_parts(parts, text + moments, as_of_moment)
        if tables is None:
            return None
    top: dict[str, Any] = {}
    for table in tables:
        for name in ("explain", "as_of"):
            if name in table.column_names:
                cell = table.column(name)
                wanted = pa.types.is_boolean if name == "explain" else pa.types.is_string
                if name in top or not wanted(cell.type) or cell.null_count:
                    return None  # (a key in both halves: twice in the body, which one reading refuses)
                top[name] = cell[0].as_py()
    runs = []  # each part's accounts: one struct per account
    for table in tables:
        rows = table.column("accounts").combine_chunks()
        values = rows.flatten()
        if not len(values) or values.null_count:
            return None
        runs.append(values)
    if not keys or len(keys) != len(met) or set(met) != {f.name for values in runs for f in values.type}:
        return None
    columns = []
    for key in keys:
        column = _joined([values.field(key) if values.type.get_field_index(key) >= 0 else pa.nulls(len(values))
                          for values in runs])
        if column is None:
            return _SPLIT_APART
        if not _plain(column):
            return None
        columns.append(column)
    return keys, columns, top


def _joined(pieces: list[pa.Array]) -> pa.Array | None:
    """One column of the parts' pieces of it, as one reading of the whole body makes it: a piece without a value
    (Arrow's null type) is nulls of the others' type; whole numbers among floats are floats (as Arrow reads a
    key whose numbers are both); None for any other difference."""
    if len(pieces) == 1:
        return pieces[0]
    kinds = {piece.type for piece in pieces if not pa.types.is_null(piece.type)}
    if kinds == {pa.int64(), pa.float64()}:
        kinds = {pa.float64()}
    if len(kinds) > 1:
        return None
    kind = kinds.pop() if kinds else pa.null()
    return pa.concat_arrays([pa.nulls(len(piece), kind) if pa.types.is_null(piece.type)
                             else piece.cast(kind, safe=False) if piece.type != kind else piece for piece in pieces])


def _plain(column: pa.Array) -> bool:
    """Whether a column is one the usual reading makes alike: text, int64, float64, flags without a gap, or no
    value at all; a float of 2**63 or more, a `-0` or a `NaN` among floats is not."""
    if not any(test(column.type) for test in _PLAIN):
        return False
    if pa.types.is_boolean(column.type) and column.null_count:
        return False  # pandas holds None and NaN apart in a column of flags with a gap
    if pa.types.is_float64(column.type):
        numbers = column.to_numpy(zero_copy_only=False)
        with np.errstate(invalid="ignore"):
            if (np.abs(numbers) >= 2.0**63).any():
                return False
        if (np.signbit(numbers) & (numbers == 0)).any():
            return False  # `-0` among floats: Arrow's -0.0, where `loads` reads the whole number 0
        if column.null_count < len(column) and \
                (np.isnan(numbers) & column.is_valid().to_numpy(zero_copy_only=False)).any():
            return False  # a `NaN` (or `-NaN`, which `loads` refuses) among the numbers, not a null
    return True


def _halves(data: bytes) -> list[bytes]:
    """A body of SPLIT_BODY_BYTES or more as two bodies of the same shape, the first holding the accounts up to
    the middle of it and the keys before them, the second the rest and the keys after them: read by Arrow at once
    on two threads (one object is one block to its reader, read on one core). A smaller body, or one that cannot
    be cut so, as it is. For a body that passed `_skeleton`, a `}` before its last `]` ends an account, or is in
    text: a cut there leaves the first half's text open, which Arrow refuses (and the body is read as usual)."""
    if len(data) < SPLIT_BODY_BYTES:
        return [data]
    close = data.rindex(b"]")
    end = data.find(b"}", len(data) // 2, close)
    start = data.find(b"{", end, close) if end >= 0 else -1
    if start < 0 or data[end + 1:start].strip(_WHITESPACE) != b",":
        return [data]
    return [data[:end + 1] + b"]}", b'{"accounts":[' + data[start:]]


def _parse_parts(parts: list[bytes], text: list[str], as_of_text: list[bool] | None = None) -> list[pa.Table] | None:
    """`_parse` of each part, the second on a thread of its own (Arrow reads without the GIL), `as_of` read as text
    in the parts `as_of_text` says (only where they hold one: in any other, Arrow would make a null of it); None
    when Arrow refuses one, or one is not an object of `accounts` (a list of objects), `explain` and `as_of`."""
    as_of_text = as_of_text or [False] * len(parts)
    if len(parts) == 1:
        tables = [_parse(parts[0], text, as_of_text[0])]
    else:
        with Aside(_parse, parts[1], text, as_of_text[1], name="kam-batch-read") as rest:
            tables = [_parse(parts[0], text, as_of_text[0])]
        tables.append(rest.result())
    for table in tables:
        if table is None or table.num_rows != 1 or not set(table.column_names) <= _TOP or \
                "accounts" not in table.column_names:
            return None
        kind = table.column("accounts").type
        if not (pa.types.is_list(kind) and pa.types.is_struct(kind.value_type)) or table.column("accounts").null_count:
            return None
    return tables


def _skeleton(data: bytes) -> bool:
    """Whether the body's brackets are those of one object holding one list of flat objects, `{[{}{}...{}]}`, and
    no value can nest deeper. One C pass (`translate`, ~3 ms for 5 MB) over the bracket bytes, text included; then
    every `{` but the first must follow a `[` or a `,` (~1 ms): a `{` can only open a value nested deeper after a
    `:`. (Counting brackets alone let text pair with them: `{"s":"}","x":{"s":"}",...` counts as `{}{}...` and
    nests as deep as it likes, which crashes Arrow's reader.)"""
    brackets = data.translate(None, _NOT_BRACKETS)
    accounts = (len(brackets) - 4) // 2
    if accounts <= 0 or brackets != b"{[" + b"{}" * accounts + b"]}":
        return False
    # nothing but whitespace around the object: Arrow's reader crashes on a `null` before it (apache/arrow#47409),
    # and reads past a byte-order mark
    if data[:data.index(b"{")].strip(_WHITESPACE) or data[data.rindex(b"}") + 1:].strip(_WHITESPACE):
        return False
    return _opened_in_lists(data)


_JSON_WHITESPACE = np.zeros(256, dtype=bool)
_JSON_WHITESPACE[list(_WHITESPACE)] = True
_LIST_PUNCTUATION = np.zeros(256, dtype=bool)
_LIST_PUNCTUATION[list(b"[,")] = True
_LOOK_BACK = 8  # whitespace bytes passed over before a `{`, at most (more: left to the usual reading)


def _opened_in_lists(data: bytes) -> bool:
    """Whether every `{` after the first follows a `[` or a `,`, passing over whitespace (as in `, {`): never a
    `:`, or anything in text. The body then holds one list at most (`_skeleton`), and no object deeper than its
    items: a `{` after a `,` inside an object is invalid JSON, refused where it stands."""
    body = np.frombuffer(data, dtype=np.uint8)
    at = np.flatnonzero(body == ord("{"))[1:]
    before = body[at - 1]
    for _ in range(_LOOK_BACK + 1):
        space = _JSON_WHITESPACE[before]
        if not space.any():
            return bool(_LIST_PUNCTUATION[before].all())
        at = np.where(space, at - 1, at)
        before = body[at - 1]
    return False


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
