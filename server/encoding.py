"""JSON for evaluation results: ISO dates, numpy scalars as numbers, NaN and ±Infinity as null, Chinese text
unescaped."""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import json
import math
import operator
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import orjson
import pandas as pd
from flask import Response
from flask.json.provider import DefaultJSONProvider

from kamcore.decisions import common_cells
from kamcore.expressions.scalar import ListVec
from kamcore.expressions.types import Type
from kamcore.expressions.vectors import NULL, TRUE, Vec
from kamcore.memo import Memo

if TYPE_CHECKING:
    from kamcore.evaluation import Evaluation


def plain(value: Any) -> Any:
    """A value as JSON holds it: numpy and pandas scalars unwrapped, NaN/NaT as None, dates as ISO text."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # JSON has no NaN or Infinity: a strict parser refuses them
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if pd.api.types.is_scalar(value) and pd.isna(value):  # pandas NaT / NA (whose `!=` has no truth value)
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


class Encoded:
    """A value written as JSON already (UTF-8 bytes, as `dumps` writes it), placed by `dumps` as it is: a large
    answer's part encoded ahead, e.g. while the decision log writes. Should the whole answer have to take the
    standard library's path, the part is read back and written again there, so no answer fails for it."""

    __slots__ = ("json",)

    def __init__(self, json: bytes):
        self.json = json


def _default(o: Any) -> Any:
    if type(o) is Encoded:
        return orjson.Fragment(o.json)
    converted = plain(o)
    if converted is o:
        return DefaultJSONProvider.default(o)
    return converted


def dumps(value: Any) -> bytes:
    """JSON as UTF-8 bytes (Chinese unescaped), by orjson; values it has no form for go through `plain`. What
    orjson refuses (an integer beyond 64 bits) takes the standard library's slower path."""
    try:  # text keys only (a result row's): without OPT_NON_STR_KEYS, a quarter faster on a 10,000-row answer
        return orjson.dumps(value, default=_default)
    except orjson.JSONEncodeError:
        pass
    try:
        return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        return json.dumps(_finite(value), default=_stdlib_default, ensure_ascii=False).encode()


def _stdlib_default(o: Any) -> Any:
    return loads(o.json) if type(o) is Encoded else _finite(_default(o))


def _finite(value: Any) -> Any:
    """`value` with NaN and ±infinity as None, as orjson writes them (null): the standard library would write
    `NaN`, which JSON has no word for. Walks dicts, lists and tuples; anything else is the default's to convert."""
    if isinstance(value, float):  # (numpy's float64 too)
        return value if math.isfinite(value) else None
    if type(value) is dict:
        return {k: _finite(v) for k, v in value.items()}
    if type(value) is list or type(value) is tuple:
        return [_finite(v) for v in value]
    return value


def loads(data: str | bytes) -> Any:
    """Parse JSON by orjson; what it refuses but the standard library reads (NaN, Infinity, 1e400) is read as
    before, and the standard library's error (with line and column) is what an invalid body gets. An integer
    beyond 64 bits is read as the nearest float, as the engine reads every number (the standard library would
    keep it whole); a client sending one as an account's text field gets its float's text."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        value = json.loads(data)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
    try:  # a lone surrogate (\ud800) the standard library lets through could never be written back as UTF-8
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError as e:
        raise ValueError(f"the JSON holds text that is not valid Unicode ({e.reason})") from None
    return value


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON (jsonify, problem documents, flask-smorest responses) by orjson."""

    ensure_ascii = False
    sort_keys = False
    default = staticmethod(_default)

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs:
            return super().dumps(obj, **kwargs)
        return dumps(obj).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return json.loads(s, **kwargs) if kwargs else loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        return json_response(self._prepare_response_obj(args, kwargs))


