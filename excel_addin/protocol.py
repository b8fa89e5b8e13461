"""The xlwings Server protocol in our own code: the book payload the xlwings client scripts send (book, names,
sheets with their values from A1) and the actions they apply (`setValues`, `setRangeColor`, ...), built from a
scored sheet."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kamcore.errors import InputError
from kamcore.sheetscore import VERSION_LABEL, ScoredSheet, safe_text

NOTE_ACTION = "addNote"  # ours: the clients shipped in excel_addin/ apply it (empty text deletes the note); stock
# xlwings clients lack it
BLANK_FILL = "#FFFFFF"  # an error fill from an earlier run is painted over, as the stock clients cannot clear fills
NUMBER_FORMATS = {"credit_limit": "#,##0", "loyalty_points": "#,##0"}


def active_rows(payload: Any) -> tuple[int, str, list[list[Any]]]:
    """The active sheet's position, name and values from a book payload, checked field by field."""
    if not isinstance(payload, Mapping):
        raise InputError("the body must be the xlwings book payload: a JSON object with `book` and `sheets`")
    book, sheets = payload.get("book"), payload.get("sheets")
    if not isinstance(book, Mapping) or not isinstance(book.get("active_sheet_index"), int):
        raise InputError("book.active_sheet_index: required, an integer (the active sheet's position)")
    if not isinstance(sheets, list) or not sheets:
        raise InputError("sheets: required, a list of {name, values}")
    index = book["active_sheet_index"]
    if not 0 <= index < len(sheets):
        raise InputError(f"book.active_sheet_index: {index} is not one of the {len(sheets)} sheets")
    sheet = sheets[index]
    values = sheet.get("values") if isinstance(sheet, Mapping) else None
    if not isinstance(values, list) or not all(isinstance(r, list) for r in values):
        raise InputError(f"sheets[{index}].values: required, a list of rows (lists of cell values) from A1")
    return index, str(sheet.get("name", f"sheet {index + 1}")), [[_cell(v) for v in r] for r in values]


def actions(scored: ScoredSheet, sheet_position: int, outputs: list[str], notes: bool = True) -> list[dict[str, Any]]:
    """What the client does to show a scored sheet: the result block's values, colours (runs of one colour down a
    column as one range), number formats, the tier notes, the rules version, autofit."""
    if scored.row_lines is not None:  # (score_rows of a sheet's rows from A1 never has them)
        raise ValueError("a result block of some sheet rows only: the client writes one range from the header down")
    out = [_action("setValues", sheet_position, scored.header_row, scored.first_column,
                   values=[["" if v is None else safe_text(v) for v in row] for row in scored.rows])]
    if scored.clear_columns:
        out.append(_action("clearContents", sheet_position, scored.header_row, scored.first_column + scored.width,
                           len(scored.rows), scored.clear_columns))
    # A row that turned bad since the last run must not keep its old tier colour or note: every row of a coloured
    # column gets a fill (white where it has none), every row of the note column a note (empty deletes it).
    data_rows = range(scored.header_row + 1, scored.header_row + len(scored.rows))
    fills = dict(scored.fills)
    for c in {c for _, c in scored.fills} | {scored.first_column + scored.width - 1}:
        for r in data_rows:
            fills.setdefault((r, c), BLANK_FILL)
    out += _colour_runs(fills, sheet_position)
    for k, name in enumerate(outputs):
        if name in NUMBER_FORMATS and len(scored.rows) > 1:
            out.append(_action("setNumberFormat", sheet_position, scored.header_row + 1, scored.first_column + k,
                               len(scored.rows) - 1, 1, args=[NUMBER_FORMATS[name]]))
    if notes:
        noted = dict(scored.notes)
        for c in {c for _, c in scored.notes} or {scored.first_column}:
            for r in data_rows:
                noted.setdefault((r, c), "")
        out += [_action(NOTE_ACTION, sheet_position, r, c, args=[text]) for (r, c), text in sorted(noted.items())]
    row, col = scored.version_cell
    out.append(_action("setValues", sheet_position, row, col - 1, values=[[VERSION_LABEL, scored.revision or ""]]))
    out.append(_action("setAutofit", sheet_position, scored.header_row, scored.first_column, len(scored.rows),
                       scored.width, args=["columns"]))
    return out


def _colour_runs(fills: dict[tuple[int, int], str], sheet_position: int) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for (r, c), colour in sorted(fills.items(), key=lambda item: (item[0][1], item[0][0])):
        last = runs[-1] if runs else None
        if (last and last["start_column"] == c and last["args"][0] == colour
                and last["start_row"] + last["row_count"] == r):
            last["row_count"] += 1
        else:
            runs.append(_action("setRangeColor", sheet_position, r, c, args=[colour]))
    return runs


def _action(func: str, sheet_position: int, start_row: int, start_column: int, row_count: int | None = None,
            column_count: int | None = None, values: list[list[Any]] | None = None,
            args: list[Any] | None = None) -> dict[str, Any]:
    if values is not None:
        row_count, column_count = len(values), max((len(v) for v in values), default=0)
    return {"func": func, "args": args or [], "values": values if values is not None else [[]],
            "sheet_position": sheet_position, "start_row": start_row, "start_column": start_column,
            "row_count": row_count or 1, "column_count": column_count or 1}


def _cell(value: Any) -> Any:
    """A payload cell as the sheet reader takes it: Excel's empty string as empty; dates (ISO text from the
    client) as dates."""
    if value == "":
        return None
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == "T":
        return value[:10]  # the clients send dates as UTC ISO timestamps at midnight
    return value
