"""Typed columns the compiled expressions compute on, each type with its own null encoding.

- number:  float64, NaN is null
- date:    datetime64[D], NaT is null
- boolean: int8 with FALSE=0, NULL=1, TRUE=2, so Kleene `and` is `minimum`, `or` is `maximum`, `not` is 2-x
- string:  int32 codes into sorted unique categories (`cats`), -1 is null; equality and ordering are integer ops
- list:    objects, a Python list (or None) per row
- time, date and time, days and time duration: timedelta64[us] / datetime64[us] / timedelta64[us], NaT is null
- years and months duration: float64 months, NaN is null (see temporal.py)

A scalar (a literal) is a 0-d array and broadcasts; nothing is expanded to the column length until output.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import temporal
from .types import TEMPORAL, Type

FALSE, NULL, TRUE = np.int8(0), np.int8(1), np.int8(2)
_EMPTY_CATS = np.array([], dtype=object)


@dataclass(frozen=True, slots=True)
class Vec:
    type: Type
    data: np.ndarray
    cats: np.ndarray | None = None  # string categories, sorted and unique

    @property
    def is_scalar(self) -> bool:
        return self.data.ndim == 0

    def nulls(self) -> np.ndarray:
        if self.type in (Type.NUMBER, Type.YEARS_DURATION):
            return np.isnan(self.data)
        if self.type in (Type.DATE, Type.TIME, Type.DATE_TIME, Type.DAYS_DURATION):
            return np.isnat(self.data)
        if self.type == Type.BOOLEAN:
            return self.data == NULL
        if self.type == Type.STRING:
            return self.data < 0
        if self.type == Type.NULL:
            return np.asarray(True)
        return np.vectorize(lambda v: v is None, otypes=[bool])(self.data)

    def truth(self) -> np.ndarray:
        """Where a boolean column is true (null and false are both 'no')."""
        return self.data == TRUE

    def full(self, n: int) -> Vec:
        """The column expanded to length n (a scalar is repeated)."""
        if not self.is_scalar:
            return self
        return Vec(self.type, np.full(n, self.data[()], dtype=self.data.dtype), self.cats)

    def take(self, index: np.ndarray) -> Vec:
        return self if self.is_scalar else Vec(self.type, self.data[index], self.cats)

    def value(self, i: int) -> Any:
        """The i-th value as a plain Python value (None for null)."""
        v = self.data[()] if self.is_scalar else self.data[i]
        if self.type == Type.NUMBER:
            f = float(v)
            if np.isnan(f):
                return None
            return int(f) if f.is_integer() and abs(f) < 2**53 else f
        if self.type == Type.STRING:
            return None if v < 0 else str(self.cats[v])
        if self.type == Type.BOOLEAN:
            return None if v == NULL else bool(v == TRUE)
        if self.type == Type.DATE:
            return None if np.isnat(v) else v.astype(dt.date)
        if self.type in TEMPORAL:
            return temporal.from_numpy(v, self.type)
        if self.type == Type.LIST:
            return v
        return None

    def to_series(self, n: int, index: pd.Index | None = None) -> pd.Series:
        """The column as a pandas Series of length n, nulls as pandas' missing values."""
        return pd.Series(self.to_array(n), index=index, copy=False)

    def to_array(self, n: int) -> np.ndarray | pd.api.extensions.ExtensionArray:
        """The column as a new array of length n for a pandas column (never a view of `data`): float64, categorical
        text, nullable boolean, datetime64, or objects."""
        full = self.full(n)
        if self.type == Type.NUMBER:
            return np.array(full.data, dtype=np.float64)
        if self.type == Type.STRING:
            text = pd.Categorical.from_codes(full.data, dtype=_categorical_dtype(full.cats))
            # pandas keeps int32 codes as they are (beyond 32,767 categories): then they would be `data` itself.
            return text.copy() if np.may_share_memory(text.codes, full.data) else text
        if self.type == Type.BOOLEAN:
            return pd.arrays.BooleanArray(full.data == TRUE, full.data == NULL)
        if self.type == Type.DATE:
            return full.data.astype("datetime64[s]")
        if self.type in (Type.DATE_TIME, Type.DAYS_DURATION):
            return np.array(full.data)
        if self.type in (Type.TIME, Type.YEARS_DURATION):  # no pandas dtype: plain time / YearsMonths objects
            return _objects([full.value(i) for i in range(n)])
        if self.type == Type.LIST:
            return np.array(full.data, dtype=object)
        return _objects([None] * n)


