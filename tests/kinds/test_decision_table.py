"""Decision tables: every DMN hit policy, defaults, output expressions, allowed values and their error cases."""

import textwrap

import pytest

from kamcore import RuleBook, RuleBookError

FIELDS = textwrap.dedent("""
    fields:
      - {name: revenue, type: number}
      - {name: score, type: number}
      - {name: industry, type: string}
""")


def book(table: str) -> RuleBook:
    return RuleBook.from_files({"fields.yaml": FIELDS, "rules.yaml": textwrap.dedent(table)})


def outputs(b: RuleBook, accounts, name):
    ev = b.evaluate(accounts, as_of="2026-01-01")
    return [ev.outputs(i)[name] for i in range(len(accounts))], ev


TIER = """
rules:
  - id: t
    kind: decision_table
    label: Tier
    hit_policy: {policy}
    inputs: [revenue, industry]
    outputs:
      - {{name: tier, type: string, values: [A, B, C], {default}}}
    rows:
{rows}
"""


def tier_table(policy, rows, default="default: C"):
    return book(TIER.format(policy=policy, default=default, rows=textwrap.indent(textwrap.dedent(rows), " " * 6)))


def test_unique_picks_the_one_matching_row_and_defaults_otherwise():
    b = tier_table("UNIQUE", """
        - {when: {revenue: ">= 100"}, then: A, note: big}
        - {when: {revenue: "[10..100)"}, then: B}
    """)
    got, ev = outputs(b, [{"revenue": 150}, {"revenue": 10}, {"revenue": 5}, {}], "tier")
    assert got == ["A", "B", "C", "C"]
    assert ev.errors == []
    step = ev.explain(0).step("t")
    assert step["hit"][0]["row"] == "r1" and step["hit"][0]["note"] == "big"
    assert ev.explain(2).step("t")["default_used"] is True


def test_no_match_without_default_is_null():
    b = tier_table("FIRST", """
        - {when: {revenue: ">= 100"}, then: A}
    """, default="label: tier")
    got, _ = outputs(b, [{"revenue": 1}], "tier")
    assert got == [None]


def test_unique_overlap_found_statically_is_an_error_with_position():
    with pytest.raises(RuleBookError) as e:
        tier_table("UNIQUE", """
            - {when: {revenue: ">= 100"}, then: A}
            - {when: {revenue: ">= 50"}, then: B}
        """)
    p = next(p for p in e.value.problems if "overlap" in p.message)
    assert p.file == "rules.yaml" and p.line == 13 and p.rule == "t" and "r1" in p.row and "r2" in p.row
    assert "FIRST" in p.hint


def test_unique_overlap_at_runtime_is_a_row_error_and_other_rows_survive():
    # `? > score` cannot be analysed statically, so only the data shows the overlap.
    b = tier_table("UNIQUE", """
        - {when: {revenue: "? > score"}, then: A}
        - {when: {revenue: ">= 100"}, then: B}
    """)
    got, ev = outputs(b, [{"revenue": 150, "score": 1}, {"revenue": 150, "score": 500}, {"revenue": 5, "score": 1}],
                      "tier")
    assert got == [None, "B", "A"]
    assert [(e.row, e.rule) for e in ev.errors] == [(0, "t")]
    assert "r1, r2" in ev.errors[0].message and "UNIQUE" in ev.errors[0].message
    assert list(ev.ok) == [False, True, True]


def test_first_takes_the_first_match_in_row_order():
    b = tier_table("FIRST", """
        - {when: {revenue: ">= 100", industry: '"finance"'}, then: A}
        - {when: {revenue: ">= 100"}, then: B}
    """)
    got, ev = outputs(b, [{"revenue": 150, "industry": "finance"}, {"revenue": 150, "industry": "retail"}], "tier")
    assert got == ["A", "B"]
    assert [m["row"] for m in ev.explain(0).step("t")["matched"]] == ["r1", "r2"]


