"""The xlwings desktop add-in (Excel on Windows and macOS, Python on the PC): the worksheet functions
`=KAM_TIER`, `=KAM_EVALUATE`, `=KAM_EXPLAIN` and the `score_sheet` macro, plus the one Sheet implementation over
xlwings' objects. Everything here is a thin shell: the logic is in `udfs` and `macro`, tested without Excel.

A workbook uses it through a module of its own (written by `kam excel quickstart`) that imports these names, so
xlwings' "Import Functions" finds the functions and `RunPython` finds the macro."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import xlwings as xw
from openpyxl.utils import get_column_letter

from . import udfs
from .macro import checked_score
from .settings import CONF_SHEET, AddinError, Settings, conf_values, read_settings
from .sheet import Rect

CATEGORY = "KAM Rules"
ADDRESS_LIMIT = 250  # Excel takes a multi-area address of up to 255 characters


def book_settings(book: Any) -> Settings:
    """The settings of an open workbook: its `xlwings.conf` sheet, then the environment."""
    conf = None
    if CONF_SHEET in [s.name for s in book.sheets]:
        conf = conf_values(book.sheets[CONF_SHEET].range("A1:B100").options(ndim=2).value)
    return read_settings(conf)


def _udf_settings(caller: Any) -> Settings:
    try:
        return book_settings(caller.sheet.book)
    except AddinError:
        raise
    except Exception:  # noqa: BLE001 - Excel busy calculating may refuse the read; the environment still holds
        return read_settings()


@xw.func(category=CATEGORY)
@xw.arg("headers", ndim=2, doc="表头行 / the header row (中文 or English headers)")
@xw.arg("values", ndim=2, doc="一行或多行客户数据 / one or more account rows under those headers")
def KAM_TIER(headers, values, caller):  # noqa: N802 - the name Excel shows
    """客户等级 / each account row's tier (A-D), or why it has none."""
    return _answer(lambda: udfs.tiers(headers, values, _udf_settings(caller)))


@xw.func(category=CATEGORY)
@xw.arg("table", ndim=2, doc="含表头的客户表 / the account table with its header row (a title above may be included)")
def KAM_EVALUATE(table, caller):  # noqa: N802
    """客户评分结果列 / the result columns score_sheet writes, as a dynamic array beside the table."""
    return _answer(lambda: udfs.evaluate_table(table, _udf_settings(caller)))


@xw.func(category=CATEGORY)
@xw.arg("headers", ndim=2, doc="表头行 / the header row")
@xw.arg("values", ndim=2, doc="一行或多行客户数据 / one or more account rows")
def KAM_EXPLAIN(headers, values, caller):  # noqa: N802
    """规则解释 / why each account got its results: every rule, what it read and matched."""
    return _answer(lambda: udfs.explanations(headers, values, _udf_settings(caller)))


@xw.sub
def score_sheet():
    """评分当前工作表 / score the active sheet: result columns beside its account table."""
    book = xw.Book.caller()
    try:
        done, message = checked_score(XlwingsSheet(book.sheets.active), book_settings(book))
    except AddinError as e:
        done, message = False, f"KAM Rules: {e}"
    book.app.alert(message, title="KAM Rules", mode="info" if done else "critical")


def _answer(work: Any) -> Any:
    """A worksheet function's value: its rows, or the problem as text in the cell (never a Python traceback)."""
    try:
        return work()
    except Exception as e:  # noqa: BLE001 - a cell shows the message; Excel would show only #VALUE!
        return [[f"{udfs.ERROR_MARK}{e}"]]


class XlwingsSheet:
    """The Sheet interface over an xlwings sheet (each call one round trip to Excel)."""

    def __init__(self, sheet: Any):
        self.sheet, self.name = sheet, sheet.name

    def used_values(self) -> list[list[Any]]:
        last = self.sheet.used_range.last_cell
        return self.sheet.range((1, 1), (last.row, last.column)).options(ndim=2).value

    def write(self, row: int, column: int, values: list[list[Any]]) -> None:
        self.sheet.range((row + 1, column + 1)).value = values

    def clear(self, rect: Rect) -> None:
        self._range(rect).clear_contents()

    def fill(self, colour: str, rects: Sequence[Rect]) -> None:
        for address in _areas([_address(r) for r in rects]):
            self.sheet.range(address).color = colour

    def number_format(self, rect: Rect, code: str) -> None:
        self._range(rect).number_format = code

    def forget(self, rect: Rect) -> None:
        target = self._range(rect)
        target.color = None
        try:
            target.api.ClearComments()  # Windows: one call for the whole block
        except Exception:  # noqa: BLE001 - macOS has no such call through appscript: delete the notes one by one
            row, column, rows, columns = rect
            for note in list(self.sheet.notes):
                cell = note.location
                if row < cell.row <= row + rows and column < cell.column <= column + columns:
                    note.delete()

    def note(self, row: int, column: int, text: str) -> None:
        cell = self.sheet.range((row + 1, column + 1))
        if cell.note is not None:
            cell.note.text = text
        else:
            cell.add_note(text)

    def autofit(self, rect: Rect) -> None:
        self._range(rect).columns.autofit()

    def name_cell(self, name: str, row: int, column: int) -> None:
        book = self.sheet.book
        if name in [n.name for n in book.names]:
            book.names[name].delete()
        title = self.name.replace("'", "''")
        book.names.add(name, f"='{title}'!${get_column_letter(column + 1)}${row + 1}")

    def _range(self, rect: Rect) -> Any:
        row, column, rows, columns = rect
        return self.sheet.range((row + 1, column + 1), (row + rows, column + columns))


def _address(rect: Rect) -> str:
    row, column, rows, columns = rect
    first = f"{get_column_letter(column + 1)}{row + 1}"
    if rows == 1 and columns == 1:
        return first
    return f"{first}:{get_column_letter(column + columns)}{row + rows}"


def _areas(addresses: list[str]) -> list[str]:
    """Addresses joined into multi-area ranges ("A1:A3,C5") of at most ADDRESS_LIMIT characters each."""
    out: list[str] = []
    for address in addresses:
        if out and len(out[-1]) + 1 + len(address) <= ADDRESS_LIMIT:
            out[-1] += "," + address
        else:
            out.append(address)
    return out