def _objects(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


_DTYPES: dict[int, tuple[np.ndarray, pd.CategoricalDtype]] = {}
_DTYPES_KEPT = 256  # entries; cleared when full
_DTYPES_LARGEST = 256  # categories: a long list is not a rule's fixed values, and is checked once per large column


def _categorical_dtype(cats: np.ndarray | None) -> pd.CategoricalDtype:
    """The pandas dtype of text with these categories. A rule's fixed outputs (a table's literal values, band
    labels, grades) reuse one categories array in every evaluation, so its dtype is made, and its categories
    checked, once rather than per column per request. An entry holds its array, so the id stays unique."""
    cats = _EMPTY_CATS if cats is None else cats
    hit = _DTYPES.get(id(cats))
    if hit is not None and hit[0] is cats:
        return hit[1]
    dtype = pd.CategoricalDtype(pd.Index(cats, dtype=object))
    if len(cats) <= _DTYPES_LARGEST:
        if len(_DTYPES) >= _DTYPES_KEPT:
            _DTYPES.clear()
        _DTYPES[id(cats)] = (cats, dtype)
    return dtype


# --- constructors ------------------------------------------------------------------------------------------


def number(values: Any) -> Vec:
    return Vec(Type.NUMBER, np.asarray(values, dtype=np.float64))


def boolean(true: np.ndarray, null: np.ndarray | None = None) -> Vec:
    data = np.where(true, TRUE, FALSE).astype(np.int8)
    if null is not None:
        data = np.where(null, NULL, data).astype(np.int8)
    return Vec(Type.BOOLEAN, data)


def date(values: Any) -> Vec:
    return Vec(Type.DATE, np.asarray(values, dtype="datetime64[D]"))


def string_scalar(value: str | None) -> Vec:
    if value is None:
        return Vec(Type.STRING, np.asarray(-1, dtype=np.int32), _EMPTY_CATS)
    return Vec(Type.STRING, np.asarray(0, dtype=np.int32), np.array([value], dtype=object))


def strings(values: np.ndarray | list[Any]) -> Vec:
    """Factorize an array of Python strings (None for null) into codes and sorted categories."""
    codes, cats = pd.factorize(pd.Series(values, dtype=object), sort=True, use_na_sentinel=True)
    return Vec(Type.STRING, codes.astype(np.int32), np.asarray(cats, dtype=object))


def null(type_: Type) -> Vec:
    if type_ == Type.NUMBER:
        return number(np.nan)
    if type_ == Type.DATE:
        return date(np.datetime64("NaT"))
    if type_ == Type.BOOLEAN:
        return Vec(Type.BOOLEAN, np.asarray(NULL, dtype=np.int8))
    if type_ == Type.STRING:
        return string_scalar(None)
    if type_ in TEMPORAL:
        return Vec(type_, np.asarray(temporal.null_value(type_), dtype=temporal.dtype(type_)))
    return Vec(type_, np.asarray(None, dtype=object))


def scalar(value: Any, type_: Type) -> Vec:
    """A literal as a 0-d column of the given type."""
    if value is None:
        return null(type_)
    if type_ == Type.NUMBER:
        return number(float(value))
    if type_ == Type.STRING:
        return string_scalar(str(value))
    if type_ == Type.BOOLEAN:
        return Vec(Type.BOOLEAN, np.asarray(TRUE if value else FALSE, dtype=np.int8))
    if type_ == Type.DATE:
        return date(np.datetime64(value, "D"))
    if type_ in TEMPORAL:
        return Vec(type_, np.asarray(temporal.to_numpy(value, type_), dtype=temporal.dtype(type_)))
    return Vec(type_, np.asarray(value, dtype=object))


def from_values(values: list[Any], type_: Type) -> Vec:
    """A column from plain Python values of one type (None for null)."""
    if type_ == Type.NUMBER:
        return number([np.nan if v is None else float(v) for v in values])
    if type_ == Type.STRING:
        return strings([None if v is None else str(v) for v in values])
    if type_ == Type.BOOLEAN:
        return Vec(Type.BOOLEAN, np.array([NULL if v is None else (TRUE if v else FALSE) for v in values], np.int8))
    if type_ == Type.DATE:
        return date(np.array([np.datetime64("NaT") if v is None else np.datetime64(v, "D") for v in values],
                             dtype="datetime64[D]"))
    if type_ in TEMPORAL:
        return Vec(type_, np.array([temporal.to_numpy(v, type_) for v in values], dtype=temporal.dtype(type_)))
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return Vec(type_, out)


def cast_null(vec: Vec, type_: Type) -> Vec:
    """A `null`-typed column as a column of `type_` (for `if x then 1 else null`)."""
    if vec.type != Type.NULL or type_ == Type.NULL:
        return vec
    return null(type_)


# --- strings -----------------------------------------------------------------------------------------------


def remap_strings(vec: Vec, cats: np.ndarray) -> np.ndarray:
    """The codes of a string column re-expressed in a superset of its categories."""
    if vec.cats is cats or (len(vec.cats) == len(cats) and np.array_equal(vec.cats, cats)):
        return vec.data
    lookup = np.append(np.searchsorted(cats, vec.cats).astype(np.int32), np.int32(-1))
    return lookup[vec.data]  # code -1 reads the appended -1


def align_strings(a: Vec, b: Vec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes of two string columns in one shared, sorted category list: (codes_a, codes_b, cats)."""
    if a.cats is b.cats:
        return a.data, b.data, a.cats
    cats = np.union1d(a.cats, b.cats).astype(object) if len(a.cats) and len(b.cats) else (
        a.cats if len(a.cats) else b.cats
    )
    return remap_strings(a, cats), remap_strings(b, cats), cats


def map_categories(vec: Vec, fn: Any) -> Vec:
    """Apply a str → str function per category (not per row), then re-deduplicate."""
    mapped = np.array([fn(c) for c in vec.cats], dtype=object)
    cats, inverse = np.unique(mapped, return_inverse=True) if len(mapped) else (_EMPTY_CATS, np.array([], int))
    lookup = np.append(inverse.astype(np.int32), np.int32(-1))
    return Vec(Type.STRING, lookup[vec.data], cats.astype(object))


def category_test(vec: Vec, fn: Any) -> Vec:
    """A str → bool function evaluated per category and spread to the rows as a boolean column."""
    per_cat = np.array([TRUE if fn(c) else FALSE for c in vec.cats] + [NULL], dtype=np.int8)
    return Vec(Type.BOOLEAN, per_cat[vec.data])


def object_values(vec: Vec) -> np.ndarray:
    """A string column as an object array of str / None (for element-wise work)."""
    lookup = np.append(vec.cats, None).astype(object) if vec.cats is not None else np.array([None], dtype=object)
    return lookup[vec.data]


# --- coercion of account-table columns ---------------------------------------------------------------------
# Sheets come from people: `1,234.50`, `¥1,234`, `12.5%`, `1.2万`, `(1,000)`, full-width digits, `-` for nothing,
# dates as `2024/3/1`, `2024年3月1日` or Excel day numbers. Each distinct cell text is read once (per unique value,
# not per row) and numbers are read as exact decimals, so `12.3%` is the same float as `0.123` and `123.45万`
# the same as `1234500`.

_TRUE_WORDS = {"true", "t", "yes", "y", "1", "是", "对", "真", "√", "✓"}
_FALSE_WORDS = {"false", "f", "no", "n", "0", "否", "错", "假", "×", "✗"}
DASHES = frozenset({"", "-", "--", "---", "—", "——", "–", "－"})  # an empty cell, also in text (`NA` may be a code)
NULL_WORDS = DASHES | {"/", "n/a", "na", "#n/a", "null", "none", "nan"}  # an empty number or date
_SEPARATORS = re.compile(r"[,\s']")  # thousands separators and padding (NFKC has made ，and full-width spaces ASCII)
_CURRENCY = re.compile(r"rmb|cny|人民币|[¥$€£元]")
_MAGNITUDES = {"千": 3, "万": 4, "百万": 6, "亿": 8, "%": -2, "‰": -3}
_NUMBER_TEXT = re.compile(r"(?P<sign>[+-]?)(?P<digits>\d+(?:\.\d*)?|\.\d+)(?:e(?P<exp>[+-]?\d+))?"
                          r"(?P<unit>百万|千|万|亿|%|‰)?")
EXCEL_EPOCH = np.datetime64("1899-12-30", "D")
MAX_EXCEL_SERIAL = 2958465  # 9999-12-31
_DATE_TEXT = re.compile(r"(?P<y>\d{4})[-/.年](?P<m>\d{1,2})[-/.月](?P<d>\d{1,2})日?"
                        r"(?:[ t]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:z|[+-]\d{2}:?\d{2})?)?")
_COMPACT_DATE = re.compile(r"(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})")  # 20240301, as ERP exports write dates
_SERIAL_TEXT = re.compile(r"\d{5}(?:\.\d+)?")  # an Excel day number that arrived as text (1927 onwards)
_NAT = np.datetime64("NaT", "D")


def coerce(series: pd.Series, type_: Type, exponent: int = 0) -> tuple[Vec, np.ndarray]:
    """An account-table column as a typed column, plus a mask of cells that could not be read as that type
    (those become null; the caller reports them as row errors). `exponent` scales numbers whose cell does not
    carry its own magnitude: 4 for a column headed `（万元）`, -2 for `(%)`."""
    if len(series) <= SMALL_COLUMN:  # a request's few accounts: per cell in Python, without pandas' per-call cost
        small = coerce_cells(series.to_numpy() if isinstance(series.dtype, np.dtype) else series.array, type_,
                             exponent)
        if small is not None:
            return small
    return coerce_series(series, type_, exponent)


def coerce_series(series: pd.Series, type_: Type, exponent: int = 0) -> tuple[Vec, np.ndarray]:
    """`coerce` with pandas over the whole column (any length, any dtype)."""
    if type_ == Type.NUMBER:
        return _coerce_number(series, exponent)
    if type_ == Type.STRING:
        return _coerce_string(series)
    if type_ == Type.DATE:
        return _coerce_date(series)
    if type_ == Type.BOOLEAN:
        return _coerce_boolean(series)
    if type_ in TEMPORAL:
        values, bad = temporal.coerce(series, type_)
        return Vec(type_, values), bad
    raise ValueError(f"cannot read a column as {type_}")


SMALL_COLUMN = 64  # up to this many cells, `coerce` reads cell by cell (same results, see coerce_cells)
_PLAIN_CELLS = (str, float, int, bool)  # cell types coerce_cells reads; anything else goes to coerce_series
_NUMERIC_DTYPES = (np.dtype(np.float64), np.dtype(np.int64))


def coerce_plain(column: Any, type_: Type, exponent: int = 0) -> tuple[Vec, np.ndarray] | None:
    """`coerce_series` over a column's array (any length) where it is numbers or dates already (float64 or int64
    for a number without a column unit, datetime64 for a date), else None. The same results, without a Series."""
    dtype = column.dtype
    if type_ == Type.NUMBER and dtype in _NUMERIC_DTYPES and not exponent:
        values = np.array(column, dtype=np.float64)
        infinite = np.isinf(values)
        if infinite.any():
            values[infinite] = np.nan
        return number(values), infinite
    if type_ == Type.DATE and isinstance(dtype, np.dtype) and dtype.kind == "M":  # datetimes without a zone
        return date(np.asarray(column).astype("datetime64[D]")), np.zeros(len(column), dtype=bool)
    return None


def coerce_cells(column: Any, type_: Type, exponent: int = 0) -> tuple[Vec, np.ndarray] | None:
    """`coerce_series` cell by cell over a column's array (numpy or pandas), for a few cells, or None where this
    path does not apply (other dtypes, cell types or field types). Results are identical: the same per-cell
    readers, each distinct cell read once in the order pandas' factorize meets them (so `1` and `True` in one
    column read as whichever came first), empty cells (None, NaN) as empty, lists and mappings as unreadable."""
    plain = coerce_plain(column, type_, exponent)
    if plain is not None:
        return plain
    dtype = column.dtype
    if type_ not in (Type.NUMBER, Type.STRING, Type.DATE):
        return None
    if dtype != np.dtype(object) and not isinstance(dtype, pd.StringDtype) and \
            not (type_ == Type.STRING and dtype in _NUMERIC_DTYPES):
        return None
    cells = np.asarray(column, dtype=object)
    n = len(cells)
    bad = np.zeros(n, dtype=bool)
    read: list[Any] = [None] * n  # None: an empty cell
    seen: dict[Any, Any] = {}
    for i, v in enumerate(cells):
        if v is None or v is pd.NaT or (type(v) is float and v != v):  # NaT: empty, as factorize reads it
            continue
        if isinstance(v, list | dict):
            bad[i] = True
            continue
        if type(v) not in _PLAIN_CELLS and not (type_ == Type.DATE and isinstance(v, dt.date)):
            return None
        r = seen.get(v, seen)
        if r is seen:
            r = seen[v] = (_number_cell(v, exponent) if type_ == Type.NUMBER else
                           _as_text(v) if type_ == Type.STRING else _date_cell(v))
        read[i] = r
    if type_ == Type.STRING:
        texts = {t for t in read if t}
        if any(t.endswith("\x00") for t in texts):  # numpy's unicode strings drop trailing NULs
            return None
        cats = np.array(sorted(texts), dtype=object) if texts else _EMPTY_CATS
        code = {t: k for k, t in enumerate(cats)}
        return Vec(Type.STRING, np.array([code[t] if t else -1 for t in read], dtype=np.int32), cats), bad
    empty = (np.nan, True) if type_ == Type.NUMBER else (_NAT, True)
    pairs = [empty if r is None else r for r in read]
    bad |= np.array([not ok for _, ok in pairs], dtype=bool)
    if type_ == Type.NUMBER:
        return number(np.array([v for v, _ in pairs], dtype=np.float64)), bad
    return date(np.array([v for v, _ in pairs], dtype="datetime64[D]")), bad


def _blank(series: pd.Series) -> np.ndarray:
    isna = series.isna().to_numpy()
    if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
        isna = isna | (series.astype(str).str.strip() == "").to_numpy()
    return isna


def _per_value(series: pd.Series, read: Any, empty: Any, many: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """`read(value) -> (result, ok)` applied once per distinct cell value and spread back to the rows. Lists and
    mappings (JSON cells) are unreadable as one value. `many(uniques) -> (done, results, ok)`, when given, reads
    the distinct values it can all at once (the same results as `read`); `read` gets the rest."""
    nested = None
    try:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
    except TypeError:  # unhashable cells
        nested = np.fromiter((isinstance(v, (list, dict)) for v in series), dtype=bool, count=len(series))
        codes, uniques = pd.factorize(series.where(~nested, None), use_na_sentinel=True)
    # Plain objects: iterating an Arrow-backed array costs microseconds per value.
    uniques = uniques if isinstance(uniques, np.ndarray) and uniques.dtype == object else \
        np.asarray(uniques, dtype=object)
    if many is not None:
        done, values, ok = many(uniques)
        for k in np.flatnonzero(~done).tolist():
            values[k], ok[k] = read(uniques[k])
        values, ok = np.append(values, empty), np.append(ok, True)
    else:
        results, oks = [], []
        for u in uniques:
            r, good = read(u)
            results.append(r)
            oks.append(good)
        results.append(empty)
        oks.append(True)
        values, ok = np.asarray(results), np.asarray(oks, dtype=bool)
    bad = ~ok[codes]
    return values[codes], bad if nested is None else bad | nested


def _null_text(text: str) -> bool:
    return unicodedata.normalize("NFKC", text).strip().casefold() in NULL_WORDS


def _exact(value: float, exponent: int) -> float:
    """value × 10^exponent as the decimal the cell showed would give (1234.5 × 10⁴ is 12345000, not …0.0000002)."""
    return float(Decimal(repr(float(value))).scaleb(exponent))


def number_text(text: str, exponent: int = 0) -> float | None:
    """A number as people write it in a sheet, or None when the text is no number. A unit in the cell (万, 亿, %)
    wins over the column's `exponent`."""
    text = _SEPARATORS.sub("", unicodedata.normalize("NFKC", text).casefold().replace("\u2212", "-"))
    negative = text.startswith("(") and text.endswith(")")  # accountants write -1,000 as (1,000)
    if negative:
        text = text[1:-1]
    m = _NUMBER_TEXT.fullmatch(_CURRENCY.sub("", text))
    if not m:
        return None
    shift = _MAGNITUDES[m["unit"]] if m["unit"] else exponent
    try:
        value = float(Decimal(m["digits"]).scaleb(shift + int(m["exp"] or 0)))
    except (InvalidOperation, ValueError):
        return None
    if not np.isfinite(value):
        return None
    return -value if negative or m["sign"] == "-" else value


