"""Account tables in and out: csv / xlsx / json files as people keep them (a title above the headers, a totals
row, headers in 中文 or English), cells coerced to each field's type with a row error for every cell that cannot
be read, and results written back with headers and values in the reader's language."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import itertools
import json
import math
import re
import zipfile
import zlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl
import pandas as pd

from .dictionary import Dictionary, HeaderMatch, header_key
from .errors import InputError, Problem, RowError
from .expressions import scalar as S
from .expressions import vectors as V
from .expressions.compiler import choose
from .expressions.types import Type
from .expressions.vectors import Vec
from .memo import Memo

MAX_INPUT_BYTES = 512 * 1024 * 1024
FORMATS = ("csv", "xlsx", "json")
HEADER_SCAN = 30  # the header row is looked for among this many rows at the top of a sheet
YES_NO = {"zh": ("是", "否"), "en": ("yes", "no")}  # read back as true / false
TOTALS_COLUMNS = 3  # a totals row says so in one of its first cells
BLANK_TEXT = ("", " ", "  ", "\u3000", "\t")  # cells that only look filled
TOTAL_WORDS = frozenset({"合计", "总计", "小计", "汇总", "总合计", "total", "totals", "grandtotal", "subtotal", "sum"})


def to_frame(accounts: Any) -> pd.DataFrame:
    """A DataFrame (used as is), a mapping (one account), or an iterable of mappings."""
    if isinstance(accounts, pd.DataFrame):
        return accounts
    if isinstance(accounts, Mapping):
        return pd.DataFrame([accounts])
    if isinstance(accounts, Iterable) and not isinstance(accounts, str | bytes):
        records = list(accounts)
        # plain dicts by one C loop over their types: isinstance against Mapping costs 1.5 µs an account
        if not set(map(type, records)) <= {dict} and not all(isinstance(r, Mapping) for r in records):
            raise InputError("accounts must be a table: a DataFrame or a list of {field: value} mappings")
        return pd.DataFrame(records)  # from_records drops every row when no account has a key: [{}] -> 0 rows
    raise InputError("accounts must be a DataFrame or a list of {field: value} mappings")


class Records:
    """A few accounts given as {field: value} mappings, column by column as `pd.DataFrame(records)` would hold
    them for reading, without building the frame (which costs more than evaluating one account); `frame` builds
    it when someone asks. Made by `records_of` only where the reading is certain to be the same.

    Each column is its cells (`cells`, a record's missing key as NaN) and the kind of array pandas would make of
    them (`kinds`: "i" int64, "f" float64, "n" float64 of nothing but NaN, "T" datetime64 of nothing but NaT,
    "M" datetime64, "O" objects); `arrays` builds those arrays when asked (the per-account reader needs none)."""

    def __init__(self, records: list[dict[str, Any]], headers: list[str], cells: list[list[Any]], kinds: list[str]):
        self.records = records
        self.headers = headers
        self.cells = cells
        self.kinds = kinds
        self._arrays: list[np.ndarray] | None = None
        self._frame: pd.DataFrame | None = None

    def __len__(self) -> int:
        return len(self.records)

    @property
    def arrays(self) -> list[np.ndarray]:
        if self._arrays is None:
            self._arrays = [_array(cells, kind) for cells, kind in zip(self.cells, self.kinds, strict=True)]
        return self._arrays

    @property
    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            self._frame = pd.DataFrame(self.records)
        return self._frame


def _array(cells: list[Any], kind: str) -> np.ndarray:
    if kind == "i":
        return np.array(cells, dtype=np.int64)
    if kind in "fn":
        return np.array(cells, dtype=np.float64)
    if kind == "T":
        return np.full(len(cells), np.datetime64("NaT"), dtype="datetime64[s]")
    if kind == "M":
        return np.array([np.datetime64("NaT") if v is None or v != v or v is pd.NaT else np.datetime64(v)
                         for v in cells])
    column = np.empty(len(cells), dtype=object)
    for k, v in enumerate(cells):  # one by one: equal-length lists must not become a second dimension
        column[k] = v
    return column


def records_of(accounts: Any, most: int) -> Records | None:
    """`accounts` as Records when it is a list of at most `most` dicts (or one dict) with text keys whose cells
    are plain JSON values (text, numbers, booleans, null, lists, objects), else None (then: to_frame). Each
    column is read as the array pandas would make of it where reading depends on that (int64 or float64 for
    numbers only, the cells themselves otherwise; a key a record lacks is NaN, as in the frame)."""
    records = [accounts] if isinstance(accounts, dict) else accounts
    if type(records) is not list or not 0 < len(records) <= most:
        return None
    if len(records) == 1 and type(records[0]) is dict:
        headers = list(records[0])
    else:
        seen: dict[str, None] = {}
        for r in records:
            if type(r) is not dict:
                return None
            seen.update(dict.fromkeys(r))
        headers = list(seen)
    if not all(type(h) is str for h in headers):
        return None
    columns, kinds = [], []
    one = records[0] if len(records) == 1 else None
    for h in headers:
        if one is not None:  # one account (most requests): its cell's own kind
            v = one[h]
            cells = [v]
            kind = _cell_kind(v)
        else:
            cells = [r.get(h, math.nan) for r in records]
            kind = _kind(cells)
        if kind is None:
            return None
        if kind == "f":
            cells = [math.nan if v is None else float(v) for v in cells]
        columns.append(cells)
        kinds.append(kind)
    return Records(records, headers, columns, kinds)


_INT64 = (-(2**63), 2**63 - 1)
_MOMENTS = {pd.Timestamp, dt.datetime}
_GAPS = {type(None), float}  # a missing key reads NaN (a float), as None does in a column of numbers


def _kind(cells: list[Any]) -> str | None:
    """The kind of array pandas makes of a column's cells (see Records), or None where the frame must decide."""
    kinds = {type(v) for v in cells}
    if kinds == {str}:
        return "O"
    if kinds <= {int}:  # every record has a whole number: int64, as pandas makes it
        return "i" if all(_INT64[0] <= v <= _INT64[1] for v in cells) else None
    if float in kinds and all(v != v for v in cells if type(v) is float):
        kinds = kinds - {float} | {type(None)}  # NaN is a gap (a missing key, or NaN sent as such)
        if kinds <= {type(None)}:  # nothing at all: pandas makes it float64 NaN
            return "n"
    if kinds <= {type(pd.NaT), type(None)}:  # no date (NaT) at all: datetime64 NaT
        return "T"
    if kinds & {int, float} and kinds <= {int, float, type(None)}:  # numbers and gaps: float64
        return None if any(type(v) is int and not _INT64[0] <= v <= _INT64[1] for v in cells) else "f"
    if kinds & _MOMENTS and kinds <= _MOMENTS | {type(pd.NaT), type(None)}:  # datetime64, as pandas
        return None if any(type(v) in _MOMENTS and v.tzinfo is not None for v in cells) else "M"
    if kinds <= {bool} or not kinds <= {str, int, float, bool, type(None), list, dict}:
        return None  # a boolean column (bool dtype), or cells of other types: the frame decides
    return "O"


def _cell_kind(v: Any) -> str | None:
    """`_kind([v])`: the kind of array pandas makes of one cell, without building sets."""
    t = type(v)
    if t is str:
        return "O"
    if t is float:
        return "n" if v != v else "f"
    if t is int:
        return "i" if _INT64[0] <= v <= _INT64[1] else None
    if v is None or t is type(pd.NaT):
        return "T"
    if t is list or t is dict:
        return "O"
    if t in _MOMENTS:
        return None if v.tzinfo is not None else "M"
    return None


class NeedsFrame(Exception):  # noqa: N818 - a signal, not an error anyone sees
    """Reading these records cell by cell is not certain to match the frame: read the frame."""


@dataclass
class Columns:
    """The typed input columns of one evaluation and what went wrong reading them."""

    values: dict[str, Vec]
    errors: list[RowError]
    excluded: np.ndarray  # rows with at least one unreadable cell
    missing: list[str] = field(default_factory=list)  # fields the rules read that the table does not have
    headers: dict[str, str] = field(default_factory=dict)  # field -> the header it was read from


def read_columns(frame: pd.DataFrame | Records, needed: Mapping[str, Type | None],
                 dictionary: Dictionary) -> Columns:
    """Find each needed field in the table (by name or any header alias) and read it as its type."""
    if isinstance(frame, Records):
        try:
            return _read_records(frame, needed, dictionary)
        except NeedsFrame:
            frame = frame.frame
    return _read_columns(frame, needed, dictionary)


def _read_records(records: Records, needed: Mapping[str, Type | None], dictionary: Dictionary) -> Columns:
    """`_read_columns` of a request's few records: the same columns, errors and excluded rows, read cell by cell
    into per-account values (S.ListVec) where `_read_cells` can (else as arrays, by `_read_field`)."""
    n = len(records)
    headers = records.headers
    sources = _record_sources(headers, needed, dictionary)
    values: dict[str, Vec] = {}
    errors: list[RowError] = []
    excluded = [False] * n
    missing = []
    for name, type_ in needed.items():
        type_ = type_ or Type.STRING
        found = sources.get(name)
        if not found:
            missing.append(name)
            values[name] = S.ListVec(type_, [S.null_of(type_)] * n) if type_ in S.SUPPORTED else \
                V.null(type_).full(n)
            continue
        few = None
        if len(found) == 1:
            position, match = found[0]
            few = _read_cells(records.cells[position], records.kinds[position], type_, match.exponent)
        if few is not None:
            vec, bad = few
            source = None
        else:
            vec, bad_array, source_array = _read_field(records, headers, found, type_)
            bad, source = bad_array.tolist(), source_array.tolist()
        if type_ == Type.STRING and dictionary.canonical_values(name):
            # `制造业`, `Manufacturing` and `manufacturing` are one industry to the rules
            if type(vec) is S.ListVec:
                vec = S.ListVec(Type.STRING, [None if text is None else dictionary.canonical(name, text)
                                              for text in vec.values])
            else:
                vec = V.map_categories(vec, lambda text, name=name: dictionary.canonical(name, text))
        values[name] = vec
        if True in bad:
            for i, b in enumerate(bad):
                if b:
                    position = found[source[i] if source else 0][0]
                    errors.append(RowError(i, None, name, f"{records.arrays[position][i]!r} is not {type_.label} "
                                           f"(column {str(headers[position])!r})"))
                    excluded[i] = True
    errors.sort(key=lambda e: (e.row, e.field or ""))
    return Columns(values, errors, np.array(excluded, dtype=bool), missing,
                   {k: str(headers[v[0][0]]) for k, v in sources.items()})


# Requests of one client send the same keys in the same order: the header lookup of a few records is kept per
# key sequence (with the rule book's field types and its dictionary, held so their ids stay theirs), bounded.
_KNOWN_SOURCES: Memo[tuple[Any, ...], tuple[Mapping[str, Any], Dictionary, dict[str, Any]]] = Memo(256)


def _record_sources(headers: list[str], needed: Mapping[str, Type | None],
                    dictionary: Dictionary) -> dict[str, list[tuple[int, HeaderMatch]]]:
    """`_sources` of a few records' keys, remembered per key sequence (the caller does not change it)."""
    if len(headers) > 256 or sum(map(len, headers)) > 8192:  # kept keys stay small (a key may be megabytes)
        return _sources(headers, needed, dictionary)
    key = (id(needed), id(dictionary), *headers)
    known = _KNOWN_SOURCES.get(key)
    if known is not None and known[0] is needed and known[1] is dictionary:
        return known[2]
    sources = _sources(headers, needed, dictionary)
    _KNOWN_SOURCES.remember(key, (needed, dictionary, sources))
    return sources


def _sources(headers: list[Any], needed: Mapping[str, Type | None],
             dictionary: Dictionary) -> dict[str, list[tuple[int, HeaderMatch]]]:
    """Each needed field's columns (position, and how the header was read), found by name or any header alias."""
    sources: dict[str, list[tuple[int, HeaderMatch]]] = {}
    for position, header in enumerate(headers):
        match = HeaderMatch(header) if header in needed else dictionary.match_header(header)
        if match is not None and match.field in needed:
            sources.setdefault(match.field, []).append((position, match))
    return sources


def _read_columns(frame: pd.DataFrame, needed: Mapping[str, Type | None], dictionary: Dictionary) -> Columns:
    n = len(frame)
    headers = frame.columns.tolist()  # plain labels: indexing a pandas Index (of text) costs more than the reading
    sources = _sources(headers, needed, dictionary)
    values: dict[str, Vec] = {}
    errors: list[RowError] = []
    excluded = np.zeros(n, dtype=bool)
    missing = []
    for name, type_ in needed.items():
        type_ = type_ or Type.STRING
        found = sources.get(name)
        if not found:
            missing.append(name)
            values[name] = V.null(type_).full(n)
            continue
        vec, bad, source = _read_field(frame, headers, found, type_)
        if type_ == Type.STRING and dictionary.canonical_values(name):
            # `制造业`, `Manufacturing` and `manufacturing` are one industry to the rules
            vec = V.map_categories(vec, lambda text, name=name: dictionary.canonical(name, text))
        values[name] = vec
        for i in np.flatnonzero(bad) if bad.any() else ():
            position = found[source[i]][0]
            cell = frame.iat[i, position]
            errors.append(RowError(int(i), None, name, f"{cell!r} is not {type_.label} "
                                   f"(column {str(headers[position])!r})"))
        excluded |= bad
    errors.sort(key=lambda e: (e.row, e.field or ""))
    return Columns(values, errors, excluded, missing,
                   {k: str(headers[v[0][0]]) for k, v in sources.items()})


def _read_field(frame: pd.DataFrame | Records, headers: list[Any], found: list[tuple[int, HeaderMatch]],
                type_: Type) -> tuple[Vec, np.ndarray, np.ndarray]:
    """One field from every column that means it (records of one batch may spell it differently, e.g.
    `近12个月销售额` and `Revenue (12m)`): the first non-empty cell wins. Also returns the unreadable cells and,
    per row, the index into `found` of the column its value came from (for error messages)."""
    n = len(frame)
    records = isinstance(frame, Records)
    vec, bad, source = None, np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int16)
    for k, (position, match) in enumerate(found):
        if records:
            small = V.coerce_cells(frame.arrays[position], type_, match.exponent) \
                if type_ in (Type.NUMBER, Type.STRING, Type.DATE) else None
            if small is None:
                raise NeedsFrame(headers[position])
        else:  # a few cells one by one; a column of numbers or dates as its array, without a Series
            array = column_array(frame, position)
            small = V.coerce_cells(array, type_, match.exponent) if n <= V.SMALL_COLUMN else \
                V.coerce_plain(array, type_, match.exponent)
        if small is None:
            by_label = frame.columns.is_unique  # a column by its label is cheaper to fetch than by its position
            column = frame[headers[position]] if by_label else frame.iloc[:, position]
            small = V.coerce_series(column, type_, match.exponent)
        part, part_bad = small
        part = part.full(n)
        if vec is None:
            vec, bad = part, part_bad
            continue
        take = vec.nulls() & ~bad & (~part.nulls() | part_bad)
        vec = choose(take, part, vec)
        bad = np.where(take, part_bad, bad)
        source[take] = k
    return vec, bad, source


