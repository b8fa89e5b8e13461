"""The worksheet functions offline, through their plain functions and through the xlwings-decorated ones (on
Linux xlwings' decorators leave the functions as they are; Excel's side is a manual check)."""

import datetime as dt

import pytest

from excel_addin import desktop
from excel_addin.macro import score_sheet
from excel_addin.settings import Settings
from excel_addin.sheet import SheetModel
from excel_addin.udfs import ERROR_MARK, evaluate_table, explanations, tiers
from tests.excel.addin import HEADERS, LEDGER, OFFLINE, RULES

ROWS = [["KH001", 420, 92.4, 45, "制造业", dt.datetime(2019, 4, 1)],
        [None, None, "", None, None, None],
        ["KH002", "很多", 1, 1, "制造业", None],
        ["KH003", 20, 2, 30, "零售", None]]


def test_kam_tier_answers_one_per_row_blank_and_bad_rows_included():
    got = tiers(HEADERS[:6], ROWS, OFFLINE)
    assert got[0] == ["A"] and got[1] == [""] and got[3] == ["D"]
    assert got[2][0].startswith(ERROR_MARK) and "revenue_12m" in got[2][0] and "很多" in got[2][0]


def test_kam_tier_takes_a_single_row_and_headers_as_a_one_row_block():
    assert tiers([HEADERS[:4]], ROWS[0][:4], OFFLINE) == [["A"]]


def test_kam_explain_is_the_whole_trace_in_the_language_set():
    zh = explanations(HEADERS[:6], ROWS[:1], OFFLINE)[0][0]
    assert "客户等级 [tier]: tier = A" in zh and "[margins]" in zh and "命中" in zh  # every rule, not only the note's
    en = explanations(HEADERS[:6], ROWS[:1], Settings(lang="en", rules=RULES))[0][0]
    assert "Account tier [tier]: tier = A" in en and "matched" in en


def test_kam_evaluate_spills_the_columns_score_sheet_writes_aligned_with_the_table():
    table = [list(r) for r in LEDGER]
    got = evaluate_table(table, OFFLINE)
    sheet = SheetModel.from_rows(LEDGER)
    score_sheet(sheet, OFFLINE)
    assert len(got) == len(LEDGER) and got[0] == [""] * 8 and got[2][0] == "客户等级"
    written = [["" if v is None else v for v in sheet.row(r)[7:15]] for r in range(len(LEDGER))]
    assert got[2:] == written[2:]
    assert "revenue_12m" in got[5][7] and got[3][0] == "A"


def test_the_decorated_functions_read_the_environment_without_a_workbook(monkeypatch):
    monkeypatch.delenv("KAM_URL", raising=False)
    monkeypatch.setenv("KAM_LANG", "en")
    monkeypatch.setenv("KAM_RULES", str(RULES))
    assert desktop.KAM_TIER([HEADERS[:6]], ROWS, None)[0] == ["A"]
    assert desktop.KAM_EVALUATE([HEADERS[:6], *ROWS], None)[0][0] == "Tier"
    assert desktop.KAM_EXPLAIN([HEADERS[:6]], ROWS[:1], None)[0][0].startswith("Margin and growth [margins]")


@pytest.mark.parametrize("call", [lambda: desktop.KAM_TIER([[None, None]], [[1, 2]], None),
                                  lambda: desktop.KAM_EVALUATE([["x"]], None)])
def test_a_function_that_cannot_answer_says_why_in_its_cell(call, monkeypatch):
    monkeypatch.delenv("KAM_URL", raising=False)
    got = call()
    assert len(got) == 1 and got[0][0].startswith(ERROR_MARK)


def test_multi_area_addresses_stay_within_excels_limit():
    rects = [(r, 7, 1, 1) for r in range(0, 2000, 2)]
    areas = desktop._areas([desktop._address(r) for r in rects])
    assert all(len(a) <= desktop.ADDRESS_LIMIT for a in areas) and areas[0].startswith("H1,H3,H5")
    assert sum(a.count(",") + 1 for a in areas) == 1000
    assert desktop._address((2, 7, 10, 8)) == "H3:O12"