def _number_cell(value: Any, exponent: int) -> tuple[float, bool]:
    if isinstance(value, str):
        if not exponent:
            try:  # most cells are plain numbers: Python reads those exactly and ten times faster
                plain = float(value)
                if math.isfinite(plain):
                    return plain, True
            except ValueError:
                pass
        if _null_text(value):
            return np.nan, True
        parsed = number_text(value, exponent)
        return (np.nan, False) if parsed is None else (parsed, True)
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_):
        try:
            plain = float(value)
        except OverflowError:  # an integer beyond any float
            return np.nan, False
        if math.isnan(plain):
            return np.nan, True
        return (_exact(plain, exponent) if exponent else plain), math.isfinite(plain)
    return np.nan, False  # a date, a boolean or anything else where a number belongs


def _coerce_number(series: pd.Series, exponent: int = 0) -> tuple[Vec, np.ndarray]:
    if pd.api.types.is_bool_dtype(series.dtype):
        return number(series.astype("float64").to_numpy()), np.zeros(len(series), dtype=bool)
    if pd.api.types.is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        if exponent:
            values = _per_value(pd.Series(values), lambda v: _number_cell(v, exponent), np.nan)[0].astype(np.float64)
        infinite = np.isinf(values)
        return number(np.where(infinite, np.nan, values)), infinite
    values, bad = _per_value(series, lambda v: _number_cell(v, exponent), np.nan)
    return number(values.astype(np.float64)), bad


