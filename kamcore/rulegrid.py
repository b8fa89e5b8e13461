"""A decision table's rows or a scorecard indicator's bands as a grid of text cells, and back; and which cell a
validation problem points at. The web editor and the xlsx rule tables (`ruletable`) share it."""

from __future__ import annotations

import copy
import difflib
import json
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
            if "id" in item:  # a row's id reads first, as people write it
                item = {"id": item.pop("id"), **item}
            items.append(item)
        if bad:
            raise CellError(bad)
        if self.kind == "decision_table":
            doc["rows"] = items
        else:
            next(ind for ind in doc["indicators"] if ind["name"] == self.indicator)["bands"] = items
        return doc

    def _output(self, row: int, name: str, cell: str, bad: list[tuple[int, str, str]]) -> Any:
        """A `then` cell: a list or mapping when written `[…]` / `{…}`, else a number, true/false or null when
        it reads as one, else the text as written (`原因：超额度 / on hold: …` is a reason, not a mapping)."""
        listed = cell.startswith(("[", "{"))
        if name in self.text_outputs and not listed:
            return cell
        try:
            value = yaml.safe_load(cell)
        except yaml.YAMLError as e:
            if not listed:
                return cell
            bad.append((row, name, f"not a value: {str(e).splitlines()[0]}"))
            return None
        return cell if isinstance(value, dict | list) and not listed else value

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


def file_text(source: str, rule_id: str, doc: dict[str, Any]) -> str:
    """The rule file `source` with rule `rule_id` made `doc`. When only its rows (or bands) changed, only their
    lines are rewritten, one `- {…}` line per row, so the commit's text diff shows the rows that changed; else the
    rule is written whole (`rulefile.replace_rule`). The result is checked to load as exactly `doc`."""
    from . import rulefile

    doc = _restored(rulefile.rule_doc(source, rule_id), doc)
    try:
        edited = _with_items(source, rule_id, doc)
    except (yaml.YAMLError, AttributeError, KeyError, IndexError, TypeError, ValueError, StopIteration):
        edited = None
    return edited if edited is not None else rulefile.replace_rule(source, rule_id, doc)


def _restored(before: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` with each row (band) that says what an old one says given back as written: the grid reads every
    condition as text, so `false_big_account: true` would otherwise come back as `'true'`, a change in name only."""
    doc = copy.deepcopy(doc)

    def restore(was: list[Any], now: list[Any]) -> list[Any]:
        old = {_same_key(item): item for item in was}
        return [old.get(_same_key(item), item) for item in now]

    if isinstance(doc.get("rows"), list):
        doc["rows"] = restore(before.get("rows") or [], doc["rows"])
    for k, indicator in enumerate(doc.get("indicators") or []):
        was = (before.get("indicators") or [])
        if isinstance(indicator, dict) and k < len(was) and isinstance(indicator.get("bands"), list):
            indicator["bands"] = restore(was[k].get("bands") or [], indicator["bands"])
    return doc


def _same_key(item: Any) -> str:
    if isinstance(item, dict) and isinstance(item.get("when"), dict):
        item = {**item, "when": {k: text(v) for k, v in item["when"].items()}}
    return _key(item)


def _with_items(source: str, rule_id: str, doc: dict[str, Any]) -> str | None:
    old = yaml.safe_load(source)
    rules = old["rules"]
    index = next(k for k, r in enumerate(rules) if isinstance(r, dict) and r.get("id") == rule_id)
    before = rules[index]
    if {k: v for k, v in before.items() if k not in ("rows", "indicators")} != \
            {k: v for k, v in doc.items() if k not in ("rows", "indicators")}:
        return None
    node = _value(yaml.compose(source, Loader=yaml.SafeLoader), "rules").value[index]
    spans: list[tuple[yaml.Node, list[Any], list[Any]]] = []
    if before.get("rows") != doc.get("rows"):
        spans.append((_value(node, "rows"), before.get("rows") or [], doc["rows"]))
    if before.get("indicators") != doc.get("indicators"):
        was, now = before.get("indicators") or [], doc.get("indicators") or []
        if len(was) != len(now):
            return None
        for k, (a, b) in enumerate(zip(was, now, strict=True)):
            if {x: y for x, y in a.items() if x != "bands"} != {x: y for x, y in b.items() if x != "bands"}:
                return None
            if a.get("bands") != b.get("bands"):
                spans.append((_value(_value(node, "indicators").value[k], "bands"), a.get("bands") or [], b["bands"]))
    lines = source.splitlines(keepends=True)
    for seq, was, items in sorted(spans, key=lambda s: -s[0].start_mark.line):
        if not isinstance(seq, yaml.SequenceNode) or seq.flow_style or not seq.value or not items \
                or len(seq.value) != len(was):
            return None
        col = seq.start_mark.column
        # each old item's lines: from after the item before it (its comments go with it) to its last line
        ends = [_last_scalar(item).end_mark.line + 1 for item in seq.value]
        starts = [seq.start_mark.line] + ends[:-1]
        written: list[str] = []
        keys = difflib.SequenceMatcher(None, [_key(i) for i in was], [_key(i) for i in items], autojunk=False)
        for op, i1, i2, j1, j2 in keys.get_opcodes():
            if op == "equal":  # rows the edit left alone keep their lines, comments and layout
                written += lines[starts[i1]:ends[i2 - 1]] if i2 > i1 else []
            else:
                written += [line for item in items[j1:j2] for line in _item_lines(item, col)]
        lines[starts[0]:ends[-1]] = written
    edited = "".join(lines)
    expected = [doc if k == index else r for k, r in enumerate(rules)]
    return edited if yaml.safe_load(edited) == {**old, "rules": expected} else None


def _key(item: Any) -> str:
    return json.dumps(item, sort_keys=True, ensure_ascii=False, default=str)


def _item_lines(item: Any, col: int) -> list[str]:
    """One row or band as a `- {…}` line (wrapped if long) at column `col`."""
    body = yaml.safe_dump(item, default_flow_style=True, allow_unicode=True, sort_keys=False, width=max(60, 118 - col))
    first, *rest = body.rstrip("\n").splitlines()
    return [" " * col + "- " + first + "\n"] + [" " * (col + 4) + line.lstrip() + "\n" for line in rest]


def _value(node: yaml.Node, key: str) -> yaml.Node:
    if not isinstance(node, yaml.MappingNode):
        raise KeyError(key)
    return next(v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key)


def _last_scalar(node: yaml.Node) -> yaml.Node:
    while isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.value:
        last = node.value[-1]
        node = last[1] if isinstance(last, tuple) else last
    if not isinstance(node, yaml.ScalarNode) or node.style in ("|", ">"):
        raise ValueError("ends in a block scalar")  # its end is not its last line: write the rule whole
    return node


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
