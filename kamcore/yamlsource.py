"""Safe YAML loading that remembers where every value stood (line, column), so errors can point at it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import Problem

Path = tuple[Any, ...]  # keys and list indexes from the document root, e.g. ("rules", 0, "rows", 3, "when")

MAX_FILE_BYTES = 2 * 1024 * 1024  # a rule file is text written by people; anything bigger is a mistake
MAX_NODES = 200_000  # aliases can make a small file expand enormously ("billion laughs"); stop well before


@dataclass
class Positions:
    """Where each value of a loaded document stands in its file (1-based line and column)."""

    file: str
    marks: dict[Path, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[Path, tuple[int, int]] = field(default_factory=dict)  # where the key of a mapping entry is
    styles: dict[Path, str | None] = field(default_factory=dict)

    def nearest(self, path: Path) -> Path:
        """`path` itself if it has a position, else its nearest ancestor that has one."""
        while path and path not in self.marks:
            path = path[:-1]
        return path

    def at(self, path: Path) -> tuple[int | None, int | None]:
        """The position of `path`, or of its nearest ancestor that has one."""
        return self.marks.get(self.nearest(path), (None, None))

    def problem(self, path: Path, message: str, *, rule: str | None = None, row: str | None = None,
                hint: str | None = None, severity: str = "error", offset: int | None = None,
                at_key: bool = False) -> Problem:
        found = self.nearest(path)
        line, col = self.key_marks.get(found) if at_key and found in self.key_marks else self.at(found)
        if offset is not None and col is not None and found in self.styles:
            # Point inside a scalar: its column plus the offset, past an opening quote.
            col += offset + (1 if self.styles[found] in ("'", '"') else 0)
        return Problem(message, self.file, line, col, rule, row, hint, severity)


class YamlError(Exception):
    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem


def load(text: str, file: str) -> tuple[Any, Positions]:
    """Parse YAML text safely (no tags, no objects) and return the data plus the position of every value.
    Duplicate keys are an error, not a silent overwrite."""
    positions = Positions(file)
    if len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise YamlError(Problem(f"file is larger than {MAX_FILE_BYTES // 1024} KiB", file, 1, 1))
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        msg = " ".join(str(x) for x in (e.context, e.problem) if x)
        raise YamlError(Problem(f"not valid YAML: {msg}", file, line, col,
                                hint="check indentation and that text with ':' or '#' is quoted")) from None
    except yaml.reader.ReaderError as e:  # a control character: the reader knows only its offset in the text
        before = text[:e.position]
        line, col = before.count("\n") + 1, e.position - before.rfind("\n")
        raise YamlError(Problem(f"not valid YAML: the control character U+{e.character:04X} is not allowed",
                                file, line, col, hint="remove it (text pasted from another program?)")) from None
    if node is None:
        return None, positions
    budget = [MAX_NODES]
    try:
        return _value(node, (), positions, budget), positions
    except yaml.constructor.ConstructorError as e:
        mark = e.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise YamlError(Problem(f"unsupported YAML value: {e.problem}", file, line, col,
                                hint="only plain values, lists and mappings")) from None


_CONSTRUCTOR = yaml.SafeLoader(stream="")
_PLAIN_TAGS = {"tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"}


def _value(node: yaml.Node, path: Path, positions: Positions, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise YamlError(positions.problem(path, f"document expands to more than {MAX_NODES} values",
                                          hint="do not use YAML aliases (*name) to repeat large parts"))
    positions.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_TAGS:
        raise YamlError(positions.problem(path, f"unsupported YAML tag {node.tag!r}",
                                          hint="only plain values, lists and mappings"))
    if isinstance(node, yaml.ScalarNode):
        positions.styles[path] = node.style
        return _CONSTRUCTOR.construct_object(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return [_value(child, path + (i,), positions, budget) for i, child in enumerate(node.value)]
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlError(positions.problem(path, "a key must be a plain name, not a list or mapping"))
            key = _CONSTRUCTOR.construct_object(key_node)
            if key in out:
                line = key_node.start_mark.line + 1
                raise YamlError(Problem(f"key {key!r} appears twice", positions.file, line,
                                        key_node.start_mark.column + 1, hint="remove or rename one of them"))
            positions.key_marks[path + (key,)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _value(value_node, path + (key,), positions, budget)
        return out
    raise YamlError(positions.problem(path, "unsupported YAML node"))