def test_first_warns_about_a_row_that_can_never_be_reached():
    b = tier_table("FIRST", """
        - {when: {revenue: ">= 0"}, then: A}
        - {when: {revenue: "< 0"}, then: B}
        - {when: {revenue: "[5..10]"}, then: C}
    """)
    warning = next(p for p in b.problems if "r3" in (p.row or ""))
    assert warning.severity == "warning" and warning.line == 14


def test_any_accepts_equal_outputs_and_flags_conflicts():
    b = book("""
    rules:
      - id: t
        kind: decision_table
        label: t
        hit_policy: ANY
        inputs: [revenue]
        outputs: [{name: tier, type: string}]
        rows:
          - {when: {revenue: ">= 100"}, then: A}
          - {when: {revenue: "? > score"}, then: A}
          - {when: {revenue: "? < score"}, then: B}
    """)
    got, ev = outputs(b, [{"revenue": 150, "score": 1}, {"revenue": 150, "score": 200}], "tier")
    assert got == ["A", None]
    assert [e.row for e in ev.errors] == [1] and "ANY" in ev.errors[0].message


def test_any_conflict_between_literal_rows_is_caught_statically():
    with pytest.raises(RuleBookError, match="overlap|different"):
        tier_table("ANY", """
            - {when: {revenue: ">= 100"}, then: A}
            - {when: {revenue: ">= 50"}, then: B}
        """)


def test_priority_takes_the_output_listed_first_in_values():
    b = tier_table("PRIORITY", """
        - {when: {revenue: ">= 10"}, then: C}
        - {when: {revenue: ">= 100"}, then: A}
        - {when: {revenue: ">= 50"}, then: B}
    """)
    got, _ = outputs(b, [{"revenue": 150}, {"revenue": 60}, {"revenue": 20}], "tier")
    assert got == ["A", "B", "C"]


def test_priority_needs_output_values():
    with pytest.raises(RuleBookError, match="PRIORITY ranks rows"):
        book("""
        rules:
          - id: t
            kind: decision_table
            label: t
            hit_policy: PRIORITY
            inputs: [revenue]
            outputs: [tier]
            rows:
              - {when: {revenue: ">= 10"}, then: C}
        """)


ENTITLEMENTS = """
rules:
  - id: perks
    kind: decision_table
    label: Perks
    hit_policy: {policy}
    inputs: [revenue, industry]
    outputs:
      - {{name: perk, type: string, values: [manager, sla, review]}}
    rows:
      - {{when: {{revenue: ">= 10"}}, then: review}}
      - {{when: {{revenue: ">= 100"}}, then: manager}}
      - {{when: {{industry: '"finance"'}}, then: sla}}
"""


@pytest.mark.parametrize("policy, expected", [
    ("RULE ORDER", ["review", "manager", "sla"]),
    ("OUTPUT ORDER", ["manager", "sla", "review"]),
    ("COLLECT", ["review", "manager", "sla"]),
])
def test_multi_hit_policies_return_lists(policy, expected):
    b = book(ENTITLEMENTS.format(policy=policy))
    got, ev = outputs(b, [{"revenue": 150, "industry": "finance"}, {"revenue": 50}, {"revenue": 1}], "perk")
    assert got[0] == expected
    assert got[1] == ["review"]
    assert got[2] is None  # no match and no default
    assert [h["row"] for h in ev.explain(0).step("perks")["hit"]] == ["r1", "r2", "r3"]


def test_multi_hit_lists_reach_the_frame():
    b = book(ENTITLEMENTS.format(policy="COLLECT"))
    frame = b.evaluate([{"revenue": 150}], as_of="2026-01-01").frame
    assert frame.loc[0, "perk"] == ["review", "manager"]


