"""Reading one submitted event: its id, account, type, time and declared fields, or the errors that reject it."""

from __future__ import annotations

import datetime as dt
import difflib
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ..expressions.types import Type
from . import eventtime
from .rules import EventRules
from .schema import RESERVED

MAX_ID = 200  # characters of an event or account id


@dataclass(frozen=True)
class Event:
    """An event as the engine applies it. `at_us`: event time in microseconds since 1970 (UTC)."""

    id: str
    account_id: str
    type: str
    at_us: int
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def order_key(self) -> tuple[int, str]:
        """Events are applied in event-time order; the id breaks ties so every replay agrees."""
        return self.at_us, self.id

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "account_id": self.account_id, "type": self.type, "at": eventtime.iso(self.at_us),
                **self.fields}


@dataclass(frozen=True)
class EventError:
    """Why one event of a batch was rejected. `index` is its 0-based place in the batch."""

    index: int
    event_id: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        who = f"event {self.index}" + (f" ({self.event_id})" if self.event_id else "")
        return f"{who}: {self.field + ': ' if self.field else ''}{self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_event(raw: Any, index: int, rules: EventRules) -> tuple[Event | None, list[EventError]]:
    """Check one submitted event (`{id, account_id, type, at, <fields of the type>}`) against the declared event
    types. Returns the event, or None and every error found."""
    if not isinstance(raw, dict):
        return None, [EventError(index, None, None, "an event is an object with id, account_id, type, at, ...")]
    errors: list[EventError] = []
    event_id = _id(raw.get("id"))
    shown_id = event_id if isinstance(event_id, str) else None

    def fail(name: str | None, message: str) -> None:
        errors.append(EventError(index, shown_id, name, message))

    if not isinstance(event_id, str):
        fail("id", "is required: text of up to 200 characters, unique per event, so a repeat is recognised")
    account_id = _id(raw.get("account_id"))
    if not isinstance(account_id, str):
        fail("account_id", "is required: the id of a registered account")
    kind = raw.get("type")
    etype = rules.types.get(kind) if isinstance(kind, str) else None
    if etype is None:
        known = ", ".join(rules.types)
        close = difflib.get_close_matches(str(kind), list(rules.types), n=1) if kind is not None else []
        fail("type", ("is required" if kind is None else f"unknown event type {kind!r}")
             + (f" (did you mean {close[0]!r}?)" if close else f" (known: {known})"))
    at_us = None
    if raw.get("at") is None:
        fail("at", "is required: the time the event happened, e.g. 2026-01-05T10:00:00Z")
    else:
        try:
            at_us = eventtime.parse(raw["at"])
        except ValueError as e:
            fail("at", str(e))
    values: dict[str, Any] = {}
    if etype is not None:
        for name in sorted(set(raw) - set(RESERVED)):
            if name not in etype.fields:
                close = difflib.get_close_matches(name, list(etype.fields), n=1)
                fail(name, f"{kind} has no field {name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        for name, spec in etype.fields.items():
            value = raw.get(name)
            if value is None:
                if spec.required:
                    fail(name, "is required")
                continue
            try:
                values[name] = _typed(value, spec.type)
            except ValueError as e:
                fail(name, str(e))
                continue
            if spec.min is not None and values[name] < spec.min:
                fail(name, "must not be negative" if spec.min == 0 else f"must be at least {spec.min:g}")
    if errors:
        return None, errors
    return Event(event_id, account_id, kind, at_us, values), []


def _id(value: Any) -> str | None:
    """An id as text, or None when it is missing or unusable (not text or a whole number, or too long)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    if not text or len(text) > MAX_ID:
        return None
    return text


def _typed(value: Any, type_: Type) -> Any:
    if type_ == Type.NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"must be a number, got {value!r}")
        return value
    if type_ == Type.STRING:
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ValueError(f"must be text, got {value!r}")
        return str(value)
    if type_ == Type.BOOLEAN:
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {value!r}")
        return value
    if isinstance(value, dt.date):
        return value.isoformat()[:10]
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise ValueError(f"must be a date such as 2026-01-05, got {value!r}") from None