def _coerce_string(series: pd.Series) -> tuple[Vec, np.ndarray]:
    bad = np.zeros(len(series), dtype=bool)
    if series.dtype == object or isinstance(series.dtype, pd.StringDtype):
        arrow = arrow_text(series)
        clean = _clean_text(series) if arrow is None else _clean_arrow_text(arrow)
        if clean is not None:
            return clean, bad
    # Text held as Python objects factorizes the same from a plain object array, with less pandas work per call.
    values = series.to_numpy(dtype=object) if series.dtype == object or isinstance(series.dtype, pd.StringDtype) \
        else series
    ordered = True
    try:
        codes, uniques = pd.factorize(values, sort=True, use_na_sentinel=True)
    except TypeError:  # values of mixed types do not sort; lists and mappings (JSON cells) do not even hash
        bad = np.fromiter((isinstance(v, (list, dict)) for v in values), dtype=bool, count=len(values))
        if bad.any():
            values = np.where(bad, None, np.asarray(values, dtype=object))
        codes, uniques = pd.factorize(values, sort=False, use_na_sentinel=True)
        ordered = False  # then the categories are sorted below (tests rely on sorted categories)
    u = np.asarray(uniques, dtype=object)
    if ordered and len(u) and all(isinstance(v, str) and v.strip() == v and v not in DASHES for v in u):
        return Vec(Type.STRING, codes.astype(np.int32), u), bad  # clean text: the categories are ready
    # Messy cells (numbers, padding, blanks): clean each distinct value once, then re-deduplicate.
    cleaned = np.array([_as_text(v) or None for v in u], dtype=object)
    keep = np.array([c is not None for c in cleaned], dtype=bool)
    positions = np.full(len(cleaned), -1, dtype=np.int32)
    cats = _EMPTY_CATS
    if keep.any():
        cats, inverse = np.unique(cleaned[keep].astype(str), return_inverse=True)
        cats = cats.astype(object)
        positions[keep] = inverse
    return Vec(Type.STRING, np.append(positions, np.int32(-1))[codes], cats), bad


