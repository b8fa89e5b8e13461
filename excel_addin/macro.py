"""The desktop `score_sheet` macro, free of Excel: read the active sheet, have it scored (by the service through
`POST /xlwings/score-sheet`, or offline by the same core against a local rule book) and apply the answer's
xlwings actions to the sheet. Both modes go through `kamcore.sheetscore` and `excel_addin.protocol`, so the
result columns, colours and notes are those of every other Excel path."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kamcore.errors import InputError
from kamcore.sheetscore import VERSION_LABEL, VERSION_NAME, local_evaluator, score_rows, sheet_outputs

from .protocol import BLANK_FILL, NOTE_ACTION, actions, active_rows
from .service import Service, local_book
from .settings import AddinError, Settings
from .sheet import Rect, Sheet

CLIENT = "kam-desktop"


@dataclass
class Report:
    """What one run did, for the message box: the service's `kam` summary, whichever mode answered."""

    sheet: str
    source: str  # the service URL, or the rule book folder offline
    rules_version: str | None
    scored: int
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    decision_id: str | None = None

    def message(self) -> str:
        text = (f"已评分 {self.scored} 个客户 / {self.scored} accounts scored ({self.sheet}); "
                f"规则版本 / rules version {self.rules_version}")
        if self.errors:
            text += (f"\n{len(self.errors)} 行有错误，见“规则提示”列 / {len(self.errors)} rows with errors, see the "
                     f"“Rule messages” column")
        if self.warnings:
            text += f"\n{len(self.warnings)} 条提示 / warnings: " + "; ".join(self.warnings[:3])
        return text


def score_sheet(sheet: Sheet, settings: Settings, as_of: dt.date | None = None) -> Report:
    """Score the account table on `sheet` and write the result columns beside it (in place on a re-run)."""
    todo, kam = scored_actions(sheet.name, sheet.used_values(), settings, notes=True, as_of=as_of)
    apply(sheet, todo)
    return Report(sheet.name, settings.where(), kam.get("rules_version"), int(kam.get("scored") or 0),
                  list(kam.get("errors") or []), [str(w) for w in kam.get("warnings") or []], kam.get("decision_id"))


def scored_actions(name: str, values: Sequence[Sequence[Any]], settings: Settings, notes: bool = True,
                   as_of: dt.date | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The xlwings actions that show a sheet's results, and the `kam` summary: from the service's
    `/xlwings/score-sheet`, or offline from the same reader, core and action builder the service uses."""
    payload = book_payload(name, values)
    if settings.remote:
        answer = Service(settings.url, settings.token).score_sheet(payload, settings.lang, notes=notes)
        if not isinstance(answer, Mapping) or not isinstance(answer.get("actions"), list):
            raise AddinError(f"{settings.url} 的回答不是评分结果 / the answer from {settings.url} holds no actions")
        return answer["actions"], answer.get("kam") or {}
    position, name, rows = active_rows(payload)
    book = local_book(settings.rules)
    evaluate = local_evaluator(book, as_of, settings.lang, notes=notes, source=str(settings.rules))
    scored = score_rows(rows, book, evaluate, settings.lang, name)
    kam = {"sheet": name, "rules_version": scored.revision, "decision_id": scored.decision_id,
           "scored": scored.scored, "errors": scored.errors, "warnings": scored.warnings}
    return actions(scored, position, sheet_outputs(book), notes), kam


def book_payload(name: str, values: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """The xlwings book payload for one sheet, its cells as xlwings' own clients send them ("" for empty, dates
    as ISO timestamps); offline the same payload is read back by the server's reader, so both modes see alike."""
    return {"client": CLIENT, "version": "1",
            "book": {"name": name, "active_sheet_index": 0, "selection": "A1"}, "names": [],
            "sheets": [{"name": name, "values": [[_sent(v) for v in row] for row in values],
                        "pictures": [], "tables": []}]}


def apply(sheet: Sheet, todo: Sequence[Mapping[str, Any]]) -> None:
    """Carry out the xlwings actions on one sheet; colours are gathered by colour, one call each. First the
    result block (the first action) and the columns it drops lose their fills and notes, as in the xlsx round
    trip: a row that turned bad must not keep the colour and the note of its earlier tier."""
    fills: dict[str, list[Rect]] = {}
    for k, action in enumerate(todo):
        if action.get("sheet_position", 0) != 0:
            raise AddinError(f"the service answered an action for another sheet: {action.get('func')}")
        if (k == 0 and action.get("func") == "setValues") or action.get("func") == "clearContents":
            sheet.forget(_rect(action))
    for action in todo:
        func = action.get("func")
        row, column = int(action["start_row"]), int(action["start_column"])
        rect = _rect(action)
        args = action.get("args") or []
        if func == "setValues":
            values = action["values"]
            sheet.write(row, column, values)
            if values and values[0] and values[0][0] == VERSION_LABEL and len(values[0]) == 2:
                sheet.name_cell(VERSION_NAME, row, column + 1)
        elif func == "clearContents":
            sheet.clear(rect)
        elif func == "setRangeColor":
            if str(args[0]) != BLANK_FILL:  # white stands in for "no fill" for stock clients; cleared above
                fills.setdefault(str(args[0]), []).append(rect)
        elif func == "setNumberFormat":
            sheet.number_format(rect, str(args[0]))
        elif func == NOTE_ACTION:
            if args and str(args[0]):  # an empty note removes an old one: cleared above already
                sheet.note(row, column, str(args[0]))
        elif func == "setAutofit":
            sheet.autofit(rect)
        else:
            raise AddinError(f"the service answered an action this add-in does not know: {func!r}")
    for colour, rects in fills.items():
        sheet.fill(colour, rects)


def checked_score(sheet: Sheet, settings: Settings) -> tuple[bool, str]:
    """(done, message) for the macro's message box: a sheet or service problem is a message, never a traceback."""
    try:
        return True, score_sheet(sheet, settings).message()
    except (AddinError, InputError) as e:
        return False, f"KAM Rules: {e}"


def _rect(action: Mapping[str, Any]) -> Rect:
    return (int(action["start_row"]), int(action["start_column"]), int(action.get("row_count") or 1),
            int(action.get("column_count") or 1))


def _sent(value: Any) -> Any:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    if isinstance(value, dt.date):
        return value.strftime("%Y-%m-%dT00:00:00.000Z")
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)
