"""Edit one rule inside a rule file's text (replace, add, remove, read its source), keeping every other line —
comments and layout included — exactly as its author wrote it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from .errors import KamError


class RuleFileError(KamError):
    """The rule file cannot be edited as asked."""


@dataclass(frozen=True)
class _Span:
    start: int  # first line of the rule's list item (0-based)
    end: int  # line after its last line
    indent: int  # column of its `-`


@dataclass(frozen=True)
class _Layout:
    spans: dict[str, _Span]  # each rule id's lines
    end: int | None  # where a new rule goes (None: the file has no `rules:` list)
    indent: int  # column of the list's `-`
    key_line: int | None  # the line of `rules:`


def _layout(text: str) -> _Layout:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        raise RuleFileError(f"the rule file is not valid YAML: {e}") from None
    if root is None:
        return _Layout({}, None, 2, None)
    if not isinstance(root, yaml.MappingNode):
        raise RuleFileError("a rule file is a mapping with a `rules:` list")
    key, rules = next(((k, v) for k, v in root.value if isinstance(k, yaml.ScalarNode) and k.value == "rules"),
                      (None, None))
    if key is None:
        return _Layout({}, None, 2, None)
    if isinstance(rules, yaml.SequenceNode) and rules.flow_style and not rules.value:
        return _Layout({}, None, 2, key.start_mark.line)  # `rules: []`
    if not isinstance(rules, yaml.SequenceNode) or rules.flow_style:
        raise RuleFileError("`rules:` must be a block list (one `- id: …` item per rule) to be edited here")
    lines = text.splitlines(keepends=True)
    starts = [item.start_mark.line for item in rules.value]
    end = _last_content_line(lines, rules.end_mark.line) if rules.value else rules.start_mark.line
    spans: dict[str, _Span] = {}
    for i, item in enumerate(rules.value):
        stop = starts[i + 1] if i + 1 < len(starts) else end
        rule_id = _id_of(item)
        if rule_id is not None:
            spans[rule_id] = _Span(starts[i], _last_content_line(lines, stop), _dash_column(lines[starts[i]]))
    indent = _dash_column(lines[starts[0]]) if starts else 2
    return _Layout(spans, end, indent, key.start_mark.line)


def _id_of(item: yaml.Node) -> str | None:
    if isinstance(item, yaml.MappingNode):
        for k, v in item.value:
            if isinstance(k, yaml.ScalarNode) and k.value == "id" and isinstance(v, yaml.ScalarNode):
                return v.value
    return None


def _dash_column(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _last_content_line(lines: list[str], stop: int) -> int:
    """Back up over blank lines and comments before `stop`, which belong to what follows."""
    stop = min(stop, len(lines))
    while stop > 0 and (not lines[stop - 1].strip() or lines[stop - 1].lstrip().startswith("#")):
        stop -= 1
    return stop


def _dumped(doc: dict[str, Any], indent: int) -> str:
    body = yaml.safe_dump([doc], allow_unicode=True, sort_keys=False, width=120, default_flow_style=None)
    return "".join(" " * indent + line for line in body.splitlines(keepends=True))


def rule_ids(text: str) -> list[str]:
    return list(_layout(text).spans)


def rule_doc(text: str, rule_id: str) -> dict[str, Any]:
    """One rule as data, read from the whole file (so anchors defined by another rule resolve)."""
    data = yaml.safe_load(text) or {}
    for doc in data.get("rules") or []:
        if isinstance(doc, dict) and doc.get("id") == rule_id:
            return doc
    raise RuleFileError(f"no rule {rule_id!r} in this file")


def rule_source(text: str, rule_id: str) -> str:
    """The YAML lines of one rule, as written in its file."""
    span = _layout(text).spans.get(rule_id)
    if span is None:
        raise RuleFileError(f"no rule {rule_id!r} in this file")
    lines = text.splitlines(keepends=True)[span.start:span.end]
    return "".join(line[span.indent:] if line[:span.indent].isspace() else line for line in lines)


def replace_rule(text: str, rule_id: str, doc: dict[str, Any]) -> str:
    span = _layout(text).spans.get(rule_id)
    if span is None:
        raise RuleFileError(f"no rule {rule_id!r} in this file")
    lines = text.splitlines(keepends=True)
    edited = "".join(lines[:span.start]) + _dumped(doc, span.indent) + "".join(lines[span.end:])
    try:
        yaml.compose(edited, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        # The old rule defined an anchor (`&bands`) that other rules use: the file can only be written whole.
        return _whole_file_with(text, rule_id, doc)
    return edited


def _whole_file_with(text: str, rule_id: str, doc: dict[str, Any]) -> str:
    data = yaml.safe_load(text)
    data["rules"] = [doc if isinstance(r, dict) and r.get("id") == rule_id else r for r in data["rules"]]
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=120, default_flow_style=None)


def add_rule(text: str | None, doc: dict[str, Any]) -> str:
    """The file with `doc` appended to its rules (a new file when `text` is None)."""
    if not text or not text.strip():
        return "rules:\n" + _dumped(doc, 2)
    layout = _layout(text)
    if doc.get("id") in layout.spans:
        raise RuleFileError(f"rule {doc.get('id')!r} is already in this file")
    lines = text.splitlines(keepends=True)
    if layout.end is None:
        if layout.key_line is not None:  # `rules: []`
            before, after = lines[:layout.key_line], lines[layout.key_line + 1:]
            return "".join(before) + "rules:\n" + _dumped(doc, 2) + "".join(after)
        return text.rstrip("\n") + "\n\nrules:\n" + _dumped(doc, 2)
    end = layout.end
    if end > 0 and not lines[end - 1].endswith("\n"):
        lines[end - 1] += "\n"
    return "".join(lines[:end]) + "\n" + _dumped(doc, layout.indent) + "".join(lines[end:])


def remove_rule(text: str, rule_id: str) -> str:
    layout = _layout(text)
    span = layout.spans.get(rule_id)
    if span is None:
        raise RuleFileError(f"no rule {rule_id!r} in this file")
    lines = text.splitlines(keepends=True)
    end = span.end
    while end < len(lines) and not lines[end].strip():
        end += 1  # the blank line that separated it from the next rule
    if len(layout.spans) == 1 and layout.key_line is not None:
        return "".join(lines[:layout.key_line]) + "rules: []\n" + "".join(lines[end:])
    start = span.start
    if end >= len(lines):  # the last rule: the blank line before it separated it from the previous one
        while start > 0 and not lines[start - 1].strip():
            start -= 1
    return "".join(lines[:start] + lines[end:])
