"""The worksheet functions' logic, free of Excel: cell values in as xlwings hands them over (lists of rows), lists
of rows out (Excel spills them). `excel_addin.desktop` registers them as `=KAM_TIER`, `=KAM_EVALUATE` and
`=KAM_EXPLAIN`. Rows without an account answer ""; a bad row answers its message, never a lost row."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from kamcore.sheetscore import NOTE_RULES

from .macro import scored_actions
from .service import evaluator
from .settings import Settings

ERROR_MARK = "⚠ "  # the start of a cell that says why a row has no result


def tiers(headers: Sequence[Any], values: Sequence[Sequence[Any]], settings: Settings) -> list[list[Any]]:
    """`=KAM_TIER(headers, rows)`: each row's tier, one per row."""
    return [[v] for v in _per_row(headers, values, settings, "tier", explain=False)]


def explanations(headers: Sequence[Any], values: Sequence[Sequence[Any]], settings: Settings) -> list[list[Any]]:
    """`=KAM_EXPLAIN(headers, rows)`: each row's trace as text, every rule with what it read and matched."""
    return [[v] for v in _per_row(headers, values, settings, "explanation", explain=True)]


def evaluate_table(table: Sequence[Sequence[Any]], settings: Settings) -> list[list[Any]]:
    """`=KAM_EVALUATE(table)`: the result columns score_sheet writes beside `table` (headers in 中文 or English,
    then one row per table row; blank and totals rows blank, bad rows their message), aligned with the table
    from its first row, so the spill sits beside it. A title above the headers may be part of the range."""
    todo, _ = scored_actions("KAM_EVALUATE", [list(r) for r in table], settings, notes=False)
    block = todo[0]
    width = len(block["values"][0])
    return [[""] * width for _ in range(block["start_row"])] + block["values"]


def _per_row(headers: Sequence[Any], values: Sequence[Sequence[Any]], settings: Settings, output: str,
             explain: bool) -> list[Any]:
    names = [str(h).strip() if h is not None and str(h).strip() else None for h in _flat(headers)]
    if not any(names):
        return [f"{ERROR_MARK}表头为空 / the header range is empty"] * max(1, len(values))
    rows = _rows(values)
    accounts, at = [], []
    for i, row in enumerate(rows):
        account = {n: _plain(v) for n, v in zip(names, row, strict=False) if n is not None}
        if any(v is not None for v in account.values()):
            accounts.append(account)
            at.append(i)
    shown: list[Any] = [""] * len(rows)
    if not accounts:
        return shown
    answer = evaluator(settings, explain=explain, explain_rules=None if explain else NOTE_RULES)(accounts)
    for result in answer.get("results", []):
        value = result.get(output)
        shown[at[result["row"]]] = "" if value is None else value
    for e in answer.get("errors", []):
        i = at[e["row"]]
        where = "/".join(p for p in (e.get("rule"), e.get("field")) if p)
        text = f"{where}: {e['message']}" if where else str(e["message"])
        shown[i] = f"{shown[i]}; {text}" if str(shown[i]).startswith(ERROR_MARK) else ERROR_MARK + text
    return shown


def _flat(headers: Sequence[Any]) -> list[Any]:
    """A header range as one row, whether it came as a row, a one-row block, a column or a single value."""
    if isinstance(headers, str) or not isinstance(headers, Sequence):
        return [headers]
    if headers and isinstance(headers[0], list | tuple):
        return list(headers[0]) if len(headers) == 1 else [row[0] if row else None for row in headers]
    return list(headers)


def _rows(values: Sequence[Any]) -> list[list[Any]]:
    """Account rows: a block of rows, or one row given flat."""
    if isinstance(values, str) or not isinstance(values, Sequence):
        return [[values]]
    if values and not isinstance(values[0], list | tuple):
        return [list(values)]
    return [list(r) for r in values]


def _plain(value: Any) -> Any:
    """A cell as the API takes it in JSON (both modes get the same): dates as ISO dates, "" as empty."""
    if isinstance(value, str) and not value.strip():
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value
