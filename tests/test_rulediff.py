"""The semantic diff of two rule books: rows, moved thresholds, properties, scorecards, rankings, formulas,
the data dictionary, raw text; and the blame elements of each rule."""

import json
import textwrap
from pathlib import Path

import pytest

from kamcore import RuleBook, RuleBookError
from kamcore.rulediff import diff_books, elements, matched_elements, thresholds

ROOT = Path(__file__).resolve().parents[1]

FIELDS = textwrap.dedent("""\
    fields:
      - {name: revenue, type: number, unit: ¥, label: {zh: 销售额, en: Revenue}}
      - {name: margin, type: number}
      - {name: industry, type: string}
      - {name: orders, type: number}
""")

TIER = textwrap.dedent("""\
    rules:
      - id: tier
        kind: decision_table
        label: {zh: 客户等级, en: Account tier}
        description: Tier by revenue and margin.
        hit_policy: FIRST
        inputs: [revenue, margin]
        outputs:
          - {name: tier, type: string, values: [A, B, C], default: C}
        rows:
          - {when: {revenue: ">= 5000000", margin: ">= 0.2"}, then: A, note: big}
          - {when: {revenue: "[1000000..5000000)"}, then: B}
          - {when: {revenue: "< 1000000", margin: ">= 0.3"}, then: B}
          - {when: {margin: "< 0"}, then: C, note: loss}
""")

SCORE = textwrap.dedent("""\
    rules:
      - id: score
        kind: scorecard
        label: Value score
        indicators:
          - name: size
            expr: revenue
            weight: 60%
            bands:
              - {when: ">= 1000000", points: 100}
              - {when: "[100000..1000000)", points: 50}
              - {when: "< 100000", points: 10}
          - name: profit
            expr: margin
            weight: 40%
            bands:
              - {when: ">= 0.2", points: 100}
              - {when: "< 0.2", points: 30}
        score: value_score
        grade:
          name: grade
          cutoffs:
            - {min: 80, grade: A}
            - {min: 50, grade: B}
            - {grade: C}
      - id: classes
        kind: ranking
        label: Order classes
        method: quantile
        measure: orders
        bands:
          - {label: A, share: 20%}
          - {label: B, share: 80%}
        output: order_class
      - id: ratios
        kind: formula
        label: Ratios
        formulas:
          margin_pct: margin * 100
""")


def book(**overrides: str) -> dict[str, str]:
    """The test book with some files replaced (`tiering=...` replaces tiering.yaml); it must load."""
    files = {"fields.yaml": FIELDS, "tiering.yaml": TIER, "score.yaml": SCORE}
    files.update({f"{name}.yaml": text for name, text in overrides.items()})
    RuleBook.from_files(files)
    return files