MANY_HITS = """
rules:
  - id: perks
    kind: decision_table
    label: Perks
    hit_policy: {policy}
    inputs: [revenue, {{expr: industry, values: [finance, retail, energy]}}]
    outputs:
      - {{name: perk, type: string, values: [manager, sla, review], default: {default}}}
      - {{name: code, type: number}}
    rows:
      - {{when: {{revenue: ">= 10"}}, then: {{perk: review, code: 3}}}}
      - {{when: {{revenue: ">= 100"}}, then: {{perk: manager, code: null}}}}
      - {{when: {{industry: '"finance"'}}, then: {{perk: sla, code: 1}}}}
      - {{when: {{industry: '"energy"', revenue: "< 10"}}, then: {{perk: manager, code: 1}}}}
"""


@pytest.mark.parametrize("policy", ["RULE ORDER", "OUTPUT ORDER", "COLLECT"])
@pytest.mark.parametrize("default", ["null", "sla"])
def test_multi_hit_lists_of_many_accounts_are_those_of_each_account_alone(policy, default):
    """Over many accounts each distinct set of matched rows makes its lists once: every account still gets the
    lists it gets alone (the default, None where nothing matched and there is none, None for a disallowed
    input), and accounts matching the same rows hold equal lists."""
    b = book(MANY_HITS.format(policy=policy, default=default))
    industries = ["finance", "retail", "energy", "mining", None]
    accounts = [{"revenue": [1, 50, 150, None][k % 4], "industry": industries[k % 5]} for k in range(200)]
    ev = b.evaluate(accounts, as_of="2026-01-01")
    many = [ev.outputs(i) for i in range(len(accounts))]
    alone = [b.evaluate([a], as_of="2026-01-01").outputs(0) for a in accounts[:20]]
    assert [(m["perk"], m["code"]) for m in many[:20]] == [(a["perk"], a["code"]) for a in alone]
    assert many[10]["perk"] == (["review", "manager", "sla"] if policy != "OUTPUT ORDER" else
                                ["manager", "sla", "review"])  # 150, finance
    assert many[10]["code"] == ([3, None, 1] if policy != "OUTPUT ORDER" else [None, 1, 3])
    assert many[4]["perk"] == many[24]["perk"] == (None if default == "null" else ["sla"])  # 1, no industry
    assert many[8]["perk"] is None  # mining: not an allowed industry
    assert {e.row for e in ev.errors} == {k for k in range(200) if k % 5 == 3}


AGGREGATE = """
rules:
  - id: bonus
    kind: decision_table
    label: Bonus
    hit_policy: COLLECT
    aggregation: {agg}
    inputs: [revenue, industry]
    outputs: [{{name: bonus, type: number}}]
    rows:
      - {{when: {{revenue: ">= 10"}}, then: 100}}
      - {{when: {{revenue: ">= 100"}}, then: 250}}
      - {{when: {{industry: '"finance"'}}, then: "= score"}}
"""


@pytest.mark.parametrize("agg, expected", [
    ("SUM", [350, 100, None, None]),
    ("MIN", [100, 100, None, None]),
    ("MAX", [250, 100, None, None]),
    ("COUNT", [2, 1, 0, 1]),  # no match: C# counts no outputs, 0 (DMN 1.5 §8.2.11)
])
def test_collect_aggregations(agg, expected):
    b = book(AGGREGATE.format(agg=agg))
    accounts = [{"revenue": 150, "industry": "retail"}, {"revenue": 50}, {"revenue": 1},
                {"revenue": 1, "industry": "finance"}]  # the last: one hit whose value (score) is null
    got, _ = outputs(b, accounts, "bonus")
    assert got == expected


def test_aggregation_needs_collect_and_one_output():
    with pytest.raises(RuleBookError, match="only goes with hit_policy COLLECT"):
        book(AGGREGATE.format(agg="SUM").replace("hit_policy: COLLECT", "hit_policy: FIRST"))


