"""The xlsx round trip through the CLI and the core, on real workbooks written by openpyxl and read back by
openpyxl and LibreOffice."""

import io
import shutil
import subprocess
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner
from openpyxl.styles import Font

from kamcore.errors import InputError
from kamcore.rulebook import RuleBook
from kamcore.sheetscore import VERSION_LABEL, local_evaluator, score_rows
from kamcore.workbook import score_workbook
from server.cli import main

RULES = str(Path(__file__).resolve().parents[2] / "rules")
HEADERS = ["客户编号", "客户名称", "近12个月销售额（万元）", "近12个月毛利（万元）", "平均回款天数", "信用评分", "行业",
           "毛利率检查"]


@pytest.fixture(scope="module")
def book():
    return RuleBook.load(RULES)


def ledger(path: Path) -> Path:
    """A workbook as people keep it: a title, headers in 中文 with 万 units, a formula column, a blank row, a
    totals row with a SUM, a second sheet with its own formula, a bold title and a number format."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "客户台账"
    ws["A1"] = "2026年重点客户台账"
    ws["A1"].font = Font(bold=True, size=14)
    ws.append([])
    ws.append(HEADERS)
    rows = [["KH001", "=HYPERLINK(\"http://evil\")", 420, 92.4, 45, 85, "制造业"],
            ["KH002", "@SUM(1+1)", 150, 30, 50, 70, "能源"],
            None,
            ["KH003", "+cmd", "很多", 1, 1, 1, "制造业"],
            ["KH004", "-2", 60, 6, 100, 40, "零售"]]
    for r in rows:
        if r is None:
            ws.append([])
            continue
        ws.append(r)
        n = ws.max_row
        ws.cell(row=n, column=2).data_type = "s"
        ws.cell(row=n, column=8, value=f"=IFERROR(D{n}/C{n},\"\")")
    ws.append(["合计", None, "=SUM(C4:C8)"])
    ws["C4"].number_format = "#,##0.00"
    notes = wb.create_sheet("说明")
    notes["A1"], notes["A2"], notes["B2"] = "汇率", 7.1, "=A2*2"
    wb.save(path)
    return path


def test_cli_round_trip_keeps_the_workbook_and_adds_results(tmp_path):
    source, out = ledger(tmp_path / "ledger.xlsx"), tmp_path / "scored.xlsx"
    result = CliRunner().invoke(main, ["evaluate", str(source), "-o", str(out), "--rules", RULES,
                                       "--as-of", "2026-11-23"])
    assert result.exit_code == 0, result.output
    assert f"{source}:9: warning: totals row skipped ('合计')" in result.stderr
    assert f"{source}:7: input/revenue_12m: '很多' is not a number" in result.stderr
    assert "3 of 4 accounts written" in result.stderr
    wb = openpyxl.load_workbook(out)
    ws = wb["客户台账"]
    assert wb.sheetnames == ["客户台账", "说明"] and wb["说明"]["B2"].value == "=A2*2"
    assert ws["A1"].font.bold and ws["C4"].number_format == "#,##0.00"
    assert ws["H4"].value == '=IFERROR(D4/C4,"")' and ws["C9"].value == "=SUM(C4:C8)"
    assert ws["B4"].value == '=HYPERLINK("http://evil")' and ws["B4"].data_type == "s"  # never made a formula
    assert [c.value for c in ws[3]][8:16] == ["客户等级", "客户分群", "信用状态", "信用额度", "服务权益", "年度积分",
                                              "下一步行动", "规则提示"]
    assert [ws.cell(row=r, column=9).value for r in range(4, 10)] == ["A", "A", None, None, "D", None]
    assert ws["I4"].fill.fgColor.rgb.endswith("C6EFCE") and "客户等级 [tier]: tier = A" in ws["I4"].comment.text
    assert "revenue_12m" in ws["P7"].value and ws["P7"].fill.fgColor.rgb.endswith("FFC7CE")
    assert ws["R3"].value == VERSION_LABEL and ws["S3"].value == f"{Path(RULES).resolve()} (local)"
    assert wb.defined_names["KAM_RULES_VERSION"].attr_text == "'客户台账'!$S$3"


def test_rescoring_updates_its_own_columns_in_place(tmp_path, book):
    first = score_workbook(ledger(tmp_path / "l.xlsx").read_bytes(), book, local_evaluator(book), "zh")
    wb = openpyxl.load_workbook(io.BytesIO(first.data))
    wb["客户台账"]["C7"] = 300  # the bad revenue fixed
    buffer = io.BytesIO()
    wb.save(buffer)
    again = score_workbook(buffer.getvalue(), book, local_evaluator(book), "en")
    ws = openpyxl.load_workbook(io.BytesIO(again.data))["客户台账"]
    assert again.scored.first_column == 8 and not again.scored.errors
    assert [c.value for c in ws[3]][8:10] == ["Tier", "Segment"] and ws["P7"].value is None
    assert ws["P7"].fill.fill_type is None and ws.max_column == 19


def test_score_rows_on_a_plain_sheet_model(book):
    rows = [["Accounts 2026"], [], ["Account ID", "Revenue (12m)", "DSO (days)", "Gross profit (12m)"],
            ["C1", "1200万", 45, "360万"], ["", "", "", ""], ["C2", 50_000, 30, 5000], ["Total", "1250万", "", ""]]
    scored = score_rows(rows, book, local_evaluator(book, lang="en"), "en")
    assert (scored.header_row, scored.first_column) == (2, 4)
    assert [r[0] for r in scored.rows] == ["Tier", "A", None, "D", None]
    assert scored.notes[(3, 4)].startswith("Account tier [tier]: tier = A")
    assert "totals row skipped" in scored.warnings[0]


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice is installed by `make test`")
def test_libreoffice_opens_what_we_write_and_recalculates_the_same(tmp_path):
    source, out = ledger(tmp_path / "ledger.xlsx"), tmp_path / "scored.xlsx"
    assert CliRunner().invoke(main, ["evaluate", str(source), "-o", str(out), "--rules", RULES]).exit_code == 0
    converted = tmp_path / "lo"
    run = subprocess.run(["soffice", "--headless", "--norestore", f"-env:UserInstallation=file://{tmp_path}/profile",
                          "--convert-to", "xlsx", "--outdir", str(converted), str(out)],
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0 and (converted / "scored.xlsx").exists(), run.stderr
    ours = openpyxl.load_workbook(out)["客户台账"]
    theirs = openpyxl.load_workbook(converted / "scored.xlsx", data_only=True)
    lo = theirs["客户台账"]
    assert theirs.sheetnames == ["客户台账", "说明"] and theirs["说明"]["B2"].value == pytest.approx(14.2)
    assert lo["C9"].value == pytest.approx(420 + 150 + 60)  # the SUM, recalculated by LibreOffice
    assert lo["H4"].value == pytest.approx(0.22)
    assert lo["B4"].value == '=HYPERLINK("http://evil")'  # still text after LibreOffice read it
    for r in range(3, 10):
        for c in range(9, 20):
            assert lo.cell(row=r, column=c).value == ours.cell(row=r, column=c).value, (r, c)


def test_a_stray_value_far_below_the_table_is_scored_without_a_block_down_to_it(tmp_path, book):
    """A value at A1048576 below the ledger: the result block has a row for each row holding a value, not one
    per sheet row down to it (a million rows of cells: still running after 300 s, at 3.1 GB). The accounts'
    results land on their own rows, as without the stray value; the stray row is scored like any other row."""
    source = ledger(tmp_path / "l.xlsx")
    wb = openpyxl.load_workbook(source)
    wb["客户台账"]["A1048576"] = "stray"
    wb.save(tmp_path / "far.xlsx")
    plain = score_workbook(source.read_bytes(), book, local_evaluator(book), "zh")
    far = score_workbook((tmp_path / "far.xlsx").read_bytes(), book, local_evaluator(book), "zh")
    assert far.scored.row_lines == [2, 3, 4, 6, 7, 8, 1048575]  # 0-based: the header, the rows with a value
    assert len(far.scored.rows) == 7 and far.scored.rows[:-1] == plain.scored.rows
    assert far.scored.fills.items() >= plain.scored.fills.items()
    ws = openpyxl.load_workbook(io.BytesIO(far.data))["客户台账"]
    before = openpyxl.load_workbook(io.BytesIO(plain.data))["客户台账"]
    assert [[c.value for c in row] for row in ws.iter_rows(min_row=1, max_row=9)] == \
        [[c.value for c in row] for row in before.iter_rows(min_row=1, max_row=9)]
    assert ws["A1048576"].value == "stray" and ws.max_row == 1048576
    assert not [c for c in ws._cells if 9 < c[0] < 1048576]  # no cell made between them


def test_a_block_of_some_rows_only_is_not_sent_to_a_client_as_one_range():
    """The add-ins write the block as one range from the header down; a block of a sparse read has rows the
    range would put on the wrong lines."""
    from excel_addin.protocol import actions
    from kamcore.sheetscore import ScoredSheet

    sparse = ScoredSheet(0, 3, ["Tier"], [["Tier"], ["A"]], row_lines=[0, 5])
    with pytest.raises(ValueError, match="some sheet rows only"):
        actions(sparse, 0, ["tier"])
    assert sparse.cells() == [(0, 3, "Tier"), (5, 3, "A")]
    dense = ScoredSheet(0, 3, ["Tier"], [["Tier"], ["A"]])
    assert dense.cells() == [(0, 3, "Tier"), (1, 3, "A")] and actions(dense, 0, ["tier"])


def test_rescoring_clears_the_colour_and_note_of_a_row_emptied_since(tmp_path, book):
    """Excel's Delete clears values and keeps fills and notes: a row whose account was deleted after scoring
    loses the earlier run's tier colour and note when scored again, as every other row of the block does."""
    first = score_workbook(ledger(tmp_path / "l.xlsx").read_bytes(), book, local_evaluator(book), "zh")
    wb = openpyxl.load_workbook(io.BytesIO(first.data))
    ws = wb["客户台账"]
    assert ws["I5"].fill.fill_type == "solid" and ws["I5"].comment is not None  # KH002's tier
    for cell in ws[5]:
        cell.value = None
    buffer = io.BytesIO()
    wb.save(buffer)
    again = score_workbook(buffer.getvalue(), book, local_evaluator(book), "zh")
    assert 4 not in again.scored.row_lines  # (0-based: the emptied row is not read)
    ws = openpyxl.load_workbook(io.BytesIO(again.data))["客户台账"]
    first_column, width = again.scored.first_column, again.scored.width
    assert [(c.value, c.fill.fill_type, c.comment) for c in ws[5][first_column:first_column + width]] == \
        [(None, None, None)] * width
    assert ws["I4"].fill.fill_type == "solid" and ws["I4"].comment is not None  # KH001's, scored again
    assert ws["B5"].value is None and ws["A3"].value == "客户编号"  # nothing else touched


