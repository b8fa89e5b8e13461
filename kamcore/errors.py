"""What can go wrong, as classes that say where (file, line, column, rule, row) and how to fix it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One validation finding in a rule book. `severity` is "error" (the book will not load) or "warning"."""

    message: str
    file: str | None = None
    line: int | None = None
    col: int | None = None
    rule: str | None = None
    row: str | None = None
    hint: str | None = None
    severity: str = "error"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def location(self) -> str:
        parts = [self.file or "<rules>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.col is not None:
                parts.append(str(self.col))
        return ":".join(parts)

    def __str__(self) -> str:
        where = self.rule or ""
        if self.row:
            where = f"{where}/{self.row}" if where else self.row
        text = f"{self.location()}: "
        if where:
            text += f"{where}: "
        if self.severity != "error":
            text += f"{self.severity}: "
        text += self.message
        if self.hint:
            text += f" (hint: {self.hint})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RowError:
    """A problem with one account in a batch. The other accounts are still evaluated."""

    row: int
    rule: str | None
    field: str | None
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = "/".join(p for p in (self.rule, self.field) if p)
        return f"row {self.row}: {where + ': ' if where else ''}{self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class KamError(Exception):
    """Base of every error kamcore raises on purpose."""


class RuleBookError(KamError):
    """A rule book failed validation. `.problems` lists every finding, errors and warnings."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        errors = [p for p in problems if p.is_error]
        shown = "\n".join(f"  {p}" for p in errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(f"{len(errors)} problem(s) in the rule book:\n{shown}{more}")


@dataclass
class ExpressionError(KamError):
    """An expression or unary test that cannot be parsed or typed. `offset` is 0-based within the text."""

    message: str
    text: str = ""
    offset: int = 0
    hint: str | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        caret = f' at column {self.offset + 1} of "{self.text}"' if self.text else ""
        return f"{self.message}{caret}" + (f" (hint: {self.hint})" if self.hint else "")


class ExpressionSyntaxError(ExpressionError):
    """The text does not follow the expression grammar."""


class ExpressionTypeError(ExpressionError):
    """The expression mixes types that cannot go together, e.g. `"a" + 1`."""


class UnknownName(ExpressionError):
    """The expression names a field or function that does not exist."""


class HitPolicyViolation(KamError):
    """A decision table's hit policy was violated for one input (UNIQUE overlap, ANY conflict)."""

    def __init__(self, message: str, rule: str | None = None, rows: list[str] | None = None):
        super().__init__(message)
        self.rule = rule
        self.rows = rows or []


class UnsupportedFeature(KamError):
    """Input uses a feature outside what KAM Rules supports; refused rather than answered wrongly."""


class InputError(KamError):
    """An account table that cannot be read at all (unknown format, unreadable file, missing columns)."""
