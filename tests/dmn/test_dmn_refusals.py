"""What kamcore.dmn refuses (UnsupportedFeature naming element, id and line) and the files it cannot read (DMNError
naming file and line): never a silent wrong answer."""

import re
from pathlib import Path

import pytest

from kamcore import dmn
from kamcore.errors import KamError, UnsupportedFeature

MODELS = Path(__file__).parent / "models"


def line_of(name: str, element_id: str) -> int:
    """The line a model's element with this id starts on, found independently of the parser."""
    for number, line in enumerate((MODELS / name).read_text(encoding="utf-8").splitlines(), start=1):
        if re.search(rf'\bid="{re.escape(element_id)}"', line):
            return number
    raise AssertionError(f"{element_id} not in {name}")


@pytest.mark.parametrize("name, element, element_id, words", [
    ("refuse_context.dmn", "context", "ctx_1", "boxed context"),  # §10.2.1.4
    ("refuse_bkm.dmn", "businessKnowledgeModel", "bkm_1", "business knowledge"),  # §6.3.10
    ("refuse_knowledge_requirement.dmn", "knowledgeRequirement", "kr_1", "BKMs"),  # §6.3.11
    ("refuse_invocation.dmn", "invocation", "inv_1", "invocation"),  # §10.2.1.6
    ("refuse_literal_expression.dmn", "literalExpression", "lit_1", "literal expression"),  # §10.2.1.2
    ("refuse_decision_service.dmn", "decisionService", "ds_1", "decision services"),  # §6.3.12
    ("refuse_for.dmn", "outputEntry", "out_d_for", "`for ... in ... return`"),  # §10.3.2.14
    ("refuse_some.dmn", "inputEntry", "entry_d_some", "`some ... satisfies`"),  # §10.3.2.15
    ("refuse_every.dmn", "inputEntry", "entry_d_every", "`every ... satisfies`"),  # §10.3.2.15
    ("refuse_function.dmn", "outputEntry", "out_d_fn", "function decimal()"),  # §10.3.4
    ("refuse_date_number.dmn", "rule", "r_d_date", "date arithmetic with plain numbers"),  # §10.3.2.3
    ("refuse_time_zone.dmn", "outputEntry", "out_d_zone", "time zone"),  # §10.3.2.3.4
    ("refuse_language.dmn", "inputExpression", "ie_juel", "expression language 'juel'"),  # §8.3.2
    ("refuse_input_expression.dmn", "inputExpression", "ie_calc", "not a name or dotted path"),
    ("refuse_collection_type.dmn", "inputExpression", "ie_list", "structure or collection"),  # §7.3.2
    ("refuse_multi_aggregation.dmn", "decisionTable", "t_agg", "aggregates exactly one output"),
    ("refuse_default_expression.dmn", "defaultOutputEntry", "def_1", "defaults are plain values"),
])
def test_each_refusal_names_element_id_and_line(name, element, element_id, words):
    xml = (MODELS / name).read_bytes()
    with pytest.raises(UnsupportedFeature) as e:
        dmn.load(xml, name)
    err = e.value
    assert (err.element, err.id, err.line, err.file) == (element, element_id, line_of(name, element_id), name)
    assert words in str(err)
    assert str(err).startswith(f"{name}:{err.line}: <{element} id=\"{element_id}\">")


def test_refusals_reach_evaluate_and_the_cli_too():
    with pytest.raises(UnsupportedFeature):
        dmn.evaluate((MODELS / "refuse_context.dmn").read_text(), "Boxed", {})


def test_not_well_formed_xml_names_the_line():
    with pytest.raises(dmn.DMNError) as e:
        dmn.load((MODELS / "bad_not_well_formed.dmn").read_bytes(), "bad_not_well_formed.dmn")
    assert e.value.where.line == 5 and "not well-formed XML" in str(e.value)


def test_an_xml_bomb_is_refused_before_any_expansion():
    """Billion laughs: entity declarations are never read (defusedxml, DTDs forbidden)."""
    with pytest.raises(dmn.DMNError, match="billion laughs") as e:
        dmn.load((MODELS / "bad_billion_laughs.dmn").read_bytes(), "bad_billion_laughs.dmn")
    assert e.value.where.line == 2


def test_external_entities_are_refused():
    xml = ('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           '<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/">&x;</definitions>')
    with pytest.raises(dmn.DMNError, match="DTD or entities"):
        dmn.load(xml)


def test_an_unknown_namespace_names_the_known_ones():
    with pytest.raises(UnsupportedFeature) as e:
        dmn.load((MODELS / "bad_unknown_namespace.dmn").read_bytes(), "bad_unknown_namespace.dmn")
    assert "20990101" in str(e.value) and "1.5: https://www.omg.org/spec/DMN/20230324/MODEL/" in str(e.value)
    assert e.value.line == 3


def test_a_decision_without_a_name_names_its_line_and_id():
    with pytest.raises(dmn.DMNError) as e:
        dmn.load((MODELS / "bad_missing_decision_name.dmn").read_bytes(), "bad_missing_decision_name.dmn")
    assert (e.value.where.line, e.value.where.id) == (3, "d_nameless") and "has no name" in str(e.value)


def test_not_a_dmn_file():
    with pytest.raises(dmn.DMNError, match="not a DMN model"):
        dmn.load("<html><body/></html>")


def test_errors_inside_a_table_point_at_the_dmn_rule():
    """A cell the engine rejects (here a text compared with a number) is reported at the DMN rule's line."""
    xml = (MODELS / "approval_1_3.dmn").read_text().replace("<text>&gt;= 18</text></inputEntry>\n        "
                                                            '<inputEntry id="UnaryTests_4">',
                                                            '<text>"adult"</text></inputEntry>\n        '
                                                            '<inputEntry id="UnaryTests_4">')
    with pytest.raises(dmn.DMNError) as e:
        dmn.load(xml, "approval.dmn")
    assert e.value.where.id == "DecisionRule_adult_high" and "cannot compare" in str(e.value)
    assert isinstance(e.value, KamError)


def test_an_item_definition_that_names_itself_is_refused_not_looped():
    xml = ('<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" name="m">'
           '<itemDefinition name="tLoop" typeRef="tLoop"/>'
           '<decision id="d" name="D"><decisionTable id="t"><input id="i"><inputExpression id="ie" typeRef="tLoop">'
           '<text>X</text></inputExpression></input><output id="o" name="y"/></decisionTable></decision>'
           '</definitions>')
    with pytest.raises(UnsupportedFeature, match="unknown typeRef 'tLoop'"):
        dmn.load(xml)


def test_dmn_names_become_distinct_field_identifiers():
    from kamcore.dmn.feel import identifier

    assert identifier("Risk Category") == "Risk_Category"
    assert identifier("Applicant.Monthly Income") == "Applicant_Monthly_Income"
    assert identifier("2nd score") == "_2nd_score"
    chinese = {identifier("年龄"), identifier("收入"), identifier("年龄 2")}
    assert len(chinese) == 3 and all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", c) for c in chinese)