def test_a_value_beside_the_table_without_a_header_is_kept_and_the_results_go_right_of_it(tmp_path, book):
    """A note typed into a column right of the headers (no header of its own) is the user's: the result columns
    start right of it, a warning says so, and scoring again finds them there and keeps the note."""
    wb = openpyxl.load_workbook(ledger(tmp_path / "l.xlsx"))
    wb["客户台账"]["K6"] = "周一回电 / call back Monday"
    buffer = io.BytesIO()
    wb.save(buffer)
    first = score_workbook(buffer.getvalue(), book, local_evaluator(book), "zh")
    assert first.scored.first_column == 11  # L: right of K, where the block would have started at I
    assert any(w.startswith("<upload>:6: K6 holds a value right of the table's headers, kept") and "column L" in w
               for w in first.scored.warnings)
    ws = openpyxl.load_workbook(io.BytesIO(first.data))["客户台账"]
    assert ws["K6"].value == "周一回电 / call back Monday" and ws["L3"].value == "客户等级"
    assert all(ws.cell(row=r, column=c).value is None for r in range(3, 10) for c in (9, 10))  # I, J untouched
    assert ws["L4"].value == first.scored.rows[1][0] is not None  # KH001's tier
    again = score_workbook(first.data, book, local_evaluator(book), "en")
    assert again.scored.first_column == 11 and not any("kept" in w for w in again.scored.warnings)
    # the note's column is not read as a column of the table: its blank row stays no account
    assert again.scored.scored == first.scored.scored == 3 and again.scored.errors == first.scored.errors
    ws = openpyxl.load_workbook(io.BytesIO(again.data))["客户台账"]
    assert ws["K6"].value == "周一回电 / call back Monday" and ws["L3"].value == "Tier"
    assert all(ws.cell(row=6, column=c).value is None for c in range(12, 12 + again.scored.width))


