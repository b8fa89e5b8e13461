"""Account tables in and out: csv / xlsx / json files, 中文 or English headers, and cells coerced to field types."""

import datetime as dt
import io
import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from kamcore import InputError, RuleBook, portfolio
from kamcore.portfolio import labelled, read_rows, read_sheet, read_table, write_table

AS_OF = "2026-01-01"
FIELDS = """
fields:
  - name: account_id
    type: string
    label: {zh: 客户编号, en: Account ID}
    aliases: [客户ID]
  - name: revenue_12m
    type: number
    label: {zh: 近12个月销售额, en: Revenue (12m)}
    aliases: [销售额]
  - name: margin
    type: number
  - name: last_order
    type: date
    label: {zh: 最近下单日期, en: Last order date}
"""
# Copies each input to an output, so what was read can be seen through the public API.
ECHO = """
rules:
  - id: echo
    kind: formula
    label: Echo
    formulas:
      acct: account_id
      rev: revenue_12m
      mgn: margin
      last: last_order
      big: if revenue_12m >= 1000 then "yes" else "no"
"""
CHINESE_CSV = "客户编号,近12个月销售额\nC1,1000\nC2,2500.5\n"


@pytest.fixture(scope="module")
def book():
    return RuleBook.from_files({"fields.yaml": FIELDS, "echo.yaml": ECHO})


def outputs(book, accounts):
    ev = book.evaluate(accounts, as_of=AS_OF)
    return [ev.outputs(i) for i in range(len(ev.frame))]


# --- files ---------------------------------------------------------------------------------------------------


def test_csv_in_utf8_with_bom_reads_chinese_headers(tmp_path, book):
    path = tmp_path / "accounts.csv"
    path.write_bytes(CHINESE_CSV.encode("utf-8-sig"))
    frame = read_table(path)
    assert list(frame.columns) == ["客户编号", "近12个月销售额"]  # no BOM glued to the first header
    assert [(o["acct"], o["rev"]) for o in outputs(book, frame)] == [("C1", 1000), ("C2", 2500.5)]


def test_csv_in_gbk_reads_chinese_headers(tmp_path, book):
    path = tmp_path / "accounts.csv"
    path.write_bytes((CHINESE_CSV + "C3,￥3000\n").encode("gbk"))
    frame = read_table(path)
    assert list(frame.columns) == ["客户编号", "近12个月销售额"]
    assert [(o["acct"], o["rev"]) for o in outputs(book, frame)] == [("C1", 1000), ("C2", 2500.5), ("C3", 3000)]


def test_read_table_from_bytes_needs_a_format():
    assert read_table(CHINESE_CSV.encode("gbk"), "csv")["客户编号"].tolist() == ["C1", "C2"]
    with pytest.raises(InputError, match="format"):
        read_table(CHINESE_CSV.encode("utf-8"))


@pytest.mark.parametrize("ext", ["csv", "xlsx", "json"])
def test_write_then_read_round_trips(tmp_path, ext):
    frame = pd.DataFrame({"客户编号": ["C1", "C2", "C3"], "近12个月销售额": [1000.5, None, 3.0],
                          "tier": ["A", None, "客"]})
    path = tmp_path / f"out.{ext}"
    write_table(frame, path)
    back = read_table(path)
    assert list(back.columns) == ["客户编号", "近12个月销售额", "tier"]
    assert back["客户编号"].tolist() == ["C1", "C2", "C3"]
    assert pd.to_numeric(back["近12个月销售额"]).tolist() == pytest.approx([1000.5, float("nan"), 3.0], nan_ok=True)
    assert back["tier"].isna().tolist() == [False, True, False]
    assert back["tier"][2] == "客"


def test_written_csv_has_a_bom_so_excel_shows_chinese(tmp_path):
    path = tmp_path / "out.csv"
    write_table(pd.DataFrame({"客户编号": ["C1"]}), path)
    assert path.read_bytes().startswith("\ufeff客户编号".encode())


def test_written_lists_become_comma_text_in_csv_but_stay_lists_in_json(tmp_path):
    frame = pd.DataFrame({"id": ["C1", "C2"], "perks": [["lounge", "gift"], []]})
    write_table(frame, tmp_path / "out.csv")
    write_table(frame, tmp_path / "out.json")
    assert read_table(tmp_path / "out.csv")["perks"].fillna("").tolist() == ["lounge, gift", ""]
    assert json.loads((tmp_path / "out.json").read_text(encoding="utf-8")) == [
        {"id": "C1", "perks": ["lounge", "gift"]}, {"id": "C2", "perks": []}]


def test_xlsx_written_with_openpyxl_is_read(tmp_path, book):
    sheet_book = openpyxl.Workbook()
    sheet = sheet_book.active
    sheet.append(["客户编号", "Revenue (12m)", "最近下单日期"])
    sheet.append(["C1", 1200, dt.datetime(2024, 5, 6)])
    sheet.append(["C2", None, None])
    sheet_book.save(tmp_path / "accounts.xlsx")
    got = outputs(book, read_table(tmp_path / "accounts.xlsx"))
    assert [(o["acct"], o["rev"], o["last"]) for o in got] == [("C1", 1200, dt.date(2024, 5, 6)), ("C2", None, None)]


