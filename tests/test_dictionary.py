"""The data dictionary: headers as people write them, units in headers, value vocabularies, and the checks on
fields.yaml itself."""

from pathlib import Path

import pytest

from kamcore import RuleBook, RuleBookError
from kamcore.dictionary import Dictionary, FieldDef, FieldValue, HeaderMatch, header_key
from kamcore.expressions.types import Type


@pytest.mark.parametrize(("a", "b"), [
    ("Revenue (12m)", "revenue（12M）"), ("Revenue (12m)", " REVENUE  (12m) "), ("近12个月销售额", "近１２个月销售额"),
    ("DSO (days)", "ＤＳＯ（ｄａｙｓ）"), ("account_id", "Account ID"), ("*客户名称", "客户名称："),
])
def test_header_key_ignores_case_space_width_and_bracket_forms(a, b):
    assert header_key(a) == header_key(b)


def test_header_key_keeps_what_tells_fields_apart():
    assert header_key("Revenue (12m)") != header_key("Revenue (prior 12m)")
    assert header_key("近12个月销售额") != header_key("近12个月毛利")


REVENUE = FieldDef("revenue_12m", Type.NUMBER, "¥", {"zh": "近12个月销售额", "en": "Revenue (12m)"},
                   aliases=("销售额",))
NAME = FieldDef("account_name", Type.STRING, label={"zh": "客户名称", "en": "Account name"})


@pytest.mark.parametrize(("header", "match"), [
    ("revenue_12m", HeaderMatch("revenue_12m")), ("销售额", HeaderMatch("revenue_12m")),
    ("销售额（元）", HeaderMatch("revenue_12m", 0)), ("销售额(万元)", HeaderMatch("revenue_12m", 4)),
    ("销售额（亿元）", HeaderMatch("revenue_12m", 8)), ("Revenue (12m) (千元)", HeaderMatch("revenue_12m", 3)),
    ("销售额(单位:万元)", HeaderMatch("revenue_12m", 4)), ("销售额 (%)", HeaderMatch("revenue_12m", -2)),
    ("销售额(美元)", None), ("客户名称(万元)", None), ("客户名称", HeaderMatch("account_name")), ("Umsatz", None),
])
def test_match_header(header, match):
    assert Dictionary([REVENUE, NAME]).match_header(header) == match


def test_vocabulary_spellings_map_to_codes_and_back_to_labels():
    industry = FieldDef("industry", Type.STRING, values=(
        FieldValue("manufacturing", {"zh": "制造业", "en": "Manufacturing"}, ("制造",)),
        FieldValue("energy", {"zh": "能源", "en": "Energy"})))
    d = Dictionary([industry])
    spellings = d.canonical_values("industry")
    assert {spellings[header_key(s)] for s in ("制造业", "制造", "MANUFACTURING", "manufacturing")} == {"manufacturing"}
    assert d.value_label("industry", "energy", "zh") == "能源"
    assert d.value_label("industry", "mining", "zh") == "mining"  # no label: as it is
    assert d.canonical_values("nope") is None


@pytest.fixture(scope="module")
def shipped():
    return RuleBook.load("rules/")


def test_the_shipped_dictionary_lists_every_field_the_book_reads_and_writes(shipped):
    book = shipped
    assert set(book.inputs) <= set(book.dictionary.fields)
    assert set(book.outputs) <= set(book.dictionary.fields)
    for name, d in book.dictionary.fields.items():
        assert d.label.get("zh") and d.label.get("en"), name
    assert book.problems == []  # no warnings either: no header means two fields


@pytest.mark.parametrize(("header", "field"), [
    ("客户编号", "account_id"), ("客户名称", "account_name"), ("行业", "industry"), ("区域", "region"),
    ("近12个月销售额", "revenue_12m"), ("近12个月毛利", "gross_profit_12m"), ("上年同期销售额", "revenue_prev_12m"),
    ("应收账款余额", "receivables"), ("未结订单金额", "open_orders"), ("平均回款天数", "dso_days"), ("DSO", "dso_days"),
    ("信用评分", "credit_score"), ("首次合作日期", "first_order_date"), ("最近下单日期", "last_order_date"),
    ("下单次数", "order_count_12m"), ("投诉次数", "complaint_count"), ("合同到期日", "contract_end_date"),
    ("Revenue (12m)", "revenue_12m"), ("Gross profit (12m)", "gross_profit_12m"), ("Receivables", "receivables"),
    ("Revenue (prior 12m)", "revenue_prev_12m"), ("Open orders", "open_orders"), ("DSO (days)", "dso_days"),
    ("Customer since", "first_order_date"), ("Complaints (12m)", "complaint_count"),
    ("Contract end date", "contract_end_date"), ("近12个月销售额（万元）", "revenue_12m"),
])
def test_the_shipped_dictionary_knows_the_usual_headers(shipped, header, field):
    assert shipped.dictionary.field_for_header(header) == field


def test_a_header_claimed_by_two_fields_is_a_warning_naming_both():
    book = RuleBook.from_files({"fields.yaml": """\
fields:
  - {name: revenue_12m, type: number, aliases: [销售额]}
  - {name: revenue_prev_12m, type: number, aliases: [销售额, 上年销售额]}
"""})
    [warning] = book.problems
    assert warning.severity == "warning" and warning.line == 3
    assert "'销售额' already means revenue_12m" in warning.message
    assert book.dictionary.field_for_header("销售额") == "revenue_12m"


def test_a_malformed_value_is_a_problem_at_its_place():
    with pytest.raises(RuleBookError) as e:
        RuleBook.from_files({"fields.yaml": """\
fields:
  - name: industry
    type: string
    values:
      - manufacturing
      - {value: energy, labels: {zh: 能源}}
      - [a, b]
"""})
    found = sorted((p.line, p.message) for p in e.value.problems)
    assert found[0][0] == 6 and "labels" in found[0][1]
    assert found[1][0] == 7 and "must be a value" in found[1][1]


def test_headers_and_texts_read_are_remembered_only_when_short():
    """The dictionary remembers headers and vocabulary texts it has folded (requests repeat them), but never a long
    one: found in review, a request of 5 MB headers or industry names would otherwise stay in memory."""
    book = RuleBook.load(Path(__file__).resolve().parents[1] / "rules")
    huge = "近" * 5_000_000
    account = {huge: 1, "industry": huge, "近12个月销售额（万元）": 12.5, "行业": "制造业"}
    ev = book.evaluate([account], as_of="2026-11-23")
    assert ev.outputs(0)["tier"] is not None
    kept_headers = [h for h in book.dictionary._seen_headers if isinstance(h, str)]
    kept_texts = [text for _, text in book.dictionary._seen_values]
    assert max(map(len, kept_headers + kept_texts)) <= 256
    assert "近12个月销售额（万元）" in kept_headers and "制造业" in kept_texts  # short ones are remembered
    assert book.dictionary.match_header("近12个月销售额（万元）") == HeaderMatch("revenue_12m", 4)
    assert book.dictionary.canonical("industry", huge) == huge
