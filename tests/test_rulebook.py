"""Loading a rule book: friendly validation with positions, dependency order, cycles, and safe YAML."""

import textwrap

import pytest

from kamcore import RuleBook, RuleBookError
from kamcore.expressions.types import Type

FIELDS = textwrap.dedent("""\
    fields:
      - {name: revenue, type: number, label: {zh: 销售额, en: Revenue}}
      - {name: profit, type: number}
      - {name: industry, type: string}
""")


def load(rules: str, **files) -> RuleBook:
    return RuleBook.from_files({"fields.yaml": FIELDS, "rules.yaml": textwrap.dedent(rules), **files})


def problems(rules: str, **files):
    with pytest.raises(RuleBookError) as e:
        load(rules, **files)
    return e.value.problems


def test_the_shipped_rule_book_loads_without_problems():
    book = RuleBook.load("rules/")
    assert [p for p in book.problems if p.is_error] == []
    assert {"tier", "credit_limit", "credit_status", "loyalty_points", "pareto_class"} <= set(book.outputs)
    assert book.revision is None
    assert book.inputs["revenue_12m"] == Type.NUMBER


def test_rules_are_ordered_by_what_they_read_not_by_where_they_are_written():
    book = load("""\
        rules:
          - id: points
            kind: formula
            label: Points
            formulas: {points: margin * 100}
          - id: margin
            kind: formula
            label: Margin
            formulas: {margin: profit / revenue}
    """)
    assert [r.id for r in book.rules] == ["margin", "points"]
    assert book.evaluate([{"revenue": 200, "profit": 50}], as_of="2026-01-01").outputs(0) == \
        {"margin": 0.25, "points": 25}


def test_a_dependency_cycle_is_reported_naming_the_cycle():
    found = problems("""\
        rules:
          - id: a
            kind: formula
            label: A
            formulas: {x: y + 1}
          - id: b
            kind: formula
            label: B
            formulas: {y: x + 1}
    """)
    cycles = [p for p in found if "dependency cycle" in p.message]
    assert {p.rule for p in cycles} == {"a", "b"}
    assert "a → b → a" in cycles[0].message or "b → a → b" in cycles[0].message
    assert cycles[0].file == "rules.yaml" and cycles[0].line in (2, 6)


def test_formulas_within_a_rule_read_earlier_ones_only():
    found = problems("""\
        rules:
          - id: f
            kind: formula
            label: F
            formulas:
              a: b * 2
              b: revenue + 1
    """)
    assert any("defined further down" in p.message and p.line == 6 for p in found)


@pytest.mark.parametrize("rules, message, line, col", [
    ("rules:\n  - id: f\n    kind: formula\n    label: F\n    formulas: {m: revenu / 2}\n",
     "unknown field 'revenu'", 5, 19),
    ("rules:\n  - id: f\n    kind: formula\n    label: F\n    formulas: {m: '\"a\" + 1'}\n", "cannot add text", 5, 20),
    ("rules:\n  - id: f\n    kind: formla\n    label: F\n", "unknown rule kind 'formla'", 3, 11),
    ("rules:\n  - id: f\n    kind: formula\n    labl: F\n    formulas: {m: 1}\n", "unknown key 'labl'", 4, 5),
    ("rules:\n  - id: f\n    kind: formula\n    formulas: {m: 1}\n", "'label' is required", 2, 5),
    ("rules:\n  - id: 2f\n    kind: formula\n    label: F\n    formulas: {m: 1}\n", "must start with a letter", 2, 9),
    ("rules:\n  - id: f\n    kind: formula\n    label: F\n    formulas: {m: 1}\n  - id: f\n    kind: formula\n"
     "    label: G\n    formulas: {n: 1}\n", "rule id 'f' is used twice", 6, 9),
])
def test_problems_carry_file_line_column_and_message(rules, message, line, col):
    found = problems(rules)
    p = next(p for p in found if message in p.message)
    assert (p.file, p.line, p.col) == ("rules.yaml", line, col), p
    assert str(p).startswith(f"rules.yaml:{line}:{col}: ")