def json_response(value: Any, status: int = 200) -> Response:
    """A JSON response straight from orjson's bytes."""
    from flask import current_app

    # `content_type` as werkzeug would make it of the mimetype (no charset for JSON), without making it
    return current_app._get_current_object().response_class(dumps(value), status=status,
                                                            content_type="application/json")


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a result frame as JSON-ready dicts, converting column by column (fast for 10k-row batches)."""
    columns: dict[str, list[Any]] = {}
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_datetime64_any_dtype(col.dtype):
            columns[name] = [None if pd.isna(v) else v.date().isoformat() for v in col]
        elif pd.api.types.is_float_dtype(col.dtype):
            values = col.to_numpy(dtype=np.float64, na_value=np.nan)
            finite = np.isfinite(values)
            with np.errstate(invalid="ignore"):
                whole = finite & (np.abs(values) < 2**53) & (values == np.trunc(values))
            cells = values.astype(object)  # Python floats; whole numbers as ints, the rest null
            cells[whole] = values[whole].astype(np.int64).tolist()
            cells[~finite] = None
            columns[name] = cells.tolist()
        elif pd.api.types.is_bool_dtype(col.dtype) or pd.api.types.is_integer_dtype(col.dtype):
            # nullable dtypes ("boolean" outputs) hold pandas NA for a null
            columns[name] = [None if v is pd.NA else v for v in col.tolist()] if col.hasnans else col.tolist()
        else:
            columns[name] = [plain(v) for v in col.tolist()]
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


# --- evaluation results, straight from the engine's typed columns -------------------------------------------

def result_rows(evaluation: Evaluation, rows: np.ndarray,
                shared: dict[str, list[Any]] | None = None) -> list[dict[str, Any]]:
    """The outputs of accounts `rows` (0-based, ascending) as JSON-ready dicts, each with its `row`: numbers as
    ints when whole, dates as ISO text, text, booleans and lists as they are, null for a missing value. Read
    column by column from the evaluation's state, without building its DataFrame (the same values as `records`
    of `evaluation.frame`). `shared`, when given for more than one account, receives every account's cells of
    the columns the decision log holds alike (`common_cells`), for `record_evaluation` to take as they are."""
    excluded = evaluation.state.excluded
    if len(excluded) == 1 and len(rows) == 1 and not excluded[0]:  # one account (most requests): cell by cell
        return [_one_row(evaluation.state.columns, evaluation.output_names)]
    return _column_rows(evaluation, rows, shared)


def _column_rows(evaluation: Evaluation, rows: np.ndarray, shared: dict[str, list[Any]] | None) -> list[dict[str, Any]]:
    """`result_rows` column by column: each output's cells converted at once, then the rows made of them."""
    return _rows(*result_columns(evaluation, rows, shared))


def result_columns(evaluation: Evaluation, rows: np.ndarray,
                   shared: dict[str, list[Any]] | None = None) -> tuple[tuple[str, ...], list[list[Any]], int]:
    """What `result_rows` makes its rows of, for `rows_json` (or `_rows`): their keys, their cells column by column
    (the row numbers last), how many rows; `shared` filled as by `result_rows`."""
    state = evaluation.state
    names = evaluation.output_names
    n = len(state.excluded)
    excluded = state.excluded if state.excluded.any() else None
    dead = excluded[rows] if excluded is not None else None  # unreadable input: every output null
    if dead is not None and not dead.any():
        dead = None
    picks = rows.tolist()
    everyone = len(picks) == n  # rows ascending and distinct: all of them, in order
    if n == 1:  # one account: the log reads its cells one by one, faster than sharing them
        shared = None
    columns = []
    for name in names:
        vec = state.columns[name]
        if type(vec) is ListVec and vec.type is not Type.DATE:  # a few accounts' outputs held as plain values
            values = vec.values
            cells = _plain_cells(values if everyone else [values[i] for i in picks], vec.type)
        elif shared is not None and (common := common_cells(vec, n, excluded)) is not None:
            shared[name] = common  # every account's, the excluded ones null already
            columns.append(common if everyone else [common[i] for i in picks])
            continue
        else:
            cells = _cells(vec, rows)
        if dead is not None:
            cells = [None if d else v for v, d in zip(cells, dead.tolist(), strict=True)]
        columns.append(cells)
    columns.append(picks)
    return (*names, "row"), columns, len(picks)


