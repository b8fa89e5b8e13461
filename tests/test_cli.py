"""The `kam` command: rules check / rules test exit codes and messages, evaluate's output files, the demo."""

import re
import shutil
from pathlib import Path

import openpyxl
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
    assert re.search(r": 23 rules OK$", result.stdout.strip())


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


def test_evaluate_names_the_true_line_below_a_title_and_warns_of_the_totals_row(tmp_path):
    source = tmp_path / "ledger.csv"
    source.write_text("2026年客户台账,,,\n\n客户编号,近12个月销售额,近12个月毛利,平均回款天数\nC1,1200万,360万,45\n"
                      "C2,lots,1,1\n合计,1200万,360万,\n", encoding="utf-8")
    out = tmp_path / "result.csv"
    result = kam("evaluate", source, "-o", out, "--rules", RULES, "--as-of", "2026-01-01")
    assert result.exit_code == 0, result.output
    assert f"{source}:6: warning: totals row skipped ('合计')" in result.stderr
    assert f"{source}:5: input/revenue_12m: 'lots' is not a number (column '近12个月销售额')" in result.stderr
    errors = pd.read_csv(tmp_path / "result.errors.csv", encoding="utf-8-sig")
    assert errors[["row", "line"]].values.tolist() == [[2, 5]]
    assert "1 of 2 accounts written" in result.stderr
    assert pd.read_csv(out, encoding="utf-8-sig")["tier"].tolist() == ["A"]


def test_evaluate_with_lang_writes_labelled_headers_and_values(tmp_path):
    for lang, tier, status, entitlement in (("zh", "客户等级", "信用状态", "专属客户经理"),
                                            ("en", "Tier", "Credit status", "Dedicated account manager")):
        out = tmp_path / f"result-{lang}.xlsx"
        result = kam("evaluate", accounts_csv(tmp_path), "-o", out, "--rules", RULES, "--lang", lang,
                     "--as-of", "2026-01-01")
        assert result.exit_code == 0, result.output
        written = pd.read_excel(out)
        assert written[tier].tolist() == ["A", "C", "C", "B"]
        assert set(written[status]) <= {"正常", "预警", "信用冻结", "需提供担保", "OK", "Warning", "On hold",
                                         "Guarantee required"}
        assert written.iloc[0, 0] == "C1" and written.columns[0] == {"zh": "客户编号", "en": "Account ID"}[lang]
        assert entitlement in written.iloc[0][{"zh": "服务权益", "en": "Entitlements"}[lang]]


def test_evaluate_replaces_result_columns_of_an_earlier_run(tmp_path):
    first = tmp_path / "first.csv"
    assert kam("evaluate", accounts_csv(tmp_path), "-o", first, "--rules", RULES, "--lang", "zh").exit_code == 0
    again = tmp_path / "again.csv"
    assert kam("evaluate", first, "-o", again, "--rules", RULES, "--lang", "zh").exit_code == 0
    columns = pd.read_csv(again, encoding="utf-8-sig").columns.tolist()
    assert columns.count("客户等级") == 1 and len(columns) == len(set(columns))
    assert columns == pd.read_csv(first, encoding="utf-8-sig").columns.tolist()


def test_demo_data_writes_a_sheet_that_evaluates_cleanly(tmp_path):
    for lang, ext, header in (("zh", "csv", "近12个月销售额"), ("en", "xlsx", "Revenue (12m)")):
        sheet = tmp_path / f"demo-{lang}.{ext}"
        result = kam("demo-data", "--accounts", 150, "--seed", 4, "--lang", lang, "--rules", RULES, "-o", sheet)
        assert result.exit_code == 0, result.output
        assert "150 accounts written" in result.stderr
        frame = pd.read_csv(sheet, encoding="utf-8-sig") if ext == "csv" else pd.read_excel(sheet)
        assert len(frame) == 150 and header in frame.columns
        assert frame[frame.columns[1]].str.contains("有限公司|集团").any()  # company names
        out = tmp_path / f"scored-{lang}.csv"
        result = kam("evaluate", sheet, "-o", out, "--rules", RULES, "--as-of", "2026-11-23")
        assert result.exit_code == 0, result.output
        assert "150 of 150 accounts written" in result.stderr and "note: no column" not in result.stderr
    zh = pd.read_csv(tmp_path / "scored-zh.csv", encoding="utf-8-sig")
    en = pd.read_csv(tmp_path / "scored-en.csv", encoding="utf-8-sig")
    assert zh["行业"].iloc[:3].tolist() != en["Industry"].iloc[:3].tolist()  # 制造业 vs Manufacturing ...
    pd.testing.assert_frame_equal(zh.iloc[:, 17:], en.iloc[:, 17:])  # ... the same results


