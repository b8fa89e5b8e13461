"""JSON for evaluation results: ISO dates, numpy scalars as numbers, NaN and ±Infinity as null, Chinese text
unescaped."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pandas as pd
from flask.json.provider import DefaultJSONProvider


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


class JSONProvider(DefaultJSONProvider):
    ensure_ascii = False
    sort_keys = False

    @staticmethod
    def default(o: Any) -> Any:
        converted = plain(o)
        if converted is o:
            return DefaultJSONProvider.default(o)
        return converted


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
