"""The data dictionary: every field's name, type, unit, zh/en labels and the sheet headers it answers to."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from .expressions.types import TYPE_NAMES, Type


@dataclass(frozen=True)
class FieldDef:
    name: str
    type: Type
    unit: str | None = None
    label: dict[str, str] = field(default_factory=dict)
    description: str = ""
    aliases: tuple[str, ...] = ()
    file: str | None = None
    line: int | None = None


def header_key(text: str) -> str:
    """A header as compared: case, spaces, full-width forms and （） vs () do not matter."""
    folded = unicodedata.normalize("NFKC", str(text)).casefold()
    return re.sub(r"[\s_]+", "", folded)


class Dictionary:
    """Fields by name, and the lookup from a spreadsheet header (中文 or English) to a field name."""

    def __init__(self, defs: Iterable[FieldDef] = ()):
        self.fields: dict[str, FieldDef] = {}
        self._headers: dict[str, str] = {}
        for d in defs:
            self.add(d)

    def add(self, d: FieldDef) -> None:
        self.fields[d.name] = d
        for alias in (d.name, *d.aliases, *d.label.values()):
            self._headers.setdefault(header_key(alias), d.name)

    def type_of(self, name: str) -> Type | None:
        d = self.fields.get(name)
        return d.type if d else None

    def field_for_header(self, header: str) -> str | None:
        return self._headers.get(header_key(header))

    def __contains__(self, name: str) -> bool:
        return name in self.fields

    def __len__(self) -> int:
        return len(self.fields)


def field_def(spec: dict, file: str | None = None, line: int | None = None) -> FieldDef:
    """A loaded (schema-checked) field spec as a FieldDef."""
    return FieldDef(
        name=spec["name"],
        type=TYPE_NAMES[spec["type"]],
        unit=spec.get("unit"),
        label=spec.get("label") or {},
        description=spec.get("description", ""),
        aliases=tuple(spec.get("aliases", ())),
        file=file,
        line=line,
    )
