"""The data dictionary: every field's name, type, unit, zh/en labels and the sheet headers it answers to."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .expressions.types import TYPE_NAMES, Type
from .memo import Memo


@dataclass(frozen=True)
class FieldValue:
    """One value of a field with a fixed vocabulary (industry, segment…): its code, labels and the other
    spellings a sheet may use for it (`制造业`, `Manufacturing` → `manufacturing`)."""

    value: Any
    label: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class FieldDef:
    name: str
    type: Type
    unit: str | None = None
    label: dict[str, str] = field(default_factory=dict)
    description: str = ""
    aliases: tuple[str, ...] = ()
    values: tuple[FieldValue, ...] = ()
    file: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class HeaderMatch:
    """A sheet header read as a field; `exponent` scales its numbers (`（万元）` is 4: the cells count 10⁴ yuan)."""

    field: str
    exponent: int = 0


def header_key(text: Any) -> str:
    """A header as compared: case, spaces, `_`, full-width forms and （） vs () do not matter, nor a leading `*`
    (the mark of a required column) or a trailing colon."""
    folded = unicodedata.normalize("NFKC", str(text)).casefold()
    return re.sub(r"[\s_]+", "", folded).lstrip("*").rstrip(":")


# A unit in brackets at the end of a header, e.g. `近12个月销售额（万元）`, `Revenue (¥)`, `毛利率(%)`, `(单位:万元)`.
_UNIT_SUFFIX = re.compile(r"^(?P<head>.+?)\((?:单位:)?(?P<unit>[^()]+)\)$")
_UNIT_EXPONENTS = {
    "元": 0, "¥": 0, "rmb": 0, "cny": 0, "人民币": 0, "人民币元": 0,
    "千元": 3, "万元": 4, "万": 4, "百万元": 6, "亿元": 8, "亿": 8,
    "%": -2, "‰": -3,
    "天": 0, "日": 0, "days": 0, "day": 0, "次": 0, "个": 0, "笔": 0, "count": 0, "分": 0,
}


_SEEN_MOST = 4096  # headers / texts remembered per dictionary (forgotten all at once when full)
_SEEN_LONGEST = 256  # characters: a longer header or text is folded every time, never kept


class Dictionary:
    """Fields by name, and the lookup from a spreadsheet header (中文 or English) to a field name."""

    def __init__(self, defs: Iterable[FieldDef] = ()):
        self.fields: dict[str, FieldDef] = {}
        self._headers: dict[str, str] = {}
        self._values: dict[str, dict[str, Any]] = {}  # field -> value key -> code
        # Headers and vocabulary texts seen before, as read (requests repeat them; folding one costs ~5 µs)
        self._seen_headers: Memo[str, HeaderMatch | None] = Memo(_SEEN_MOST)
        self._seen_values: Memo[tuple[str, str], Any] = Memo(_SEEN_MOST)
        for d in defs:
            self.add(d)

    def add(self, d: FieldDef) -> list[str]:
        """Add a field; returns the headers it shares with fields added before (those keep them)."""
        self._seen_headers.clear()
        self._seen_values.clear()
        self.fields[d.name] = d
        clashes = []
        for alias in (d.name, *d.aliases, *d.label.values()):
            owner = self._headers.setdefault(header_key(alias), d.name)
            if owner != d.name:
                clashes.append(f"{alias!r} already means {owner}")
        if d.values:
            keys: dict[str, Any] = {}
            for v in d.values:
                for spelling in (v.value, *v.label.values(), *v.aliases):
                    keys.setdefault(header_key(spelling), v.value)
            self._values[d.name] = keys
        return list(dict.fromkeys(clashes))

    def type_of(self, name: str) -> Type | None:
        d = self.fields.get(name)
        return d.type if d else None

    def field_for_header(self, header: str) -> str | None:
        match = self.match_header(header)
        return match.field if match else None

    def match_header(self, header: Any) -> HeaderMatch | None:
        """The field a sheet header means, by name, label or alias; a number field's header may end in its unit,
        `（万元）` or `(%)`, which scales the column."""
        if type(header) is not str:
            return self._match_header(header)
        if len(header) > _SEEN_LONGEST:
            return self._match_header(header)
        seen = self._seen_headers
        match = seen.get(header, seen)
        if match is seen:
            match = seen.remember(header, self._match_header(header))
        return match

    def canonical(self, name: str, text: str) -> Any:
        """A text of field `name` as its vocabulary's code (`制造业`, `Manufacturing` → `manufacturing`); a text
        the vocabulary does not know stays as it is."""
        if len(text) > _SEEN_LONGEST:
            vocabulary = self._values.get(name)
            return text if vocabulary is None else vocabulary.get(header_key(text), text)
        seen = self._seen_values
        value = seen.get((name, text), seen)
        if value is seen:
            vocabulary = self._values.get(name)
            value = seen.remember((name, text), text if vocabulary is None else vocabulary.get(header_key(text), text))
        return value

    def _match_header(self, header: Any) -> HeaderMatch | None:
        key = header_key(header)
        name = self._headers.get(key)
        if name is not None:
            return HeaderMatch(name)
        m = _UNIT_SUFFIX.match(key)
        if m and m["unit"] in _UNIT_EXPONENTS:
            name = self._headers.get(m["head"])
            if name is not None and self.type_of(name) == Type.NUMBER:
                return HeaderMatch(name, _UNIT_EXPONENTS[m["unit"]])
        return None

    def canonical_values(self, name: str) -> dict[str, Any] | None:
        """For a field with a vocabulary: every spelling (as `header_key` folds it) → the value's code."""
        return self._values.get(name)

    def label(self, name: str, lang: str) -> str | None:
        d = self.fields.get(name)
        return d.label.get(lang) if d else None

    def value_label(self, name: str, value: Any, lang: str) -> Any:
        """A value as people read it in `lang` (`loyal` → `忠诚客户`); values without a label stay as they are."""
        d = self.fields.get(name)
        for v in d.values if d else ():
            if v.value == value:
                return v.label.get(lang, value)
        return value

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
        values=tuple(FieldValue(v["value"], v.get("label") or {}, tuple(v.get("aliases", ())))
                     for v in spec.get("values") or ()),
        file=file,
        line=line,
    )