def test_score_rows_keeps_a_value_right_of_the_headers_on_a_sheet_from_a1(book):
    """The add-ins hand the sheet over as rows from A1: the same rule there."""
    rows = [["Account ID", "Revenue (12m)", "DSO (days)"], ["C1", 1200, 45, None, "keep me"], ["C2", 50_000, 30]]
    scored = score_rows(rows, book, local_evaluator(book, lang="en"), "en")
    assert scored.first_column == 5
    written = {(r, c) for r, c, _ in scored.cells()}
    assert (1, 4) not in written and (0, 4) not in written
    assert scored.warnings[0].startswith("<sheet>:2: E2 holds a value right of the table's headers, kept")


def test_an_earlier_narrower_block_does_not_grow_over_a_value_of_the_users(book):
    """A sheet scored when the book had fewer outputs: its block grows into the columns right of it, unless the
    user has put a value there (refused, naming the cell); its own revision label and revision may be there."""
    headers = ["Account ID", "Revenue (12m)", "DSO (days)", "Tier", "Rule messages", None, VERSION_LABEL, "abc123"]
    rows = [headers, ["C1", 1200, 45, "A"], ["C2", 50_000, 30, "D"]]
    scored = score_rows(rows, book, local_evaluator(book, lang="en"), "en")  # only its own cells in the way
    assert scored.first_column == 3 and scored.width > 4
    leftover = [headers + [None] * (3 + scored.width + 1 - len(headers)) + ["f" * 40], *rows[1:]]
    assert score_rows(leftover, book, local_evaluator(book, lang="en"), "en").first_column == 3  # an older revision
    rows[2] += [None, None, None, "a note"]  # H3
    with pytest.raises(InputError, match=r"^<sheet>:3: H3 holds a value where the result columns now go"):
        score_rows(rows, book, local_evaluator(book, lang="en"), "en")
    rows[2] = rows[2][:4]
    width = scored.width
    rows[0] += [None] * (3 + width + 1 - len(rows[0])) + ["a header of the user's"]  # where the new label goes
    with pytest.raises(InputError, match=rf"^<sheet>:1: {chr(ord('A') + 3 + width + 1)}1 holds a value"):
        score_rows(rows, book, local_evaluator(book, lang="en"), "en")


