"""Scoring an account sheet in place: where the result columns go beside the user's table, what they hold, their
colours and notes. One core for every Excel front end (xlsx round trip, xlwings protocol, desktop add-in); it
works on a sheet model (a list of rows of cell values from A1) and knows nothing of how cells get written."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from openpyxl.utils import get_column_letter

from .dictionary import header_key
from .errors import InputError
from .portfolio import MAX_COLUMNS, header_index, read_rows, too_far_right
from .rulebook import RuleBook

# The outputs an account manager wants beside the account, in this order (those the book has).
SHEET_OUTPUTS = ("tier", "segment", "credit_status", "credit_limit", "entitlements", "loyalty_points",
                 "next_actions")
NOTE_RULES = ("tier", "credit_status")  # the explanation in each tier cell's note covers these rules
MESSAGES = {"zh": "规则提示", "en": "Rule messages"}  # the column naming what was wrong with a row
VERSION_LABEL = "规则版本 / Rules version"
VERSION_NAME = "KAM_RULES_VERSION"  # a workbook name for the cell holding the revision
LIST_SEPARATOR = {"zh": "、", "en": ", "}
YES_NO = {"zh": ("是", "否"), "en": ("yes", "no")}
TIER_FILLS = {"A": "#C6EFCE", "B": "#DDEBF7", "C": "#FFF2CC", "D": "#EDEDED"}
CREDIT_FILLS = {"ok": "#C6EFCE", "warn": "#FFEB9C", "guarantee_required": "#FCE4D6", "hold": "#FFC7CE"}
ERROR_FILL = "#FFC7CE"
HEADER_FILL = "#D9E1F2"
FORMULA_STARTS = ("=", "+", "-", "@")  # text a spreadsheet would take for a formula

# accounts → the API's answer: {"rules_version", "decision_id", "results": [{"row", output..., "explanation"}],
# "errors": [{"row", "field", "rule", "message"}], "warnings": [...]}
Evaluator = Callable[[list[dict[str, Any]]], dict[str, Any]]


@dataclass
class ScoredSheet:
    """What to write into a sheet: a block of result columns from (`header_row`, `first_column`), 0-based, one
    row per sheet row down to the table's last row (or per row in `row_lines`); fills and notes by (row, column);
    the revision cell."""

    header_row: int
    first_column: int
    headers: list[str]
    rows: list[list[Any]]  # rows[0] is the header row; account rows hold results, other rows None
    fills: dict[tuple[int, int], str] = field(default_factory=dict)
    notes: dict[tuple[int, int], str] = field(default_factory=dict)
    revision: str | None = None
    decision_id: str | None = None
    scored: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)  # the API's row errors plus `line`, 1-based
    warnings: list[str] = field(default_factory=list)
    clear_columns: int = 0  # columns of an earlier, wider result block to blank beyond this one
    # The sheet row (0-based) of each block row, where the sheet was read without its rows that hold no value
    # (sheet_rows); None: the block's rows are the sheet's, one after another from `header_row`.
    row_lines: list[int] | None = None

    @property
    def width(self) -> int:
        return len(self.headers)

    def sheet_row(self, r: int) -> int:
        """The sheet row (0-based) of block row r."""
        return self.header_row + r if self.row_lines is None else self.row_lines[r]

    @property
    def version_cell(self) -> tuple[int, int]:
        """(row, column) of the revision; its label sits to its left, one column after the result block."""
        return self.header_row, self.first_column + self.width + 2

    def cells(self) -> list[tuple[int, int, Any]]:
        """Every cell the block writes, (row, column, value), for writers that go cell by cell."""
        return [(self.sheet_row(r), self.first_column + c, v)
                for r, row in enumerate(self.rows) for c, v in enumerate(row)]


def sheet_outputs(book: RuleBook) -> list[str]:
    return [name for name in SHEET_OUTPUTS if name in book.outputs]


def result_headers(book: RuleBook, lang: str | None) -> list[str]:
    return [_label(book, name, lang) for name in sheet_outputs(book)] + [MESSAGES.get(lang or "en", MESSAGES["en"])]


def _earlier_block(header: list[Any], book: RuleBook) -> list[int]:
    """The header row's columns of an earlier run's result block: it ends with the messages column (规则提示 / Rule
    messages), and before it come sheet outputs in their order (of any book: a column of an output the book no
    longer has still counts). Scanning left from the messages column, the block takes each output header earlier
    in that order than the last one taken; a header naming any other field (a table column named like an output,
    `客户等级`, too) ends it. Headers of no field between its columns are the user's, inserted into it. [] for a
    sheet without an earlier block."""
    order: dict[str, int] = {}
    for position, name in enumerate(SHEET_OUTPUTS):
        texts = [name, book.dictionary.label(name, "zh"), book.dictionary.label(name, "en")]
        if name in book.outputs:
            texts += [_label(book, name, lang) for lang in ("zh", "en")]
        order.update((header_key(text), position) for text in texts if text)
    messages = {header_key(text) for text in MESSAGES.values()}
    keys = [header_key(h) if isinstance(h, str) and h.strip() else None for h in header]
    ends = [k for k, key in enumerate(keys) if key in messages]
    if not ends:
        return []
    taken, last = [ends[-1]], len(SHEET_OUTPUTS)
    for k in range(ends[-1] - 1, -1, -1):
        key = keys[k]
        if key in order and order[key] < last:
            taken.append(k)
            last = order[key]
        elif key is not None and (key in order or key in messages or book.dictionary.match_header(header[k])):
            break  # a column of the table
    return sorted(taken)


def score_rows(rows: Sequence[Sequence[Any]], book: RuleBook, evaluate: Evaluator, lang: str | None = "zh",
               name: str = "<sheet>", lines: Sequence[int] | None = None,
               placed: Callable[[ScoredSheet], None] | None = None) -> ScoredSheet:
    """Find the account table in `rows` (headers may sit under a title), evaluate its accounts with `evaluate`
    and lay out the result columns beside it. Re-scoring a scored sheet reuses its own result columns. `lines`:
    the sheet row (1-based) of each row, where the rows without a value were left out (`sheet_rows`); the
    block then has a row for each of those rows only. `placed`: called with the block's place (its header row,
    first column, headers and columns to clear; no rows yet) before anything is evaluated, to refuse it (by
    raising) where the sheet cannot take it."""
    rows = [list(r) for r in rows]
    lines = None if lines is None else list(lines)
    if lines is not None and len(lines) != len(rows):
        raise ValueError(f"{len(lines)} lines for {len(rows)} rows")
    if not rows or not any(any(_filled(c) for c in r) for r in rows):
        raise InputError(f"{name}: the sheet is empty")
    at = header_index(rows, book.dictionary, lines)
    header = rows[at]
    if sum(isinstance(h, str) and book.dictionary.match_header(h) is not None for h in header) < 2:
        raise InputError(f"{name}: no header row names two fields of the data dictionary (e.g. 客户编号, "
                         f"近12个月销售额): is this the sheet with the customer table? / 未找到客户表的表头")
    own = _earlier_block(header, book)  # our result columns from an earlier run (without its revision cells)
    # an earlier run's revision label and the revision right of it: ours, never a column of the table
    label = {k for k, h in enumerate(header) if isinstance(h, str) and header_key(h) == header_key(VERSION_LABEL)}
    label |= {k + 1 for k in label if not (k + 1 < len(header) and isinstance(header[k + 1], str)
                                           and book.dictionary.match_header(header[k + 1]) is not None)}
    used = [k for k, h in enumerate(header) if _filled(h) and k not in label]
    headers = result_headers(book, lang)
    kept: list[str] = []
    if own:  # the block goes where it was, over its own columns; the table is what the headers name left of it
        first = min(own)
        previous_width = max(own) - first + 1
        table_end = max((k for k in used if k < first), default=-1) + 1
        # a column the user put among ours (inserted into the block) is theirs
        inserted = [c for c in range(first, first + previous_width) if c not in own]
        _refuse_overwriting(rows, at, inserted, [], label, name, lines, "among the earlier result columns")
        grown = range(first + previous_width, first + len(headers))  # and the revision cells right of it
        _refuse_overwriting(rows, at, grown, [first + len(headers) + 1, first + len(headers) + 2], label, name,
                            lines, "where the result columns now go")
    else:  # beside the table, and right of every value its rows hold: a note in a column without a header is
        table_end = max(used) + 1 if used else 0  # the user's, never written over
        previous_width = 0
        ends = [_end(rows[r], label if r == at else ()) for r in range(at, len(rows))]
        first = max(table_end, *ends)
        if first > table_end:
            r = at + ends.index(first)
            if first > MAX_COLUMNS:  # (as reading the table refuses it: the block would go beyond it)
                raise too_far_right(name, _line(r, lines), first - 1)
            cell = f"{get_column_letter(first)}{_line(r, lines)}"
            kept.append(f"{name}:{_line(r, lines)}: {cell} holds a value right of the table's headers, kept: the "
                        f"result columns start right of it, at column {get_column_letter(first + 1)} / {cell} "
                        f"在表头右侧有内容，已保留，结果列从 {get_column_letter(first + 1)} 列开始")
    clear_columns = max(0, previous_width - len(headers))  # an earlier, wider block's columns beyond this one
    if placed is not None:
        placed(ScoredSheet(at if lines is None else lines[at] - 1, first, headers, [], clear_columns=clear_columns))
    table = [r[:table_end] for r in rows]
    sheet = read_rows(table, name, book.dictionary, header=at, lines=lines)
    accounts = sheet.frame.astype(object).where(sheet.frame.notna(), None).to_dict("records")
    answer = evaluate(accounts) if accounts else {"results": [], "errors": [], "warnings": []}
    outputs = sheet_outputs(book)
    if lines is None:  # a block row per sheet row, from the header down to the table's last row
        row_lines, top = None, at
        count = max((len(rows) - 1), at) - at + 1
    else:  # a block row per row read, from the header on
        row_lines = [line - 1 for line in lines[at:]]
        top, count = row_lines[0], len(row_lines)
    place = {r: k for k, r in enumerate(row_lines)} if row_lines is not None else None

    def block_row(r: int) -> int:  # the block row of sheet row r (0-based)
        return r - top if place is None else place[r]

    block: list[list[Any]] = [headers] + [[None] * len(headers) for _ in range(count - 1)]
    scored = ScoredSheet(top, first, headers, block, revision=answer.get("rules_version"),
                         decision_id=answer.get("decision_id"), row_lines=row_lines)
    tier_col = outputs.index("tier") if "tier" in outputs else None
    credit_col = outputs.index("credit_status") if "credit_status" in outputs else None
    for k in range(len(headers)):
        scored.fills[(top, first + k)] = HEADER_FILL
    for result in answer.get("results", []):
        r = int(sheet.lines[result["row"]]) - 1
        block[block_row(r)][:len(outputs)] = [_shown(book, out, result.get(out), lang) for out in outputs]
        if tier_col is not None and result.get("tier") in TIER_FILLS:
            scored.fills[(r, first + tier_col)] = TIER_FILLS[result["tier"]]
        if credit_col is not None and result.get("credit_status") in CREDIT_FILLS:
            scored.fills[(r, first + credit_col)] = CREDIT_FILLS[result["credit_status"]]
        if tier_col is not None and result.get("explanation"):
            scored.notes[(r, first + tier_col)] = result["explanation"]
        scored.scored += 1
    messages: dict[int, list[str]] = {}
    for e in answer.get("errors", []):
        line = int(sheet.lines[e["row"]])
        messages.setdefault(line - 1, []).append(_message(e))
        scored.errors.append({**e, "line": line})
    for r, texts in messages.items():
        block[block_row(r)][-1] = "; ".join(texts)
        scored.fills[(r, first + len(headers) - 1)] = ERROR_FILL
    scored.warnings = kept + [str(w) for w in sheet.warnings]
    scored.warnings += [f"{name}:{int(sheet.lines[w['row']])}: {_message(w)}" for w in answer.get("warnings", [])]
    scored.clear_columns = clear_columns
    return scored


def local_evaluator(book: RuleBook, as_of: dt.date | None = None, lang: str | None = "zh",
                    notes: bool = True, source: str = "local",
                    explain_rules: Collection[str] | None = NOTE_RULES) -> Evaluator:
    """Evaluate against a rule book in this process (the CLI, the add-in offline), answering as the API does; a
    book loaded from a folder has no revision, so its version reads `<source> (local)`. `explain_rules`: the rules
    each explanation covers (None: every rule, as the API's `explain=true`)."""
    def evaluate(accounts: list[dict[str, Any]]) -> dict[str, Any]:
        ev = book.evaluate(accounts, as_of=as_of)
        frame = ev.frame.loc[ev.ok, sheet_outputs(book)]
        frame = frame.astype(object).where(frame.notna(), None)
        results = []
        for i, values in zip(frame.index.tolist(), frame.to_dict("records"), strict=True):
            result = {"row": i, **values}
            if notes:
                result["explanation"] = ev.explain(i, explain_rules).text(lang or "en")
            results.append(result)
        return {"rules_version": book.revision or f"{source} (local)", "decision_id": None, "results": results,
                "errors": [_error(e) for e in ev.errors], "warnings": [_error(e) for e in ev.warnings]}
    return evaluate


def safe_text(value: Any) -> Any:
    """Text from account data that a spreadsheet would run as a formula, marked as text with a leading `'`."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _error(e: Any) -> dict[str, Any]:
    return {"row": e.row, "field": e.field, "rule": e.rule, "message": e.message, "severity": e.severity}


def _message(e: Mapping[str, Any]) -> str:
    where = "/".join(p for p in (e.get("rule"), e.get("field")) if p)
    return f"{where}: {e['message']}" if where else str(e["message"])


def _label(book: RuleBook, name: str, lang: str | None) -> str:
    if lang is None:
        return name
    return book.dictionary.label(name, lang) or book.outputs[name].outputs[name].label.get(lang) or name


def _shown(book: RuleBook, name: str, value: Any, lang: str | None) -> Any:
    """A result as a cell shows it: codes as labels in `lang`, lists as one line, dates as dates."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, list | tuple):
        items = [book.dictionary.value_label(name, v, lang) if lang else v for v in value]
        return LIST_SEPARATOR.get(lang or "en", ", ").join(map(str, items)) or None
    if isinstance(value, bool):
        return YES_NO[lang or "en"][0 if value else 1]
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, str) and lang:
        return book.dictionary.value_label(name, value, lang)
    return value