def test_priority_ranks_formula_cells_per_account_and_literal_cells_alike():
    # Literal cells' ranks are fixed when the table is compiled; formula cells are ranked per account, and one
    # that gives a single value for every account (`= "B"`) is gathered like a literal.
    b = tier_table("PRIORITY", """
        - {when: {revenue: ">= 10"}, then: C}
        - {when: {revenue: ">= 50"}, then: '= if revenue >= 100 then "A" else "C"'}
        - {when: {revenue: ">= 20"}, then: '= "B"'}
    """)
    accounts = [{"revenue": 150}, {"revenue": 60}, {"revenue": 30}, {"revenue": 15}, {"revenue": 5}, {}]
    got, ev = outputs(b, accounts, "tier")
    assert got == ["A", "B", "B", "C", "C", "C"] and ev.errors == []
    assert [outputs(b, [a], "tier")[0][0] for a in accounts[:-1]] == got[:-1]  # one account at a time: the same


def test_output_cells_may_be_formulas_and_literals():
    b = book("""
    rules:
      - id: limit
        kind: decision_table
        label: Limit
        hit_policy: FIRST
        inputs: [industry]
        outputs: [{name: credit_limit, type: number, default: 0}]
        rows:
          - {when: {industry: '"finance"'}, then: "= revenue * 0.25"}
          - {when: {industry: '"retail"'}, then: "= min(revenue * 0.1, 50)"}
          - {when: {industry: '"gov"'}, then: 1000}
    """)
    got, _ = outputs(b, [{"industry": "finance", "revenue": 400}, {"industry": "retail", "revenue": 1000},
                         {"industry": "gov"}, {"industry": "energy"}], "credit_limit")
    assert got == [100, 50, 1000, 0]


def test_several_outputs_per_row():
    b = book("""
    rules:
      - id: svc
        kind: decision_table
        label: Service
        hit_policy: UNIQUE
        inputs: [revenue]
        outputs:
          - {name: sla_hours, type: number}
          - {name: manager, type: boolean}
        rows:
          - {when: {revenue: ">= 100"}, then: {sla_hours: 4, manager: true}}
          - {when: {revenue: "< 100"}, then: {sla_hours: 24, manager: false}}
    """)
    ev = b.evaluate([{"revenue": 150}, {"revenue": 5}], as_of="2026-01-01")
    assert ev.outputs(0) == {"sla_hours": 4, "manager": True}
    assert ev.outputs(1) == {"sla_hours": 24, "manager": False}


def test_formula_output_outside_allowed_values_is_a_row_error():
    b = book("""
    rules:
      - id: t
        kind: decision_table
        label: t
        hit_policy: FIRST
        inputs: [revenue]
        outputs: [{name: tier, type: string, values: [A, B]}]
        rows:
          - {when: {revenue: ">= 100"}, then: A}
          - {when: {revenue: "-"}, then: "= industry"}
    """)
    got, ev = outputs(b, [{"revenue": 150}, {"revenue": 1, "industry": "B"}, {"revenue": 1, "industry": "Z"}], "tier")
    assert got[:2] == ["A", "B"]
    assert [(e.row, e.field) for e in ev.errors] == [(2, "tier")]


def test_input_outside_its_allowed_values_is_a_row_error():
    b = book("""
    rules:
      - id: t
        kind: decision_table
        label: t
        hit_policy: FIRST
        inputs: [{expr: industry, values: [finance, retail]}]
        outputs: [{name: tier, type: string, default: C}]
        rows:
          - {when: {industry: '"finance"'}, then: A}
    """)
    got, ev = outputs(b, [{"industry": "finance"}, {"industry": "mining"}, {}], "tier")
    assert got == ["A", None, "C"]
    assert [(e.row, e.field) for e in ev.errors] == [(1, "industry")]


def test_yaml_lists_numbers_and_null_in_cells():
    b = book("""
    rules:
      - id: t
        kind: decision_table
        label: t
        hit_policy: FIRST
        inputs: [industry, revenue]
        outputs: [{name: tier, type: string, default: none}]
        rows:
          - {when: {industry: [finance, retail]}, then: listed}
          - {when: {revenue: 7}, then: seven}
          - {when: {revenue: null}, then: missing}
    """)
    got, _ = outputs(b, [{"industry": "retail"}, {"revenue": 7}, {"industry": "x"}, {"industry": "x", "revenue": 1}],
                     "tier")
    assert got == ["listed", "seven", "missing", "none"]