def test_an_earlier_revision_label_is_no_column_of_the_table(book):
    """The earlier result columns deleted, their revision label and revision moved next to the table: they are
    ours, not a column to read or to keep clear of; the block goes over them."""
    rows = [["Account ID", "Revenue (12m)", "DSO (days)", None, VERSION_LABEL, "abc123"], ["C1", 1200, 45],
            ["C2", 50_000, 30]]
    scored = score_rows(rows, book, local_evaluator(book, lang="en"), "en")
    assert scored.first_column == 3 and scored.scored == 2 and not any("kept" in w for w in scored.warnings)


def test_a_value_far_right_of_the_table_is_refused_as_reading_a_table_refuses_it(tmp_path, book):
    """Right of the columns a table may have, the result columns cannot go beside it: the workbook is refused
    naming the cell, with the words `POST /v1/evaluate` uses for such a sheet."""
    wb = openpyxl.load_workbook(ledger(tmp_path / "l.xlsx"))
    wb["客户台账"]["XFD5"] = "stray"
    buffer = io.BytesIO()
    wb.save(buffer)
    with pytest.raises(InputError, match=r"^<upload>:5: a value in column XFD, beyond the 1,024 columns"):
        score_workbook(buffer.getvalue(), book, local_evaluator(book), "zh")


def test_a_merged_range_where_the_results_go_is_refused_naming_it(tmp_path, book):
    """openpyxl writes a merged range only through its first cell: a merged note beside the table is refused
    with its range, not a server error; the workbook is left as it was."""
    wb = openpyxl.load_workbook(ledger(tmp_path / "l.xlsx"))
    ws = wb["客户台账"]
    ws["K5"] = "跟进中 / following up"
    ws.merge_cells("K5:M6")
    buffer = io.BytesIO()
    wb.save(buffer)
    evaluated = []

    def evaluate(accounts):
        evaluated.append(accounts)
        return local_evaluator(book)(accounts)

    with pytest.raises(InputError, match=r"^<upload>: K5:M6 is merged where the result columns go"):
        score_workbook(buffer.getvalue(), book, evaluate, "zh")
    assert not evaluated  # refused before the accounts were evaluated (and, in the service, their decision logged)
    ws.unmerge_cells("K5:M6")
    ws.merge_cells("A1:D1")  # a merged title above the table is no matter
    buffer = io.BytesIO()
    wb.save(buffer)
    assert score_workbook(buffer.getvalue(), book, local_evaluator(book), "zh").scored.first_column == 11


