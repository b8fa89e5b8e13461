"""FEEL's times, dates and times, and durations: ISO text ↔ Python values ↔ numpy columns.

Columns hold times as timedelta64[us] since midnight, dates and times as datetime64[us] (local, no zone), days and
time durations as timedelta64[us], years and months durations as float64 months (NaN is null). Time zones are
refused rather than guessed: comparing a zoned with an unzoned time has no single right answer.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .types import Type

UNIT = "us"
NAT_TD = np.timedelta64("NaT", UNIT)
NAT_DT = np.datetime64("NaT", UNIT)
DAY = np.timedelta64(86_400_000_000, UNIT)


@dataclass(frozen=True, order=True)
class YearsMonths:
    """A FEEL years and months duration, e.g. P1Y2M (14 months). Negative durations have negative months."""

    months: int

    def __str__(self) -> str:
        sign, m = ("-" if self.months < 0 else ""), abs(self.months)
        years, months = divmod(m, 12)
        body = (f"{years}Y" if years else "") + (f"{months}M" if months or not years else "")
        return f"{sign}P{body}"


class TemporalError(ValueError):
    """Text that is not a time, date and time or duration this engine reads."""


_ZONE = re.compile(r"(Z|[+-]\d{2}:\d{2}|@.+)$")
_TIME = re.compile(r"^\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")
_DURATION = re.compile(
    r"^(?P<sign>-)?P(?:(?P<Y>\d+)Y)?(?:(?P<M>\d+)M)?(?:(?P<D>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def _no_zone(text: str, what: str) -> str:
    if _ZONE.search(text) and not re.fullmatch(r"-?\d{4}-\d{2}-\d{2}", text):
        raise TemporalError(f"{what} {text!r} has a time zone; only local times are supported")
    return text


def parse_time(text: str) -> dt.time:
    text = _no_zone(text.strip(), "time")
    if not _TIME.match(text):
        raise TemporalError(f"{text!r} is not a time (write hh:mm:ss)")
    try:
        return dt.time.fromisoformat(text)
    except ValueError:
        raise TemporalError(f"{text!r} is not a time (write hh:mm:ss)") from None


def parse_date_time(text: str) -> dt.datetime:
    text = _no_zone(text.strip(), "date and time")
    try:
        if "T" not in text:
            return dt.datetime.combine(dt.date.fromisoformat(text), dt.time())
        day, _, time = text.partition("T")
        return dt.datetime.combine(dt.date.fromisoformat(day), parse_time(time))
    except (ValueError, TemporalError):
        raise TemporalError(f"{text!r} is not a date and time (write YYYY-MM-DDThh:mm:ss)") from None


def parse_duration(text: str) -> tuple[Type, dt.timedelta | YearsMonths]:
    """`P1Y2M` → a years and months duration; `P1DT2H`, `PT30M` → a days and time duration."""
    m = _DURATION.match(text.strip())
    if not m or text.strip() in ("P", "-P") or text.strip().endswith("T"):
        raise TemporalError(f"{text!r} is not a duration (e.g. P1D, PT12H, P1Y2M)")
    parts = {k: v for k, v in m.groupdict().items() if v is not None and k != "sign"}
    sign = -1 if m.group("sign") else 1
    if {"Y", "M"} & set(parts) and {"D", "h", "m", "s"} & set(parts):
        raise TemporalError(f"{text!r} mixes years/months with days/time; FEEL keeps the two kinds apart")
    if {"Y", "M"} & set(parts):
        return Type.YEARS_DURATION, YearsMonths(sign * (int(parts.get("Y", 0)) * 12 + int(parts.get("M", 0))))
    delta = dt.timedelta(days=int(parts.get("D", 0)), hours=int(parts.get("h", 0)),
                         minutes=int(parts.get("m", 0)), seconds=float(parts.get("s", 0)))
    return Type.DAYS_DURATION, sign * delta


def parse_literal(text: str) -> tuple[Type, Any]:
    """The value of an `@"..."` literal: a date, a date and time, a time or a duration."""
    t = text.strip()
    if t.startswith(("P", "-P")):
        return parse_duration(t)
    if re.fullmatch(r"-?\d{4,}-\d{2}-\d{2}", t):
        try:
            return Type.DATE, dt.date.fromisoformat(t)
        except ValueError:
            raise TemporalError(f"{t!r} is not a date (write YYYY-MM-DD)") from None
    if "T" in t:
        return Type.DATE_TIME, parse_date_time(t)
    if ":" in t:
        return Type.TIME, parse_time(t)
    raise TemporalError(f"{t!r} is not a date, time or duration")


def parse(text: str, type_: Type) -> Any:
    """ISO text as a value of the given temporal type (for defaults and allowed values read from YAML)."""
    if type_ == Type.TIME:
        return parse_time(text)
    if type_ == Type.DATE_TIME:
        return parse_date_time(text)
    kind, value = parse_duration(text)
    if kind != type_:
        raise TemporalError(f"{text!r} is {kind.label}, not {type_.label}")
    return value


def iso(value: Any) -> str:
    """A temporal value as FEEL's ISO text."""
    if isinstance(value, YearsMonths):
        return str(value)
    if isinstance(value, dt.timedelta):
        return _iso_delta(value)
    return value.isoformat()


def _iso_delta(d: dt.timedelta) -> str:
    sign = "-" if d < dt.timedelta(0) else ""
    d = abs(d)
    days, rest = d.days, d.seconds
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    secs = f"{seconds}.{d.microseconds:06d}".rstrip("0").rstrip(".") if d.microseconds else str(seconds)
    time = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (f"{secs}S" if secs != "0" else "")
    body = (f"{days}D" if days else "") + (f"T{time}" if time else "")
    return f"{sign}P{body or 'T0S'}"