_SPACES_BELOW = 0x3001  # every character Python's str.strip() removes is below this (U+3000 is the last)
_SPACE = np.array([chr(c).isspace() for c in range(_SPACES_BELOW)], dtype=bool)


def _clean_text(series: pd.Series) -> Vec | None:
    """`_coerce_string` for text that needs no cleaning, with numpy in place of Python per distinct value: every
    cell text (or empty), none padded or only a dash. The distinct texts are found by hashing and then sorted
    as numpy text (code-point order, as Python sorts str). None when any of that does not hold, or numpy would
    not hold the text whole (it drops trailing NULs): then the general path reads the column."""
    try:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
    except TypeError:  # lists and mappings (JSON cells)
        return None
    u = uniques if isinstance(uniques, np.ndarray) and uniques.dtype == object else np.asarray(uniques, dtype=object)
    if not len(u) or pd.api.types.infer_dtype(u, skipna=False) != "string":
        return None
    wide = u.astype(str)
    lengths = np.fromiter(map(len, u), dtype=np.int64, count=len(u))
    if lengths.min() == 0 or (lengths != np.strings.str_len(wide)).any():
        return None
    chars = wide.view(np.uint32).reshape(len(u), wide.dtype.itemsize // 4)
    ends = np.concatenate((chars[:, 0], chars[np.arange(len(u)), lengths - 1]))
    if (_SPACE[np.minimum(ends, _SPACES_BELOW - 1)] & (ends < _SPACES_BELOW)).any():
        return None
    if any(u[k] in DASHES for k in np.flatnonzero(lengths <= 3).tolist()):
        return None
    order = np.argsort(wide, kind="stable")
    position = np.empty(len(u) + 1, dtype=np.int32)
    position[order] = np.arange(len(u), dtype=np.int32)
    position[-1] = -1
    return Vec(Type.STRING, position[codes], u[order])


def _utf8_ends() -> tuple[np.ndarray, np.ndarray]:
    """Per byte value: can a character str.strip() removes begin with it, end with it (in UTF-8)?"""
    first, last = np.zeros(256, dtype=bool), np.zeros(256, dtype=bool)
    for c in np.flatnonzero(_SPACE).tolist():
        code = chr(c).encode("utf-8")
        first[code[0]] = last[code[-1]] = True
    return first, last


_SPACE_FIRST_BYTE, _SPACE_LAST_BYTE = _utf8_ends()
_DASH_FIRST_BYTE = np.zeros(256, dtype=bool)
_DASH_FIRST_BYTE[[d.encode("utf-8")[0] for d in DASHES if d]] = True
_DASH_BYTES = max(len(d.encode("utf-8")) for d in DASHES)


def _clean_arrow_text(arrow: pa.Array) -> Vec | None:
    """`_clean_text` for text Arrow holds, from its UTF-8 bytes: a cell whose first or last byte could belong to
    a character str.strip() removes, or that could be a dash, is looked at in Python (few are); Arrow sorts the
    distinct texts, and UTF-8's byte order is code-point order, Python's order of str."""
    encoded = pc.dictionary_encode(arrow)
    texts = encoded.dictionary
    if not len(texts):
        return None
    offsets, data = arrow_bytes(texts)
    lengths = np.diff(offsets)
    if not lengths.all():  # "" is empty text
        return None
    raw = np.frombuffer(data, dtype=np.uint8)
    first, last = raw[offsets[:-1]], raw[offsets[1:] - 1]
    odd = _SPACE_FIRST_BYTE[first] | _SPACE_LAST_BYTE[last] | (_DASH_FIRST_BYTE[first] & (lengths <= _DASH_BYTES))
    if odd.any():
        look = texts.take(pa.array(np.flatnonzero(odd))).to_pylist()
        if any(t[0].isspace() or t[-1].isspace() or t in DASHES for t in look):
            return None
    order = pc.array_sort_indices(texts).to_numpy()
    position = np.empty(len(order) + 1, dtype=np.int32)
    position[order] = np.arange(len(order), dtype=np.int32)
    position[-1] = -1
    codes = position[pc.fill_null(encoded.indices, -1).to_numpy()]
    return Vec(Type.STRING, codes, texts.take(pa.array(order)).to_numpy(zero_copy_only=False).astype(object))


def _as_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # account ids read from Excel as 1001.0
    text = str(value).strip()
    return None if text in DASHES else text


def _coerce_date(series: pd.Series) -> tuple[Vec, np.ndarray]:
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        values = series.dt.tz_localize(None) if isinstance(series.dtype, pd.DatetimeTZDtype) else series
        return date(values.to_numpy().astype("datetime64[D]")), np.zeros(len(series), dtype=bool)
    if pd.api.types.is_bool_dtype(series.dtype):
        return date(np.full(len(series), _NAT)), series.notna().to_numpy()
    fixed = _arrow_iso_dates(series)
    if fixed is not None:
        return fixed
    values, bad = _per_value(series, _date_cell, _NAT, _iso_dates)
    return date(values.astype("datetime64[D]")), bad


_ISO_DIGITS = [0, 1, 2, 3, 5, 6, 8, 9]  # `YYYY-MM-DD`: digits here, `-` at 4 and 7


def _iso_dates(uniques: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`_date_cell` at once for the distinct cells that are ISO dates in ASCII, as JSON and ERP exports write them
    (`2023-11-27`, `2023-11-27T00:00:00.000`): text starting `YYYY-MM-DD` in ASCII digits, going on in ASCII.
    Returns (done, days, ok) per unique value; other cells are not done."""
    n = len(uniques)
    done, days, ok = np.zeros(n, dtype=bool), np.full(n, _NAT), np.zeros(n, dtype=bool)
    if pd.api.types.infer_dtype(uniques, skipna=False) == "string":  # all text (checked in C)
        text = np.arange(n)
    else:
        text = np.flatnonzero(np.fromiter((type(v) is str for v in uniques), dtype=bool, count=n))
    cells = uniques[text]
    wide = np.asarray(cells.astype(str)) if len(cells) else np.zeros(0, dtype="<U1")
    width = wide.dtype.itemsize // 4
    if width < 10:
        return done, days, ok
    chars = wide.view(np.uint32).reshape(len(wide), width)
    # numpy's text drops trailing NULs: cells whose length it does not see whole are left to _date_cell
    lengths = np.fromiter(map(len, cells), dtype=np.int64, count=len(cells))
    iso = _iso_ascii(chars) & (lengths == np.strings.str_len(wide))
    text = text[iso]
    done[text] = True
    days[text], ok[text] = _iso_days(chars[iso], lambda k: uniques[text[k]][10:])
    return done, days, ok


def _iso_ascii(chars: np.ndarray) -> np.ndarray:
    """Which rows of code points (cells × width, width ≥ 10) are `YYYY-MM-DD` in ASCII digits, then ASCII.
    Column by column: numpy reduces across the few characters of each row slowly."""
    zero = chars.dtype.type(ord("0"))
    iso = (chars[:, 4] == ord("-")) & (chars[:, 7] == ord("-"))
    for j in _ISO_DIGITS:
        iso &= chars[:, j] - zero <= 9  # below `0` wraps round to a large number
    for j in range(10, chars.shape[1]):
        iso &= chars[:, j] < 128
    return iso


def _iso_days(chars: np.ndarray, rest: Any) -> tuple[np.ndarray, np.ndarray]:
    """`_date_cell` of cells that `_iso_ascii` accepts, given as code points (cells × width) and `rest(k)`, the
    text after the 10th character of cell k. For such text `_date_cell`'s reading splits in two: the day from the
    first ten characters (a real day, or unreadable), and whether the rest is a time it accepts, which is asked of
    `_date_cell` itself once per distinct rest. Returns (days, ok)."""
    accepted = np.zeros(len(chars), dtype=bool)
    pending = np.arange(len(chars))
    for _ in range(8):  # each distinct rest (`T00:00:00.000`, or none) asked of _date_cell once
        if not len(pending):
            break
        same = np.ones(len(pending), dtype=bool)
        for j in range(10, chars.shape[1]):
            column = chars[pending, j] if len(pending) < len(chars) else chars[:, j]
            same &= column == column[0]
        accepted[pending[same]] = _date_cell("2000-01-01" + rest(pending[0]))[1]
        pending = pending[~same]
    if len(pending):  # many different times of day
        keys = np.ascontiguousarray(chars[pending, 10:]).view(np.dtype((np.void, (chars.shape[1] - 10) *
                                                                        chars.itemsize)))
        _, first, inverse = np.unique(keys.ravel(), return_index=True, return_inverse=True)
        accepted[pending] = np.array([_date_cell("2000-01-01" + rest(pending[f]))[1] for f in first.tolist()],
                                     dtype=bool)[inverse.ravel()]
    digit = [chars[:, j].astype(np.int64) - ord("0") if j in _ISO_DIGITS else None for j in range(10)]
    year = digit[0] * 1000 + digit[1] * 100 + digit[2] * 10 + digit[3]
    month, day = digit[5] * 10 + digit[6], digit[8] * 10 + digit[9]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    length = _MONTH_DAYS[np.clip(month, 0, 12)] + (leap & (month == 2))
    valid = accepted & (year >= 1) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= length)
    return np.where(valid, _civil_days(year, month, day), _NAT.astype(np.int64)).view("datetime64[D]"), valid


def arrow_text(series: pd.Series) -> pa.Array | None:
    """The Arrow array of a text column Arrow holds (pandas' `str` with pyarrow: what JSON text becomes), else
    None."""
    if not (isinstance(series.dtype, pd.StringDtype) and series.dtype.storage == "pyarrow") or not len(series):
        return None
    arrow = pa.array(series.array)  # the column's own buffers
    if isinstance(arrow, pa.ChunkedArray):  # a column pieced together (concat, a parquet file's row groups)
        arrow = arrow.combine_chunks()
    return arrow if pa.types.is_large_string(arrow.type) or pa.types.is_string(arrow.type) else None


def arrow_bytes(arrow: pa.Array) -> tuple[np.ndarray, Any]:
    """The cell offsets (len + 1) into the UTF-8 bytes of Arrow text, and the bytes' buffer."""
    _, offsets, data = arrow.buffers()
    offsets = np.frombuffer(offsets, dtype=np.int64 if pa.types.is_large_string(arrow.type) else np.int32)
    return offsets[arrow.offset:arrow.offset + len(arrow) + 1], data


def _arrow_iso_dates(series: pd.Series) -> tuple[Vec, np.ndarray] | None:
    """`_coerce_date` for text held by Arrow (pandas' `str` with pyarrow: what JSON text becomes) when every cell
    is empty or an ISO date of one length in ASCII (`2023-11-27T00:00:00.000`), read straight from Arrow's
    buffer of UTF-8 bytes as rows of one width (no per-cell objects at all); else None."""
    arrow = arrow_text(series)
    if arrow is None:
        return None
    offsets, data = arrow_bytes(arrow)
    lengths = np.diff(offsets)
    present = lengths > 0  # null cells take no bytes (nor does "", which is no date and so empty as well)
    if not present.any():
        return None
    width = int(lengths[present][0])
    if width < 10 or (lengths[present] != width).any():
        return None
    present &= ~np.asarray(arrow.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if (lengths[~present] != 0).any():  # a null holding bytes: unusual, leave it to the general path
        return None
    chars = np.frombuffer(data, dtype=np.uint8)[offsets[0]:offsets[-1]].reshape(-1, width)
    if chars.max() >= 128 or not _iso_ascii(chars).all():
        return None
    days = np.full(len(arrow), _NAT)
    ok = np.ones(len(arrow), dtype=bool)
    days[present], ok[present] = _iso_days(chars, lambda k: chars[k, 10:].tobytes().decode("ascii"))
    return date(days), ~ok


_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _civil_days(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's days_from_civil), whole numbers only."""
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _date_cell(value: Any) -> tuple[np.datetime64, bool]:
    """One cell as a day: a date or datetime, a date written as text, or an Excel day number."""
    if isinstance(value, str):
        text = unicodedata.normalize("NFKC", value).strip().casefold()
        if text in NULL_WORDS:
            return _NAT, True
        m = _DATE_TEXT.fullmatch(text) or _COMPACT_DATE.fullmatch(text)
        if m:
            return _ymd(m["y"], m["m"], m["d"])
        if _SERIAL_TEXT.fullmatch(text):
            return _serial(float(text))
        return _NAT, False
    if isinstance(value, dt.datetime | pd.Timestamp):
        return np.datetime64(value.date(), "D"), True
    if isinstance(value, dt.date):
        return np.datetime64(value, "D"), True
    if isinstance(value, np.datetime64):
        return value.astype("datetime64[D]"), True
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_):
        if np.isnan(value):
            return _NAT, True
        if float(value).is_integer() and 19000101 <= value <= 29991231:  # 20240301 typed as a number
            text = str(int(value))
            return _ymd(text[:4], text[4:6], text[6:])
        return _serial(float(value))
    return _NAT, False


def _ymd(y: str, m: str, d: str) -> tuple[np.datetime64, bool]:
    try:
        return np.datetime64(dt.date(int(y), int(m), int(d)), "D"), True
    except ValueError:
        return _NAT, False  # 2024-02-30


def _serial(value: float) -> tuple[np.datetime64, bool]:
    """An Excel day number (the fraction is the time of day)."""
    if not 1 <= value <= MAX_EXCEL_SERIAL:
        return _NAT, False
    return EXCEL_EPOCH + np.timedelta64(int(value), "D"), True


def _coerce_boolean(series: pd.Series) -> tuple[Vec, np.ndarray]:
    if pd.api.types.is_bool_dtype(series.dtype) and series.dtype != object:
        na = series.isna().to_numpy()
        return boolean(series.fillna(False).to_numpy(dtype=bool), na), np.zeros(len(series), dtype=bool)
    blank = _blank(series)
    words = series.astype(object).map(lambda v: None if v is None else str(v).strip().lower())
    words = words.map(lambda w: w[:-2] if isinstance(w, str) and w.endswith(".0") else w)
    is_true = words.isin(_TRUE_WORDS).to_numpy()
    is_false = words.isin(_FALSE_WORDS).to_numpy()
    bad = ~(is_true | is_false | blank)
    return boolean(is_true, ~(is_true | is_false)), bad
