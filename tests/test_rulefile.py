"""Editing one rule in a file's text keeps every other line as written, and the result still loads."""

from pathlib import Path

import pytest
import yaml

from kamcore.rulebook import RuleBook
from kamcore.rulefile import RuleFileError, add_rule, remove_rule, replace_rule, rule_doc, rule_ids, rule_source

RULES = Path(__file__).resolve().parents[1] / "rules"

TEXT = """# Loyalty rules — comments stay where they are
description: 忠诚度积分 / Loyalty
rules:
  - id: first
    kind: formula
    label: First
    formulas: {a: 1}   # inline comment

  # a comment about the second rule
  - id: second
    kind: formula
    label: Second
    formulas: {b: 2}
"""


def test_rule_source_is_the_rule_as_written():
    assert rule_ids(TEXT) == ["first", "second"]
    first = "- id: first\n  kind: formula\n  label: First\n  formulas: {a: 1}   # inline comment\n"
    assert rule_source(TEXT, "first") == first


def test_replace_keeps_every_other_line():
    new = replace_rule(TEXT, "first", {"id": "first", "kind": "formula", "label": "第一", "formulas": {"a": 3}})
    assert yaml.safe_load(new)["rules"][0] == {"id": "first", "kind": "formula", "label": "第一", "formulas": {"a": 3}}
    assert "# a comment about the second rule" in new and new.endswith(TEXT.split("# a comment")[1])
    assert new.startswith("# Loyalty rules")


def test_add_and_remove():
    added = add_rule(TEXT, {"id": "third", "kind": "formula", "label": "Third", "formulas": {"c": "a + b"}})
    assert rule_ids(added) == ["first", "second", "third"]
    assert remove_rule(added, "third") == TEXT
    removed = remove_rule(TEXT, "first")
    assert rule_ids(removed) == ["second"] and "# a comment about the second rule" in removed
    emptied = remove_rule(removed, "second")
    assert yaml.safe_load(emptied)["rules"] == [] and emptied.startswith("# Loyalty rules")
    assert rule_ids(add_rule(emptied, {"id": "x", "kind": "formula", "label": "X", "formulas": {"x": 1}})) == ["x"]
    assert rule_ids(add_rule(None, {"id": "y", "kind": "formula", "label": "Y", "formulas": {"y": 1}})) == ["y"]


def test_errors():
    with pytest.raises(RuleFileError, match="no rule"):
        replace_rule(TEXT, "missing", {})
    with pytest.raises(RuleFileError, match="already"):
        add_rule(TEXT, {"id": "first"})
    with pytest.raises(RuleFileError, match="block list"):
        replace_rule("rules: [{id: a}]\n", "a", {"id": "a"})
    with pytest.raises(RuleFileError, match="not valid YAML"):
        rule_ids("rules: [")


def test_round_trip_over_the_shipped_book():
    files = {p.name: p.read_text(encoding="utf-8") for p in RULES.glob("*.yaml")}
    shipped = RuleBook.from_files(files)
    for name, text in files.items():
        for rule_id in (r for r in rule_ids(text) if r in shipped):  # batch rules (event rules load elsewhere)
            doc = rule_doc(text, rule_id)
            edited = dict(files, **{name: replace_rule(text, rule_id, doc)})
            book = RuleBook.from_files(edited)
            assert book.rule(rule_id).spec == shipped.rule(rule_id).spec
