"""The few things the score-sheet macro does to a worksheet, as one interface with two implementations: over
xlwings' objects in desktop Excel (`excel_addin.desktop.XlwingsSheet`) and over `SheetModel`, a worksheet held in
memory (values, formulas, fills, notes, number formats, names) that behaves as Excel does where it matters to us:
text written with a leading `'` stays text, text written with a leading `=` becomes a formula. Rows and columns
are 0-based here; the xlwings side adds one."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

Rect = tuple[int, int, int, int]  # first row, first column, row count, column count


class Sheet(Protocol):
    name: str

    def used_values(self) -> list[list[Any]]:
        """The values (formulas as their results) from A1 to the used range's last cell; empty cells are None."""

    def write(self, row: int, column: int, values: list[list[Any]]) -> None:
        """A block of values from (row, column), as Excel takes typed input (`'` text, `=` formula)."""

    def clear(self, rect: Rect) -> None:
        """Empty the cells' contents; their formats stay."""

    def fill(self, colour: str, rects: Sequence[Rect]) -> None:
        """Paint every rectangle's background `colour` ("#RRGGBB")."""

    def number_format(self, rect: Rect, code: str) -> None: ...

    def forget(self, rect: Rect) -> None:
        """Drop the cells' fills and notes (values and number formats stay)."""

    def note(self, row: int, column: int, text: str) -> None:
        """Set the cell's note (a classic comment), replacing one already there."""

    def autofit(self, rect: Rect) -> None:
        """Fit the columns' widths to their contents."""

    def name_cell(self, name: str, row: int, column: int) -> None:
        """Point the workbook name `name` at this cell."""


@dataclass
class Cell:
    value: Any = None
    formula: str | None = None  # a formula's text; `value` then holds its last result
    fill: str | None = None
    note: str | None = None
    number_format: str = "General"
    width: float | None = None


class SheetModel:
    """A worksheet in memory: cells by (row, column). `SheetModel.from_rows(rows)` reads a list of rows as a person
    would type them (`=...` a formula); `formulas` gives formula cells their results."""

    def __init__(self, name: str = "Sheet1"):
        self.name = name
        self.cells: dict[tuple[int, int], Cell] = {}
        self.names: dict[str, tuple[int, int]] = {}
        self.widths: dict[int, float] = {}
        self.calls = 0  # how many times the macro reached for the sheet (each one a COM call in Excel)

    @classmethod
    def from_rows(cls, rows: Iterable[Sequence[Any]], name: str = "Sheet1",
                  results: dict[tuple[int, int], Any] | None = None) -> SheetModel:
        sheet = cls(name)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                if value is not None:
                    sheet._type(r, c, value)
        for (r, c), value in (results or {}).items():
            sheet.cells[(r, c)].value = value
        return sheet

    def __getitem__(self, at: tuple[int, int]) -> Cell:
        return self.cells.get(at) or Cell()

    def value(self, row: int, column: int) -> Any:
        return self[row, column].value

    def row(self, row: int) -> list[Any]:
        width = max((c for _, c in self.cells), default=-1) + 1
        return [self.value(row, c) for c in range(width)]

    def column(self, column: int) -> list[Any]:
        height = max((r for r, _ in self.cells), default=-1) + 1
        return [self.value(r, column) for r in range(height)]

    # --- the Sheet interface ---

    def used_values(self) -> list[list[Any]]:
        self.calls += 1
        used = [at for at, cell in self.cells.items() if cell.value is not None or cell.formula is not None]
        if not used:
            return [[None]]
        height, width = max(r for r, _ in used) + 1, max(c for _, c in used) + 1
        grid: list[list[Any]] = [[None] * width for _ in range(height)]
        for (r, c), cell in self.cells.items():
            if r < height and c < width:
                grid[r][c] = cell.value
        return grid

    def write(self, row: int, column: int, values: list[list[Any]]) -> None:
        self.calls += 1
        for r, line in enumerate(values):
            for c, value in enumerate(line):
                self._type(row + r, column + c, value)

    def clear(self, rect: Rect) -> None:
        self.calls += 1
        for at in _each(rect):
            if at in self.cells:
                self.cells[at].value, self.cells[at].formula = None, None

    def fill(self, colour: str, rects: Sequence[Rect]) -> None:
        self.calls += 1
        for rect in rects:
            for at in _each(rect):
                self._cell(at).fill = colour

    def number_format(self, rect: Rect, code: str) -> None:
        self.calls += 1
        for at in _each(rect):
            self._cell(at).number_format = code

    def forget(self, rect: Rect) -> None:
        self.calls += 1
        for at in _each(rect):
            if at in self.cells:
                self.cells[at].fill, self.cells[at].note = None, None

    def note(self, row: int, column: int, text: str) -> None:
        self.calls += 1
        self._cell((row, column)).note = text

    def autofit(self, rect: Rect) -> None:
        self.calls += 1
        row, first, rows, columns = rect
        for c in range(first, first + columns):
            shown = [len(str(self[r, c].value)) for r in range(row, row + rows) if self[r, c].value is not None]
            self.widths[c] = max(shown, default=8) + 2

    def name_cell(self, name: str, row: int, column: int) -> None:
        self.calls += 1
        self.names[name] = (row, column)

    # --- typing a value into a cell, as Excel does ---

    def _cell(self, at: tuple[int, int]) -> Cell:
        if at not in self.cells:
            self.cells[at] = Cell()
        return self.cells[at]

    def _type(self, row: int, column: int, value: Any) -> None:
        cell = self._cell((row, column))
        cell.formula = None
        if value == "":
            value = None
        elif isinstance(value, str) and value.startswith("'"):
            value = value[1:]
        elif isinstance(value, str) and value.startswith("=") and len(value) > 1:
            cell.formula, value = value, None  # calculated by Excel, not by the model
        cell.value = value


def _each(rect: Rect) -> Iterable[tuple[int, int]]:
    row, column, rows, columns = rect
    return ((r, c) for r in range(row, row + rows) for c in range(column, column + columns))
