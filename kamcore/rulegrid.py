"""A decision table's rows or a scorecard indicator's bands as a grid of text cells, and back; and which cell a
validation problem points at. The web editor and the xlsx rule tables (`ruletable`) share it."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import yaml

from . import yamlsource
from .errors import Problem

NOTE = "note"
BAND_COLUMNS = ("when", "points", NOTE)


class CellError(Exception):
    """Cells whose text is not a value (e.g. points that are not a number): every one, as (row, column, message);
    `row`, `column` and `message` name the first."""

    def __init__(self, cells: list[tuple[int, str, str]]):
        super().__init__("; ".join(f"row {r + 1}, {c}: {m}" for r, c, m in cells))
        self.cells = cells
        self.row, self.column, self.message = cells[0]


@dataclass(frozen=True)
class Layout:
    """Which part of a rule the grid edits: the rows of a decision table, or one scorecard indicator's bands."""

    kind: str
    columns: tuple[str, ...]
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    text_outputs: tuple[str, ...] = ()  # outputs typed string: their cells are taken as written
    indicator: str | None = None

    @classmethod
    def of(cls, rule: Any, doc: dict[str, Any], indicator: str | None = None) -> Layout:
        if rule.kind == "decision_table":
            inputs = tuple(rule.input_names)
            outputs = tuple(rule.outputs)
            text = tuple(n for n, o in rule.outputs.items() if str(o.type) == "string")
            return cls(rule.kind, (*inputs, *outputs, NOTE), inputs, outputs, text)
        if rule.kind == "scorecard":
            names = [i["name"] for i in doc.get("indicators") or ()]
            if not names:
                raise ValueError(f"scorecard {rule.id} has no indicators")
            return cls(rule.kind, BAND_COLUMNS, indicator=indicator if indicator in names else names[0])
        raise ValueError(f"the grid edits decision tables and scorecards; {rule.id} is a {rule.kind}")

    def _items(self, doc: dict[str, Any]) -> list[dict[str, Any]]:
        if self.kind == "decision_table":
            return doc.get("rows") or []
        return next(i for i in doc["indicators"] if i["name"] == self.indicator).get("bands") or []

    def rows(self, doc: dict[str, Any]) -> list[dict[str, Any]]:
        """Grid rows: `cells` (column → text) and `keep` (the rest of the row, e.g. its id, carried along)."""
        found = []
        for item in self._items(doc):
            item = dict(item) if isinstance(item, dict) else {"then": item}
            if self.kind == "decision_table":
                when = item.pop("when", None) or {}
                then = item.pop("then", None)
                cells = {name: text(when.get(name)) for name in self.inputs}
                if isinstance(then, dict):
                    cells |= {name: text(then.get(name)) for name in self.outputs}
                elif self.outputs:
                    cells[self.outputs[0]] = text(then)
            else:
                cells = {name: text(item.pop(name, None)) for name in ("when", "points")}
            cells[NOTE] = text(item.pop(NOTE, None))
            found.append({"cells": cells, "keep": item})
        return found

    def document(self, doc: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
        """`doc` with its rows (or bands) replaced by the grid's; raises CellError naming every cell that is no
        value."""
        doc = copy.deepcopy(doc)
        items = []
        bad: list[tuple[int, str, str]] = []
        for i, row in enumerate(rows):
            cells = {k: str(v if v is not None else "").strip() for k, v in (row.get("cells") or {}).items()}
            item: dict[str, Any] = {}
            if self.kind == "decision_table":
                item["when"] = {name: cells[name] for name in self.inputs if cells.get(name)}
                then = {name: self._output(i, name, cells.get(name, ""), bad) for name in self.outputs
                        if cells.get(name)}
                if len(self.outputs) == 1:
                    if then:
                        item["then"] = then[self.outputs[0]]
                elif then:
                    item["then"] = then
            else:
                if cells.get("when"):
                    item["when"] = cells["when"]
                item["points"] = _number(i, "points", cells.get("points", ""), bad)
            item |= {k: v for k, v in (row.get("keep") or {}).items() if k not in item and k != NOTE}
            if cells.get(NOTE):
                item[NOTE] = cells[NOTE]
            items.append(item)
        if bad:
            raise CellError(bad)
        if self.kind == "decision_table":
            doc["rows"] = items
        else:
            next(ind for ind in doc["indicators"] if ind["name"] == self.indicator)["bands"] = items
        return doc

    def _output(self, row: int, name: str, cell: str, bad: list[tuple[int, str, str]]) -> Any:
        if name in self.text_outputs and not cell.startswith(("[", "{")):
            return cell
        try:
            return yaml.safe_load(cell)
        except yaml.YAMLError as e:
            bad.append((row, name, f"not a value: {str(e).splitlines()[0]}"))
            return None

    def cell_of(self, problem: Problem, text: str, file: str, rule_id: str) -> tuple[int, str | None] | None:
        """(row, column) of the grid a problem in the new file `text` points at; None when it is elsewhere."""
        if problem.line is None or (problem.file not in (None, file)):
            return None
        data, positions = yamlsource.load(text, file)
        rules = data.get("rules") if isinstance(data, dict) else data
        index = next((k for k, r in enumerate(rules or []) if isinstance(r, dict) and r.get("id") == rule_id), None)
        if index is None:
            return None
        best: tuple[int, int, str | None] | None = None
        for path, (line, col) in positions.marks.items():
            if line != problem.line or path[:2] != ("rules", index):
                continue
            found = self._grid_path(path[2:], rules[index])
            if found is None or (problem.col is not None and col > problem.col):
                continue
            if best is None or col >= best[0]:
                best = (col, *found)
        return None if best is None else (best[1], best[2])

    def _grid_path(self, path: tuple, rule: dict[str, Any]) -> tuple[int, str | None] | None:
        if self.kind == "decision_table":
            if len(path) < 2 or path[0] != "rows":
                return None
            row, rest = path[1], path[2:]
            if not rest:
                return row, None
            if rest[0] == "when":
                return row, rest[1] if len(rest) > 1 else None
            if rest[0] == "then":
                return row, rest[1] if len(rest) > 1 else (self.outputs[0] if self.outputs else None)
            return row, rest[0] if rest[0] in self.columns else None
        names = [i.get("name") for i in rule.get("indicators") or []]
        if len(path) < 4 or path[0] != "indicators" or path[2] != "bands" or names[path[1]] != self.indicator:
            return None
        return path[3], path[4] if len(path) > 4 and path[4] in self.columns else None


def text(value: Any) -> str:
    """A cell's text: strings as written, other values in YAML flow style (a list reads `[a, b]`)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True, allow_unicode=True).removesuffix("\n...\n").strip()


def _number(row: int, column: str, cell: str, bad: list[tuple[int, str, str]]) -> Any:
    try:
        value = float(cell)
    except ValueError:
        bad.append((row, column, f"{cell!r} is not a number"))
        return None
    return int(value) if value.is_integer() else value
