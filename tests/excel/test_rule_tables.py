"""Rule tables in Excel: `kam rules export-xlsx` / `import-xlsx` over a real rule repository, with workbooks
edited by openpyxl and re-saved by LibreOffice."""

import difflib
import shutil
import subprocess
import zipfile
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner

from kamcore import rulefile, ruletable
from kamcore.cli import main
from kamcore.store import RuleStore

RULES = Path(__file__).resolve().parents[2] / "rules"
ACCOUNT = {"account_id": "K1", "revenue_12m": 2_800_000, "gross_profit_12m": 560_000, "dso_days": 60,
           "industry": "retail", "credit_score": 65, "revenue_prev_12m": 2_700_000}
soffice = pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice is installed by `make test`")


@pytest.fixture
def store(tmp_path):
    return RuleStore.open(tmp_path / "data", seed=RULES)


def kam(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def export(store, rule_id, path):
    result = kam("rules", "export-xlsx", rule_id, "-o", path, "--data", store.data_dir)
    assert result.exit_code == 0, result.output
    return path


def import_(store, path, message="Raise the bar", *extra):
    return kam("rules", "import-xlsx", path, "-m", message, "--data", store.data_dir, "--author", "Li Na <li@x.cn>",
               *extra)


def edit(path, changes, out=None):
    """Set cells with openpyxl (`{"tier!A8": ">= 2500000"}`) and save the workbook (to `out`, else in place)."""
    wb = openpyxl.load_workbook(path)
    for ref, value in changes.items():
        sheet, cell = ref.split("!")
        wb[sheet][cell] = value
    wb.save(out or path)
    return out or path


def libreoffice(path, tmp_path):
    """The workbook as LibreOffice writes it after opening ours (headless convert, xlsx to xlsx)."""
    out = tmp_path / "lo"
    run = subprocess.run(["soffice", "--headless", "--norestore", f"-env:UserInstallation=file://{tmp_path}/profile",
                          "--convert-to", "xlsx", "--outdir", str(out), str(path)],
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0 and (out / path.name).exists(), run.stderr
    return out / path.name


def tier_of(store, rev="HEAD"):
    return store.book(rev).evaluate([ACCOUNT], as_of="2026-11-23").frame.loc[0, "tier"]


def test_the_exported_tier_table(store, tmp_path):
    wb = openpyxl.load_workbook(export(store, "tier", tmp_path / "tier.xlsx"))
    assert wb.sheetnames == ["tier", "_kam"] and wb["_kam"].sheet_state == "hidden"
    ws = wb["tier"]
    assert ws["A1"].value == "客户等级 / Account tier (tier)"
    assert [ws[f"A{r}"].value for r in (2, 3, 4)] == ["命中策略 / Hit policy", "默认值：客户等级 / Default: Tier",
                                                     "规则版本 / Rules version"]
    assert [ws[f"B{r}"].value for r in (2, 3, 4)] == ["FIRST", "D", store.head()]
    assert [c.value for c in ws[7]] == ["近12个月销售额 / Revenue (12m)", "毛利率 / Gross margin",
                                        "平均回款天数 / DSO (days)", "行业 / Industry", "客户等级 / Tier",
                                        "备注 / Note"]
    assert [c.value for c in ws[8]] == [">= 3000000", ">= 0.15", "<= 90", None, "A", "300万以上，毛利≥15%，回款≤90天"]
    assert ws.freeze_panes == "A8" and ws.max_row == 19
    assert ws.data_validations.dataValidation[0].formula1 == '"A,B,C,D"'
    meta = dict(row[:2] for row in wb["_kam"].iter_rows(min_row=2, values_only=True))
    assert meta["rule_id"] == "tier" and meta["file"] == "tiering.yaml" and meta["base"] == store.head()


def test_an_edited_threshold_is_committed_and_the_new_head_evaluates_differently(store, tmp_path):
    before = store.head()
    assert tier_of(store) == "B"
    table = edit(export(store, "tier", tmp_path / "tier.xlsx"), {"tier!A8": ">= 2500000"})
    result = import_(store, table)
    assert result.exit_code == 0, result.output
    assert f"tier: committed {store.head()[:10]} (tiering.yaml)" in result.output
    assert store.head() != before and tier_of(store) == "A" and tier_of(store, before) == "B"
    latest = store.history()[0]
    assert (latest.author, latest.message, latest.paths) == ("Li Na", "Raise the bar", ("tiering.yaml",))
    old, text = store.read("tiering.yaml", before).splitlines(), store.read("tiering.yaml").splitlines()
    removed = [line for line in difflib.ndiff(old, text) if line.startswith("- ")]
    added = [line for line in difflib.ndiff(old, text) if line.startswith("+ ")]
    first_row = '      - {when: {revenue_12m: ">= 3000000", gross_margin: ">= 0.15", dso_days: "<= 90"}, then: A,'
    assert removed == ["- " + first_row, "-          note: 300万以上，毛利≥15%，回款≤90天}"]  # only that row's lines
    assert len(added) == 1 and "revenue_12m: '>= 2500000'" in added[0] and "note: 300万以上" in added[0]


def test_a_reason_with_a_colon_stays_text_and_other_rows_keep_their_layout(store, tmp_path):
    before = store.read("actions.yaml")
    table = edit(export(store, "next_actions", tmp_path / "na.xlsx"),
                 {"next_actions!J9": "投诉较多：上门 / visit: now"})
    result = import_(store, table, "Clearer reason")
    assert result.exit_code == 0, result.output
    rows = rulefile.rule_doc(store.read("actions.yaml"), "next_actions")["rows"]
    assert rows[2]["then"]["action_reasons"] == "投诉较多：上门 / visit: now"
    assert rows[3]["when"] == {"false_big_account": True}  # not rewritten as the text 'true'
    changed = [line for line in difflib.ndiff(before.splitlines(), store.read("actions.yaml").splitlines())
               if line.startswith(("- ", "+ "))]
    assert len(changed) <= 6, changed


@soffice
def test_a_table_resaved_by_libreoffice_imports(store, tmp_path):
    ours = export(store, "tier", tmp_path / "tier.xlsx")
    theirs = libreoffice(edit(ours, {"tier!A8": ">= 2500000"}, tmp_path / "edited.xlsx"), tmp_path)
    wb = openpyxl.load_workbook(theirs)
    assert wb["_kam"].sheet_state == "hidden" and wb["tier"]["A8"].value == ">= 2500000"
    result = import_(store, theirs)
    assert result.exit_code == 0, result.output
    assert tier_of(store) == "A"


@soffice
@pytest.mark.parametrize("rule_id", ["tier", "account_score", "credit_status", "credit_terms", "next_actions"])
def test_libreoffice_opens_every_table_we_write_and_keeps_every_cell(store, tmp_path, rule_id):
    ours = export(store, rule_id, tmp_path / f"{rule_id}.xlsx")
    theirs = libreoffice(ours, tmp_path)
    a, b = openpyxl.load_workbook(ours), openpyxl.load_workbook(theirs)
    assert a.sheetnames == b.sheetnames
    for name in a.sheetnames:
        for row in a[name].iter_rows():
            for cell in row:
                assert b[name][cell.coordinate].value == cell.value, (name, cell.coordinate)
    result = import_(store, theirs)  # LibreOffice's copy reads back as the very same rule
    assert result.exit_code == 0 and "nothing to commit" in result.output, result.output


def test_bad_cells_are_refused_with_their_addresses_and_nothing_is_committed(store, tmp_path):
    head = store.head()
    table = edit(export(store, "tier", tmp_path / "tier.xlsx"), {
        "tier!B9": ">= abc",  # no condition
        "tier!E10": "Z",  # not one of the tier's values
        "tier!C11": "=1+1",  # an Excel formula, not a rule cell
        "tier!B2": "UNIQUE",  # the hit policy is shown, not edited
    })
    result = import_(store, table)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert any(line.startswith("tier!B9: ") for line in lines), result.stderr
    assert any(line.startswith("tier!E10: ") and "Z" in line for line in lines), result.stderr
    assert any(line.startswith("tier!C11: an Excel formula") for line in lines), result.stderr
    assert any(line.startswith("tier!B2: 命中策略 / Hit policy is shown here, not edited") for line in lines)
    assert "nothing was committed" in result.stderr
    assert store.head() == head


def test_a_missing_and_an_extra_column_are_named(store, tmp_path):
    path = export(store, "tier", tmp_path / "tier.xlsx")
    wb = openpyxl.load_workbook(path)
    ws = wb["tier"]
    ws.delete_cols(3)  # 平均回款天数 / DSO (days)
    ws["F7"] = "折扣 / Discount"
    wb.save(path)
    result = import_(store, path)
    assert result.exit_code == 1
    assert "tier!A7: missing column '平均回款天数 / DSO (days)' (dso_days)" in result.stderr
    assert "tier!F7: extra column '折扣 / Discount'" in result.stderr


def test_a_row_that_breaks_a_rule_test_is_refused(store, tmp_path):
    head = store.head()
    table = edit(export(store, "tier", tmp_path / "tier.xlsx"), {"tier!E8": "D"})  # big good accounts become D
    result = import_(store, table)
    assert result.exit_code == 1 and "rule test" in result.stderr and "fails" in result.stderr, result.output
    assert store.head() == head


def test_a_stale_table_is_refused_naming_the_newer_change(store, tmp_path):
    table = edit(export(store, "tier", tmp_path / "tier.xlsx"), {"tier!A8": ">= 2500000"})
    text = store.read("tiering.yaml").replace("note: 量大利薄或长期拖款", "note: 量大利薄")
    newer = store.commit({"tiering.yaml": text}, store.head(), "Wang Wei", "Shorter note")
    result = import_(store, table)
    assert result.exit_code == 1
    assert f"{newer[:10]} by Wang Wei" in result.stderr and "Shorter note" in result.stderr, result.stderr
    assert store.head() == newer


def test_a_change_to_another_file_does_not_make_the_table_stale(store, tmp_path):
    table = edit(export(store, "tier", tmp_path / "tier.xlsx"), {"tier!A8": ">= 2500000"})
    text = store.read("credit.yaml").replace("note: 回款超过120天", "note: 回款超120天")
    store.commit({"credit.yaml": text}, store.head(), "Wang Wei", "Shorter note")
    assert import_(store, table).exit_code == 0 and tier_of(store) == "A"


def test_an_unchanged_table_has_nothing_to_commit(store, tmp_path):
    head = store.head()
    result = import_(store, export(store, "credit_status", tmp_path / "cs.xlsx"))
    assert result.exit_code == 0 and "nothing to commit" in result.output
    assert store.head() == head


def test_a_scorecard_has_a_sheet_per_indicator_and_its_points_change(store, tmp_path):
    path = export(store, "account_score", tmp_path / "score.xlsx")
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["revenue", "profit", "growth", "strategic", "credit", "_kam"]
    ws = wb["growth"]
    assert [ws[f"A{r}"].value for r in (2, 3, 4)] == ["取值 / Value", "权重 / Weight", "缺失得分 / Points when missing"]
    assert [ws[f"B{r}"].value for r in (2, 3, 4)] == ["revenue_growth", "15%", "40"]
    assert [c.value for c in ws[8]] == ["条件 / Condition", "得分 / Points", "备注 / Note"]
    assert [c.value for c in ws[10]] == ["[0.1..0.3)", 80, None]
    before = store.book().evaluate([ACCOUNT], as_of="2026-11-23").frame.loc[0, "value_score"]
    edit(path, {"credit!B11": 60})  # credit score 60-70: 50 → 60 credit points
    result = import_(store, path, "More credit points for good payers")
    assert result.exit_code == 0, result.output
    after = store.book().evaluate([ACCOUNT], as_of="2026-11-23").frame.loc[0, "value_score"]
    assert after == pytest.approx(before + 10 * 0.15)


def test_scorecard_points_that_are_no_number_and_a_changed_weight(store, tmp_path):
    path = edit(export(store, "account_score", tmp_path / "score.xlsx"),
                {"growth!B11": "lots", "credit!B9": "many", "profit!B3": "40%"})
    result = import_(store, path)
    assert result.exit_code == 1
    assert "growth!B11: 'lots' is not a number" in result.stderr
    assert "credit!B9: 'many' is not a number" in result.stderr
    assert "profit!B3: 权重 / Weight is shown here, not edited" in result.stderr


def test_a_workbook_that_is_no_rule_table(store, tmp_path):
    plain = tmp_path / "plain.xlsx"
    openpyxl.Workbook().save(plain)
    result = import_(store, plain)
    assert result.exit_code == 1 and "not a rule table exported by KAM Rules" in result.output
    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/worksheets/sheet1.xml", b"0" * (40 * 1024 * 1024))
    result = import_(store, bomb)
    assert result.exit_code == 1 and "more than a rule table" in result.output
    junk = tmp_path / "junk.xlsx"
    junk.write_bytes(b"PK\x03\x04 not really")
    result = import_(store, junk)
    assert result.exit_code == 1 and "not an xlsx workbook" in result.output


def test_a_cell_far_to_the_right_a_cut_sheet_and_a_base_that_is_no_revision_are_refused(store, tmp_path):
    table = export(store, "tier", tmp_path / "tier.xlsx")
    far = edit(table, {"tier!XFD300": "x"}, tmp_path / "far.xlsx")  # 5 kB that would make millions of cells
    result = import_(store, far)
    assert result.exit_code == 1 and "a cell in column XFD" in result.output
    cut = tmp_path / "cut.xlsx"
    with zipfile.ZipFile(table) as source, zipfile.ZipFile(cut, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info, data[: len(data) // 2] if info.filename == "xl/worksheets/sheet1.xml" else data)
    result = import_(store, cut)
    assert result.exit_code == 1 and "not an xlsx workbook" in result.output
    wb = openpyxl.load_workbook(table)
    row = next(r for r in wb["_kam"].iter_rows() if r[0].value == "base")
    row[1].value = "HEAD"  # would match whatever the head is, so a stale table would never be refused
    wb.save(tmp_path / "head.xlsx")
    result = import_(store, tmp_path / "head.xlsx")
    assert result.exit_code == 1 and "is not a revision" in result.output
    assert len(store.history()) == 1


def test_propose_opens_a_change_request_instead(store, tmp_path):
    head = store.head()
    table = edit(export(store, "tier", tmp_path / "tier.xlsx"), {"tier!A8": ">= 2500000"})
    result = import_(store, table, "Raise the bar", "--propose")
    assert result.exit_code == 0 and "change request" in result.output, result.output
    assert store.head() == head and [c.status for c in store.change_requests()] == ["open"]


def test_a_rules_folder_round_trip(tmp_path):
    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    path = tmp_path / "tier.xlsx"
    assert kam("rules", "export-xlsx", "tier", "-o", path, "--rules", folder).exit_code == 0
    edit(path, {"tier!A8": ">= 2500000"})
    result = kam("rules", "import-xlsx", path, "-m", "Raise the bar", "--rules", folder)
    assert result.exit_code == 0, result.output
    assert "revenue_12m: '>= 2500000'" in (folder / "tiering.yaml").read_text(encoding="utf-8")
    again = kam("rules", "import-xlsx", path, "-m", "Again", "--rules", folder)
    assert again.exit_code == 1 and "changed since this table was exported" in again.output


def test_the_core_reads_a_table_without_the_cli(store):
    base = store.head()
    book = store.book(base)
    data = ruletable.export_table(book, "dso_factor", store.read("credit.yaml", base), base)
    upload = ruletable.read_workbook(data, "dso.xlsx")
    assert (upload.rule_id, upload.file, upload.base) == ("dso_factor", "credit.yaml", base)
    assert ruletable.rebuild(upload, book, store.read("credit.yaml", base)).unchanged


def test_a_chart_where_the_table_or_its_metadata_was_is_refused_naming_the_sheet(store, tmp_path):
    """A chart sheet under the name of the table's sheet (or of `_kam`) has no cells to read: refused, naming
    the sheet, where it was a 500 (`Chartsheet` has no `max_row`)."""
    from openpyxl.chart import BarChart, Reference

    table = export(store, "tier", tmp_path / "tier.xlsx")
    for title in ("tier", "_kam"):
        wb = openpyxl.load_workbook(table)
        at = wb.sheetnames.index(title)
        data = wb.create_sheet("data")
        data.append([1])
        chart = BarChart()
        chart.add_data(Reference(data, min_col=1, min_row=1, max_row=1))
        del wb[title]
        wb.create_chartsheet(title, at).add_chart(chart)
        wb.save(tmp_path / f"chart-{title}.xlsx")
        assert isinstance(openpyxl.load_workbook(tmp_path / f"chart-{title}.xlsx")[title],
                          openpyxl.chartsheet.Chartsheet)
        result = import_(store, tmp_path / f"chart-{title}.xlsx")
        assert result.exit_code == 1, result.output
        assert ("the sheet 'tier' is a chart, not the grid that holds the table's rows" if title == "tier" else
                "not a rule table exported by KAM Rules (it has no '_kam' sheet)") in result.output
    assert len(store.history()) == 1