def edited(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


def rows(diff, rule="tier"):
    return [i for i in diff.rule(rule).items if i.section == "rows"]


# --- thresholds ---------------------------------------------------------------------------------------------


def test_a_comparison_whose_bound_moves_is_a_threshold_with_direction_and_effect():
    (t,) = thresholds(">= 5000000", ">= 4000000")
    assert (t.op, t.old, t.new, t.direction, t.effect) == (">=", 5000000, 4000000, "lowered", "widened")
    (t,) = thresholds("< 0.3", "< 0.25")
    assert (t.op, t.direction, t.effect) == ("<", "lowered", "narrowed")


def test_an_interval_reads_as_two_bounds_and_either_or_both_may_move():
    (t,) = thresholds("[1000000..5000000)", "[1000000..6000000)")
    assert (t.op, t.old, t.new, t.direction, t.effect) == ("<", 5000000, 6000000, "raised", "widened")
    low, high = thresholds("(10..20]", "(15..25]")
    assert (low.op, low.effect, high.op, high.effect) == (">", "narrowed", "<=", "widened")


def test_negated_cells_negative_bounds_dates_and_lists_of_tests():
    (t,) = thresholds("not(>= 5)", "not(>= 4)")
    assert t.effect == "narrowed"  # fewer values are outside >= 4 than outside >= 5
    (t,) = thresholds(">= -5", ">= -10")
    assert (t.old, t.new, t.direction) == (-5, -10, "lowered")
    (t,) = thresholds('>= @"2024-01-01"', '>= @"2024-06-30"')
    assert t.direction == "raised" and t.new.isoformat() == "2024-06-30"
    (t,) = thresholds("< 0, > 100", "< 0, > 120")
    assert (t.op, t.old, t.new) == (">", 100, 120)


@pytest.mark.parametrize("old,new", [
    (">= 5", "> 5"),  # the operator changed, not the bound
    (">= 5", "> 4"),
    (">= 5", ">= revenue"),  # a field, not a number
    ('"A"', '"B"'),  # equality is not a threshold
    ("5", "6"),
    (">= 5", "[5..10)"),
    (">= 5", ">= 5"),
    (">= 5", 'not(>= 4)'),
    (">= 5", ">= @\"2024-01-01\""),
    ("[1..", "[2.."),  # does not parse
])
def test_anything_but_a_moved_bound_is_not_a_threshold(old, new):
    assert thresholds(old, new) == ()


# --- decision tables ----------------------------------------------------------------------------------------


def test_a_moved_threshold_in_a_table_row_is_reported_with_old_and_new_cell():
    a = book()
    b = book(tiering=edited(TIER, '">= 5000000", margin', '">= 4000000", margin'))
    diff = diff_books(a, b)
    assert [r.rule for r in diff.rules] == ["tier"]
    (row,) = rows(diff)
    assert (row.status, row.label, row.position_a, row.position_b, row.moved) == ("changed", "r1", 1, 1, False)
    (change,) = row.changes
    assert (change.field, change.old, change.new) == ("when.revenue", ">= 5000000", ">= 4000000")
    (t,) = change.thresholds
    assert (t.op, t.old, t.new, t.direction, t.effect) == (">=", 5000000, 4000000, "lowered", "widened")
    assert diff.summary()["thresholds_moved"] == 1 and diff.summary()["rows_changed"] == 1
    assert "row r1 changed" in diff.text()
    assert "revenue: >= 5000000 → >= 4000000 (threshold >= 5000000 → 4000000: lowered, matches more)" in diff.text()
    assert "阈值 >= 5000000 → 4000000: 下调, 匹配范围扩大" in diff.text("zh")


def test_rows_without_ids_align_by_content_an_inserted_row_is_one_addition():
    a = book()
    b = book(tiering=edited(TIER, "      - {when: {revenue: \"[1000000",
                            "      - {when: {revenue: \">= 10000000\"}, then: A, note: huge}\n"
                            "      - {when: {revenue: \"[1000000"))
    (row,) = rows(diff_books(a, b))
    assert (row.status, row.label, row.position_b) == ("added", "r2", 2)
    assert row.cells == {"when.revenue": ">= 10000000", "then.tier": "A", "note": "huge"}
    # r2..r4 became r3..r5: no change, and their elements follow them
    follow = matched_elements(a, b)["tier"]
    assert follow == {"header": "header", "row:r1": "row:r1", "row:r2": None, "row:r3": "row:r2",
                      "row:r4": "row:r3", "row:r5": "row:r4"}


def test_a_removed_row_and_a_changed_row_in_one_block_are_told_apart():
    a = book()
    b = book(tiering=edited(edited(TIER, '      - {when: {revenue: "[1000000..5000000)"}, then: B}\n', ""),
                            '"< 1000000", margin: ">= 0.3"}, then: B', '"< 1000000", margin: ">= 0.35"}, then: B'))
    found = {(r.status, r.label_a, r.label_b) for r in rows(diff_books(a, b))}
    assert found == {("removed", "r2", None), ("changed", "r3", "r2")}
    changed = next(r for r in rows(diff_books(a, b)) if r.status == "changed")
    assert changed.changes[0].thresholds[0].direction == "raised"


def test_rows_with_ids_match_by_id_and_a_reordered_row_is_moved():
    with_ids = textwrap.dedent("""\
        rules:
          - id: tier
            kind: decision_table
            label: Tier
            hit_policy: FIRST
            inputs: [revenue]
            outputs: [{name: tier, type: string}]
            rows:
              - {id: big, when: {revenue: ">= 100"}, then: A}
              - {id: mid, when: {revenue: ">= 50"}, then: B}
              - {id: small, when: {revenue: ">= 10"}, then: C}
    """)
    a = book(tiering=with_ids)
    reordered = with_ids.replace('      - {id: big, when: {revenue: ">= 100"}, then: A}\n', "")
    reordered = reordered.replace("      - {id: small", '      - {id: big, when: {revenue: ">= 100"}, then: A}\n'
                                  "      - {id: small")
    reordered = reordered.replace('{id: mid, when: {revenue: ">= 50"}, then: B}', '{id: mid, when: {revenue: ">= 50"}, '
                                  'then: A}')
    diff = diff_books(a, book(tiering=reordered))
    by_label = {r.label: r for r in rows(diff)}
    assert set(by_label) == {"big", "mid"}
    big, mid = by_label["big"], by_label["mid"]
    assert (big.status, big.moved, big.position_a, big.position_b, big.changes) == ("moved", True, 1, 2, ())
    # `mid` moved up one place only because `big` left: its order relative to the others is the same
    assert (mid.status, mid.moved, mid.position_a, mid.position_b) == ("changed", False, 2, 1)
    assert [(c.field, c.old, c.new) for c in mid.changes] == [("then.tier", "B", "A")]
    assert diff.summary()["rows_moved"] == 1 and diff.summary()["rows_changed"] == 1
    assert "row big moved (order 1 → 2)" in diff.text()
    renamed = reordered.replace("id: mid", "id: middle")
    items = rows(diff_books(a, book(tiering=renamed)))
    assert {(r.status, r.label) for r in items} >= {("removed", "mid"), ("added", "middle")}


def test_output_cells_notes_and_row_id_changes_are_cell_changes():
    a = book()
    b = book(tiering=edited(TIER, "then: C, note: loss", "then: B, note: losing money"))
    (row,) = rows(diff_books(a, b))
    assert [(c.field, c.old, c.new) for c in row.changes] == [("then.tier", "C", "B"),
                                                               ("note", "loss", "losing money")]
    assert "then tier: C → B" in diff_books(a, b).text()
    assert "输出 tier: C → B" in diff_books(a, b).text("zh")


def test_hit_policy_inputs_outputs_defaults_labels_and_description():
    b_text = edited(TIER, "hit_policy: FIRST", "hit_policy: UNIQUE")
    b_text = edited(b_text, "inputs: [revenue, margin]", "inputs: [revenue, margin, industry]")
    b_text = edited(b_text, "values: [A, B, C], default: C}", "values: [A, B, C, D], default: D}")
    b_text = edited(b_text, "en: Account tier}", "en: Customer tier}")
    b_text = edited(b_text, "description: Tier by revenue and margin.", "description: Tier by revenue.")
    b_text = edited(b_text, '"< 1000000", margin: ">= 0.3"}', '"< 1000000", margin: ">= 0.3", industry: "-"}')
    b_text = edited(b_text, '{when: {revenue: ">= 5000000", margin: ">= 0.2"}, then: A, note: big}',
                    '{when: {revenue: ">= 5000000", margin: ">= 0.2"}, then: A, note: big}\n'
                    '      - {when: {revenue: "[100..200)", margin: "< 0.2"}, then: D}')
    b_text = edited(b_text, '{when: {revenue: "[1000000..5000000)"}, then: B}',
                    '{when: {revenue: "[1000000..5000000)", margin: "[0..0.2)"}, then: B}')
    with pytest.raises(RuleBookError, match="overlap"):  # under UNIQUE; the diff does not need a valid book
        RuleBook.from_files({"fields.yaml": FIELDS, "tiering.yaml": b_text})
    diff = diff_books({"fields.yaml": FIELDS, "tiering.yaml": TIER}, {"fields.yaml": FIELDS, "tiering.yaml": b_text})
    rule = diff.rule("tier")
    assert {(c.field, c.old, c.new) for c in rule.changes} == {
        ("hit_policy", "FIRST", "UNIQUE"), ("label.en", "Account tier", "Customer tier"),
        ("description", "Tier by revenue and margin.", "Tier by revenue.")}
    items = {(i.section, i.status, i.label) for i in rule.items}
    assert ("inputs", "added", "industry") in items
    outputs = next(i for i in rule.items if i.section == "outputs")
    assert [(c.field, c.old, c.new) for c in outputs.changes] == [("values", ["A", "B", "C"], ["A", "B", "C", "D"]),
                                                                  ("default", "C", "D")]
    # an explicit `-` cell is the same as a left-out one; a row added above does not make the others change
    assert {(i.status, i.label) for i in rule.items if i.section == "rows"} == {("added", "r2"), ("changed", "r3")}


def test_equivalent_spellings_are_no_change_but_the_raw_diff_still_shows_the_edit():
    respelled = textwrap.dedent("""\
        rules:
          - kind: decision_table
            id: tier
            label: {en: Account tier, zh: 客户等级}
            description: "Tier by revenue and margin."
            hit_policy: first
            inputs: [{expr: revenue}, {expr: margin}]
            outputs:
              - name: tier
                type: string
                values: [A, B, C]
                default: C
            rows:
              - {when: {margin: '>= 0.2', revenue: '>= 5000000'}, then: A, note: big}
              - {when: {revenue: "[1000000..5000000)", margin: "-"}, then: B}
              - {when: {revenue: "< 1000000", margin: ">= 0.3"}, then: {tier: B}}
              - {when: {margin: "< 0"}, then: C, note: loss}
    """)
    a, b = book(), book(tiering=respelled)
    diff = diff_books(a, b)
    assert diff.rules == () and diff.fields == ()
    assert [f.path for f in diff.files] == ["tiering.yaml"] and not diff.empty
    assert elements(a)["tier"] == elements(b)["tier"]
    score_b = edited(edited(SCORE, "weight: 60%", "weight: 0.6"), "label: Value score", "label: {zh: Value score}")
    assert diff_books(a, book(score=score_b)).rules == ()


def test_a_rule_added_removed_and_moved_to_another_file():
    extra = textwrap.dedent("""\
        rules:
          - id: size
            kind: formula
            label: Size
            formulas:
              big: revenue >= 1000000
    """)
    a = book()
    b = {**book(), "extra.yaml": extra}
    diff = diff_books(a, b)
    (rule,) = diff.rules
    assert (rule.rule, rule.status, rule.file_a, rule.file_b) == ("size", "added", None, "extra.yaml")
    assert [(r.rule, r.status, r.file_a) for r in diff_books(b, a).rules] == [("size", "removed", "extra.yaml")]
    # `ratios` moves from score.yaml to extra.yaml unchanged; then also changes
    ratios = "  - id: ratios\n    kind: formula\n    label: Ratios\n    formulas:\n      margin_pct: margin * 100\n"
    moved = {**book(), "score.yaml": edited(SCORE, ratios, ""), "extra.yaml": "rules:\n" + ratios}
    (rule,) = diff_books(a, moved).rules
    assert (rule.status, rule.file_a, rule.file_b, rule.moved_file) == ("moved", "score.yaml", "extra.yaml", True)
    assert "moved from score.yaml to extra.yaml" in diff_books(a, moved).text()
    moved["extra.yaml"] = moved["extra.yaml"].replace("margin * 100", "round(margin * 100, 1)")
    (rule,) = diff_books(a, moved).rules
    assert (rule.status, rule.moved_file) == ("changed", True)
    (formula,) = rule.items
    assert (formula.section, formula.label, formula.changes[0].field) == ("formulas", "margin_pct", "expr")


# --- scorecards, rankings, formulas, dictionary ---------------------------------------------------------------


def test_scorecard_weights_bands_and_cutoffs():
    b = edited(SCORE, "weight: 60%", "weight: 50%")
    b = edited(b, "weight: 40%", "weight: 50%")
    b = edited(b, '{when: "[100000..1000000)", points: 50}', '{when: "[200000..1000000)", points: 50}')
    b = edited(b, '{when: "< 100000", points: 10}', '{when: "< 200000", points: 20}')
    b = edited(b, "{min: 80, grade: A}", "{min: 75, grade: A}")
    b = edited(b, '          - {when: "< 0.2", points: 30}\n',
               '          - {when: "[0..0.2)", points: 30}\n          - {when: "< 0", points: 0}\n')
    diff = diff_books(book(), book(score=b))
    rule = diff.rule("score")
    by = {(i.section, i.label): i for i in rule.items}
    size = by[("indicators", "size")].changes[0]
    assert (size.field, size.old, size.new, size.direction) == ("weight", 0.6, 0.5, "lowered")
    assert by[("indicators", "profit")].changes[0].direction == "raised"
    band2 = by[("indicators.size.bands", "2")].changes[0]
    assert band2.thresholds[0].op == ">=" and band2.thresholds[0].effect == "narrowed"
    band3 = {c.field: c for c in by[("indicators.size.bands", "3")].changes}
    assert band3["when"].thresholds[0].new == 200000 and band3["points"].direction == "raised"
    cutoff = by[("cutoffs", "A")].changes[0]
    assert (cutoff.field, cutoff.old, cutoff.new) == ("min", ">= 80", ">= 75")
    assert (cutoff.thresholds[0].direction, cutoff.thresholds[0].effect) == ("lowered", "widened")
    # `< 0.2 → 30` split into `[0..0.2) → 30` and `< 0 → 0`: read as a band added before one whose bound and
    # points moved, since a moved bound keeps more of a band than a new kind of test does
    assert by[("indicators.profit.bands", "2")].status == "added"
    moved = {c.field: c for c in by[("indicators.profit.bands", "3")].changes}
    assert moved["when"].thresholds[0].new == 0 and moved["points"].new == 0
    assert "band 2 of size" in diff.text() and "size 区间 2" in diff.text("zh")


def test_ranking_method_measure_within_and_band_shares():
    b = edited(SCORE, "method: quantile", "method: pareto")
    b = edited(b, "measure: orders", "measure: revenue\n    within: industry")
    b = edited(b, "{label: A, share: 20%}\n      - {label: B, share: 80%}",
               "{label: A, share: 30%}\n      - {label: B, share: 60%}\n      - {label: C, share: 10%}")
    rule = diff_books(book(), book(score=b)).rule("classes")
    assert {(c.field, c.old, c.new) for c in rule.changes} == {
        ("method", "quantile", "pareto"), ("measure", "orders", "revenue"), ("within", None, "industry")}
    bands = {(i.status, i.label): i for i in rule.items}
    assert bands[("changed", "A")].changes[0].direction == "raised"
    assert bands[("changed", "B")].changes[0].new == pytest.approx(0.6)
    assert bands[("added", "C")].cells == {"share": 0.1}


def test_formulas_changed_added_and_removed():
    b = edited(SCORE, "margin_pct: margin * 100", "margin_pts: margin * 1000\n      size: revenue / 1000")
    items = {(i.status, i.label) for i in diff_books(book(), book(score=b)).rule("ratios").items}
    assert items == {("removed", "margin_pct"), ("added", "margin_pts"), ("added", "size")}


def test_data_dictionary_fields_added_removed_and_changed():
    b = edited(FIELDS, "unit: ¥", "unit: 元")
    b = edited(b, "  - {name: orders, type: number}\n", "  - {name: region, type: string, label: 区域}\n")
    a_book = {"fields.yaml": FIELDS, "tiering.yaml": TIER}
    diff = diff_books(a_book, {"fields.yaml": b, "tiering.yaml": TIER})
    found = {(f.status, f.label): f for f in diff.fields}
    assert set(found) == {("changed", "revenue"), ("removed", "orders"), ("added", "region")}
    assert [(c.field, c.old, c.new) for c in found[("changed", "revenue")].changes] == [("unit", "¥", "元")]
    assert found[("added", "region")].cells == {"type": "string", "label.zh": "区域", "label.en": "区域"}
    assert "Data dictionary:" in diff.text() and "数据字典" in diff.text("zh")
    # the order of fields means nothing, nor does the order of a table's inputs
    reordered = "fields:\n" + "".join(reversed(FIELDS.splitlines(keepends=True)[1:]))
    swapped = edited(TIER, "inputs: [revenue, margin]", "inputs: [margin, revenue]")
    assert diff_books(a_book, {"fields.yaml": reordered, "tiering.yaml": swapped}).rules == ()
    assert diff_books(a_book, {"fields.yaml": reordered, "tiering.yaml": TIER}).fields == ()


def test_a_rule_whose_kind_changes_keeps_its_label_changes():
    a = {"fields.yaml": FIELDS,
         "r.yaml": "rules:\n  - {id: big, kind: formula, label: Big, formulas: {big: revenue}}\n"}
    b = {"fields.yaml": FIELDS, "r.yaml": "rules:\n  - id: big\n    kind: decision_table\n    label: Large\n"
         "    inputs: [revenue]\n    outputs: [big]\n    rows:\n      - {when: {revenue: '> 5'}, then: 1}\n"}
    RuleBook.from_files(b)
    rule = diff_books(a, b).rule("big")
    assert [(c.field, c.old, c.new) for c in rule.changes][:3] == [
        ("kind", "formula", "decision_table"), ("label.zh", "Big", "Large"), ("label.en", "Big", "Large")]
    assert {(i.section, i.status) for i in rule.items} == {("formulas", "removed"), ("inputs", "added"),
                                                           ("outputs", "added"), ("rows", "added")}


# --- raw text, rule tests, unreadable files, shape ---------------------------------------------------------


def test_raw_diff_per_file_and_rule_tests_only_in_the_raw_diff():
    tests_a = "tests:\n  - name: big is A\n    account: {revenue: 6000000, margin: 0.3}\n    expect: {tier: A}\n"
    tests_b = tests_a.replace("6000000", "7000000")
    a = {**book(), "tests/tiering.yaml": tests_a}
    b = {**book(tiering=edited(TIER, "note: big", "note: large")), "tests/tiering.yaml": tests_b}
    diff = diff_books(a, b)
    assert [r.rule for r in diff.rules] == ["tier"]
    files = {f.path: f for f in diff.files}
    assert set(files) == {"tiering.yaml", "tests/tiering.yaml"}
    raw = files["tiering.yaml"]
    assert (raw.status, raw.added_lines, raw.removed_lines) == ("changed", 1, 1)
    assert raw.diff.startswith("--- a/tiering.yaml\n+++ b/tiering.yaml\n@@")
    assert "-      - {when: {revenue: \">= 5000000\", margin: \">= 0.2\"}, then: A, note: big}" in raw.diff
    assert "+      - {when: {revenue: \">= 5000000\", margin: \">= 0.2\"}, then: A, note: large}" in raw.diff
    new_file = diff_books(a, {**b, "extra.yaml": "description: x\n"}).files
    assert any(f.path == "extra.yaml" and f.status == "added" and "--- /dev/null" in f.diff for f in new_file)
    assert raw.diff.rstrip("\n") in diff.text(raw=True)


def test_a_file_that_is_not_yaml_is_named_and_left_out_of_the_semantic_diff():
    broken = TIER.replace("label: {zh: 客户等级, en: Account tier}", "label: {zh: 客户等级, en: Account tier")
    diff = diff_books(book(), {**book(), "tiering.yaml": broken})
    assert diff.rules == ()  # not "tier removed"
    (problem,) = diff.problems
    assert problem.file == "tiering.yaml" and problem.line is not None and "not valid YAML" in problem.message
    assert [f.path for f in diff.files] == ["tiering.yaml"]
    assert "tiering.yaml:" in diff.text()


def test_to_dict_is_json_with_a_stable_shape():
    a = book()
    b = book(tiering=edited(TIER, '"< 0"}, then: C', '"< -0.1"}, then: C'), score=edited(SCORE, "{min: 80", "{min: 85"))
    doc = json.loads(json.dumps(diff_books(a, b).to_dict()))
    assert set(doc) == {"summary", "rules", "fields", "files", "problems"}
    assert [r["rule"] for r in doc["rules"]] == ["score", "tier"]  # by file, then place in the file
    rule = doc["rules"][1]
    assert set(rule) == {"rule", "kind", "status", "file_a", "file_b", "moved_file", "label", "changes", "items"}
    assert set(rule["items"][0]) == {"section", "status", "label", "label_a", "label_b", "position_a", "position_b",
                                     "moved", "changes", "cells"}
    assert rule["items"][0]["changes"][0]["thresholds"] == [
        {"op": "<", "old": 0, "new": -0.1, "direction": "lowered", "effect": "narrowed"}]
    assert doc["summary"]["thresholds_moved"] == 2
    assert diff_books(a, a).to_dict()["rules"] == [] and diff_books(a, a).empty
    assert diff_books(a, a).text() == "No changes." and diff_books(a, a).text("zh") == "无变更。"


# --- blame elements -----------------------------------------------------------------------------------------


def test_elements_one_per_row_band_cutoff_formula_and_the_header():
    found = elements(book())
    assert set(found) == {"tier", "score", "classes", "ratios"}
    assert list(found["tier"]) == ["header", "row:r1", "row:r2", "row:r3", "row:r4"]
    assert found["tier"]["row:r1"] == "when.margin: >= 0.2; when.revenue: >= 5000000; then.tier: A; note: big"
    assert "hit_policy: FIRST" in found["tier"]["header"] and "outputs.tier:" in found["tier"]["header"]
    assert set(found["score"]) == {"header", "band:size:1", "band:size:2", "band:size:3", "band:profit:1",
                                   "band:profit:2", "cutoff:A", "cutoff:B", "cutoff:C"}
    assert set(found["classes"]) == {"header", "band:A", "band:B"}
    assert set(found["ratios"]) == {"header", "formula:margin_pct"}


def test_an_edit_changes_only_the_elements_it_touches():
    a = elements(book())
    b = elements(book(tiering=edited(edited(TIER, '">= 5000000", margin', '">= 4000000", margin'), "hit_policy: FIRST",
                                     "hit_policy: RULE ORDER"), score=edited(SCORE, "{min: 50, grade: B}",
                                                                         "{min: 55, grade: B}")))
    changed = {(rule, key) for rule in a for key in a[rule] if a[rule][key] != b[rule].get(key)}
    assert changed == {("tier", "header"), ("tier", "row:r1"), ("score", "cutoff:B")}


def test_duplicate_labels_get_distinct_element_keys():
    two_a = edited(SCORE, "{min: 50, grade: B}", "{min: 50, grade: A}")
    keys = elements(book(score=two_a))["score"]
    assert {"cutoff:A", "cutoff:A#2"} <= set(keys)


def test_matched_elements_for_a_new_rule_and_a_changed_band():
    b = book(score=edited(SCORE, '{when: "< 100000", points: 10}', '{when: "< 100000", points: 15}'))
    follow = matched_elements(book(), {**b, "extra.yaml": "rules:\n  - {id: x, kind: formula, label: X, "
                                                           "formulas: {y: revenue * 2}}\n"})
    assert follow["x"] == {"header": None, "formula:y": None}
    assert follow["score"]["band:size:3"] == "band:size:3"


# --- the shipped book -----------------------------------------------------------------------------------------


def shipped() -> dict[str, str]:
    return {f.path: f.text for f in RuleBook.load(ROOT / "rules").files}


def test_the_shipped_book_with_one_threshold_edited():
    a = shipped()
    b = dict(a, **{"tiering.yaml": edited(a["tiering.yaml"], '{when: {revenue_12m: ">= 3000000", '
                                                                 'gross_margin: ">= 0.15"',
                                          '{when: {revenue_12m: ">= 2500000", gross_margin: ">= 0.15"')})
    RuleBook.from_files(b)
    diff = diff_books(a, b)
    (rule,) = diff.rules
    (row,) = rule.items
    assert (rule.rule, row.label, row.changes[0].field) == ("tier", "r1", "when.revenue_12m")
    ((rule_id, _, _, t),) = diff.thresholds
    assert (rule_id, t.op, t.old, t.new, t.direction) == ("tier", ">=", 3000000, 2500000, "lowered")
    ea, eb = elements(a), elements(b)
    shipped_book = RuleBook.load(ROOT / "rules")
    assert set(ea) == {r.id for r in shipped_book.rules} | {r.id for r in shipped_book.event_rules.rules}
    assert [k for k in ea["tier"] if ea["tier"][k] != eb["tier"][k]] == ["row:r1"]
    assert diff_books(a, a).empty