def test_json_list_of_records(tmp_path, book):
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps([{"account_id": "C1", "revenue_12m": 5}, {"客户编号": "C2"}], ensure_ascii=False),
                    encoding="utf-8")
    frame = read_table(path)
    assert len(frame) == 2
    assert [o["rev"] for o in outputs(book, frame)] == [5, None]


def test_json_object_with_accounts_list(tmp_path, book):
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps({"as_of": "2026-01-01", "accounts": [
        {"account_id": "C1", "revenue_12m": 5000}, {"account_id": "C2", "revenue_12m": 10}]}), encoding="utf-8")
    got = outputs(book, read_table(path))
    assert [(o["acct"], o["big"]) for o in got] == [("C1", "yes"), ("C2", "no")]


@pytest.mark.parametrize("name", ["accounts.parquet", "accounts.xml", "accounts"])
def test_unknown_format_is_an_input_error(tmp_path, name):
    path = tmp_path / name
    path.write_text("x", encoding="utf-8")
    with pytest.raises(InputError, match="unknown format"):
        read_table(path)
    with pytest.raises(InputError, match="unknown format"):
        write_table(pd.DataFrame({"a": [1]}), tmp_path / f"out-{name}")
    assert not (tmp_path / f"out-{name}").exists()


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_table(tmp_path / "nope.csv")


# --- headers and cells ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["revenue_12m", "近12个月销售额", "Revenue (12m)", "REVENUE（12M）", "revenue 12m",
                                    "销售额", " 近12个月销售额 "])
def test_headers_map_to_fields_by_name_label_or_alias(book, header):
    ev = book.evaluate(pd.DataFrame({header: [1500], "客户ID": ["C9"]}), as_of=AS_OF)
    assert ev.headers == {"revenue_12m": header, "account_id": "客户ID"}
    assert ev.outputs(0)["rev"] == 1500 and ev.outputs(0)["acct"] == "C9"
    assert "revenue_12m" not in ev.missing_fields


def test_records_of_one_batch_may_spell_a_field_with_different_headers(book):
    got = outputs(book, [{"客户编号": "C1", "近12个月销售额": 1000}, {"account_id": "C2", "Revenue (12m)": "2,000"},
                         {"Account ID": "C3", "REVENUE（12M）": None}])
    assert [(o["acct"], o["rev"]) for o in got] == [("C1", 1000), ("C2", 2000), ("C3", None)]


def test_a_bad_cell_error_names_the_header_it_was_read_from(book):
    ev = book.evaluate([{"近12个月销售额": 1000}, {"Revenue (12m)": "lots"}], as_of=AS_OF)
    [error] = ev.errors
    assert (error.row, error.field) == (1, "revenue_12m")
    assert "(column 'Revenue (12m)')" in error.message


def test_an_unknown_header_leaves_the_field_missing(book):
    ev = book.evaluate(pd.DataFrame({"Umsatz": [1500]}), as_of=AS_OF)
    assert "revenue_12m" in ev.missing_fields
    assert ev.outputs(0)["rev"] is None


@pytest.mark.parametrize(("cell", "value"), [
    ("1,000", 1000), ("¥2,500", 2500), ("￥2,500.50", 2500.5), ("25%", 0.25), ("12.5 %", 0.125),
    (" 42 ", 42), ("-3", -3), ("RMB 1 000 元", 1000),
])
def test_number_cells_with_separators_currency_and_percent_parse(book, cell, value):
    ev = book.evaluate(pd.DataFrame({"revenue_12m": [cell], "margin": [cell]}), as_of=AS_OF)
    assert ev.errors == []
    assert ev.outputs(0)["rev"] == pytest.approx(value)
    assert ev.outputs(0)["mgn"] == pytest.approx(value)


def test_blank_cells_are_null_not_errors(tmp_path, book):
    path = tmp_path / "accounts.csv"
    path.write_text("account_id,revenue_12m,last_order\nC1,,\nC2,  ,  \n", encoding="utf-8")
    ev = book.evaluate(read_table(path), as_of=AS_OF)
    assert ev.errors == []
    assert [ev.outputs(i)["rev"] for i in range(2)] == [None, None]


def test_a_bad_cell_is_a_row_error_and_other_rows_still_evaluate(tmp_path, book):
    path = tmp_path / "accounts.csv"
    path.write_text("客户编号,近12个月销售额\nC1,1000\nC2,lots\nC3,5\n", encoding="utf-8")
    ev = book.evaluate(read_table(path), as_of=AS_OF)
    [error] = ev.errors
    assert (error.row, error.field, error.rule) == (1, "revenue_12m", None)
    assert "'lots'" in error.message and "近12个月销售额" in error.message
    assert ev.ok.tolist() == [True, False, True]
    assert ev.outputs(1) == dict.fromkeys(["acct", "rev", "mgn", "last", "big"])
    assert [(ev.outputs(i)["acct"], ev.outputs(i)["big"]) for i in (0, 2)] == [("C1", "yes"), ("C3", "no")]
    assert ev.frame["big"].isna().tolist() == [False, True, False]


