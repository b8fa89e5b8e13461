"""The `kam` command: rules check / rules test exit codes and messages, evaluate's output files, the demo."""

import re
import shutil
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from kamcore.cli import main

ROOT = Path(__file__).resolve().parents[1]
RULES = str(ROOT / "rules")
ACCOUNTS_CSV = """account_id,revenue_12m,gross_profit_12m,dso_days,credit_score,industry
C1,12000000,3600000,45,80,retail
C2,2000000,400000,100,50,finance
C3,abc,100,10,70,retail
C4,600000,240000,20,90,finance
C5,15000000,1200000,30,60,energy
"""


def kam(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def accounts_csv(tmp_path):
    path = tmp_path / "accounts.csv"
    path.write_text(ACCOUNTS_CSV, encoding="utf-8")
    return path


def copy_of_rules(tmp_path):
    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    return folder


# --- rules check / rules test ----------------------------------------------------------------------------------


def test_rules_check_on_the_shipped_book_exits_0():
    result = kam("rules", "check", RULES)
    assert result.exit_code == 0, result.output
    assert re.search(r": 22 rules OK$", result.stdout.strip())


def test_rules_check_on_a_broken_book_exits_1_naming_every_file(tmp_path, monkeypatch):
    book = tmp_path / "book"
    book.mkdir()
    shutil.copy(ROOT / "rules" / "fields.yaml", book / "fields.yaml")
    (book / "unknown_field.yaml").write_text(
        "rules:\n  - id: bad_ref\n    kind: formula\n    label: Bad\n    formulas:\n"
        "      x: revenue_12m + no_such_field\n", encoding="utf-8")
    (book / "syntax.yaml").write_text(
        "rules:\n  - id: ok\n    kind: formula\n    label: \"unterminated\n    formulas: {y: 1}\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = kam("rules", "check", "book")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    # the column points at the unknown name inside the expression
    assert any(x.startswith("book/unknown_field.yaml:6:24: bad_ref: unknown field 'no_such_field'") for x in lines)
    assert any(re.fullmatch(r"book/syntax\.yaml:\d+:\d+: not valid YAML: .*", x) for x in lines)
    assert lines[-1] == "Error: 2 error(s) in book"


def test_rules_check_prints_warnings_but_exits_0(tmp_path):
    folder = copy_of_rules(tmp_path)
    tiering = folder / "tiering.yaml"
    tiering.write_text(tiering.read_text(encoding="utf-8").replace("weight: 25%", "weight: 15%"), encoding="utf-8")
    result = kam("rules", "check", folder)
    assert result.exit_code == 0, result.output
    assert re.search(r"tiering\.yaml:\d+:\d+: account_score: warning: weights add up to 0\.9", result.stdout)
    assert "1 warning(s)" in result.stdout


def test_rules_test_on_the_shipped_book_exits_0():
    result = kam("rules", "test", RULES)
    assert result.exit_code == 0, result.output
    assert re.search(r"^\d+ passed, 0 failed$", result.stdout.strip())


def test_rules_test_with_a_failing_case_exits_1(tmp_path):
    folder = copy_of_rules(tmp_path)
    (folder / "tests" / "extra.yaml").write_text(
        "tests:\n"
        "  - name: small accounts are not tier A\n"
        "    account: {revenue_12m: 100, gross_profit_12m: 50}\n"
        "    expect: {tier: A}\n", encoding="utf-8")
    result = kam("rules", "test", folder)
    assert result.exit_code == 1
    assert "tests/extra.yaml:2: small accounts are not tier A" in result.stderr
    assert "account 1: tier expected 'A', got 'D'" in result.stderr
    assert re.search(r"\d+ passed, 1 failed", result.stdout)


def test_rules_test_on_a_broken_book_exits_1(tmp_path):
    folder = copy_of_rules(tmp_path)
    (folder / "broken.yaml").write_text("rules: [\n", encoding="utf-8")
    result = kam("rules", "test", folder)
    assert result.exit_code == 1
    assert "broken.yaml:" in result.stderr


# --- evaluate ----------------------------------------------------------------------------------------------------


def test_evaluate_writes_good_rows_and_the_bad_row_to_an_errors_file(tmp_path):
    out = tmp_path / "result.csv"
    result = kam("evaluate", accounts_csv(tmp_path), "-o", out, "--rules", RULES, "--as-of", "2026-01-01")
    assert result.exit_code == 0, result.output
    written = pd.read_csv(out, encoding="utf-8-sig")
    assert written["account_id"].tolist() == ["C1", "C2", "C4", "C5"]
    assert written["tier"].tolist() == ["A", "C", "C", "B"]
    assert {"credit_limit", "credit_status", "value_grade", "pareto_class", "loyalty_points", "segment",
            "entitlements", "next_actions"} <= set(written.columns)
    errors = pd.read_csv(tmp_path / "result.errors.csv", encoding="utf-8-sig")
    assert errors[["row", "line", "field"]].values.tolist() == [[3, 4, "revenue_12m"]]
    assert "'abc'" in errors["message"][0]
    assert "accounts.csv:4: input/revenue_12m:" in result.stderr
    assert "4 of 5 accounts written" in result.stderr


def test_evaluate_removes_a_stale_errors_file_when_every_row_is_good(tmp_path):
    source = tmp_path / "accounts.csv"
    source.write_text(ACCOUNTS_CSV.replace("C3,abc", "C3,300"), encoding="utf-8")
    stale = tmp_path / "result.errors.csv"
    stale.write_text("row,line,rule,field,message\n3,4,,revenue_12m,old\n", encoding="utf-8")
    result = kam("evaluate", source, "-o", tmp_path / "result.csv", "--rules", RULES, "--as-of", "2026-01-01")
    assert result.exit_code == 0, result.output
    assert not stale.exists()
    assert len(pd.read_csv(tmp_path / "result.csv")) == 5


def test_evaluate_explain_adds_an_explanation_column(tmp_path):
    out = tmp_path / "result.csv"
    result = kam("evaluate", accounts_csv(tmp_path), "-o", out, "--rules", RULES, "--explain", "--lang", "zh")
    assert result.exit_code == 0, result.output
    written = pd.read_csv(out, encoding="utf-8-sig")
    assert written.columns[-1] == "说明"
    first = written["说明"][0]
    assert "客户等级 [tier]: tier = A" in first
    assert "命中 行 r1 (300万以上，毛利≥15%，回款≤90天)" in first
    assert len(written) == 4  # one explanation per written (good) row
    assert written["说明"].notna().all()


def test_evaluate_without_explain_has_no_explanation_column(tmp_path):
    out = tmp_path / "result.csv"
    assert kam("evaluate", accounts_csv(tmp_path), "-o", out, "--rules", RULES).exit_code == 0
    assert "explanation" not in pd.read_csv(out, encoding="utf-8-sig").columns


def test_evaluate_writes_xlsx_readable_by_pandas(tmp_path):
    out = tmp_path / "result.xlsx"
    result = kam("evaluate", accounts_csv(tmp_path), "-o", out, "--rules", RULES, "--as-of", "2026-01-01")
    assert result.exit_code == 0, result.output
    written = pd.read_excel(out)
    assert written["account_id"].tolist() == ["C1", "C2", "C4", "C5"]
    assert written["tier"].tolist() == ["A", "C", "C", "B"]
    # A: 50% of ¥12M; C scoring 50 and paying in 100 days: 17% × 0.7; C scoring 90: 30%; B: 23% of ¥15M capped at ¥3M
    assert written["credit_limit"].tolist() == [6_000_000, 238_000, 180_000, 3_000_000]


def test_evaluate_refuses_an_unknown_output_format(tmp_path):
    result = kam("evaluate", accounts_csv(tmp_path), "-o", tmp_path / "result.parquet", "--rules", RULES)
    assert result.exit_code == 1
    assert "unknown format 'parquet'" in result.stderr
    assert not (tmp_path / "result.parquet").exists()


# --- demo --------------------------------------------------------------------------------------------------------


def test_demo_prints_the_customer_pyramid():
    result = kam("demo", "--accounts", 300, "--rules", RULES)
    assert result.exit_code == 0, result.output
    assert "演示客户组合: 300 个客户" in result.stdout
    assert "客户金字塔" in result.stdout
    tiers = re.findall(r"^  ([ABCD])\s+(\d+)\s+[\d.]+%\s+█+$", result.stdout, re.MULTILINE)
    assert [t for t, _ in tiers] == ["A", "B", "C", "D"]
    assert sum(int(n) for _, n in tiers) == 300


def test_demo_in_english():
    result = kam("demo", "--accounts", 300, "--rules", RULES, "--lang", "en")
    assert result.exit_code == 0, result.output
    assert "Customer pyramid (tier / accounts / revenue):" in result.stdout
    assert re.search(r"Pareto: [\d.]+% of accounts make [\d.]+% of revenue", result.stdout)
