"""The xlsx round trip: a user's workbook in, the same workbook out with result columns beside its account table
(colours, a note on each tier cell, the rules version); every other sheet, formula and format left as it was."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import openpyxl
from openpyxl.comments import Comment
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.worksheet import Worksheet

from .errors import InputError
from .portfolio import XLSX_FAILURES, header_index, refuse_uncalculated, sheet_rows
from .rulebook import RuleBook
from .sheetscore import FORMULA_STARTS, VERSION_LABEL, VERSION_NAME, Evaluator, ScoredSheet, score_rows

AUTHOR = "KAM Rules"
NO_FILL = PatternFill(fill_type=None)


@dataclass
class ScoredWorkbook:
    data: bytes
    sheet: str
    scored: ScoredSheet


def score_workbook(data: bytes, book: RuleBook, evaluate: Evaluator, lang: str | None = "zh",
                   name: str = "<upload>") -> ScoredWorkbook:
    """Score the account sheet of an xlsx workbook (the active sheet, else the first with an account table) and
    return the workbook with the results written beside the table."""
    try:
        formulas = openpyxl.load_workbook(io.BytesIO(data), keep_links=True)
        values = openpyxl.load_workbook(io.BytesIO(data), data_only=True, read_only=True)
    except XLSX_FAILURES as e:
        raise InputError(f"{name}: not an xlsx workbook ({e})") from None
    try:
        title, rows, lines = _account_sheet(values, book, name)
    finally:
        values.close()
    sheet = formulas[title]
    # (a merged range in the block's way is refused before the accounts are evaluated and their decision logged)
    scored = score_rows(rows, book, evaluate, lang, name, lines=lines,
                        placed=lambda place: _refuse_merged(sheet, place, name))
    write_scored(sheet, scored)
    if VERSION_NAME in formulas.defined_names:
        del formulas.defined_names[VERSION_NAME]
    row, col = scored.version_cell
    ref = f"'{title.replace(chr(39), chr(39) * 2)}'!${get_column_letter(col + 1)}${row + 1}"
    formulas.defined_names[VERSION_NAME] = DefinedName(VERSION_NAME, attr_text=ref)
    out = io.BytesIO()
    formulas.save(out)
    return ScoredWorkbook(out.getvalue(), title, scored)


def write_scored(sheet: Worksheet, scored: ScoredSheet) -> None:
    """Write a scored block into an openpyxl sheet; only the block's own cells (and the version cells) change."""
    bold = Font(bold=True)
    width = scored.width + scored.clear_columns
    if scored.row_lines is not None:  # the block has the rows read with a value only: the sheet's other cells in
        _clear_beside(sheet, scored, width)  # its columns (an earlier run's fill or note on a row emptied since)
    for r in range(len(scored.rows)):
        for c in range(width):
            cell = sheet.cell(row=scored.sheet_row(r) + 1, column=scored.first_column + c + 1)
            value = scored.rows[r][c] if c < scored.width else None
            cell.value = value
            if isinstance(value, str) and value.startswith(FORMULA_STARTS):
                cell.data_type = "s"  # account text such as `=HYPERLINK(...)` stays text, never a formula
            cell.fill = NO_FILL
            cell.comment = None
    for (r, c), colour in scored.fills.items():
        sheet.cell(row=r + 1, column=c + 1).fill = PatternFill("solid", fgColor=colour.lstrip("#").upper())
    for (r, c), text in scored.notes.items():
        sheet.cell(row=r + 1, column=c + 1).comment = Comment(text, AUTHOR, height=160, width=420)
    for c in range(scored.width):
        header = sheet.cell(row=scored.header_row + 1, column=scored.first_column + c + 1)
        header.font = bold
        letter = get_column_letter(scored.first_column + c + 1)
        wide = sum(2 if ord(ch) > 0x2E80 else 1 for ch in str(header.value))
        sheet.column_dimensions[letter].width = max(sheet.column_dimensions[letter].width or 0, min(wide + 4, 40))
    row, col = scored.version_cell
    label = sheet.cell(row=row + 1, column=col)
    label.value, label.font = VERSION_LABEL, bold
    sheet.cell(row=row + 1, column=col + 1).value = scored.revision or ""
    sheet.cell(row=row + 1, column=col + 1).data_type = "s"


def _refuse_merged(sheet: Worksheet, scored: ScoredSheet, name: str) -> None:
    """A merged range where the block, or its revision cells, would be written (from the header row down): refused
    naming it, as openpyxl cannot write into a merged range but through its first cell."""
    left, right = scored.first_column + 1, scored.first_column + scored.width + scored.clear_columns
    row, col = scored.version_cell
    for merged in sheet.merged_cells.ranges:
        in_block = merged.max_row > scored.header_row and merged.min_col <= right and merged.max_col >= left
        at_revision = merged.min_row <= row + 1 <= merged.max_row and merged.min_col <= col + 1 and \
            merged.max_col >= col
        if in_block or at_revision:
            raise InputError(f"{name}: {merged.coord} is merged where the result columns go (from column "
                             f"{get_column_letter(left)}): unmerge it, or move it away from the table / "
                             f"{merged.coord} 是合并单元格，位于结果列的位置：请取消合并或移开")


def _clear_beside(sheet: Worksheet, scored: ScoredSheet, width: int) -> None:
    """Clear the cells the sheet holds in the block's columns below its header, on rows the block leaves out, as
    the block clears its own: a block of every sheet row down to the table's last would have. Only cells there
    already are touched (none is made)."""
    kept = {r + 1 for r in scored.row_lines or ()}
    first, last = scored.first_column + 1, scored.first_column + width
    for row, column in list(sheet._cells):  # (openpyxl's own map of the cells it holds)
        if first <= column <= last and row > scored.header_row + 1 and row not in kept:
            cell = sheet._cells[(row, column)]
            cell.value, cell.fill, cell.comment = None, NO_FILL, None


def _account_sheet(values: Any, book: RuleBook, name: str) -> tuple[str, list[list[Any]], list[int]]:
    """The sheet holding the account table: the active one if its headers name fields, else the first that does;
    its rows that hold a value, and their lines (`sheet_rows`)."""
    sheets = [values.active] + [ws for ws in values.worksheets if ws is not values.active]
    for ws in sheets:
        if not hasattr(ws, "iter_rows"):
            continue  # a chart sheet
        try:  # (read-only: each sheet's XML is parsed here, as its rows are read)
            rows, lines = sheet_rows(ws)
        except XLSX_FAILURES as e:
            raise InputError(f"{name}: not an xlsx workbook ({e})") from None
        if not rows:
            continue
        at = header_index(rows, book.dictionary, lines)
        known = sum(isinstance(h, str) and book.dictionary.match_header(h) is not None for h in rows[at])
        if known >= 2:
            try:
                refuse_uncalculated(ws, rows, lines, at, name, book.dictionary, book.inputs)
            except XLSX_FAILURES as e:
                raise InputError(f"{name}: not an xlsx workbook ({e})") from None
            return ws.title, rows, lines
    raise InputError("no sheet has an account table: a header row naming at least two fields of the data "
                     "dictionary (e.g. 客户编号, 近12个月销售额)")