def test_demo_data_is_reproducible_and_refuses_an_unknown_format(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    for path in (a, b):
        assert kam("demo-data", "--accounts", 30, "--seed", 1, "--rules", RULES, "-o", path).exit_code == 0
    assert a.read_bytes() == b.read_bytes()
    result = kam("demo-data", "--accounts", 30, "--rules", RULES, "-o", tmp_path / "a.parquet")
    assert result.exit_code == 1 and "unknown format 'parquet'" in result.stderr
    assert kam("demo-data", "--accounts", 0, "--rules", RULES, "-o", a).exit_code == 2


def test_demo_prints_the_customer_pyramid():
    result = kam("demo", "--accounts", 300, "--rules", RULES)
    assert result.exit_code == 0, result.output
    assert "演示客户组合: 300 个客户" in result.stdout
    assert "客户金字塔" in result.stdout
    tiers = re.findall(r"^  ([ABCD])\s+(\d+)\s+[\d.]+%\s+█+$", result.stdout, re.MULTILINE)
    assert [t for t, _ in tiers] == ["A", "B", "C", "D"]
    assert sum(int(n) for _, n in tiers) == 300
    segments = re.search(r"^客户分群: (.*)$", result.stdout, re.MULTILINE).group(1)
    assert {"忠诚客户", "快速成长客户", "休眠客户", "值得培养客户", "无"} <= set(re.findall(r"(\S+) \d+", segments))
    status = re.search(r"^信用状态: (.*)$", result.stdout, re.MULTILINE).group(1)
    assert sum(int(n) for n in re.findall(r" (\d+)", status)) == 300


def test_demo_in_english():
    result = kam("demo", "--accounts", 300, "--rules", RULES, "--lang", "en")
    assert result.exit_code == 0, result.output
    assert "Customer pyramid (tier / accounts / revenue):" in result.stdout
    assert re.search(r"Pareto: [\d.]+% of accounts make [\d.]+% of revenue", result.stdout)
    assert re.search(r"^Segments: .*Loyal \d+", result.stdout, re.MULTILINE)
    assert re.search(r"^Credit status: .*OK \d+", result.stdout, re.MULTILINE)


def test_the_readme_tour_shows_what_evaluate_prints(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = readme.split("accounts.xlsx:2002:", 1)[1].split("```", 1)[0]
    shown = ("accounts.xlsx:2002:" + shown).strip().splitlines()
    monkeypatch.chdir(tmp_path)
    assert kam("demo-data", "--accounts", 2000, "--lang", "zh", "--rules", RULES, "-o", "accounts.xlsx").exit_code == 0
    sheet_book = openpyxl.load_workbook("accounts.xlsx")
    sheet = sheet_book.active
    revenue = [c.value for c in sheet[1]].index("近12个月销售额") + 1
    sheet.cell(row=17, column=revenue, value="lots")
    sheet.append(["合计"])
    sheet_book.save("accounts.xlsx")
    result = kam("evaluate", "accounts.xlsx", "-o", "scored.xlsx", "--lang", "zh", "--as-of", "2026-11-23",
                 "--rules", RULES)
    assert result.exit_code == 0, result.output
    assert result.stderr.strip().splitlines() == shown


def test_the_readme_shows_what_make_run_prints():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = "演示客户组合" + readme.split("演示客户组合", 1)[1].split("```", 1)[0]
    result = kam("demo", "--rules", RULES)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(shown)
