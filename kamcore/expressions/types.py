"""The type system of the expression language: number, text, boolean, date, time, date and time, the two FEEL
duration kinds, and the type of `null`."""

from __future__ import annotations

from enum import Enum


class Type(Enum):
    NUMBER = "number"
    STRING = "string"
    BOOLEAN = "boolean"
    DATE = "date"
    TIME = "time"
    DATE_TIME = "date and time"
    DAYS_DURATION = "days and time duration"
    YEARS_DURATION = "years and months duration"
    NULL = "null"
    LIST = "list"

    def __str__(self) -> str:
        return self.value

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    Type.NUMBER: "a number",
    Type.STRING: "text",
    Type.BOOLEAN: "true/false",
    Type.DATE: "a date",
    Type.TIME: "a time",
    Type.DATE_TIME: "a date and time",
    Type.DAYS_DURATION: "a days and time duration",
    Type.YEARS_DURATION: "a years and months duration",
    Type.NULL: "null",
    Type.LIST: "a list",
}

# Names sales ops may write in the data dictionary or an output declaration, and the type each means.
TYPE_NAMES = {
    "number": Type.NUMBER,
    "integer": Type.NUMBER,
    "decimal": Type.NUMBER,
    "money": Type.NUMBER,
    "percent": Type.NUMBER,
    "count": Type.NUMBER,
    "string": Type.STRING,
    "text": Type.STRING,
    "boolean": Type.BOOLEAN,
    "bool": Type.BOOLEAN,
    "date": Type.DATE,
    "time": Type.TIME,
    "date and time": Type.DATE_TIME,
    "datetime": Type.DATE_TIME,
    "days and time duration": Type.DAYS_DURATION,
    "years and months duration": Type.YEARS_DURATION,
    "list": Type.LIST,
}


TEMPORAL = (Type.TIME, Type.DATE_TIME, Type.DAYS_DURATION, Type.YEARS_DURATION)
DURATIONS = (Type.DAYS_DURATION, Type.YEARS_DURATION)


def unify(a: Type, b: Type) -> Type | None:
    """The common type of two branches (`if`, `coalesce`), or None when they cannot share one."""
    if a == b:
        return a
    if a == Type.NULL:
        return b
    if b == Type.NULL:
        return a
    return None