@pytest.mark.parametrize("rows, message, line", [
    ('- {when: {revenu: ">= 1"}, then: A}', "'revenu' is not an input", 11),
    ('- {when: {revenue: ">= 1"}, then: {tier: A, extra: 1}}', "'extra' is not an output", 11),
    ('- {when: {revenue: ">= 1"}, then: 5}', "tier should be text, this row gives a number", 11),
    ('- {when: {revenue: ">= 1"}, then: Z}', "'Z' is not one of the allowed values", 11),
    ('- {when: {revenue: ">= "}, then: A}', "ends too early", 11),
    ('- {when: {revenue: "> industry"}, then: A}', "cannot compare a number with text", 11),
])
def test_row_problems_name_line_rule_and_row(rows, message, line):
    with pytest.raises(RuleBookError) as e:
        tier_table("FIRST", rows)
    p = next(p for p in e.value.problems if message in p.message)
    assert (p.file, p.line, p.rule, p.row) == ("rules.yaml", line, "t", "r1")


def test_missing_output_in_a_row_is_an_error():
    with pytest.raises(RuleBookError, match="gives no value for output 'manager'"):
        book("""
        rules:
          - id: t
            kind: decision_table
            label: t
            inputs: [revenue]
            outputs: [sla, manager]
            rows:
              - {when: {revenue: ">= 1"}, then: {sla: 4}}
        """)


def test_cell_error_column_points_inside_the_cell():
    with pytest.raises(RuleBookError) as e:
        tier_table("FIRST", '- {when: {revenue: ">= revenu"}, then: A}')
    p = next(p for p in e.value.problems if "unknown field" in p.message)
    # the cell's quoted text starts at column 26 of line 11; `revenu` is 3 characters in
    assert (p.line, p.col) == (11, 30)
    assert "did you mean revenue?" in p.hint


def test_uncovered_input_space_is_a_warning_only_when_an_output_has_no_default():
    rows = """
        - {when: {revenue: ">= 100"}, then: A}
        - {when: {revenue: "[0..50)"}, then: B}
    """
    b = tier_table("UNIQUE", rows, default="label: tier")
    gap = next(p for p in b.problems if "no row matches" in p.message)
    assert gap.severity == "warning" and "revenue = " in gap.message and "default" in gap.hint
    assert not [p for p in tier_table("UNIQUE", rows).problems if "no row matches" in p.message]


def test_first_matching_rows_are_numpys_argmax():
    import numpy as np

    from kamcore.kinds.decision_table import _first_rows

    rng = np.random.default_rng(3)
    for _ in range(300):
        rows, accounts = int(rng.integers(1, 9)), int(rng.integers(0, 60))
        matched = rng.random((rows, accounts)) < rng.random()
        assert _first_rows(matched).tolist() == matched.argmax(axis=0).tolist()


def test_each_account_gets_a_list_of_its_own_from_a_multi_hit_table():
    """Lists are made once per set of matched rows for a large batch, then copied per account: changing one
    account's list (found in review: it changed every account that matched the same rows) leaves the others."""
    from pathlib import Path

    from kamcore.demo import synthetic_portfolio

    book = RuleBook.load(Path(__file__).resolve().parents[2] / "rules")
    ev = book.evaluate(synthetic_portfolio(100, seed=3), as_of="2026-11-23")
    lists = [ev.outputs(i)["entitlements"] for i in range(100)]
    common = max(lists, key=lists.count)
    same = [i for i in range(100) if lists[i] == common]
    assert len(same) > 5  # many accounts matched the same rows
    lists[same[0]].append("changed")
    assert all("changed" not in ev.outputs(i)["entitlements"] for i in same[1:])