def test_a_header_right_of_an_earlier_revision_label_is_still_a_column_of_the_table(book):
    """The cell right of the revision label is the revision, unless it names a field: then it is the user's."""
    rows = [["Account ID", "Revenue (12m)", VERSION_LABEL, "DSO (days)"], ["C1", 1200, None, 300],
            ["C2", 50_000, None, 30]]
    scored = score_rows(rows, book, local_evaluator(book, lang="en"), "en")
    assert scored.first_column == 4 and not any("kept" in w for w in scored.warnings)
    assert scored.rows[1][2] != scored.rows[2][2]  # credit status read with each account's DSO


def test_a_column_inserted_among_the_earlier_result_columns_is_refused_naming_it(tmp_path, book):
    """A column the user put inside an earlier block is theirs: re-scoring is refused rather than writing over it;
    an earlier, wider block's leftover revision is ours and no reason to refuse."""
    first = score_rows([["Account ID", "Revenue (12m)", "DSO (days)"], ["C1", 1200, 45], ["C2", 50_000, 30]],
                       book, local_evaluator(book, lang="en"), "en")
    sheet = [["Account ID", "Revenue (12m)", "DSO (days)"], ["C1", 1200, 45], ["C2", 50_000, 30]]
    for r, row in enumerate(first.rows):
        sheet[r] += row
    sheet[0] += [None, VERSION_LABEL, "0123456789abcdef0123456789abcdef01234567", "f" * 40]  # + an older leftover
    again = score_rows(sheet, book, local_evaluator(book, lang="en"), "en")
    assert again.first_column == 3 and again.scored == 2
    inserted = [row[:4] + [value] + row[4:] for row, value in zip(sheet, ["My notes", "VIP", None], strict=True)]
    with pytest.raises(InputError, match=r"^<sheet>:1: E1 holds a value among the earlier result columns"):
        score_rows(inserted, book, local_evaluator(book, lang="en"), "en")


def test_an_earlier_column_of_an_output_the_book_no_longer_has_is_cleared_with_the_block(tmp_path, book):
    """The book dropped an output since the sheet was scored (its loyalty rules removed): that output's column,
    among the earlier ones, is ours, cleared as the block narrows, not a column the user inserted."""
    shutil.copytree(RULES, tmp_path / "rules", ignore=shutil.ignore_patterns("tests"))
    (tmp_path / "rules" / "loyalty.yaml").unlink()
    smaller = RuleBook.load(tmp_path / "rules")
    assert "loyalty_points" not in smaller.outputs
    sheet = [["Account ID", "Revenue (12m)", "DSO (days)"], ["C1", 1200, 45], ["C2", 50_000, 30]]
    first = score_rows(sheet, book, local_evaluator(book, lang="en"), "en")
    for r, row in enumerate(first.rows):
        sheet[r] += row
    again = score_rows(sheet, smaller, local_evaluator(smaller, lang="en"), "en")
    assert again.first_column == 3 and again.width == first.width - 1 and again.clear_columns == 1


def test_a_table_column_named_like_one_of_our_outputs_is_the_users(book):
    """A ledger with its own 客户等级 (customer grade) column: a column of the table, kept, with the results beside
    it; and scored again, the earlier block is found right of it (it ends with the messages column and holds the
    outputs in their order), the user's column still kept."""
    sheet = [["客户编号", "近12个月销售额", "平均回款天数", "客户等级"], ["C1", 4_200_000, 45, "VIP"],
             ["C2", 50_000, 30, "普通"]]
    first = score_rows(sheet, book, local_evaluator(book), "zh")
    assert first.first_column == 4 and first.scored == 2
    assert all(c != 3 for _, c, _ in first.cells())
    for r, row in enumerate(first.rows):
        sheet[r] += row
    again = score_rows(sheet, book, local_evaluator(book), "zh")
    assert again.first_column == 4 and again.scored == 2 and again.clear_columns == 0
    assert all(c != 3 for _, c, _ in again.cells()) and [r[3] for r in sheet] == ["客户等级", "VIP", "普通"]
