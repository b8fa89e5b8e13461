"""Typed columns the compiled expressions compute on, each type with its own null encoding.

- number:  float64, NaN is null
- date:    datetime64[D], NaT is null
- boolean: int8 with FALSE=0, NULL=1, TRUE=2, so Kleene `and` is `minimum`, `or` is `maximum`, `not` is 2-x
- string:  int32 codes into sorted unique categories (`cats`), -1 is null; equality and ordering are integer ops

A scalar (a literal) is a 0-d array and broadcasts; nothing is expanded to the column length until output.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .types import Type

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
        if self.type == Type.NUMBER:
            return np.isnan(self.data)
        if self.type == Type.DATE:
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
        if self.type == Type.LIST:
            return v
        return None

    def to_series(self, n: int, index: pd.Index | None = None) -> pd.Series:
        """The column as a pandas Series of length n, nulls as pandas' missing values."""
        full = self.full(n)
        if self.type == Type.NUMBER:
            return pd.Series(full.data, index=index, dtype="float64")
        if self.type == Type.STRING:
            cats = full.cats if full.cats is not None else _EMPTY_CATS
            return pd.Series(pd.Categorical.from_codes(full.data, categories=pd.Index(cats, dtype=object)), index=index)
        if self.type == Type.BOOLEAN:
            values = pd.array(full.data == TRUE, dtype="boolean")
            values[full.data == NULL] = pd.NA
            return pd.Series(values, index=index)
        if self.type == Type.DATE:
            return pd.Series(full.data.astype("datetime64[s]"), index=index)
        if self.type == Type.LIST:
            return pd.Series(full.data, index=index, dtype=object)
        return pd.Series([None] * n, index=index, dtype=object)


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

_TRUE_WORDS = {"true", "t", "yes", "y", "1", "是", "对", "真", "√", "✓"}
_FALSE_WORDS = {"false", "f", "no", "n", "0", "否", "错", "假", "×", "✗"}
_NUMBER_NOISE = re.compile(r"[,\s¥￥$€£]|RMB|CNY|元", re.IGNORECASE)
EXCEL_EPOCH = np.datetime64("1899-12-30", "D")


def coerce(series: pd.Series, type_: Type) -> tuple[Vec, np.ndarray]:
    """An account-table column as a typed column, plus a mask of cells that could not be read as that type
    (those become null; the caller reports them as row errors)."""
    if type_ == Type.NUMBER:
        return _coerce_number(series)
    if type_ == Type.STRING:
        return _coerce_string(series)
    if type_ == Type.DATE:
        return _coerce_date(series)
    if type_ == Type.BOOLEAN:
        return _coerce_boolean(series)
    raise ValueError(f"cannot read a column as {type_}")


def _blank(series: pd.Series) -> np.ndarray:
    isna = series.isna().to_numpy()
    if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
        isna = isna | (series.astype(str).str.strip() == "").to_numpy()
    return isna


def _coerce_number(series: pd.Series) -> tuple[Vec, np.ndarray]:
    if pd.api.types.is_bool_dtype(series.dtype):
        return number(series.astype("float64").to_numpy()), np.zeros(len(series), dtype=bool)
    if pd.api.types.is_numeric_dtype(series.dtype):
        return number(series.to_numpy(dtype=np.float64, na_value=np.nan)), np.zeros(len(series), dtype=bool)
    blank = _blank(series)
    text = series.astype(object).where(~blank, None)
    cleaned = text.map(lambda v: v if not isinstance(v, str) else _NUMBER_NOISE.sub("", v))
    percent = cleaned.map(lambda v: isinstance(v, str) and v.endswith("%")).to_numpy(dtype=bool)
    cleaned = cleaned.map(lambda v: v[:-1] if isinstance(v, str) and v.endswith("%") else v)
    values = pd.to_numeric(cleaned, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    values = np.where(percent, values / 100.0, values)
    bad = np.isnan(values) & ~blank
    return number(values), bad


def _coerce_string(series: pd.Series) -> tuple[Vec, np.ndarray]:
    bad = np.zeros(len(series), dtype=bool)
    try:
        codes, uniques = pd.factorize(series, sort=True, use_na_sentinel=True)
    except TypeError:  # values of mixed types do not sort; lists and mappings (JSON cells) do not even hash
        bad = series.map(lambda v: isinstance(v, (list, dict))).to_numpy(dtype=bool)
        if bad.any():
            series = series.where(~bad, None)
        codes, uniques = pd.factorize(series, sort=False, use_na_sentinel=True)
    u = pd.Series(np.asarray(uniques, dtype=object), dtype=object)
    if pd.api.types.infer_dtype(u, skipna=False) == "string":
        stripped = u.str.strip()
        if not ((stripped != u) | (stripped == "")).any():  # clean text: the categories are ready
            return Vec(Type.STRING, codes.astype(np.int32), u.to_numpy(dtype=object)), bad
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


def _as_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # account ids read from Excel as 1001.0
    return str(value).strip()


def _coerce_date(series: pd.Series) -> tuple[Vec, np.ndarray]:
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        values = series.dt.tz_localize(None) if getattr(series.dt, "tz", None) else series
        return date(values.to_numpy().astype("datetime64[D]")), np.zeros(len(series), dtype=bool)
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        serial = series.to_numpy(dtype=np.float64, na_value=np.nan)  # Excel's day numbers
        days = np.where(np.isnan(serial), np.datetime64("NaT"), EXCEL_EPOCH + np.nan_to_num(serial).astype(np.int64))
        return date(days), np.zeros(len(series), dtype=bool)
    blank = _blank(series)
    text = series.astype(object).where(~blank, None)
    parsed = pd.to_datetime(text.map(_date_text), errors="coerce", format="mixed")
    values = parsed.to_numpy().astype("datetime64[D]")
    return date(values), np.isnat(values) & ~blank


def _date_text(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip().replace("年", "-").replace("月", "-").replace("日", "").replace("/", "-")
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        return pd.Timestamp(EXCEL_EPOCH + np.timedelta64(int(value), "D"))  # an Excel day number among text dates
    return value


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