def _read_cells(cells: list[Any], kind: str, type_: Type, exponent: int) -> tuple[Vec, list[bool]] | None:
    """`V.coerce_cells` of a Records column (its cells and the kind of array pandas would make of them), as
    per-account values (S.ListVec) rather than arrays, with the unreadable cells; None where this reader does
    not apply (then coerce_cells reads the column's array)."""
    n = len(cells)
    if type_ not in (Type.NUMBER, Type.STRING, Type.DATE) or kind == "M":
        return None
    if kind in "nT":  # no value in any record (e.g. `revenue_prev_12m: null`): null, whatever the field's type
        return S.ListVec(type_, [math.nan] * n if type_ == Type.NUMBER else [None] * n), [False] * n
    if kind in "if":
        if type_ == Type.DATE or (type_ == Type.NUMBER and exponent):
            return None
        values = cells if kind == "f" else [float(v) for v in cells]
        if type_ == Type.NUMBER:  # ±inf: unreadable, read as null
            bad = [v - v != 0 and v == v for v in values]
            if True in bad:
                values = [math.nan if b else v for v, b in zip(values, bad, strict=True)]
            return S.ListVec(Type.NUMBER, values), bad
        cells = values if kind == "f" else cells  # text read from the array's Python values (1001.0 from float64)
    bad = [False] * n
    read: list[Any] = [None] * n  # None: an empty cell
    seen: dict[Any, Any] = {}
    for i, v in enumerate(cells):
        t = type(v)
        if v is None or (t is float and v != v):
            continue
        if t is list or t is dict:
            bad[i] = True
            continue
        if t not in _PLAIN_CELLS:
            return None
        r = seen.get(v, seen)
        if r is seen:
            r = seen[v] = (V._number_cell(v, exponent) if type_ == Type.NUMBER else
                           V._as_text(v) if type_ == Type.STRING else _day_cell(v))
        read[i] = r
    if type_ == Type.STRING:
        if any(t and t.endswith("\x00") for t in read):  # as coerce_cells: numpy's strings drop trailing NULs
            return None
        return S.ListVec(Type.STRING, [t or None for t in read]), bad
    empty = (math.nan, True) if type_ == Type.NUMBER else (None, True)
    pairs = [empty if r is None else r for r in read]
    bad = [b or not ok for b, (_, ok) in zip(bad, pairs, strict=True)]
    values = [v for v, _ in pairs]
    if type_ == Type.NUMBER:
        values = [float(v) for v in values]
    return S.ListVec(type_, values), bad