def _one_row(vecs: Mapping[str, Vec], names: list[str]) -> dict[str, Any]:
    """`result_rows` of an evaluation's only account (its input read): each cell as `_column_rows` gives it,
    without a list made per column (half the time of a one-account answer's row)."""
    row = {}
    for name in names:
        vec = vecs[name]
        if type(vec) is ListVec and (kind := vec.type) is not Type.DATE:
            row[name] = _plain_cell(vec.values[0], kind)
        elif vec.type is Type.LIST and vec.data.dtype == object and type(cell := vec.data.flat[0]) is list \
                and all(type(x) is str for x in cell):  # a list of text (actions, entitlements) as it is
            row[name] = cell
        else:
            row[name] = _cells(vec, _FIRST)[0]
    row["row"] = 0
    return row


_FIRST = np.zeros(1, dtype=np.intp)  # the rows of `_one_row`'s account
_FIRST.flags.writeable = False

def rows_json(keys: tuple[str, ...], columns: list[list[Any]], n: int) -> bytes:
    """`dumps(_rows(keys, columns, n))`, each row a msgspec Struct of the cells (one C call a row) written by
    msgspec, rather than a dict filled key by key: 0.36 of the time for 10,000 rows of 38 keys, made and
    written (bench/batch.py). The same JSON values; a float of 1e16 or more is written `1e16` where orjson writes
    `1e+16`. Cells msgspec has no form for go through `plain`, as in `dumps`; rows it cannot write at all (text
    that is not valid Unicode, say) are made as dicts and written by `dumps`, as before."""
    _check_columns(keys, columns, n)
    row_type = _row_type(keys)
    if row_type is not None and n >= ROWS_BY_COLUMN:
        try:
            return _ROWS_ENCODER.encode(list(map(row_type, *columns)))  # (lengths checked above)
        except (TypeError, ValueError, msgspec.EncodeError):  # (UnicodeEncodeError is a ValueError)
            pass
    return dumps(_rows(keys, columns, n))


def _row_type(keys: tuple[str, ...]) -> type[msgspec.Struct] | None:
    """A Struct whose fields are written under `keys`, in order (fields f0, f1, ... renamed): made once per key
    sequence (a rule book's outputs). None for keys a Struct cannot stand for (a key twice: the dict keeps its
    last cell; a key with a quote, a backslash or a control character). Not tracked by the garbage collector: a
    row holds cells (text, numbers, lists of text), never itself."""
    known = _ROW_TYPES.get(keys, _ROW_TYPES)
    if known is _ROW_TYPES:
        made = None
        if len(set(keys)) == len(keys) and all(type(k) is str for k in keys):
            fields = [f"f{i}" for i in range(len(keys))]
            try:
                made = msgspec.defstruct("ResultRow", [(f, Any) for f in fields],
                                         rename=dict(zip(fields, keys, strict=True)), gc=False)
            except (ValueError, TypeError):  # a key msgspec will not write as a field's name (`"`, `\`, controls)
                made = None
        known = _ROW_TYPES.remember(keys, made)
    return known


def _encodes_plain(o: Any) -> Any:
    """`plain` for msgspec: numpy scalars unwrapped (float64, a float subclass, too)."""
    converted = plain(o.item() if isinstance(o, np.generic) else o)
    if converted is o:
        raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")
    return converted


_ROW_TYPES: Memo[tuple[str, ...], type[msgspec.Struct] | None] = Memo(64)
_ROWS_ENCODER = msgspec.json.Encoder(enc_hook=_encodes_plain)

ROWS_BY_COLUMN = 64  # from this many rows, `_rows` fills copies of one row column by column


def _rows(keys: tuple[str, ...], columns: list[list[Any]], n: int) -> list[dict[str, Any]]:
    """One {key: cell} dict per row of `columns` (each n cells), keys in order. A few rows: dict(zip(keys, row)),
    the loop in C. Many: copies of one dict of every key (each made at its final size, where a dict grown key by
    key is resized as it grows), then filled column by column by C loops: 0.82 of the time for 10,000 rows of
    37 columns (paired, in one process)."""
    if n < ROWS_BY_COLUMN:
        if len(columns) != len(keys):
            raise ValueError(f"{len(columns)} result columns for {len(keys)} keys")
        return list(map(dict, map(zip, itertools.repeat(keys), zip(*columns, strict=True))))
    _check_columns(keys, columns, n)
    rows = list(map(dict.copy, itertools.repeat(dict.fromkeys(keys), n)))
    for key, cells in zip(keys, columns, strict=True):
        collections.deque(map(operator.setitem, rows, itertools.repeat(key), cells), maxlen=0)
    return rows