@pytest.mark.parametrize(("cell", "day"), [
    ("2024-02-03", dt.date(2024, 2, 3)), ("2024/2/3", dt.date(2024, 2, 3)), ("2024年3月4日", dt.date(2024, 3, 4)),
    (" 2024-12-31 ", dt.date(2024, 12, 31)),
])
def test_date_text_in_iso_slash_and_chinese_forms(book, cell, day):
    ev = book.evaluate(pd.DataFrame({"最近下单日期": [cell]}), as_of=AS_OF)
    assert ev.errors == []
    assert ev.outputs(0)["last"] == day


def test_an_impossible_date_is_a_row_error(book):
    ev = book.evaluate(pd.DataFrame({"last_order": ["2024-02-03", "2024-13-45"]}), as_of=AS_OF)
    assert [(e.row, e.field) for e in ev.errors] == [(1, "last_order")]
    assert ev.outputs(0)["last"] == dt.date(2024, 2, 3)


def test_excel_serial_numbers_are_dates(tmp_path, book):
    frame = pd.DataFrame({"客户编号": ["C1", "C2", "C3"], "Last order date": [45000, 45352, None]})
    write_table(frame, tmp_path / "serials.xlsx")
    got = outputs(book, read_table(tmp_path / "serials.xlsx"))
    assert [o["last"] for o in got] == [dt.date(2023, 3, 15), dt.date(2024, 3, 1), None]


def test_excel_serial_number_beside_text_dates_in_one_column(tmp_path, book):
    sheet_book = openpyxl.Workbook()
    sheet = sheet_book.active
    sheet.append(["最近下单日期"])
    sheet.append([45000])
    sheet.append(["2024/2/3"])
    sheet_book.save(tmp_path / "mixed.xlsx")
    got = outputs(book, read_table(tmp_path / "mixed.xlsx"))
    assert [o["last"] for o in got] == [dt.date(2023, 3, 15), dt.date(2024, 2, 3)]


# --- sheets as people keep them ------------------------------------------------------------------------------


def ledger_xlsx(path, body_rows, *, totals=("合计",)):
    """An account ledger as finance keeps it: a merged title, a unit line, a blank row, the headers, the
    accounts, a totals row."""
    wb = openpyxl.Workbook()
    ws = wb.active
    headers = ["客户编号", "近12个月销售额（万元）", "最近下单日期", "备注", "内部编码"]
    ws.append(["2026年重点客户台账"])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(headers))
    ws.append(["单位：万元", None, None, None, "制表：财务部"])
    ws.append([])
    ws.append(headers)
    for row in body_rows:
        ws.append(list(row))
    for label in totals:
        ws.append([label, sum(r[1] for r in body_rows if isinstance(r[1], int | float)), None, None, None])
    wb.save(path)
    return path


ROWS = [("C1", 120.5, dt.datetime(2026, 3, 1), "老客户", "00123"),
        ("C2", "1.2万", "2026/3/2", None, "00456"),
        ("C3", "lots", "2026年3月3日", "待核实", "00789")]


def test_xlsx_ledger_with_merged_title_unit_headers_and_totals_row(tmp_path, book):
    sheet = read_sheet(ledger_xlsx(tmp_path / "ledger.xlsx", ROWS), dictionary=book.dictionary)
    assert sheet.header_line == 4
    assert sheet.lines.tolist() == [5, 6, 7]  # the sheet rows the accounts stand on
    assert [(w.line, w.severity) for w in sheet.warnings] == [(8, "warning")]
    assert "totals row skipped ('合计')" in str(sheet.warnings[0])
    assert str(sheet.warnings[0]).startswith(f"{tmp_path / 'ledger.xlsx'}:8: warning:")
    ev = book.evaluate(sheet.frame, as_of=AS_OF)
    got = [ev.outputs(i) for i in range(3)]
    # the header's unit scales the column; a cell with its own unit (1.2万) keeps it
    assert [(o["acct"], o["rev"], o["last"]) for o in got[:2]] == [
        ("C1", 1_205_000, dt.date(2026, 3, 1)), ("C2", 12_000, dt.date(2026, 3, 2))]
    [error] = ev.errors
    assert (error.row, error.field, sheet.lines[error.row]) == (2, "revenue_12m", 7)
    assert error.message == "'lots' is not a number (column '近12个月销售额（万元）')"


def test_unknown_columns_pass_through_untouched(tmp_path, book):
    sheet = read_sheet(ledger_xlsx(tmp_path / "ledger.xlsx", ROWS), dictionary=book.dictionary)
    result = book.evaluate(sheet.frame, as_of=AS_OF).frame
    assert result["内部编码"].tolist() == ["00123", "00456", "00789"]  # text stays text: leading zeros kept
    assert result["备注"].tolist()[0] == "老客户" and pd.isna(result["备注"][1])
    assert list(result.columns[:5]) == ["客户编号", "近12个月销售额（万元）", "最近下单日期", "备注", "内部编码"]