_PLAIN_CELLS = (str, float, int, bool)


def _day_cell(value: Any) -> tuple[int | None, bool]:
    """V._date_cell as a day number (days since 1970-01-01; None for no date). Date texts are few (a year has
    365 of them) and repeat from request to request: each is read once, then remembered (bounded)."""
    if type(value) is str and len(value) <= 64:
        known = _DAY_TEXTS.get(value)
        if known is None:
            known = _DAY_TEXTS.remember(value, _read_day(value))
        return known
    return _read_day(value)


def _read_day(value: Any) -> tuple[int | None, bool]:
    day, ok = V._date_cell(value)
    return (None if np.isnat(day) else int(day.astype(np.int64))), ok


_DAY_TEXTS: Memo[str, tuple[int | None, bool]] = Memo(4096)


def column_array(frame: pd.DataFrame, position: int) -> Any:
    """The array holding a column's cells. Fetching a column as a Series costs more than coercing a few cells, so
    small tables go to the frame's block manager (what `frame.iloc[:, position].array` reaches, without the
    Series)."""
    try:
        return frame._mgr.iget_values(position)
    except AttributeError:  # a pandas without it
        return frame.iloc[:, position].array


# --- files -------------------------------------------------------------------------------------------------


@dataclass
class Sheet:
    """An account table read from a file: one row per account, the line (csv) or sheet row (xlsx) each came
    from, and what was skipped on the way (a totals row)."""

    frame: pd.DataFrame
    lines: np.ndarray  # 1-based; for JSON the record number
    warnings: list[Problem] = field(default_factory=list)
    header_line: int | None = None