def _check_columns(keys: tuple[str, ...], columns: list[list[Any]], n: int) -> None:
    if len(columns) != len(keys):
        raise ValueError(f"{len(columns)} result columns for {len(keys)} keys")
    if any(len(cells) != n for cells in columns):
        raise ValueError(f"result columns of {sorted({len(cells) for cells in columns})} cells, not {n}")


def _cells(vec: Vec, rows: np.ndarray) -> list[Any]:
    data = np.broadcast_to(vec.data, (len(rows),)) if vec.data.ndim == 0 else vec.data[rows]
    kind = vec.type
    if kind is Type.NUMBER:
        return _numbers(data)
    if kind is Type.STRING:
        cats = vec.cats if vec.cats is not None else np.empty(0, dtype=object)
        text = np.empty(len(data), dtype=object)
        text[:] = cats.take(np.maximum(data, 0)) if len(cats) else None
        text[data < 0] = None
        return text.tolist()
    if kind is Type.BOOLEAN:
        truth = np.empty(len(data), dtype=object)
        truth[:] = data == TRUE
        truth[data == NULL] = None
        return truth.tolist()
    if kind is Type.DATE:
        text = np.datetime_as_string(data.astype("datetime64[D]"), unit="D").astype(object)
        text[np.isnat(data)] = None
        return text.tolist()
    if kind is Type.LIST and data.dtype == object:  # lists of text (actions, entitlements) are JSON as they are
        cells = data.tolist()
        if text_lists(cells):
            return cells
        return [v if v is None or type(v) is list and all(type(x) is str for x in v) else plain(v) for v in cells]
    whole = vec if vec.data.ndim == 0 else None
    return [plain(whole.value(0) if whole is not None else vec.value(int(i))) for i in rows.tolist()]


def _plain_cells(values: list[Any], kind: Type) -> list[Any]:
    """The cells of the chosen accounts of a column held as per-account values (kamcore.expressions.scalar):
    the JSON values `_cells` gives of its numpy form."""
    if kind is Type.NUMBER or kind is Type.BOOLEAN:
        return [_plain_cell(v, kind) for v in values]
    return values  # text (read only: the rows are built from it)


def _plain_cell(v: Any, kind: Type) -> Any:
    """One cell of `_plain_cells`: a whole number as an int (below 2**53), NaN and ±infinity as null; a flag from
    its code (FALSE 0, NULL 1, TRUE 2); text as it is."""
    if kind is Type.NUMBER:
        return (int(v) if abs(v) < 2**53 and v == math.trunc(v) else v) if v - v == 0 else None
    if kind is Type.BOOLEAN:
        return None if v == 1 else v == 2
    return v


def text_lists(cells: list[Any]) -> bool:
    """Whether every cell is null or a list of text only, checked by C loops over the types rather than a
    generator per cell (a third of the time of shaping a 10,000-account result)."""
    if not set(map(type, cells)) <= _LIST_OR_NULL:
        return False
    return set(map(type, itertools.chain.from_iterable(filter(None, cells)))) <= _TEXT


_LIST_OR_NULL = frozenset({list, type(None)})
_TEXT = frozenset({str})


def _numbers(values: np.ndarray) -> list[Any]:
    """float64 cells as JSON numbers: whole ones as ints (below 2**53), NaN and ±Infinity as null."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    with np.errstate(invalid="ignore"):
        whole = finite & (np.abs(values) < 2**53) & (values == np.trunc(values))
    if whole.all():
        return values.astype(np.int64).tolist()
    cells = values.astype(object)  # Python floats; whole numbers as ints, the rest null
    cells[whole] = values[whole].astype(np.int64).tolist()
    cells[~finite] = None
    return cells.tolist()
