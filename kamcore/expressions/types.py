"""The type system of the expression language: number, text, boolean, date, and the type of `null`."""

from __future__ import annotations

from enum import Enum


class Type(Enum):
    NUMBER = "number"
    STRING = "string"
    BOOLEAN = "boolean"
    DATE = "date"
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
    "list": Type.LIST,
}


def unify(a: Type, b: Type) -> Type | None:
    """The common type of two branches (`if`, `coalesce`), or None when they cannot share one."""
    if a == b:
        return a
    if a == Type.NULL:
        return b
    if b == Type.NULL:
        return a
    return None