def format_of(path: str | Path, fmt: str | None = None) -> str:
    fmt = (fmt or Path(path).suffix.lstrip(".")).lower()
    fmt = {"xls": "xlsx", "xlsm": "xlsx", "jsonl": "json", "txt": "csv"}.get(fmt, fmt)
    if fmt not in FORMATS:
        raise InputError(f"{path}: unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    return fmt


def read_table(source: str | Path | bytes, fmt: str | None = None, dictionary: Dictionary | None = None,
               reads: Collection[str] | None = None) -> pd.DataFrame:
    """Read an account table from a file path or raw bytes (csv in UTF-8 or GBK, xlsx, or JSON records)."""
    return read_sheet(source, fmt, dictionary, reads).frame


def read_sheet(source: str | Path | bytes, fmt: str | None = None, dictionary: Dictionary | None = None,
               reads: Collection[str] | None = None) -> Sheet:
    """Read an account table, finding its header row below any title rows (with `dictionary`, the row naming
    the most fields), dropping empty rows and skipping totals rows (`合计`, `总计`, `Total`) with a warning.
    `reads`: the fields the rules will read (a rule book's `inputs`), where an xlsx cell holding a formula saved
    without its value is refused (`refuse_uncalculated`)."""
    if isinstance(source, bytes):
        data, name = source, "<upload>"
        if fmt is None:
            raise InputError("the format of uploaded bytes must be given")
    else:
        path = Path(source)
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        if path.stat().st_size > MAX_INPUT_BYTES:
            raise InputError(f"{path}: larger than {MAX_INPUT_BYTES // 2**20} MiB")
        data, name = path.read_bytes(), str(path)
    fmt = format_of(name, fmt)
    try:
        if fmt == "csv":
            return _read_csv(data, name, dictionary)
        if fmt == "xlsx":
            return _read_xlsx(data, name, dictionary, reads)
        frame = _read_json(data, name)
        return Sheet(frame, np.arange(1, len(frame) + 1))
    except InputError:
        raise
    except (ValueError, KeyError, OSError, pd.errors.ParserError, csv.Error, zipfile.BadZipFile) as e:
        raise InputError(f"{name}: cannot read as {fmt}: {e}") from None


def _decode(data: bytes, name: str) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InputError(f"{name}: not UTF-8 or GBK text")


def _read_csv(data: bytes, name: str, dictionary: Dictionary | None) -> Sheet:
    text = _decode(data, name)
    top = list(itertools.islice(csv.reader(io.StringIO(text)), HEADER_SCAN))
    at = _header_index(top, dictionary)
    # The fast reader takes it from the header row on; blank lines are kept (as empty rows) so lines stay true.
    raw = pd.read_csv(io.StringIO(text), header=None, skiprows=at, dtype=object, keep_default_na=False,
                      na_values=[""], skip_blank_lines=False, skipinitialspace=True)
    if raw.empty:
        raise InputError(f"{name}: no header row")
    body = raw.iloc[1:].reset_index(drop=True)
    return _sheet(list(raw.iloc[0]), body, np.arange(at + 2, at + 2 + len(body)), at + 1, name)


# What openpyxl raises, opening a workbook or reading its cells, for a workbook that is damaged or that it cannot
# handle: a zip or XML part cut short or broken (zipfile, zlib, ElementTree's ParseError is a SyntaxError), a part
# packed in a way zipfile cannot unpack (Deflate64, encrypted: NotImplementedError, RuntimeError), a shared string
# or sheet that is not there (IndexError, KeyError), a part it fails on (an empty chart sheet: AttributeError), no
# workbook at all (InvalidFileException). The upload's fault, said as such: caught only around openpyxl's own
# calls, so that a fault of ours is never taken for one of the file's.
XLSX_FAILURES = (OSError, KeyError, ValueError, TypeError, IndexError, AttributeError, EOFError, RuntimeError,
                 zlib.error, zipfile.BadZipFile, SyntaxError, openpyxl.utils.exceptions.InvalidFileException)


def _read_xlsx(data: bytes, name: str, dictionary: Dictionary | None, reads: Collection[str] | None) -> Sheet:
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            sheet = book.worksheets[0]
            rows, lines = sheet_rows(sheet)
            if not rows:
                raise InputError(f"{name}: the first sheet is empty")
            at = header_index(rows, dictionary, lines)
            refuse_uncalculated(sheet, rows, lines, at, name, dictionary, reads)
        finally:
            book.close()
    except XLSX_FAILURES as e:
        raise InputError(f"{name}: cannot read as xlsx: {e}") from None
    return read_rows(rows, name, dictionary, header=at, lines=lines)


def sheet_rows(sheet: Any) -> tuple[list[list[Any]], list[int]]:
    """The rows of a read-only openpyxl sheet that hold a value, each as a list of its cells from column A, and
    the line (1-based sheet row) of each. A row without a value is left out, not made: a stray cell at A1048576
    below 2,000 accounts made a million empty rows, 3.8 s and 700 MB to read a 200 kB upload. (Raises what
    openpyxl raises for a damaged sheet: see XLSX_FAILURES.)"""
    sheet.reset_dimensions()  # some writers record a wrong used range; read what is really there
    rows, lines = [], []
    for line, cells in enumerate(sheet.iter_rows(min_row=1, min_col=1, values_only=True), start=1):
        if cells and not all(cell is None for cell in cells):  # (a row the sheet does not hold comes as ())
            rows.append(list(cells))
            lines.append(line)
    return rows, lines


# A formula element of a sheet's XML (`<f>`, `<f t="shared" .../>`, `<x:f>` where the namespace has a prefix); not
# `<formula1>` of a data validation. A cell's start tag (`<c r="B2" ...>`, `<x:c ...>`).
_FORMULA_TAG = re.compile(rb"<((?:[A-Za-z_][\w.-]*:)?)f[ \t\r\n/>]")
_CELL_TAG = re.compile(rb"<((?:[A-Za-z_][\w.-]*:)?)c[ \t\r\n>/]")
_CELL_REF = re.compile(rb"""\sr\s*=\s*["']([A-Z]{1,3})([0-9]{1,7})["']""")
_TEXT_RESULT = re.compile(rb"""\st\s*=\s*["']str["']""")
MAX_SHEET_XML_BYTES = 512 * 2**20  # a sheet's XML larger than this (unzipped) is not looked through for formulas


def uncalculated_formulas(sheet: Any) -> list[tuple[int, int, str, str]]:
    """The cells of a read-only openpyxl sheet that hold a formula saved without its value (a file written by a
    program that does not calculate, such as openpyxl: no `<v>`, or an empty one where the result is not text):
    each as its sheet row (1-based), column (0-based), reference and formula text. Read as values, they are empty,
    so an account would be evaluated without them. Read from the sheet's XML, one look at each formula element
    (the cell's start tag is the tag just before it; a formula elsewhere, a sparkline's, is passed over): ~20 ms
    for 10,000 rows, most of it unzipping, and nothing more where the sheet holds no formula. A sheet not read
    from a file (or an openpyxl that keeps it elsewhere), or one whose XML is over MAX_SHEET_XML_BYTES, has none."""
    path, archive = getattr(sheet, "_worksheet_path", None), getattr(sheet.parent, "_archive", None)
    if path is None or archive is None or archive.getinfo(path).file_size > MAX_SHEET_XML_BYTES:
        return []
    xml = archive.read(path)
    if xml.find(b"f>") < 0:  # (every formula has a closing `</f>`: a shared one's followers refer to it)
        return []
    found = []
    for tag in _FORMULA_TAG.finditer(xml):
        prefix, at = tag.group(1), tag.start()
        opened = xml.rfind(b"<", 0, at)
        cell = _CELL_TAG.match(xml, opened) if opened >= 0 else None
        start_end = xml.find(b">", opened)
        if cell is None or cell.group(1) != prefix or xml[start_end - 1:start_end] == b"/" or \
                xml[start_end + 1:at].strip(b" \t\r\n"):
            continue  # not a cell's formula
        closed = xml.find(b"</" + prefix + b"c>", at)
        if closed < 0:
            continue
        start_tag, content = xml[opened:start_end + 1], xml[at:closed]
        value = re.search(b"<" + re.escape(prefix) + rb"v(?:[ \t\r\n][^>]*)?(/>|>([^<]*)</)", content)
        if value is not None and (value.group(2) or _TEXT_RESULT.search(start_tag)) or \
                re.search(b"<" + re.escape(prefix) + rb"is[ \t\r\n/>]", content):
            continue  # its value is saved beside it (an empty one only as text: `t="str"`, as Excel saves "", or
            # inline text)
        ref = _CELL_REF.search(start_tag)
        if ref is None:
            continue  # (a cell without its reference cannot be placed)
        letters, digits = ref.group(1).decode(), int(ref.group(2))
        formula_end = xml.find(b">", at)
        formula = ""
        if xml[formula_end - 1:formula_end] != b"/" and (text_end := xml.find(b"</" + prefix + b"f>", formula_end)) > 0:
            text = xml[formula_end + 1:text_end].decode("utf-8", "replace")
            formula = "=" + html.unescape(text) if text else ""  # (XML's five entities and character references)
        found.append((digits, openpyxl.utils.column_index_from_string(letters) - 1, f"{letters}{digits}", formula))
    return found


def refuse_uncalculated(sheet: Any, rows: list[list[Any]], lines: list[int], at: int, name: str,
                        dictionary: Dictionary | None, reads: Collection[str] | None = None) -> None:
    """InputError when a cell of an account holds a formula saved without its value (`uncalculated_formulas`) in
    a column the rules read: an account being a row with a value below the header row `rows[at]`, not a totals
    row; a column the rules read one whose header names a field of `dictionary` among `reads` (any of its fields
    without `reads`). Read as a value, the cell is empty, and the account would be evaluated as if it were. Named
    by its sheet row, reference and column, with its formula. Without a dictionary nothing says which columns the
    rules read, and nothing is refused."""
    if dictionary is None:
        return
    header, header_line = rows[at], lines[at]
    row_at = {line: k for k, line in enumerate(lines)}
    headed = [k for k, cell in enumerate(header) if not _empty(cell)][:TOTALS_COLUMNS]  # (as `_totals` looks)

    def read(line: int, column: int) -> bool:
        if line <= header_line or line not in row_at or column >= len(header):
            return False  # not an account's row: above the table, or no value in it (a template's formulas)
        row = rows[row_at[line]]
        if any(_is_total(row[k]) for k in headed if k < len(row)):
            return False
        cell = header[column]
        match = dictionary.match_header(cell) if isinstance(cell, str) else None
        return match is not None and (reads is None or match.field in reads)

    inside = [cell for cell in uncalculated_formulas(sheet) if read(cell[0], cell[1])]
    if not inside:
        return
    line, column, ref, formula = inside[0]
    shown = f" ({formula[:60]}{'…' if len(formula) > 60 else ''})" if formula else ""
    others = len(inside) - 1
    more = "" if not others else ", as does 1 more cell" if others == 1 else f", as do {others:,} more cells"
    raise InputError(f"{name}:{line}: {ref} under {str(header[column]).strip()!r} holds a formula saved without "
                     f"its value{shown}{more}: the file was written by a program that does not calculate. Open it "
                     "in Excel or LibreOffice and save it, or paste the values / 单元格公式没有计算结果：请在 Excel 或 "
                     "LibreOffice 中打开并保存后再上传")


def header_index(rows: list[list[Any]], dictionary: Dictionary | None = None,
                 lines: list[int] | None = None) -> int:
    """The 0-based index of the header row among a sheet's rows (below any title rows), looked for among the
    sheet's first HEADER_SCAN rows: with `lines` (each row's sheet row, 1-based), the rows read from those."""
    scan = HEADER_SCAN if lines is None else max(1, sum(1 for line in lines[:HEADER_SCAN] if line <= HEADER_SCAN))
    return _header_index(rows[:scan], dictionary)


# An account table's columns at most. A value far to the right (a stray cell in column XFD) would otherwise make
# every row 16,384 cells wide: a 32 kB upload of 2,000 rows took 3.9 s and 754 MB to read.
MAX_COLUMNS = 1024


def read_rows(rows: list[list[Any]], name: str = "<sheet>", dictionary: Dictionary | None = None,
              header: int | None = None, lines: list[int] | None = None) -> Sheet:
    """An account table from a sheet's cell values (a list of rows from A1, as Excel and its add-ins hand them
    over); `header` is the header row's index when the caller already knows it. `lines`: the sheet row (1-based)
    of each row, where rows without a value are left out (`sheet_rows`); by default the rows are the sheet's
    from its first."""
    if not rows:
        raise InputError(f"{name}: the sheet is empty")
    width = max(len(r) for r in rows)
    if width > MAX_COLUMNS:  # blank cells at a row's end (styled, never filled) are no columns; a value is
        rows = [_without_blank_end(r) for r in rows]
        far = next((k for k, r in enumerate(rows) if len(r) > MAX_COLUMNS), None)
        if far is not None:
            raise too_far_right(name, far + 1 if lines is None else lines[far], len(rows[far]) - 1)
        width = max(len(r) for r in rows)
    at = header_index(rows, dictionary, lines) if header is None else header
    body = pd.DataFrame([r + [None] * (width - len(r)) for r in rows[at + 1:]], columns=range(width), dtype=object)
    body_lines = np.arange(at + 2, len(rows) + 1) if lines is None else np.asarray(lines[at + 1:], dtype=np.int64)
    header_line = at + 1 if lines is None else lines[at]
    return _sheet(rows[at] + [None] * (width - len(rows[at])), body, body_lines, header_line, name)


def too_far_right(name: str, line: int, column: int) -> InputError:
    """The error for a value in `column` (0-based) of sheet row `line`, right of the columns a table may have."""
    return InputError(f"{name}:{line}: a value in column {openpyxl.utils.get_column_letter(column + 1)}, beyond the "
                      f"{MAX_COLUMNS:,} columns an account table may have: clear that cell, or move it into the table")


def _without_blank_end(row: list[Any]) -> list[Any]:
    """The row without the cells at its end that `_sheet` counts blank (so a column it would keep stays)."""
    end = len(row)
    while end and ((cell := row[end - 1]) is None or cell in BLANK_TEXT or (type(cell) is float and cell != cell)):
        end -= 1
    return row if end == len(row) else row[:end]


def _empty(cell: Any) -> bool:
    return cell is None or (isinstance(cell, float) and np.isnan(cell)) or (isinstance(cell, str) and not cell.strip())


def _header_index(rows: list[list[Any]], dictionary: Dictionary | None) -> int:
    """Which of the top rows holds the headers: the one naming the most dictionary fields (two at least), else
    the first that is mostly text and about as wide as the table. A title row, merged across the columns,
    has one filled cell and is passed over."""
    filled = [[c for c in row if not _empty(c)] for row in rows]
    if dictionary is not None:
        known = [sum(dictionary.match_header(c) is not None for c in cells if isinstance(c, str)) for cells in filled]
        if max(known, default=0) >= 2:
            return known.index(max(known))
    widest = max((len(cells) for cells in filled), default=0)
    for i, cells in enumerate(filled):
        if len(cells) >= max(2, widest / 2) and sum(isinstance(c, str) for c in cells) >= 0.8 * len(cells):
            return i
    return 0


def _sheet(header: list[Any], body: pd.DataFrame, lines: np.ndarray, header_line: int, name: str) -> Sheet:
    """Name the columns, drop empty rows and unnamed empty columns, skip totals rows. `lines`: each body row's
    line (1-based), `header_line` the header's."""
    names = _column_names(header)
    blank = (body.isna() | body.isin(BLANK_TEXT)).to_numpy()
    keep_columns = [k for k, h in enumerate(header) if not _empty(h) or not blank[:, k].all()]
    rows = ~blank.all(axis=1) if len(body) else np.zeros(0, dtype=bool)
    frame = body.iloc[rows, keep_columns].set_axis([names[k] for k in keep_columns], axis=1)
    lines = lines[rows]
    totals = _totals(frame)
    warnings = [Problem(f"totals row skipped ({label!r})", name, int(line), severity="warning")
                for line, label in zip(lines[totals], _total_labels(frame, totals), strict=True)]
    frame = frame[~totals].reset_index(drop=True).infer_objects()
    return Sheet(frame, lines[~totals], warnings, header_line)


def _column_names(header: list[Any]) -> list[str]:
    """Header cells as unique column names: blanks as `Unnamed: k`, a repeat as `name.1` (as pandas does)."""
    names, seen = [], {}
    for k, cell in enumerate(header):
        if _empty(cell):
            text = f"Unnamed: {k}"
        elif isinstance(cell, float) and cell.is_integer():
            text = str(int(cell))
        elif isinstance(cell, dt.date):  # a month or date as a header, e.g. in a sheet of monthly sales
            text = cell.strftime("%Y-%m-%d")
        else:
            text = str(cell).strip()
        count = seen.get(text, 0)
        seen[text] = count + 1
        names.append(text if count == 0 else f"{text}.{count}")
    return names


def _is_total(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 20 and header_key(value) in TOTAL_WORDS


def _totals(frame: pd.DataFrame) -> np.ndarray:
    mask = np.zeros(len(frame), dtype=bool)
    for k in range(min(TOTALS_COLUMNS, frame.shape[1])):
        column = frame.iloc[:, k]
        if column.dtype == object:
            words = [u for u in pd.unique(column.dropna()) if _is_total(u)]
            if words:
                mask |= column.isin(words).to_numpy()
    return mask


def _total_labels(frame: pd.DataFrame, totals: np.ndarray) -> list[str]:
    head = frame.iloc[totals, :TOTALS_COLUMNS]
    return [next(str(v) for v in row if _is_total(v)) for row in head.itertuples(index=False)]


def _read_json(data: bytes, name: str) -> pd.DataFrame:
    text = _decode(data, name).strip()
    if text.startswith("["):
        records = json.loads(text)
    elif text.startswith("{"):
        doc = json.loads(text)
        records = doc.get("accounts") if isinstance(doc, dict) and "accounts" in doc else [doc]
    else:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    return to_frame(records)


def write_table(frame: pd.DataFrame, path: str | Path, fmt: str | None = None) -> None:
    path = Path(path)
    fmt = format_of(path, fmt)
    out = frame.copy()
    for col in out.columns:  # lists from COLLECT tables read best as "a, b, c" in a sheet
        if fmt != "json" and out[col].dtype == object and out[col].map(lambda v: isinstance(v, list)).any():
            out[col] = out[col].map(lambda v: ", ".join(map(str, v)) if isinstance(v, list) else v)
    if fmt == "csv":
        out.to_csv(path, index=False, encoding="utf-8-sig")
    elif fmt == "xlsx":
        with pd.ExcelWriter(path, engine="openpyxl", datetime_format="yyyy-mm-dd", date_format="yyyy-mm-dd") as xl:
            out.to_excel(xl, index=False, sheet_name="accounts")
            sheet = xl.sheets["accounts"]
            sheet.freeze_panes = "A2"  # headers stay in view while scrolling a long portfolio
            for k, header in enumerate(out.columns, start=1):
                wide = sum(2 if ord(ch) > 0x2E80 else 1 for ch in str(header))  # a Chinese character is two wide
                sheet.column_dimensions[openpyxl.utils.get_column_letter(k)].width = min(max(10, wide + 2), 40)
    else:
        path.write_text(out.to_json(orient="records", force_ascii=False, date_format="iso"), encoding="utf-8")


# --- results for people --------------------------------------------------------------------------------------


def labelled(frame: pd.DataFrame, dictionary: Dictionary, lang: str,
             labels: Mapping[str, Mapping[str, str]] | None = None) -> pd.DataFrame:
    """The columns named by a field, headed by its label in `lang` (`tier` → `客户等级`) and with its values as
    labels where the field has a vocabulary (`loyal` → `忠诚客户`, item by item in lists). `labels` gives
    labels for fields the dictionary lacks. Other columns, the sheet's own, are left as they are."""
    out = frame.copy()
    renames = {}
    for col in out.columns:
        if not isinstance(col, str) or (col not in dictionary and col not in (labels or {})):
            continue
        header = dictionary.label(col, lang) or (labels or {}).get(col, {}).get(lang)
        if header:
            renames[col] = header
        definition = dictionary.fields.get(col)
        if definition is not None and definition.values:
            out[col] = _values_labelled(out[col], col, dictionary, lang)
        elif definition is not None and definition.type == Type.BOOLEAN:
            yes, no = YES_NO.get(lang, YES_NO["en"])
            out[col] = out[col].astype(object).map({True: yes, False: no})
    return out.rename(columns=renames)


def _values_labelled(column: pd.Series, name: str, dictionary: Dictionary, lang: str) -> pd.Series:
    def one(v: Any) -> Any:
        if isinstance(v, list):
            return [dictionary.value_label(name, item, lang) for item in v]
        return v if v is None or (isinstance(v, float) and np.isnan(v)) else dictionary.value_label(name, v, lang)
    return column.astype(object).map(one)
