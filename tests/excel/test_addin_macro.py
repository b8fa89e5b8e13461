"""The desktop score_sheet macro offline, run against the in-memory sheet model: where the result columns go,
what they hold, their colours and notes, a re-run in place, and what it leaves alone."""

from pathlib import Path

import pytest

from excel_addin.macro import Report, checked_score, score_sheet
from excel_addin.settings import Settings
from excel_addin.sheet import SheetModel
from kamcore.sheetscore import CREDIT_FILLS, ERROR_FILL, HEADER_FILL, TIER_FILLS, VERSION_LABEL, VERSION_NAME
from tests.excel.addin import LEDGER, OFFLINE, RESULTS, RULES

ZH = ["客户等级", "客户分群", "信用状态", "信用额度", "服务权益", "年度积分", "下一步行动", "规则提示"]
EN = ["Tier", "Segment", "Credit status", "Credit limit", "Entitlements", "Loyalty points", "Next actions",
      "Rule messages"]
FIRST = 7  # the result block starts right of the user's last column (G, their formula)


def ledger():
    return SheetModel.from_rows(LEDGER, "客户台账", RESULTS)


def block(sheet, row):
    return sheet.row(row)[FIRST:FIRST + 8]


def test_results_beside_the_table_under_its_title():
    sheet = ledger()
    report = score_sheet(sheet, OFFLINE)
    assert block(sheet, 2) == ZH and sheet.row(0)[0] == "2026年重点客户台账"
    assert block(sheet, 3)[0] == "A" and block(sheet, 3)[2] == "正常" and block(sheet, 3)[3] == 1218000
    assert block(sheet, 4) == [None] * 8 and block(sheet, 8) == [None] * 8  # the blank row and the totals row
    assert block(sheet, 6)[0] == "D"
    assert all(sheet[2, FIRST + k].fill == HEADER_FILL for k in range(8))
    assert sheet[3, FIRST].fill == TIER_FILLS["A"] and sheet[6, FIRST].fill == TIER_FILLS["D"]
    assert sheet[3, FIRST + 2].fill == CREDIT_FILLS["ok"]
    assert "客户等级 [tier]: tier = A" in sheet[3, FIRST].note and "[credit_status]" in sheet[3, FIRST].note
    assert sheet[3, FIRST + 3].number_format == "#,##0"
    assert sheet.row(2)[FIRST + 9:FIRST + 11] == [VERSION_LABEL, f"{RULES} (local)"]
    assert sheet.names == {VERSION_NAME: (2, FIRST + 10)}
    assert isinstance(report, Report) and report.scored == 3 and report.rules_version == f"{RULES} (local)"
    assert "totals row skipped" in report.warnings[0] and "3 accounts scored" in report.message()


def test_a_bad_row_keeps_its_place_with_its_message():
    sheet = ledger()
    report = score_sheet(sheet, OFFLINE)
    message = sheet.value(5, FIRST + 7)
    assert "revenue_12m" in message and "很多" in message and sheet[5, FIRST + 7].fill == ERROR_FILL
    assert block(sheet, 5)[:7] == [None] * 7 and sheet.row(5)[:2] == ["KH002", "很多"]  # the row is still there
    assert [(e["line"], e["field"]) for e in report.errors] == [(6, "revenue_12m")]
    assert "1 rows with errors" in report.message()


