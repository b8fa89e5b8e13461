"""Event times as whole microseconds since 1970 in UTC: parsed from ISO text, shown as ISO text, moved by months."""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable

US_PER_DAY = 86_400_000_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

Clock = Callable[[], dt.datetime]


def system_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse(value: object) -> int:
    """`2026-01-05`, `2026-01-05T10:00:00+08:00`, a date or a datetime → microseconds (a time without a zone
    is UTC). Raises ValueError with a readable message."""
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            moment = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "zZ" else text)
        except ValueError:
            raise ValueError(f"{value!r} is not a date or time (write e.g. 2026-01-05 or 2026-01-05T10:00:00Z)")\
                from None
    else:
        raise ValueError("must be a date or time such as 2026-01-05 or 2026-01-05T10:00:00Z")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def to_datetime(us: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=us)


def iso(us: int) -> str:
    """Microseconds → `2026-01-05T10:00:00Z` (fractions only when there are any)."""
    moment = to_datetime(us)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"


def date_of(us: int) -> dt.date:
    return to_datetime(us).date()


def days(us: int) -> float:
    return us / US_PER_DAY


def add_months(us: int, months: int) -> int:
    """The same time of day `months` calendar months later; the 31st becomes the last day of a shorter month."""
    moment = to_datetime(us)
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return parse(moment.replace(year=year, month=month, day=day))
