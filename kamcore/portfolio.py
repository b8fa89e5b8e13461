"""Account tables in and out: csv / xlsx / json files, headers in 中文 or English mapped to fields, cells
coerced to each field's type with a row error for every cell that cannot be read."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .dictionary import Dictionary
from .errors import InputError, RowError
from .expressions import vectors as V
from .expressions.types import Type
from .expressions.vectors import Vec

MAX_INPUT_BYTES = 512 * 1024 * 1024
FORMATS = ("csv", "xlsx", "json")


def to_frame(accounts: Any) -> pd.DataFrame:
    """A DataFrame (used as is), a mapping (one account), or an iterable of mappings."""
    if isinstance(accounts, pd.DataFrame):
        return accounts
    if isinstance(accounts, Mapping):
        return pd.DataFrame([accounts])
    if isinstance(accounts, Iterable) and not isinstance(accounts, str | bytes):
        records = list(accounts)
        if not all(isinstance(r, Mapping) for r in records):
            raise InputError("accounts must be a table: a DataFrame or a list of {field: value} mappings")
        return pd.DataFrame(records)  # from_records drops every row when no account has a key: [{}] -> 0 rows
    raise InputError("accounts must be a DataFrame or a list of {field: value} mappings")


@dataclass
class Columns:
    """The typed input columns of one evaluation and what went wrong reading them."""

    values: dict[str, Vec]
    errors: list[RowError]
    excluded: np.ndarray  # rows with at least one unreadable cell
    missing: list[str] = field(default_factory=list)  # fields the rules read that the table does not have
    headers: dict[str, str] = field(default_factory=dict)  # field -> the header it was read from


def read_columns(frame: pd.DataFrame, needed: Mapping[str, Type | None], dictionary: Dictionary) -> Columns:
    """Find each needed field in the table (by name or any header alias) and read it as its type."""
    n = len(frame)
    by_field: dict[str, list[str]] = {}
    for header in frame.columns:
        name = header if header in needed else dictionary.field_for_header(str(header))
        if name in needed:
            by_field.setdefault(name, []).append(header)
    values: dict[str, Vec] = {}
    errors: list[RowError] = []
    excluded = np.zeros(n, dtype=bool)
    missing = []
    for name, type_ in needed.items():
        type_ = type_ or Type.STRING
        headers = by_field.get(name)
        if not headers:
            missing.append(name)
            values[name] = V.null(type_).full(n)
            continue
        column, names, source = _combined(frame, headers)
        vec, bad = V.coerce(column, type_)
        values[name] = vec.full(n)
        for i in np.flatnonzero(bad):
            errors.append(RowError(int(i), None, name, f"{column.iloc[i]!r} is not {type_.label} "
                                   f"(column {names[source[i]]!r})"))
        excluded |= bad
    errors.sort(key=lambda e: (e.row, e.field or ""))
    return Columns(values, errors, excluded, missing, {k: str(v[0]) for k, v in by_field.items()})


def _combined(frame: pd.DataFrame, headers: list[str]) -> tuple[pd.Series, list[str], np.ndarray]:
    """One column from every header that means the same field (records of one batch may spell it
    differently, e.g. `近12个月销售额` and `Revenue (12m)`): the first non-empty value wins. Also returns the
    headers and, per row, the index of the header its value came from (for error messages)."""
    columns = []
    for h in dict.fromkeys(headers):
        part = frame[h]
        columns.extend(part.items() if isinstance(part, pd.DataFrame) else [(h, part)])
    names = [str(h) for h, _ in columns]
    column = columns[0][1]
    source = np.zeros(len(frame), dtype=np.int16)
    for k, (_, other) in enumerate(columns[1:], start=1):
        take = (column.isna() & other.notna()).to_numpy()
        column = column.astype(object).where(~take, other.astype(object))
        source[take] = k
    return column, names, source


# --- files -------------------------------------------------------------------------------------------------


def format_of(path: str | Path, fmt: str | None = None) -> str:
    fmt = (fmt or Path(path).suffix.lstrip(".")).lower()
    fmt = {"xls": "xlsx", "xlsm": "xlsx", "jsonl": "json", "txt": "csv"}.get(fmt, fmt)
    if fmt not in FORMATS:
        raise InputError(f"{path}: unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    return fmt


def read_table(source: str | Path | bytes, fmt: str | None = None) -> pd.DataFrame:
    """Read an account table from a file path or raw bytes (csv in UTF-8 or GBK, xlsx, or JSON records)."""
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
            return pd.read_csv(io.StringIO(_decode(data, name)), dtype=object, keep_default_na=False,
                               na_values=[""], skipinitialspace=True)
        if fmt == "xlsx":
            return pd.read_excel(io.BytesIO(data), engine="openpyxl")
        return _read_json(data, name)
    except InputError:
        raise
    except (ValueError, KeyError, OSError, pd.errors.ParserError) as e:
        raise InputError(f"{name}: cannot read as {fmt}: {e}") from None


def _decode(data: bytes, name: str) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InputError(f"{name}: not UTF-8 or GBK text")


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
        out.to_excel(path, index=False, engine="openpyxl")
    else:
        path.write_text(out.to_json(orient="records", force_ascii=False, date_format="iso"), encoding="utf-8")
