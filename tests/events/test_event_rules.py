"""Event-rule files are checked like every rule file: each problem names file, line, column, rule and a fix; the
batch loader hands `kind: event_rules` files to the event reader; `kam rules check` and `kam rules test` cover
them."""

import shutil

import pytest
from click.testing import CliRunner

from kamcore import RuleBook, RuleBookError
from kamcore.cli import main
from tests.events.conftest import RULES

GOOD = """kind: event_rules
events:
  order_placed:
    label: Order
    fields:
      amount: {type: number, required: true, min: 0}
rules:
  - id: order_points
    label: Points
    event: order_placed
    then:
      points: floor(amount / 1000 * points_multiplier)
"""


def problems(event_text):
    files = {f.path: f.text for f in RuleBook.load(RULES).files if f.path != "events.yaml"}
    with pytest.raises(RuleBookError) as e:
        RuleBook.from_files(files | {"events.yaml": event_text})
    return [str(p) for p in e.value.problems if p.is_error]


def test_the_shipped_event_rules_load_with_the_batch_book():
    book = RuleBook.load(RULES)
    rules = book.event_rules
    assert [r.id for r in rules.rules] == ["order_points", "order_streak", "payment_exposure", "overdue_alert",
                                           "overdue_hold", "renewal_bonus"]
    assert [t.id for t in rules.timers] == ["sleeping_account"]
    assert rules.expire_after_months == 24
    assert "points_multiplier" in rules.account_reads
    assert book.event_rules is not None and "order_points" not in book  # not a batch rule


def test_a_book_without_event_rules_has_none():
    files = {f.path: f.text for f in RuleBook.load(RULES).files if f.path != "events.yaml"}
    assert RuleBook.from_files(files).event_rules is None


def test_an_unknown_field_in_an_amount_points_at_it_with_a_suggestion():
    found = problems(GOOD.replace("floor(amount / 1000", "floor(amont / 1000"))
    assert found == ["events.yaml:12:21: order_points: unknown field 'amont' (hint: did you mean amount? If you "
                     'meant the text, write "amont" in double quotes)']


def test_a_condition_must_be_true_or_false_and_an_amount_a_number():
    text = GOOD.replace("    then:\n", '    when: amount + 1\n    then:\n').replace(
        "floor(amount / 1000 * points_multiplier)", "'\"many\"'")
    assert problems(text) == ["events.yaml:11:11: order_points: must give true/false, this gives a number",
                              "events.yaml:13:15: order_points: must give a number, this gives text"]


def test_unknown_event_types_keys_and_levels_are_named_where_they_stand():
    text = GOOD + """  - id: hold
    label: Hold
    event: invoice_overdue
    then: {alert: {level: freeze, message: Hold}}
  - id: streak
    label: Streak
    event: order_placed
    count: 3
    then: {points: 1}
  - id: typo
    label: Typo
    evnt: order_placed
    then: {points: 1}
"""
    found = problems(text)
    assert "events.yaml:16:27: hold: level: must be one of: follow_up, credit_alert, hold." in found
    assert "events.yaml:17:5: streak: within_days: is needed with count: (e.g. count: 3, within_days: 30 for the " \
           "third order within 30 days)" in found
    assert "events.yaml:24:5: typo: unknown key 'evnt' (hint: did you mean 'event'?)" in found
    found = problems(GOOD.replace("event: order_placed", "event: order_paced"))
    assert found == ["events.yaml:10:12: order_points: unknown event type 'order_paced' (hint: did you mean "
                     "'order_placed'?)"]


def test_an_event_field_may_not_hide_an_account_field_nor_use_a_reserved_name():
    amount = "      amount: {type: number, required: true, min: 0}"
    found = problems(GOOD.replace(amount, amount + "\n      tier: string"))
    assert found == ["events.yaml:7:7: event field 'tier' has the name of an account field (hint: rules read both; "
                     "name the event field differently, e.g. order_tier)"]
    found = problems(GOOD.replace(amount, amount + "\n      at: date"))
    assert found == ["events.yaml:7:11: at: id, account_id, type, at belong to every event; name the field "
                     "differently"]
    found = problems(GOOD.replace("min: 0}", "min: 0, unit: yuan}").replace("label: Order", "label: Order\n    typ: x"))
    assert sorted(found) == ["events.yaml:5:5: unknown key 'typ' (hint: allowed here: description, fields, label)",
                             "events.yaml:7:54: unknown key 'unit' (hint: allowed here: description, label, min, "
                             "required, type)"]


def test_rule_ids_are_unique_and_points_expiry_is_reserved():
    text = GOOD + GOOD.split("rules:\n")[1] + GOOD.split("rules:\n")[1].replace("order_points", "points_expiry", 1)
    found = problems(text)
    assert any("rule id 'order_points' is used twice" in p for p in found)
    assert any("'points_expiry' is reserved" in p for p in found)


def test_kam_rules_check_reports_event_rule_errors_with_positions(tmp_path):
    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    (folder / "events.yaml").write_text(GOOD.replace("* points_multiplier", "* points_multiplyer"), encoding="utf-8")
    result = CliRunner().invoke(main, ["rules", "check", str(folder)])
    assert result.exit_code == 1
    assert f"{folder.as_posix()}/events.yaml:12:37: order_points: unknown field 'points_multiplyer'" in result.stderr


def test_kam_rules_test_runs_event_tests_and_fails_on_a_wrong_expectation(tmp_path):
    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    result = CliRunner().invoke(main, ["rules", "test", str(folder)])
    assert result.exit_code == 0, result.output
    tests = folder / "tests" / "events.yaml"
    tests.write_text(tests.read_text(encoding="utf-8").replace("amount: -30000}", "amount: -3000}"),
                     encoding="utf-8")
    result = CliRunner().invoke(main, ["rules", "test", str(folder)])
    assert result.exit_code == 1
    assert "a payment lowers exposure" in result.stderr
    assert "expected a ledger line {'event': 'p1', 'rule': 'payment_exposure'" in result.stderr


def test_a_broken_event_test_case_is_reported_where_it_stands(tmp_path):
    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    (folder / "tests" / "events.yaml").write_text(
        "kind: event_tests\ntests:\n  - name: no events\n    account: {}\n    expect: {state: {points: 0}}\n",
        encoding="utf-8")
    result = CliRunner().invoke(main, ["rules", "test", str(folder)])
    assert result.exit_code == 1
    assert "tests/events.yaml:3:5: 'events' is required" in result.stderr