def test_rerun_updates_its_own_columns_in_place_and_leaves_the_users_alone():
    sheet = ledger()
    score_sheet(sheet, OFFLINE)
    sheet.write(0, FIRST + 8, [["我的备注"], [None], [None], ["跟进"]])  # the user's column between block and label
    sheet.write(2, 20, [["区域经理"], ["张三"]])  # and one far to the right
    sheet.fill("#FFFF00", [(3, 0, 1, 1)])  # the user's own formatting
    sheet.write(5, 1, [[300]])  # KH002 fixed
    sheet.write(6, 1, [[420]])  # KH003 grew
    user = {at: (c.value, c.formula, c.fill) for at, c in sheet.cells.items() if at[1] < FIRST}

    report = score_sheet(sheet, Settings(lang="en", rules=RULES))

    assert block(sheet, 2) == EN and sheet.row(2).count("Tier") == 1 and "客户等级" not in sheet.row(2)
    assert {at: (c.value, c.formula, c.fill) for at, c in sheet.cells.items() if at[1] < FIRST} == user
    assert sheet[3, 6].formula == "=C4/B4" and sheet[8, 1].formula == "=SUM(B4:B8)" and sheet[3, 0].fill == "#FFFF00"
    assert sheet.value(3, FIRST + 8) == "跟进" and sheet.value(0, FIRST + 8) == "我的备注"
    assert sheet.value(2, 20) == "区域经理" and sheet.value(3, 20) == "张三"
    assert block(sheet, 5)[0] in "ABCD" and sheet.value(5, FIRST + 7) is None and sheet[5, FIRST + 7].fill is None
    assert sheet.value(6, FIRST) != "D" and "Account tier [tier]: tier = C" in sheet[6, FIRST].note
    assert sheet.row(2)[FIRST + 9] == VERSION_LABEL and sheet.names[VERSION_NAME] == (2, FIRST + 10)
    assert report.scored == 4 and not report.errors


def test_a_row_that_turns_bad_loses_its_tier_colour_and_note():
    sheet = ledger()
    score_sheet(sheet, OFFLINE)
    assert sheet[3, FIRST].fill == TIER_FILLS["A"] and sheet[3, FIRST].note
    sheet.write(3, 1, [["lots"]])
    score_sheet(sheet, OFFLINE)
    assert block(sheet, 3)[0] is None and sheet[3, FIRST].fill is None and sheet[3, FIRST].note is None
    assert sheet[3, FIRST + 2].fill is None and sheet[3, FIRST + 7].fill == ERROR_FILL
    assert sheet[6, FIRST].fill == TIER_FILLS["D"] and sheet[6, FIRST].note  # the others are painted again


def test_result_cells_are_values_never_formulas():
    sheet = ledger()
    score_sheet(sheet, OFFLINE)
    assert not [at for at, c in sheet.cells.items() if at[1] >= FIRST and c.formula is not None]


def test_english_headers_in_a_sheet_with_english_columns():
    sheet = SheetModel.from_rows([["Account ID", "Revenue 12m", "Gross profit 12m", "DSO days"],
                                  ["C1", 4_200_000, 924_000, 45]])
    score_sheet(sheet, Settings(lang="en", rules=RULES))
    assert sheet.row(0)[4:6] == ["Tier", "Segment"] and sheet.row(1)[4] == "A" and sheet.row(1)[6] == "OK"


@pytest.mark.parametrize("rows,words", [([], "the sheet is empty"),
                                        ([["just a note"], ["nothing else"]], "no header row names two fields")])
def test_a_sheet_without_accounts_is_a_message_not_a_traceback(rows, words):
    sheet = SheetModel.from_rows(rows, "说明")
    before = dict(sheet.cells)
    done, message = checked_score(sheet, OFFLINE)
    assert not done and message.startswith("KAM Rules: ") and words in message and sheet.cells == before


def test_a_broken_local_rule_book_names_its_file(tmp_path):
    (tmp_path / "tier.yaml").write_text("rules:\n  - id: tier\n    kind: nonsense\n", encoding="utf-8")
    done, message = checked_score(ledger(), Settings(rules=tmp_path))
    assert not done and "the local rule book" in message and "tier.yaml" in message
    done, message = checked_score(ledger(), Settings(rules=Path(tmp_path / "missing")))
    assert not done and "does not exist" in message


def test_the_model_types_values_as_excel_does():
    sheet = SheetModel()
    sheet.write(0, 0, [["'=1+1", "=A1", "", 3]])
    assert (sheet.value(0, 0), sheet[0, 0].formula) == ("=1+1", None)
    assert (sheet.value(0, 1), sheet[0, 1].formula) == (None, "=A1")
    assert sheet.used_values() == [["=1+1", None, None, 3]]
    sheet.clear((0, 0, 1, 4))
    assert sheet.used_values() == [[None]]
