"""Rule tests kept beside the rules: example accounts with expected outputs and errors."""

import datetime as dt

import pytest

from kamcore import RuleBook, ruletests
from kamcore.rulebook import SourceFile

FIELDS = """
fields:
  - {name: revenue, type: number}
  - {name: last_order, type: date}
"""
RULES = """
rules:
  - id: size
    kind: decision_table
    label: Size
    hit_policy: FIRST
    inputs: [revenue]
    outputs:
      - {name: size, type: string, default: small}
    rows:
      - {when: {revenue: ">= 100"}, then: big}
  - id: derived
    kind: formula
    label: Derived
    formulas:
      double: revenue * 2
      idle_days: days_between(last_order, today())
"""


@pytest.fixture(scope="module")
def book():
    return RuleBook.from_files({"fields.yaml": FIELDS, "rules.yaml": RULES})


def run_cases(book, text, path="tests/cases.yaml"):
    return ruletests.run(book, [SourceFile(path, text)])


def only_result(run):
    assert run.problems == []
    [result] = run.results
    return result


def test_a_passing_case(book):
    run = run_cases(book, "tests:\n  - name: big account\n    account: {revenue: 150}\n"
                          "    expect: {size: big, double: 300}\n")
    result = only_result(run)
    assert result.passed and result.failures == []
    assert (result.name, result.file, result.line) == ("big account", "tests/cases.yaml", 2)
    assert run.passed
    assert str(result) == "tests/cases.yaml:2: big account: ok"


def test_a_failing_case_names_the_output_expected_and_got(book):
    run = run_cases(book, "tests:\n  - name: ok\n    account: {revenue: 1}\n    expect: {size: small}\n"
                          "  - name: wrong size\n    account: {revenue: 50}\n    expect: {size: big, double: 100}\n")
    assert not run.passed
    [failed] = run.failed
    assert (failed.name, failed.line) == ("wrong size", 5)
    assert failed.failures == ["account 1: size expected 'big', got 'small'"]
    assert str(failed) == "tests/cases.yaml:5: wrong size\n    account 1: size expected 'big', got 'small'"
    assert [r.passed for r in run.results] == [True, False]


def test_numbers_compare_with_float_tolerance_but_not_loosely(book):
    run = run_cases(book, "tests:\n  - name: close\n    account: {revenue: 0.1}\n    expect: {double: 0.2}\n"
                          "  - name: too far\n    account: {revenue: 0.1}\n    expect: {double: 0.2001}\n")
    assert [r.passed for r in run.results] == [True, False]


def test_accounts_list_with_one_expectation_per_account(book):
    run = run_cases(book, "tests:\n  - name: two\n    accounts: [{revenue: 150}, {revenue: 2}]\n"
                          "    expect: [{size: big}, {size: small, double: 4}]\n")
    assert only_result(run).passed
    run = run_cases(book, "tests:\n  - name: two\n    accounts: [{revenue: 150}, {revenue: 2}]\n"
                          "    expect: [{size: big}, {size: big}]\n")
    assert only_result(run).failures == ["account 2: size expected 'big', got 'small'"]


def test_expected_null_output(book):
    run = run_cases(book, "tests:\n  - name: no date\n    account: {revenue: 1}\n    expect: {idle_days: null}\n")
    assert only_result(run).passed


def test_as_of_sets_what_today_means(book):
    text = ("tests:\n  - name: idle\n    as_of: 2025-03-01\n    account: {last_order: 2025-02-01}\n"
            "    expect: {idle_days: 28}\n")
    assert only_result(run_cases(book, text)).passed
    default = only_result(run_cases(book, text.replace("    as_of: 2025-03-01\n", "")))
    idle = (dt.date(2026, 1, 1) - dt.date(2025, 2, 1)).days  # without as_of a case runs on 2026-01-01
    assert default.failures == [f"account 1: idle_days expected 28, got {idle}"]


def test_expect_errors_matches_a_row_error(book):
    run = run_cases(book, "tests:\n  - name: bad cell\n    account: {revenue: lots}\n"
                          "    expect_errors: [{row: 0, field: revenue}]\n")
    assert only_result(run).passed