def test_unknown_keys_get_a_did_you_mean_hint():
    found = problems("rules:\n  - id: f\n    kind: formula\n    label: F\n    formulaz: {m: 1}\n")
    assert any(p.hint == "did you mean 'formulas'?" for p in found)


def test_yaml_syntax_errors_name_the_line():
    found = problems("rules:\n  - id: f\n    kind: [formula\n")
    assert found[0].file == "rules.yaml" and found[0].line == 4 and "not valid YAML" in found[0].message


def test_duplicate_yaml_keys_are_errors_not_silent_overwrites():
    found = problems("rules:\n  - id: f\n    kind: formula\n    label: F\n    label: G\n    formulas: {m: 1}\n")
    assert found[0].message == "key 'label' appears twice" and found[0].line == 5


def test_yaml_tags_that_build_objects_are_refused():
    found = problems("rules:\n  - !!python/object/apply:os.system ['echo hacked']\n")
    assert "unsupported YAML" in found[0].message


def test_alias_expansion_is_bounded():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i, name in enumerate("bcdefg"):
        prev = "abcdefg"[i]
        bomb += f"{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
    bomb += "rules: []\n"
    found = problems("rules: []\n", **{"bomb.yaml": bomb})
    assert any("expands to more than" in p.message for p in found)


def test_two_rules_may_not_write_the_same_field():
    found = problems("""\
        rules:
          - {id: a, kind: formula, label: A, formulas: {m: 1}}
          - {id: b, kind: formula, label: B, formulas: {m: 2}}
    """)
    assert any("already computed by rule 'a'" in p.message and p.rule == "b" for p in found)


def test_output_type_must_agree_with_the_dictionary():
    found = problems(
        "rules:\n  - {id: a, kind: formula, label: A, formulas: {tier: {expr: '1', type: number}}}\n",
        **{"fields.yaml": FIELDS + "  - {name: tier, type: string}\n"})
    assert any("'tier' is number here but string in the data dictionary" in p.message for p in found)


def test_a_broken_rule_does_not_cascade_into_errors_in_rules_that_use_it():
    found = problems("""\
        rules:
          - {id: a, kind: formula, label: A, formulas: {m: revenu * 2}}
          - {id: b, kind: formula, label: B, formulas: {n: m + 1}}
    """)
    assert [p.rule for p in found if p.is_error] == ["a"]


def test_every_error_is_reported_at_once_across_files():
    found = problems("rules:\n  - {id: a, kind: formula, label: A, formulas: {m: nope}}\n",
                     **{"more.yaml": "rules:\n  - {id: b, kind: formula, label: B, formulas: {n: nada}}\n"})
    assert {(p.file, p.rule) for p in found} == {("rules.yaml", "a"), ("more.yaml", "b")}


def test_a_file_with_other_content_is_explained():
    found = problems("rules: []\n", **{"notes.yaml": "hello: world\n"})
    assert "a rule file holds `rules:`" in found[0].message


def test_load_from_a_folder_skips_the_tests_folder(tmp_path):
    (tmp_path / "fields.yaml").write_text(FIELDS, encoding="utf-8")
    (tmp_path / "rules.yaml").write_text("rules:\n  - {id: a, kind: formula, label: A, formulas: {m: revenue}}\n",
                                         encoding="utf-8")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "t.yaml").write_text("tests: []\n", encoding="utf-8")
    book = RuleBook.load(tmp_path)
    assert [r.id for r in book.rules] == ["a"]
    assert book.rules[0].area == "rules"


def test_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(RuleBookError, match="does not exist"):
        RuleBook.load(tmp_path / "nope")


def test_rule_descriptions_for_listings():
    book = RuleBook.load("rules/")
    d = book.rule("tier").describe()
    assert d["kind"] == "decision_table" and d["label"]["zh"] == "客户等级" and d["file"] == "tiering.yaml"
    assert "revenue_12m" in d["reads"] and d["outputs"] == {"tier": "string"}