@pytest.mark.parametrize("label", ["合计", "总计", "Total", "TOTAL:", "合 计", "小计", "Grand total"])
def test_totals_rows_in_csv_are_skipped_with_a_warning(tmp_path, label):
    path = tmp_path / "accounts.csv"
    path.write_text(f"客户编号,近12个月销售额\nC1,100\n{label},100\nC2,200\n", encoding="utf-8")
    sheet = read_sheet(path)
    assert sheet.frame["客户编号"].tolist() == ["C1", "C2"]
    assert sheet.lines.tolist() == [2, 4]
    assert [w.line for w in sheet.warnings] == [3] and repr(label) in sheet.warnings[0].message


def test_a_company_named_like_a_total_is_no_totals_row(tmp_path):
    path = tmp_path / "accounts.csv"
    path.write_text("客户编号,客户名称\nC1,总计科技有限公司\n", encoding="utf-8")
    assert read_sheet(path).warnings == [] and len(read_sheet(path).frame) == 1


def test_csv_title_rows_are_found_without_a_dictionary(tmp_path):
    path = tmp_path / "accounts.csv"
    path.write_text("重点客户清单,,\n截至2026-11-23,,\n\n客户编号,销售额,区域\nC1,100,华东\n\nC2,200,华南\n",
                    encoding="utf-8")
    sheet = read_sheet(path)
    assert list(sheet.frame.columns) == ["客户编号", "销售额", "区域"]
    assert sheet.frame["客户编号"].tolist() == ["C1", "C2"]
    assert sheet.lines.tolist() == [5, 7]  # the blank line between them is not an account
    assert sheet.header_line == 4


def test_the_dictionary_picks_the_header_row_over_a_wide_title_row(tmp_path, book):
    path = tmp_path / "accounts.csv"
    path.write_text("华东区,2026年,第四季度\n客户编号,近12个月销售额,最近下单日期\nC1,100,2026-01-01\n",
                    encoding="utf-8")
    assert read_sheet(path).header_line == 1  # without a dictionary the wide title looks like headers
    assert read_sheet(path, dictionary=book.dictionary).header_line == 2


def test_blank_and_repeated_headers_get_names_and_empty_columns_go(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["客户编号", None, "备注", "备注", None])
    ws.append(["C1", "x", "a", "b", None])
    wb.save(tmp_path / "a.xlsx")
    frame = read_table(tmp_path / "a.xlsx")
    assert list(frame.columns) == ["客户编号", "Unnamed: 1", "备注", "备注.1"]
    assert frame.iloc[0].tolist() == ["C1", "x", "a", "b"]


def test_a_row_with_more_cells_than_headers_is_an_input_error(tmp_path):
    path = tmp_path / "accounts.csv"
    path.write_text("客户编号,销售额\nC1,100\nC2,200,extra\n", encoding="utf-8")
    with pytest.raises(InputError, match="cannot read as csv"):
        read_sheet(path)


def test_every_unreadable_cell_is_its_own_row_error(book):
    ev = book.evaluate(pd.DataFrame({"客户编号": ["C1", "C2", "C3"], "销售额": ["1万", "abc", "(5)"],
                                     "最近下单日期": ["2026-02-30", "2026/1/2", "x"]}), as_of=AS_OF)
    assert [(e.row, e.field) for e in ev.errors] == [(0, "last_order"), (1, "revenue_12m"), (2, "last_order")]
    assert [e.message for e in ev.errors] == ["'2026-02-30' is not a date (column '最近下单日期')",
                                              "'abc' is not a number (column '销售额')",
                                              "'x' is not a date (column '最近下单日期')"]
    assert ev.ok.tolist() == [False, False, False]


@pytest.mark.parametrize("header", ["近12个月销售额（万元）", "近12个月销售额(万元)", "Revenue (12m) (万元)",
                                    "近12个月销售额（单位：万元）", "REVENUE（12M）（万）"])
def test_a_money_header_may_carry_its_unit(book, header):
    ev = book.evaluate(pd.DataFrame({header: [12.34]}), as_of=AS_OF)
    assert ev.outputs(0)["rev"] == 123_400 and ev.headers["revenue_12m"] == header


def test_a_unit_on_a_text_header_does_not_match(book):
    ev = book.evaluate(pd.DataFrame({"客户编号（万元）": ["C1"]}), as_of=AS_OF)
    assert "account_id" in ev.missing_fields


