"""`kam excel quickstart DIR`: xlwings' quickstart workbook (its VBA project kept byte for byte) with a sample
ledger and an xlwings.conf sheet, and the module xlwings runs beside it."""

import importlib.util
import shutil
import subprocess
import zipfile

import openpyxl
import pytest
from click.testing import CliRunner

from excel_addin import desktop
from excel_addin.macro import score_sheet
from excel_addin.quickstart import ACCOUNT_SHEET, xlwings_template
from excel_addin.settings import CONF_SHEET, conf_values, read_settings
from excel_addin.sheet import SheetModel
from server.cli import main
from tests.excel.addin import OFFLINE


@pytest.fixture
def project(tmp_path):
    target = tmp_path / "kam_demo"
    result = CliRunner().invoke(main, ["excel", "quickstart", str(target)])
    assert result.exit_code == 0, result.output
    assert "kam_demo.xlsm" in result.output
    return target


def test_writes_the_workbook_and_module_pair(project):
    assert sorted(p.name for p in project.iterdir()) == ["kam_demo.py", "kam_demo.xlsm"]
    with zipfile.ZipFile(project / "kam_demo.xlsm") as ours, zipfile.ZipFile(xlwings_template()) as template:
        assert ours.read("xl/vbaProject.bin") == template.read("xl/vbaProject.bin")  # SampleCall runs NAME.main()
        assert "macroEnabled" in ours.read("[Content_Types].xml").decode()
    wb = openpyxl.load_workbook(project / "kam_demo.xlsm", keep_vba=True)
    assert wb.sheetnames == [ACCOUNT_SHEET, "_xlwings.conf", CONF_SHEET] and wb.active.title == ACCOUNT_SHEET
    conf = conf_values([list(r) for r in wb[CONF_SHEET].iter_rows(values_only=True)])
    assert set(conf) == {"KAM_URL", "KAM_TOKEN", "KAM_LANG", "KAM_RULES"}
    settings = read_settings(conf, {})
    assert not settings.remote and settings.lang == "zh"


def test_the_module_exposes_the_functions_and_macro_to_xlwings(project):
    spec = importlib.util.spec_from_file_location("kam_demo", project / "kam_demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.KAM_TIER is desktop.KAM_TIER and module.KAM_EVALUATE is desktop.KAM_EVALUATE
    assert module.KAM_EXPLAIN is desktop.KAM_EXPLAIN and module.score_sheet is desktop.score_sheet
    assert callable(module.main) and 'xw.Book("kam_demo.xlsm")' in (project / "kam_demo.py").read_text()


def test_the_sample_ledger_scores_with_every_tier(project):
    ws = openpyxl.load_workbook(project / "kam_demo.xlsm")[ACCOUNT_SHEET]
    sheet = SheetModel.from_rows(ws.iter_rows(values_only=True), ACCOUNT_SHEET)
    report = score_sheet(sheet, OFFLINE)
    tier = sheet.row(2).index("客户等级")
    assert report.scored == 8 and not report.errors and "totals row skipped" in report.warnings[0]
    assert {sheet.value(r, tier) for r in range(3, 11)} == {"A", "B", "C", "D"}


def test_refuses_an_existing_folder_and_a_name_python_cannot_import(project, tmp_path):
    again = CliRunner().invoke(main, ["excel", "quickstart", str(project)])
    assert again.exit_code != 0 and "already exists" in again.output
    assert sorted(p.name for p in project.iterdir()) == ["kam_demo.py", "kam_demo.xlsm"]
    for name in ("1st", "kam-demo", "class"):
        bad = CliRunner().invoke(main, ["excel", "quickstart", str(tmp_path / name)])
        assert bad.exit_code != 0 and "Python module name" in bad.output and not (tmp_path / name).exists()


def test_standalone_uses_xlwings_standalone_template(tmp_path):
    result = CliRunner().invoke(main, ["excel", "quickstart", "--standalone", str(tmp_path / "solo")])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(tmp_path / "solo" / "solo.xlsm") as ours, \
            zipfile.ZipFile(xlwings_template(standalone=True)) as template:
        assert ours.read("xl/vbaProject.bin") == template.read("xl/vbaProject.bin")


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice is installed by `make test`")
def test_libreoffice_opens_the_workbook_and_its_formulas_calculate(project, tmp_path):
    out = tmp_path / "lo"
    run = subprocess.run(["soffice", "--headless", "--norestore", f"-env:UserInstallation=file://{tmp_path}/profile",
                          "--convert-to", "xlsx", "--outdir", str(out), str(project / "kam_demo.xlsm")],
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0 and (out / "kam_demo.xlsx").exists(), run.stderr
    ws = openpyxl.load_workbook(out / "kam_demo.xlsx", data_only=True)[ACCOUNT_SHEET]
    rows = [list(r) for r in ws.iter_rows(values_only=True)]
    revenue, margin = rows[2].index("近12个月销售额"), rows[2].index("毛利率")
    assert rows[11][0] == "合计" and rows[11][revenue] == sum(r[revenue] for r in rows[3:11])
    assert rows[3][margin] == pytest.approx(rows[3][revenue + 1] / rows[3][revenue])
    sheet = SheetModel.from_rows(rows, ACCOUNT_SHEET)  # as Excel hands the calculated values over
    assert score_sheet(sheet, OFFLINE).scored == 8