def test_expect_errors_fails_when_no_such_error_happens(book):
    run = run_cases(book, "tests:\n  - name: no error\n    account: {revenue: 5}\n"
                          "    expect_errors: [{row: 0, field: revenue}]\n")
    [failure] = only_result(run).failures
    assert failure == "expected an error {'row': 0, 'field': 'revenue'}, got none"


def test_expect_errors_must_match_every_given_key(book):
    run = run_cases(book, "tests:\n  - name: other row\n    accounts: [{revenue: 1}, {revenue: lots}]\n"
                          "    expect_errors: [{row: 0, field: revenue}]\n")
    [failure] = only_result(run).failures
    assert failure.startswith("expected an error {'row': 0, 'field': 'revenue'}, got [")
    assert "row 1: revenue: 'lots' is not a number" in failure


def test_an_error_nobody_expected_fails_the_case(book):
    run = run_cases(book, "tests:\n  - name: surprise\n    account: {revenue: lots}\n    expect: {size: small}\n")
    failures = only_result(run).failures
    assert "account 1: size expected 'small', got None" in failures
    assert any(f.startswith("unexpected error: row 0: revenue: 'lots' is not a number") for f in failures)


def test_an_unknown_output_name_in_expect_is_a_failure(book):
    run = run_cases(book, "tests:\n  - name: typo\n    account: {revenue: 5}\n    expect: {sise: small}\n")
    assert only_result(run).failures == ["account 1: 'sise' is not an output of any rule"]
    assert not run.passed


def test_a_malformed_case_is_a_problem_with_its_line(book):
    run = run_cases(book, "tests:\n  - name: fine\n    account: {revenue: 1}\n    expect: {size: small}\n"
                          "  - name: both forms\n    account: {revenue: 1}\n    accounts: [{revenue: 1}]\n"
                          "    expect: {size: small}\n"
                          "  - account: {revenue: 1}\n    expect: {size: small}\n")
    assert [r.name for r in run.results] == ["fine"]
    assert [(p.file, p.line) for p in run.problems] == [("tests/cases.yaml", 5), ("tests/cases.yaml", 9)]
    assert "give either `account` (one) or `accounts` (a list)" in run.problems[0].message
    assert all(p.is_error for p in run.problems)
    assert not run.passed  # problems fail the run even though every case that ran passed


def test_expect_shape_must_fit_account_or_accounts(book):
    run = run_cases(book, "tests:\n  - name: list wants list\n    accounts: [{revenue: 1}]\n"
                          "    expect: {size: small}\n")
    [problem] = run.problems
    assert problem.line is not None and problem.line >= 2
    assert "with `accounts`, expect a list" in problem.message


def test_a_file_without_tests_or_with_bad_yaml_is_a_problem(book):
    run = ruletests.run(book, [SourceFile("tests/a.yaml", "cases: []\n"),
                               SourceFile("tests/b.yaml", "tests:\n  - name: x\n    account: {revenue: 1\n")])
    assert run.results == []
    a, b = run.problems
    assert (a.file, a.line, a.message) == ("tests/a.yaml", 1, "a test file holds `tests:`, a list of test cases")
    assert b.file == "tests/b.yaml" and b.line in (3, 4) and b.message.startswith("not valid YAML")


def test_case_files_and_run_folder_read_the_tests_folder(tmp_path):
    (tmp_path / "fields.yaml").write_text(FIELDS, encoding="utf-8")
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "size.yaml").write_text(
        "tests:\n  - name: big\n    account: {revenue: 100}\n    expect: {size: big}\n", encoding="utf-8")
    (tmp_path / "tests" / "notes.txt").write_text("not a test file", encoding="utf-8")
    assert [f.path for f in ruletests.case_files(tmp_path)] == ["tests/size.yaml"]
    run = ruletests.run_folder(tmp_path)
    assert run.passed and [r.name for r in run.results] == ["big"]
    assert ruletests.case_files(tmp_path / "tests") == []


def test_the_shipped_rule_tests_pass():
    from pathlib import Path

    run = ruletests.run_folder(Path(__file__).resolve().parents[1] / "rules")
    assert run.problems == []
    assert [str(r) for r in run.failed] == []
    assert len(run.results) >= 10