def test_results_labelled_in_chinese_and_english(book):
    frame = pd.DataFrame({"account_id": ["C1"], "flag": [True], "seg": [["loyal", "other"]], "sheet column": [1]})
    dictionary = RuleBook.from_files({"f.yaml": """
fields:
  - {name: account_id, type: string, label: {zh: 客户编号, en: Account ID}}
  - {name: flag, type: boolean, label: {zh: 假大客户, en: False big account}}
  - name: seg
    type: list
    label: {zh: 分群, en: Segments}
    values: [{value: loyal, label: {zh: 忠诚客户, en: Loyal}}]
"""}).dictionary
    zh = labelled(frame, dictionary, "zh")
    assert list(zh.columns) == ["客户编号", "假大客户", "分群", "sheet column"]
    assert zh.iloc[0].tolist() == ["C1", "是", ["忠诚客户", "other"], 1]
    assert labelled(frame, dictionary, "en").iloc[0].tolist() == ["C1", "yes", ["Loyal", "other"], 1]
    assert list(labelled(frame.rename(columns={"sheet column": "x"}), dictionary, "en", {"x": {"en": "X"}})
                .columns) == ["Account ID", "False big account", "Segments", "X"]


ONE_CELL = ["text", "", "制造业", 0, -1, 2**63 - 1, 2**63, -(2**63) - 1, True, False, 1.5, -0.0, float("nan"),
            float("inf"), None, pd.NaT, pd.Timestamp("2024-03-01"), pd.Timestamp("2024-03-01", tz="UTC"),
            dt.datetime(2024, 3, 1, 12), dt.date(2024, 3, 1), [1, 2], {"a": 1}, b"bytes", (1, 2)]


@pytest.mark.parametrize("cell", ONE_CELL, ids=repr)
def test_one_records_cell_kind_is_the_column_kind_of_that_cell(cell):
    """A request of one account reads each cell's kind directly: the same kind the column reader gives it."""
    from kamcore.portfolio import _cell_kind, _kind

    assert _cell_kind(cell) == _kind([cell])


def test_a_date_text_is_read_once_and_then_remembered(book):
    """Date texts repeat from request to request: the day read is remembered, and is the day the reader gives."""
    from kamcore import portfolio

    for text in ["2024-03-01", "2024年3月1日", "2024/2/30", "not a date", "45352", " 2024-03-01T00:00:00.000 "]:
        portfolio._DAY_TEXTS.pop(text, None)
        first = portfolio._day_cell(text)
        assert portfolio._DAY_TEXTS[text] == first == portfolio._read_day(text)
        assert portfolio._day_cell(text) is first
    assert portfolio._day_cell("x" * 65) == portfolio._read_day("x" * 65) and "x" * 65 not in portfolio._DAY_TEXTS
    for k in range(5000):
        portfolio._day_cell(f"2024-01-{k}")
    assert len(portfolio._DAY_TEXTS) <= 4096


def test_a_few_records_header_lookup_is_remembered_per_key_order_and_book(book):
    """The lookup of a request's keys is kept per key sequence, and only for the same book's fields and
    dictionary: another book (or field set) with the same keys gets its own."""
    from kamcore import portfolio

    headers = ["客户编号", "revenue_12m", "Gross Profit (12m)", "unknown"]
    first = portfolio._record_sources(headers, book.inputs, book.dictionary)
    assert portfolio._record_sources(list(headers), book.inputs, book.dictionary) is first
    assert first == portfolio._sources(headers, book.inputs, book.dictionary)
    fewer = {"revenue_12m": book.inputs["revenue_12m"]}
    assert set(portfolio._record_sources(headers, fewer, book.dictionary)) == {"revenue_12m"}
    assert portfolio._record_sources(headers[::-1], book.inputs, book.dictionary) is not first
    for k in range(300):
        portfolio._record_sources([f"h{k}"], book.inputs, book.dictionary)
    assert len(portfolio._KNOWN_SOURCES) <= 256
    huge = ["revenue_12m", "x" * 10_000]  # a key may be megabytes: such keys are looked up, never kept
    assert set(portfolio._record_sources(huge, book.inputs, book.dictionary)) == {"revenue_12m"}
    assert not any("x" * 10_000 in key for key in portfolio._KNOWN_SOURCES)