def constructor(value: Any, type_: Type) -> str:
    """A temporal value written as the FEEL call that makes it, e.g. `time("10:30:00")`."""
    name = {Type.TIME: "time", Type.DATE_TIME: "date and time"}.get(type_, "duration")
    return f'{name}("{iso(value)}")'


# --- numpy ---------------------------------------------------------------------------------------------------


def to_numpy(value: Any, type_: Type) -> Any:
    """One Python value (or ISO text) as the numpy scalar a column of `type_` holds."""
    if value is None:
        return null_value(type_)
    if isinstance(value, str):
        value = parse(value, type_)
    if type_ == Type.TIME:
        if isinstance(value, dt.datetime):
            value = value.time()
        micros = ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond
        return np.timedelta64(micros, UNIT)
    if type_ == Type.DATE_TIME:
        return np.datetime64(pd.Timestamp(value).to_pydatetime().replace(tzinfo=None), UNIT)
    if type_ == Type.DAYS_DURATION:
        return np.timedelta64(pd.Timedelta(value).to_pytimedelta(), UNIT)
    if isinstance(value, YearsMonths):
        return float(value.months)
    raise TemporalError(f"{value!r} is not {type_.label}")


def null_value(type_: Type) -> Any:
    if type_ in (Type.TIME, Type.DAYS_DURATION):
        return NAT_TD
    if type_ == Type.DATE_TIME:
        return NAT_DT
    return np.nan


def dtype(type_: Type) -> str:
    return {Type.TIME: "timedelta64[us]", Type.DATE_TIME: "datetime64[us]",
            Type.DAYS_DURATION: "timedelta64[us]"}.get(type_, "float64")


def from_numpy(v: Any, type_: Type) -> Any:
    """A numpy scalar of a temporal column as a Python value (None for null)."""
    if type_ == Type.YEARS_DURATION:
        f = float(v)
        return None if np.isnan(f) else YearsMonths(int(f))
    if np.isnat(v):
        return None
    if type_ == Type.DATE_TIME:
        return v.astype("datetime64[us]").astype(dt.datetime)
    micros = int(v.astype("timedelta64[us]").astype(np.int64))
    if type_ == Type.TIME:
        return (dt.datetime.min + dt.timedelta(microseconds=micros)).time()
    return dt.timedelta(microseconds=micros)


def coerce(series: pd.Series, type_: Type) -> tuple[np.ndarray, np.ndarray]:
    """An account-table column of times, dates and times or durations: values plus a mask of unreadable cells.
    Each distinct cell is parsed once."""
    values = series.astype(object).where(series.notna(), None).to_numpy()
    out = np.empty(len(values), dtype=dtype(type_))
    bad = np.zeros(len(values), dtype=bool)
    cache: dict[Any, Any] = {}
    for i, v in enumerate(values):
        key = v if isinstance(v, str | int | float) else repr(v)
        if key not in cache:
            try:
                blank = v is None or (isinstance(v, str) and not v.strip())
                cache[key] = (null_value(type_), False) if blank else (to_numpy(v, type_), False)
            except (TemporalError, ValueError, TypeError, AttributeError):
                cache[key] = (null_value(type_), True)
        out[i], bad[i] = cache[key]
    return out, bad


# --- arithmetic ------------------------------------------------------------------------------------------------


def add_months(values: np.ndarray, months: np.ndarray) -> np.ndarray:
    """Dates or dates and times shifted by whole months, the day clamped to the month's end (2024-01-31 + P1M is
    2024-02-29), as XML Schema and FEEL add durations."""
    unit = values.dtype
    month = values.astype("datetime64[M]")
    day = (values.astype("datetime64[D]") - month.astype("datetime64[D]")).astype(np.int64)
    within_day = values - values.astype("datetime64[D]").astype(unit)
    shifted = month + np.nan_to_num(months).astype(np.int64)
    length = ((shifted + 1).astype("datetime64[D]") - shifted.astype("datetime64[D]")).astype(np.int64)
    out = shifted.astype("datetime64[D]") + np.minimum(day, length - 1).astype("timedelta64[D]")
    out = out.astype(unit) + within_day
    return np.where(np.isnan(months) | np.isnat(values), np.array("NaT", dtype=unit), out)


def whole_months(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whole months from a to b (negative when b is earlier), as float64 with NaN for null."""
    ma, mb = a.astype("datetime64[M]"), b.astype("datetime64[M]")
    rest_a = a - ma.astype(a.dtype)
    rest_b = b - mb.astype(b.dtype)
    months = mb.astype(np.int64) - ma.astype(np.int64)
    months = months - ((months > 0) & (rest_b < rest_a)) + ((months < 0) & (rest_b > rest_a))
    return np.where(np.isnat(a) | np.isnat(b), np.nan, months.astype(np.float64))


def scale(delta: np.ndarray, factor: np.ndarray, divide: bool = False) -> np.ndarray:
    """A days and time duration column times (or divided by) numbers; null where either is null or x / 0."""
    micros = delta.astype("timedelta64[us]").astype(np.int64).astype(np.float64)
    with np.errstate(all="ignore"):
        r = micros / factor if divide else micros * factor
    bad = np.isnat(delta) | ~np.isfinite(r)
    whole = np.trunc(np.where(bad, 0.0, r)).astype(np.int64).astype("timedelta64[us]")
    return np.where(bad, NAT_TD, whole)
