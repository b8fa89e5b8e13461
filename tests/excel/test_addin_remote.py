"""The desktop add-in against a real `kam serve` (waitress, real git rule store, real tokens): the remote mode
writes exactly what the offline mode writes, and a refused token or a service that is not there is a clear
message with the sheet left as it was."""

import re

import pytest

from excel_addin import desktop
from excel_addin.macro import checked_score, score_sheet
from excel_addin.settings import AddinError, Settings
from excel_addin.sheet import SheetModel
from excel_addin.udfs import ERROR_MARK, evaluate_table, explanations, tiers
from kamcore.sheetscore import VERSION_NAME
from tests.excel.addin import HEADERS, LEDGER, OFFLINE, RESULTS, RULES
from tests.server.conftest import free_port, launch


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    running = launch(tmp_path_factory.mktemp("kam"))
    try:
        yield running, running.token("excel desktop", "viewer")
    finally:
        running.stop()


def remote(service, lang="zh"):
    running, token = service
    return Settings(url=running.url, token=token, lang=lang, rules=RULES)


def everything(sheet):
    """Every cell's value, formula, fill, note and format, and the workbook names."""
    return {at: (c.value, c.formula, c.fill, c.note, c.number_format) for at, c in sheet.cells.items()}, sheet.names


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_remote_writes_what_offline_writes(service, lang):
    offline, online = (SheetModel.from_rows(LEDGER, "客户台账", RESULTS) for _ in range(2))
    local = score_sheet(offline, Settings(lang=lang, rules=RULES))
    report = score_sheet(online, remote(service, lang))
    cells, names = everything(online)
    version = names[VERSION_NAME]
    assert re.fullmatch(r"[0-9a-f]{40}", cells.pop(version)[0]) and report.rules_version == online.value(*version)
    theirs, their_names = everything(offline)
    theirs.pop(version)
    assert cells == theirs and names == their_names
    assert report.decision_id and local.decision_id is None
    assert (report.scored, len(report.errors), report.errors[0]["line"]) == (local.scored, 1, 6)
    assert report.warnings == local.warnings


def test_remote_rerun_over_an_offline_run_updates_in_place(service):
    sheet = SheetModel.from_rows(LEDGER, "客户台账", RESULTS)
    score_sheet(sheet, OFFLINE)
    first = sheet.row(2)
    score_sheet(sheet, remote(service, "en"))
    assert sheet.row(2)[:7] == first[:7] and sheet.row(2)[7] == "Tier" and len(sheet.row(2)) == len(first)
    assert sheet[3, 6].formula == "=C4/B4"


def test_worksheet_functions_answer_alike_remote_and_offline(service):
    rows = [r + [None] * (6 - len(r)) for r in LEDGER[3:8]]
    assert tiers(HEADERS[:6], rows, remote(service)) == tiers(HEADERS[:6], rows, OFFLINE)
    assert evaluate_table(LEDGER, remote(service)) == evaluate_table(LEDGER, OFFLINE)
    online = explanations(HEADERS[:6], rows[:1], remote(service))[0][0]
    assert online == explanations(HEADERS[:6], rows[:1], OFFLINE)[0][0]


def test_a_refused_token_is_a_message_and_the_sheet_is_untouched(service):
    running, _ = service
    for token in (None, "kam_nope_nope"):
        sheet = SheetModel.from_rows(LEDGER, "客户台账", RESULTS)
        before = everything(sheet)
        done, message = checked_score(sheet, Settings(url=running.url, token=token))
        assert not done and "refused the token" in message and "KAM_TOKEN" in message
        assert everything(sheet) == before


def test_a_service_that_is_not_there_is_a_message(service):
    sheet = SheetModel.from_rows(LEDGER, "客户台账", RESULTS)
    before = everything(sheet)
    done, message = checked_score(sheet, Settings(url=f"http://127.0.0.1:{free_port()}", token="kam_x_y"))
    assert not done and "cannot reach the KAM service" in message and "无法连接" in message
    assert everything(sheet) == before
    with pytest.raises(AddinError, match="cannot reach the KAM service"):
        tiers(HEADERS[:2], [["KH1", 1]], Settings(url=f"http://127.0.0.1:{free_port()}"))


def test_a_worksheet_function_shows_the_service_problem_in_its_cell(service, monkeypatch):
    running, _ = service
    monkeypatch.setenv("KAM_URL", running.url)
    monkeypatch.setenv("KAM_TOKEN", "kam_nope_nope")
    got = desktop.KAM_TIER([HEADERS[:4]], [LEDGER[3][:4]], None)
    assert got[0][0].startswith(ERROR_MARK) and "refused the token" in got[0][0]


def test_a_sheet_the_service_refuses_says_why(service):
    done, message = checked_score(SheetModel.from_rows([["备注"], ["无"]], "说明"), remote(service))
    assert not done and "422" in message and "no header row names two fields" in message