def _filled(cell: Any) -> bool:
    return cell is not None and not (isinstance(cell, str) and not cell.strip())


def _end(row: Sequence[Any], skip: Collection[int] = ()) -> int:
    """One past the last column of `row` that holds a value, columns `skip` aside (0 for none)."""
    return next((k + 1 for k in range(len(row) - 1, -1, -1) if _filled(row[k]) and k not in skip), 0)


def _refuse_overwriting(rows: list[list[Any]], at: int, columns: Collection[int], revision: list[int],
                        label: Collection[int], name: str, lines: Sequence[int] | None, where: str) -> None:
    """The block is to be written over `columns` (from the header row down) and its revision label and revision to
    the header row's columns `revision`: refused when a value of the user's is there. An earlier label and
    revision (`label`), and a revision an earlier, wider block left behind, are ours."""
    cells = [(r, c) for r in range(at, len(rows)) for c in columns] + [(at, c) for c in revision]
    for r, c in cells:
        value = rows[r][c] if c < len(rows[r]) else None
        if _filled(value) and not (r == at and (c in label or _revision_like(value))):
            cell = f"{get_column_letter(c + 1)}{_line(r, lines)}"
            raise InputError(f"{name}:{_line(r, lines)}: {cell} holds a value {where}: move it, or delete the "
                             f"earlier result columns and the {VERSION_LABEL} cells right of them, so they are laid "
                             f"out again / {cell} 有内容，位于结果列的位置：请移走该内容，"
                             "或删除旧的结果列及其右侧的规则版本单元格")


def _revision_like(value: Any) -> bool:
    """A revision as the block writes it: a git commit id, or a local book's `<source> (local)`."""
    return isinstance(value, str) and (len(value) == 40 and all(ch in "0123456789abcdef" for ch in value)
                                       or value.endswith(" (local)"))


def _line(r: int, lines: Sequence[int] | None) -> int:
    """The sheet row (1-based) of row r of the rows read."""
    return r + 1 if lines is None else lines[r]
