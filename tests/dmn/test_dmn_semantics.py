"""DMN models evaluated through kamcore.dmn: every hit policy and aggregation, defaults, no match, each unary-test
form, each typeRef and null inputs, in models of every namespace version (1.1 to 1.5). Section numbers are those of
the DMN 1.5 specification."""

import datetime as dt
from pathlib import Path

import pytest

from kamcore import RuleBook, dmn
from kamcore.errors import HitPolicyViolation, InputError
from kamcore.expressions.temporal import YearsMonths

MODELS = Path(__file__).parent / "models"


def model(name: str) -> str:
    return (MODELS / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("name, version", [
    ("dish_1_1.dmn", "1.1"), ("types_1_2.dmn", "1.2"), ("approval_1_3.dmn", "1.3"),
    ("unary_tests_1_4.dmn", "1.4"), ("hit_policies_1_5.dmn", "1.5"),
])
def test_every_namespace_version_is_read(name, version):
    """§6.3 / Annex: each version has its own namespace; all five load into a RuleBook."""
    m = dmn.read(model(name), name)
    assert m.version == version
    book = dmn.load(model(name), name)
    assert isinstance(book, RuleBook)
    assert {r.id for r in book.rules} == {d.rule_id for d in m.decisions.values()}


def test_the_issue_example():
    xml = model("approval_1_3.dmn")
    assert dmn.evaluate(xml, "Approval Status", {"Age": 18, "RiskCategory": "Medium"}) == "Approved"
    assert dmn.evaluate(xml, "Approval Status", {"Age": 17, "RiskCategory": "Low"}) == "Declined"
    assert dmn.evaluate(xml, "Approval Status", {"Age": 40, "RiskCategory": "High"}) == "Declined"


def test_disallowed_input_value_is_an_error():
    """§8.3.2 inputValues: a value outside them is an error, not a match."""
    with pytest.raises(InputError, match="not an allowed value"):
        dmn.evaluate(model("approval_1_3.dmn"), "Approval Status", {"Age": 30, "RiskCategory": "Unknown"})


def test_null_input_matches_no_comparison_and_gives_null_without_default():
    """§10.3.2.9: `>= 18` on null is null, not true; no rule matches and there is no default (§8.2.11)."""
    assert dmn.evaluate(model("approval_1_3.dmn"), "Approval Status", {"RiskCategory": "Low"}) is None


# --- hit policies (§8.2.11) -----------------------------------------------------------------------------------

HP = "hit_policies_1_5.dmn"


def run(decision, **inputs):
    return dmn.evaluate(model(HP), decision, inputs, file=HP)


def test_first_takes_the_first_matching_rule_and_defaults_otherwise():
    assert [run("First Tier", Score=s) for s in (85, 55, 5)] == ["A", "B", "C"]
    assert run("First Tier") == "C"  # null input: no rule matches; defaultOutputEntry


def test_unique_returns_the_single_match_and_raises_on_overlap():
    assert run("Unique Band", Score=50, Threshold=10) == "over"
    assert run("Unique Band", Score=5, Threshold=10) == "small"
    assert run("Unique Band", Score=50, Threshold=60) is None  # no match, no default
    with pytest.raises(HitPolicyViolation) as e:
        run("Unique Band", Score=5, Threshold=1)
    assert e.value.rows == ["unique_r1", "unique_r2"] and e.value.rule == "Unique Band"


def test_any_accepts_agreeing_rules_and_raises_on_conflict():
    assert run("Any Flag", Score=95, Threshold=1) == "yes"
    assert run("Any Flag", Score=50, Threshold=60) is None
    with pytest.raises(HitPolicyViolation, match="ANY"):
        run("Any Flag", Score=5, Threshold=1)


def test_priority_follows_the_output_values_order():
    assert run("Priority Level", Score=85, Segment="vip") == "high"
    assert run("Priority Level", Score=85, Segment="retail") == "medium"
    assert run("Priority Level", Score=60) == "low"
    assert run("Priority Level", Score=1) is None


def test_priority_with_several_outputs_breaks_ties_on_the_next_output():
    """Both rules give discount 10; channel's output values rank "phone" first."""
    assert run("Offer", Score=60, Segment="vip") == {"discount": 10, "channel": "phone"}
    assert run("Offer", Score=95, Segment="vip") == {"discount": 20, "channel": "mail"}
    assert run("Offer", Score=1) is None


@pytest.mark.parametrize("decision, expected", [
    ("Rule Order Perks", ["bronze", "silver", "gold"]),
    ("Output Order Perks", ["gold", "silver", "bronze"]),  # decreasing output priority
    ("Collect Perks", ["bronze", "silver", "gold"]),
])
def test_multiple_hit_policies_return_lists(decision, expected):
    assert run(decision, Score=60, Segment="vip") == expected
    assert run(decision, Score=20) == ["bronze"]
    assert run(decision, Score=1) is None


@pytest.mark.parametrize("decision, both, one, none", [
    ("Points Sum", 35, 10, None),  # rows give 10, 10, 25: the sum of the *distinct* outputs is 35
    ("Points Min", 10, 10, None),
    ("Points Max", 25, 10, None),
    ("Points Count", 2, 1, 0),  # the number of *distinct* outputs; counting nothing gives 0
])
def test_collect_aggregations(decision, both, one, none):
    """§8.2.11 C+, C<, C>, C#."""
    assert run(decision, Score=60, Segment="vip") == both
    assert run(decision, Score=20) == one
    assert run(decision, Score=1) == none


def test_collect_without_match_gives_its_default():
    assert run("Collect With Default", Segment="retail") == ["none"]
    assert run("Collect With Default", Segment="vip") == ["lounge"]


def test_an_unknown_decision_name_is_a_clear_error():
    with pytest.raises(dmn.DMNError, match="no decision named 'Tier'.*'First Tier'"):
        run("Tier", Score=1)


# --- unary tests (§8.3.3, §10.3.2.9) ----------------------------------------------------------------------

def forms(**inputs):
    return dmn.evaluate(model("unary_tests_1_4.dmn"), "Cell Forms", inputs)


def test_each_unary_test_form():
    got = forms(Amount=150, Limit=100, Region="north", Member=True, Since=dt.date(2024, 5, 1))
    assert got == ["eq", "closed", "open", "negation", "not-null", "question", "any", "text", "not-text", "member",
                   "date"]
    got = forms(Amount=250, Limit=300, Region="east", Member=False, Since=dt.date(2023, 5, 1))
    assert got == ["ne", "reversed", "values", "not-null", "compound", "any", "date-range"]
    assert forms(Amount=2) == ["lt", "le", "ne", "listed", "negation", "not-null", "any", "not-text"]
    assert forms(Amount=100) == ["le", "ne", "closed", "values", "not-null", "any", "not-text"]


def test_unary_tests_on_null_inputs():
    """§10.3.2.9.x: comparisons and ranges with null are null (no match); `null` and `-` match; equality is total,
    so `!= 150`, `not(100, 250)` and `not("east")` match a null."""
    assert forms() == ["ne", "negation", "null", "any", "not-text"]


# --- typeRefs (§7.3.2, §10.3.2.1) -------------------------------------------------------------------------

TYPED = {"Customer Name": "Ada", "Amount": 150, "Flag": True, "Day": dt.date(2024, 2, 1), "At": dt.time(9),
         "Stamp": dt.datetime(2024, 3, 1, 10), "Wait": dt.timedelta(days=2), "Term": YearsMonths(18)}


def test_each_typeref_as_input_and_output():
    got = dmn.evaluate(model("types_1_2.dmn"), "Typed", TYPED)
    assert got == {"label": "morning", "due": dt.date(2024, 3, 2), "start": dt.time(9), "next":
                   dt.datetime(2024, 3, 1, 11), "left": dt.timedelta(days=1, hours=12),
                   "extended": YearsMonths(24), "ok": True, "total": 300}


def test_typed_inputs_read_from_iso_text():
    text = {**TYPED, "Day": "2024-02-01", "At": "09:00:00", "Stamp": "2024-03-01T10:00:00", "Wait": "P2D",
            "Term": "P1Y6M"}
    assert dmn.evaluate(model("types_1_2.dmn"), "Typed", text)["label"] == "morning"


def test_typed_nulls_fall_through_to_the_catch_all_rule():
    got = dmn.evaluate(model("types_1_2.dmn"), "Typed", {})
    assert got == {"label": "other", "due": None, "start": dt.time(17, 30), "next": None,
                   "left": dt.timedelta(0), "extended": YearsMonths(0), "ok": False, "total": -1}


def test_dotted_paths_item_definitions_and_required_decisions():
    """§6.3.8: Credit Line requires Applicant Risk; inputs are dotted paths into a structured input (§7.3.2)."""
    xml = model("types_1_2.dmn")
    applicant = {"Applicant": {"Age": 30, "Monthly Income": 4000}}
    assert dmn.evaluate(xml, "Applicant Risk", applicant) == "low"
    assert dmn.evaluate(xml, "Credit Line", applicant) == 12000
    assert dmn.evaluate(xml, "Credit Line", {"Applicant": {"Age": 20, "Monthly Income": 4000}}) == 0  # default
    book = dmn.load(xml)
    order = [r.id for r in book.rules]
    assert order.index("Applicant_Risk") < order.index("Credit_Line")


def test_camunda_dmn_1_1_without_input_data():
    xml = model("dish_1_1.dmn")
    assert dmn.evaluate(xml, "Dish", {"season": "Winter", "guestCount": 4}) == "Roastbeef"
    assert dmn.evaluate(xml, "Dish", {"season": "Summer", "guestCount": 30}) == "Light Salad and a nice Steak"
    assert dmn.evaluate(xml, "Beverages", {"season": "Fall", "guestCount": 6}) == 5  # 2 + 6 / 2
    assert dmn.evaluate(xml, "Beverages", {"season": "Summer", "guestCount": 2}) is None
    note = dmn.load(xml).rule("Dish").notes[0]
    assert note == "Default in fall"


def test_load_is_a_rulebook_evaluating_many_accounts_at_once():
    book = dmn.load(model("approval_1_3.dmn"))
    ev = book.evaluate([{"Age": 30, "RiskCategory": "Low"}, {"Age": 30, "RiskCategory": "High"}, {"Age": 3}])
    assert list(ev.frame["Approval_Status"]) == ["Approved", "Declined", "Declined"]
    assert "DecisionRule_minor" in ev.explain(2).text()


def test_names_in_other_scripts_and_with_spaces():
    xml = """<definitions xmlns="https://www.omg.org/spec/DMN/20230324/MODEL/" name="审批模型">
      <inputData id="i1" name="客户 年龄"><variable id="v1" name="客户 年龄" typeRef="number"/></inputData>
      <inputData id="i2" name="Credit Limit"><variable id="v2" name="Credit Limit" typeRef="number"/></inputData>
      <decision id="d1" name="审批">
        <decisionTable id="t1" hitPolicy="FIRST">
          <input id="c1"><inputExpression id="e1" typeRef="number"><text>客户 年龄</text></inputExpression></input>
          <output id="o1" typeRef="string"/>
          <rule id="r1"><inputEntry id="u1"><text>&gt;= 18</text></inputEntry>
            <outputEntry id="l1"><text>"通过"</text></outputEntry></rule>
          <rule id="r2"><inputEntry id="u2"><text>? &lt; Credit Limit</text></inputEntry>
            <outputEntry id="l2"><text>"待定"</text></outputEntry></rule>
        </decisionTable>
      </decision>
    </definitions>"""
    assert dmn.evaluate(xml, "审批", {"客户 年龄": 30}) == "通过"
    assert dmn.evaluate(xml, "审批", {"客户 年龄": 10, "Credit Limit": 50}) == "待定"
    book = dmn.load(xml)
    rule = dmn.read(xml).rules[0]
    assert dmn.read(dmn.write(book, rule["id"])).rules[0] == rule