def damaged_xlsx(damage: str) -> bytes:
    """A small account sheet made unreadable in one way (each once raised openpyxl's own exception, a 500)."""
    wb = openpyxl.Workbook()
    wb.active.append(["客户编号", "近12个月销售额"])
    wb.active.append(["C1", "lots"])  # (an inline string, made a shared-string index below)
    if damage == "an empty chart sheet":
        wb.create_chartsheet("图表", 0)
    out = io.BytesIO()
    wb.save(out)
    if damage == "an empty chart sheet":  # (openpyxl 3.1 fails on a chart sheet with no chart in it)
        return out.getvalue()
    if damage == "a part packed with Deflate64":  # (zipfile cannot unpack it: NotImplementedError)
        data = bytearray(out.getvalue())
        with zipfile.ZipFile(out) as archive:
            info = archive.getinfo("xl/worksheets/sheet1.xml")
        data[info.header_offset + 8:info.header_offset + 10] = (9).to_bytes(2, "little")  # the local header's
        central = data.rfind(b"PK\x01\x02", 0, data.rfind(b"xl/worksheets/sheet1.xml"))
        data[central + 10:central + 12] = (9).to_bytes(2, "little")  # and the central directory's
        return bytes(data)
    edits = {
        "a sheet's XML cut short": ("xl/worksheets/sheet1.xml", lambda xml: xml[: len(xml) // 2]),
        "a shared string that is not there": ("xl/worksheets/sheet1.xml", lambda xml: xml.replace(
            b't="inlineStr"><is><t>lots</t></is>', b't="s"><v>99</v>')),
        "a workbook naming no sheet": ("xl/workbook.xml", lambda xml: re.sub(rb"<sheets>.*</sheets>", b"", xml)),
    }
    part, edit = edits[damage]
    damaged = io.BytesIO()
    with zipfile.ZipFile(out) as source, zipfile.ZipFile(damaged, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info, edit(data) if info.filename == part else data)
    assert damaged.getvalue() != out.getvalue()
    return damaged.getvalue()


DAMAGES = ["an empty chart sheet", "a sheet's XML cut short", "a shared string that is not there",
           "a workbook naming no sheet", "a part packed with Deflate64"]


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_xlsx_is_an_input_error_naming_the_upload(damage):
    with pytest.raises(InputError, match=r"^<upload>: cannot read as xlsx: "):
        read_sheet(damaged_xlsx(damage), "xlsx")


def sheet_with_far_cell(value) -> bytes:
    wb = openpyxl.Workbook()
    wb.active.append(["客户编号", "近12个月销售额"])
    for i in range(50):
        wb.active.append([f"C{i}", i])
    wb.active["XFD5"] = value
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def test_a_value_far_to_the_right_is_an_input_error_naming_its_row_and_column():
    # Read as it stood, every row would be 16,384 cells wide (2,000 rows: 3.9 s and 754 MB).
    with pytest.raises(InputError, match=r"^<upload>:5: a value in column XFD, beyond the 1,024 columns"):
        read_sheet(sheet_with_far_cell("x"), "xlsx")


def test_blank_cells_far_to_the_right_are_no_columns(book):
    sheet = read_sheet(sheet_with_far_cell("  "), "xlsx")
    assert sheet.frame.columns.tolist() == ["客户编号", "近12个月销售额"] and len(sheet.frame) == 50
    assert sheet.lines.tolist() == list(range(2, 52))
    # An add-in's used range: rows as long as the sheet's widest, filled with None.
    wide = read_rows([["客户编号", "近12个月销售额"] + [None] * 2000, ["C1", 5] + [None] * 2000])
    assert wide.frame.to_dict("records") == [{"客户编号": "C1", "近12个月销售额": 5}]


def sheet_with_gaps(far: str | None = "A1048576") -> bytes:
    """An account table with a title, an empty row inside it, a row of empty strings, and (`far`) a stray value
    far below it."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws["A1"] = "重点客户"
    ws.append([])
    ws.append(["客户编号", "近12个月销售额", "行业"])
    for i in range(40):
        ws.append([f"C{i}", i * 100, "制造业"] if i != 7 else [])
    ws.append(["", " ", None])
    ws.append(["C40", 4000, "能源"])
    if far:
        ws[far] = "stray"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def test_rows_without_a_value_are_left_out_and_every_row_keeps_its_line(monkeypatch):
    """A stray cell at A1048576 below the table is one row more, read at its line, not a million empty rows made
    (2,000 accounts: 3.8 s and 700 MB to read a 200 kB upload); the table reads as it does from every sheet row."""
    made = []
    rows_of = portfolio.sheet_rows
    monkeypatch.setattr(portfolio, "sheet_rows", lambda sheet: made.append(rows_of(sheet)) or made[-1])
    sheet = read_sheet(sheet_with_gaps(), "xlsx")
    rows, lines = made[0]
    assert len(rows) == len(lines) == 1 + 1 + 39 + 1 + 1 + 1  # title, header, 39 accounts, blanks, C40, stray
    assert lines[:3] == [1, 3, 4] and lines[-1] == 1048576
    assert sheet.header_line == 3
    assert sheet.frame["客户编号"].tolist() == [f"C{i}" for i in range(41) if i != 7] + ["stray"]
    assert sheet.lines.tolist() == [4 + i for i in range(40) if i != 7] + [45, 1048576]
    # every sheet row from A1, as an add-in hands them over: the same table, the same lines
    wb = openpyxl.load_workbook(io.BytesIO(sheet_with_gaps(far=None)))
    dense = read_rows([list(r) for r in wb.active.iter_rows(values_only=True)])
    sparse = read_sheet(sheet_with_gaps(far=None), "xlsx")
    pd.testing.assert_frame_equal(sparse.frame, dense.frame)
    assert sparse.lines.tolist() == dense.lines.tolist() and sparse.header_line == dense.header_line == 3


def test_a_value_far_to_the_right_below_empty_rows_is_named_at_its_own_line():
    wb = openpyxl.Workbook()
    wb.active.append(["客户编号", "近12个月销售额"])
    wb.active["A9"] = "C1"
    wb.active["XFD9"] = "x"
    out = io.BytesIO()
    wb.save(out)
    with pytest.raises(InputError, match=r"^<upload>:9: a value in column XFD"):
        read_sheet(out.getvalue(), "xlsx")


def test_the_header_is_looked_for_among_the_first_sheet_rows_whatever_rows_are_left_out():
    """Headers are looked for among the sheet's first 30 rows, read with its empty rows or without them: a sheet
    whose table starts below row 30 reads the same from an upload as from an add-in's rows from A1."""
    book = RuleBook.load(Path(__file__).resolve().parents[1] / "rules")  # (its dictionary knows 行业)
    wb = openpyxl.Workbook()
    wb.active["A1"] = "重点客户"
    wb.active["A2"], wb.active["B2"] = "客户编号", "近12个月销售额"
    for r in range(33, 36):  # a wider header-like row below row 30: not the header
        for c, value in enumerate([f"C{r}", 100, "x"] if r > 33 else ["客户编号", "近12个月销售额", "行业"], start=1):
            wb.active.cell(row=r, column=c, value=value)
    out = io.BytesIO()
    wb.save(out)
    loaded = openpyxl.load_workbook(io.BytesIO(out.getvalue()))
    dense = read_rows([list(r) for r in loaded.active.iter_rows(values_only=True)], dictionary=book.dictionary)
    sparse = read_sheet(out.getvalue(), "xlsx", dictionary=book.dictionary)
    assert sparse.header_line == dense.header_line == 2
    pd.testing.assert_frame_equal(sparse.frame, dense.frame)
    assert sparse.lines.tolist() == dense.lines.tolist() == [33, 34, 35]


# --- formulas saved without their values ---

def _formula_workbook(path, prefixed=False):
    """An account table whose cells hold formulas, saved by openpyxl (which does not calculate them)."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["客户编号", "近12个月销售额", "近12个月毛利", "备注"])
    ws.append(["C1", "=2000000*2", 924_000, "=1+1"])  # a field's formula, and one in a column no rule reads
    ws.append(["C2", 3_000_000, '=IF(B3>0,"a&b","")', "x"])
    wb.save(path)
    if prefixed:  # the sheet's XML with its namespace given a prefix (`<x:c>`), as some writers make it
        with zipfile.ZipFile(path) as zin:
            parts = {name: zin.read(name) for name in zin.namelist()}
        xml = parts["xl/worksheets/sheet1.xml"]
        xml = re.sub(rb"<(/?)([A-Za-z]+)([ />])", rb"<\1x:\2\3", xml.replace(b"<?xml", b"<?XML"))
        xml = xml.replace(b"<?XML", b"<?xml").replace(b'x:worksheet xmlns="', b'x:worksheet xmlns:x="')
        with zipfile.ZipFile(path, "w") as zout:
            for name, data in parts.items():
                zout.writestr(name, xml if name == "xl/worksheets/sheet1.xml" else data)
    return path


@pytest.mark.parametrize("prefixed", [False, True], ids=["plain", "prefixed"])
def test_formulas_saved_without_their_values_are_found(tmp_path, prefixed):
    path = _formula_workbook(tmp_path / "accounts.xlsx", prefixed)
    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    assert [list(r) for r in book.worksheets[0].iter_rows(values_only=True)][1] == ["C1", None, 924000, None]
    assert portfolio.uncalculated_formulas(book.worksheets[0]) == [
        (2, 1, "B2", "=2000000*2"), (2, 3, "D2", "=1+1"), (3, 2, "C3", '=IF(B3>0,"a&b","")')]


def test_an_account_table_with_a_formula_saved_without_its_value_is_refused_naming_the_cell(tmp_path, book):
    """Read as values, the formula's cell is empty and the account would be evaluated without it: refused, naming
    its row, cell, column and formula. A formula in a column no rule reads (备注) is no reason."""
    path = _formula_workbook(tmp_path / "accounts.xlsx")
    with pytest.raises(InputError) as refused:
        read_sheet(path, dictionary=book.dictionary)
    assert str(refused.value).startswith(f"{path}:2: B2 under '近12个月销售额' holds a formula saved without its value "
                                         "(=2000000*2): the file was written by a program that does not calculate. "
                                         "Open it in Excel or LibreOffice and save it, or paste the values")
    shipped = RuleBook.load(Path(__file__).resolve().parent.parent / "rules")  # 近12个月毛利 a field too
    with pytest.raises(InputError, match=r"\(=2000000\*2\), as does 1 more cell: "):
        read_sheet(path, dictionary=shipped.dictionary)
    with pytest.raises(InputError, match=r"\(=2000000\*2\): "):  # among the fields the rules read: C3's is not
        read_sheet(path, dictionary=shipped.dictionary, reads={"revenue_12m"})
    wb = openpyxl.load_workbook(path)
    wb.active["B2"], wb.active["C3"] = 4_000_000, 1
    wb.save(path)
    remarks = read_sheet(path, dictionary=book.dictionary).frame["备注"]  # D2's formula is read as it always was
    assert remarks.isna().tolist() == [True, False] and remarks[1] == "x"
    assert len(read_sheet(path).frame) == 2  # without a dictionary nothing says which columns the rules read


def _sheet_of(cells: str) -> bytes:
    """An xlsx whose sheet's XML is a header row (客户编号, 近12个月销售额, 近12个月毛利, 备注) and `cells`."""
    wb = openpyxl.Workbook()
    wb.active.append(["x"])
    buffer = io.BytesIO()
    wb.save(buffer)
    header = "".join(f'<c r="{c}1" t="inlineStr"><is><t>{h}</t></is></c>'
                     for c, h in zip("ABCD", ["客户编号", "近12个月销售额", "近12个月毛利", "备注"], strict=True))
    sheet = ('<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/'
             f'spreadsheetml/2006/main"><sheetData><row r="1">{header}</row>{cells}</sheetData></worksheet>')
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as zin, zipfile.ZipFile(out, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, sheet.encode() if name == "xl/worksheets/sheet1.xml" else zin.read(name))
    return out.getvalue()


_A2 = '<c r="A2" t="inlineStr"><is><t>C1</t></is></c>'


@pytest.mark.parametrize("cells, refused", [
    (f'<row r="2">{_A2}<c r="B2"><f>2+3</f><v>5</v></c></row>', None),
    (f'<row r="2">{_A2}<c r="C2" t="str"><f>""</f><v></v></c></row>', None),  # an empty text result, as Excel
    (f'<row r="2">{_A2}<c r="C2" t="inlineStr"><f>""</f><is><t></t></is></c></row>', None),
    (f'<row r="2">{_A2}<c r="B2" t="e"><f>1/0</f><v>#DIV/0!</v></c></row>', None),
    (f'<row r="2">{_A2}<c r="B2"><f t="shared" ref="B2:C2" si="0">1+1</f><v>2</v></c>'
     '<c r="C2"><f t="shared" si="0"/><v>2</v></c></row>', None),
    (f'<row r="2">{_A2}<c r="B2"><v>5</v></c><c\n r="D2"><f>1+1</f></c></row>', None),  # D: no rule reads it
    (f'<row r="2">{_A2}<c r="B2"><v>5</v></c></row><row r="3"><c r="C3"><f>IF(A3="","",1)</f></c></row>', None),
    (f'<row r="2">{_A2}<c r="B2"><f aca="false">IF(1,&quot;a&quot;,1)</f></c></row>', 'B2 under \'近12个月销售额\' '
     'holds a formula saved without its value (=IF(1,"a",1))'),
    (f'<row r="2">{_A2}<c\tr="C2"><f t="shared" ref="C2:C3" si="0">1+1</f><v/></c></row>', "C2 under '近12个月毛利'"),
    (f'<row r="2">{_A2}<c r="B2"><v>5</v></c></row><row r="3"><c r="A3" t="inlineStr"><is><t>合计</t></is></c>'
     '<c r="B3"><f>SUM(B2:B2)</f></c></row>', None),  # a totals row
], ids=["calculated", "empty text", "inline text", "error", "shared", "column not read", "template row", "quot",
        "shared master", "totals"])
def test_formulas_are_told_apart_by_whether_their_values_were_saved(cells, refused):
    shipped = RuleBook.load(Path(__file__).resolve().parent.parent / "rules")
    data = _sheet_of(cells)
    if refused is None:
        assert len(read_sheet(data, "xlsx", shipped.dictionary, shipped.inputs).frame) >= 1
    else:
        with pytest.raises(InputError, match=re.escape(refused)):
            read_sheet(data, "xlsx", shipped.dictionary, shipped.inputs)


def test_a_formula_outside_the_cells_is_no_cells(tmp_path):
    """A sparkline's or a conditional format's formula (`<xm:f>`, `<formula>`) is no cell's: passed over at once."""
    spark = ('<row r="2"><c r="B2"><v>1</v></c></row></sheetData><extLst><ext uri="x"><x14:sparklineGroups '
             'xmlns:x14="urn:x14" xmlns:xm="urn:xm"><x14:sparkline><xm:f>Sheet1!B2:C2</xm:f></x14:sparkline>'
             '</x14:sparklineGroups></ext></extLst><sheetData>')
    book = openpyxl.load_workbook(io.BytesIO(_sheet_of(spark)), read_only=True, data_only=True)
    assert portfolio.uncalculated_formulas(book.worksheets[0]) == []


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice is installed by `make test`")
def test_the_same_table_saved_by_libreoffice_has_its_values_and_is_read(tmp_path, book):
    """A real spreadsheet calculates the formulas and saves their values (an empty text result as text): read."""
    path = _formula_workbook(tmp_path / "accounts.xlsx")
    out = tmp_path / "lo"
    run = subprocess.run(["soffice", "--headless", "--norestore", f"-env:UserInstallation=file://{tmp_path}/profile",
                          "--convert-to", "xlsx", "--outdir", str(out), str(path)],
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    saved = openpyxl.load_workbook(out / path.name, read_only=True, data_only=True)
    assert portfolio.uncalculated_formulas(saved.worksheets[0]) == []
    frame = read_sheet(out / path.name, dictionary=book.dictionary).frame
    assert frame["近12个月销售额"].tolist() == [4_000_000, 3_000_000] and frame["备注"].tolist()[0] == 2
