"""The Excel endpoints against the real app: the xlwings protocol, WEBSERVICE() cells, CSV for Power Query and
the xlsx round trip, each with its token and role check."""

import io
import json

import openpyxl
import pytest

from kamcore.demo import synthetic_portfolio
from tests.test_portfolio import DAMAGES, damaged_xlsx

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def payload(values, active=0, extra_sheets=()):
    """The book payload exactly as xlwings' Office.js client builds it (values from A1, "" for empty cells)."""
    sheets = [{"name": "客户台账", "values": values, "pictures": [], "tables": []}, *extra_sheets]
    return {"client": "Office.js", "version": "0.33.0",
            "book": {"name": "台账.xlsx", "active_sheet_index": active, "selection": "A1"},
            "names": [], "sheets": sheets}


LEDGER = [["2026年重点客户", "", "", "", "", ""],
          ["", "", "", "", "", ""],
          ["客户编号", "近12个月销售额（万元）", "近12个月毛利（万元）", "平均回款天数", "行业", "首次合作日期"],
          ["KH001", 420, 92.4, 45, "制造业", "2019-04-01T00:00:00.000Z"],
          ["", "", "", "", "", ""],
          ["KH002", "很多", 1, 1, "制造业", ""],
          ["KH003", 20, 2, 30, "=cmd|' /C calc'!A0", ""],
          ["合计", 440, "", "", "", ""]]


def post_sheet(client, body, query="?lang=zh"):
    return client.post(f"/xlwings/score-sheet{query}", data=json.dumps(body), content_type="application/json")


def test_score_sheet_answers_the_actions_xlwings_clients_apply(as_):
    r = post_sheet(as_["viewer"], payload(LEDGER))
    assert r.status_code == 200, r.json
    actions = r.json["actions"]
    block = actions[0]
    assert block["func"] == "setValues" and (block["start_row"], block["start_column"]) == (2, 6)
    assert (block["row_count"], block["column_count"]) == (6, 8) and block["sheet_position"] == 0
    assert block["values"][0][:3] == ["客户等级", "客户分群", "信用状态"]
    assert block["values"][1][0] == "A" and block["values"][2] == [""] * 8 and block["values"][5] == [""] * 8
    assert "revenue_12m" in block["values"][3][7]
    assert block["values"][4][0] == "D"
    colours = {(a["start_row"], a["start_column"]): a["args"][0] for a in actions if a["func"] == "setRangeColor"}
    assert colours[(3, 6)] == "#C6EFCE" and colours[(5, 13)] == "#FFC7CE"
    notes = [a for a in actions if a["func"] == "addNote"]
    assert notes[0]["start_row"] == 3 and "客户等级 [tier]: tier = A" in notes[0]["args"][0]
    version = actions[-2]
    assert version["values"][0][0] == "规则版本 / Rules version" and len(version["values"][0][1]) == 40
    assert set(actions[0]) == {"func", "args", "values", "sheet_position", "start_row", "start_column",
                               "row_count", "column_count"}
    kam = r.json["kam"]
    assert kam["scored"] == 2 and kam["errors"][0]["line"] == 6 and "totals row skipped" in kam["warnings"][0]


def test_score_sheet_rescoring_reuses_its_columns_and_stock_clients_get_no_notes(as_):
    first = post_sheet(as_["viewer"], payload(LEDGER)).json["actions"][0]
    scored = [row + (first["values"][i - 2] if 2 <= i < 8 else [""] * 8) for i, row in enumerate(LEDGER)]
    again = post_sheet(as_["viewer"], payload(scored), "?lang=en&notes=false")
    assert again.status_code == 200
    block = again.json["actions"][0]
    assert block["start_column"] == 6 and block["values"][0][0] == "Tier"
    assert not [a for a in again.json["actions"] if a["func"] == "addNote"]


def test_score_sheet_repaints_a_row_that_turned_bad(as_):
    """A row scored A last time and unreadable now loses its green and its note explaining tier A: stock clients
    cannot clear a fill, so the block's coloured columns are painted white where they have no colour, and our
    clients get an empty note (which deletes the old one) on every tier cell without a new note."""
    first = post_sheet(as_["viewer"], payload(LEDGER)).json["actions"]
    block = first[0]
    scored = [row + (block["values"][i - 2] if 2 <= i < 8 else [""] * 8) for i, row in enumerate(LEDGER)]
    scored[3][1] = "很多"  # KH001 (tier A, row 3 from 0) now has an unreadable revenue
    again = post_sheet(as_["viewer"], payload(scored)).json["actions"]
    assert again[0]["values"][1][0] == ""
    painted = {}
    for a in again:
        if a["func"] == "setRangeColor":
            for r in range(a["start_row"], a["start_row"] + a["row_count"]):
                painted[(r, a["start_column"])] = a["args"][0]
    assert painted[(3, 6)] == "#FFFFFF" and painted[(6, 6)] != "#FFFFFF"  # KH001 white, KH003 keeps its tier colour
    notes = {(a["start_row"], a["start_column"]): a["args"][0] for a in again if a["func"] == "addNote"}
    assert notes[(3, 6)] == "" and notes[(6, 6)].startswith("客户等级 [tier]")


def test_score_sheet_scores_the_active_sheet_only_and_refuses_a_bad_payload(as_):
    other = {"name": "说明", "values": [["x"]], "pictures": [], "tables": []}
    r = post_sheet(as_["viewer"], {**payload(LEDGER, extra_sheets=[other]), "book": {
        "name": "b", "active_sheet_index": 1, "selection": "A1"}})
    assert r.status_code == 422 and "account" not in r.json["detail"] or r.status_code == 200
    bad = post_sheet(as_["viewer"], {"book": {"name": "b"}, "sheets": []})
    assert bad.status_code == 422 and "active_sheet_index" in bad.json["detail"]


def test_score_sheet_needs_a_token(as_):
    assert post_sheet(as_["anonymous"], payload(LEDGER)).status_code == 401


def test_score_sheet_10000_rows(as_):
    frame = synthetic_portfolio(10_000, 3)
    frame = frame.astype(object).where(frame.notna(), "")
    for col in ("first_order_date", "last_order_date", "contract_end_date"):
        frame[col] = [v.strftime("%Y-%m-%dT00:00:00.000Z") if v != "" else "" for v in frame[col]]
    values = [list(frame.columns), *frame.values.tolist(), ["Total", *[""] * (frame.shape[1] - 1)]]
    r = post_sheet(as_["viewer"], payload(values), "?lang=en&notes=false")
    assert r.status_code == 200
    assert r.json["kam"]["scored"] == 10_000 and r.json["actions"][0]["row_count"] == 10_002
    assert {row[0] for row in r.json["actions"][0]["values"][1:-1]} <= {"A", "B", "C", "D"}


def test_cell_answers_bare_text_for_webservice(as_):
    r = as_["viewer"].get("/v1/cell/tier?近12个月销售额=420万&近12个月毛利=92.4万&平均回款天数=45")
    assert r.status_code == 200 and r.data == b"A" and r.mimetype == "text/plain"
    token = as_["viewer"].token
    r = as_["anonymous"].get(f"/v1/cell/credit_status?revenue_12m=4200000&dso_days=45&lang=zh&token={token}")
    assert r.status_code == 200 and r.data.decode() == "正常"
    assert as_["anonymous"].get("/v1/cell/tier?revenue_12m=1").status_code == 401
    assert as_["anonymous"].get("/v1/cell/tier?revenue_12m=1&token=kam_x_y").status_code == 401
    assert as_["viewer"].get("/v1/cell/nope?revenue_12m=1").status_code == 404
    bad = as_["viewer"].get("/v1/cell/tier?revenue_12m=lots")
    assert bad.status_code == 422 and "lots" in bad.json["detail"]


def test_query_token_is_only_for_the_cell_endpoint(as_):
    token = as_["viewer"].token
    r = as_["anonymous"].post(f"/v1/evaluate.csv?token={token}", data=b"revenue_12m\n1\n", content_type="text/csv")
    assert r.status_code == 401


def test_evaluate_csv_keeps_every_row_and_neutralises_formulas(as_):
    body = "客户编号,近12个月销售额,备注\nC1,420万,=cmd|' /C calc'!A0\nC2,lots,x\n合计,1,\n".encode()
    r = as_["viewer"].post("/v1/evaluate.csv?lang=zh", data=body, content_type="text/csv")
    assert r.status_code == 200 and r.headers["X-Rules-Version"]
    lines = r.data.decode("utf-8-sig").splitlines()
    header = lines[0].split(",")
    assert header[:3] == ["客户编号", "近12个月销售额", "备注"] and "客户等级" in header and header[-1] == "kam_errors"
    assert len(lines) == 3 and lines[1].startswith("C1,420万,'=cmd")
    assert lines[2].startswith("C2,lots,x,") and lines[2].endswith("'近12个月销售额')")
    assert as_["viewer"].post("/v1/evaluate.csv", data=b"{}", content_type="application/json").status_code == 415


def workbook_bytes():
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["客户编号", "近12个月销售额", "近12个月毛利", "平均回款天数", "合计毛利率"])
    ws.append(["C1", 4_200_000, 924_000, 45, "=C2/B2"])
    wb.create_sheet("其他")["A1"] = "=1+1"
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("path,headers", [("/v1/evaluate.xlsx?lang=en", {}),
                                          ("/v1/evaluate?lang=en", {"Accept": XLSX})])
def test_xlsx_in_the_same_workbook_out(as_, path, headers):
    r = as_["viewer"].post(path, data=workbook_bytes(), content_type=XLSX, headers=headers)
    assert r.status_code == 200 and r.mimetype == XLSX
    wb = openpyxl.load_workbook(io.BytesIO(r.data))
    ws = wb.active
    assert ws["E2"].value == "=C2/B2" and wb["其他"]["A1"].value == "=1+1"
    assert ws["F1"].value == "Tier" and ws["F2"].value == "A" and ws["F2"].comment is not None
    assert r.headers["X-Decision-Id"] and ws["P1"].value == r.headers["X-Rules-Version"]


def test_xlsx_json_answer_is_unchanged_without_the_accept_header(as_):
    r = as_["viewer"].post("/v1/evaluate", data=workbook_bytes(), content_type=XLSX)
    assert r.status_code == 200 and r.json["results"][0]["tier"] == "A"


def test_xlsx_endpoint_needs_a_token_and_an_xlsx(as_):
    assert as_["anonymous"].post("/v1/evaluate.xlsx", data=workbook_bytes(), content_type=XLSX).status_code == 401
    r = as_["viewer"].post("/v1/evaluate.xlsx", data=b"not a workbook", content_type=XLSX)
    assert r.status_code == 422


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_workbook_is_a_422_naming_the_upload_on_both_xlsx_paths(as_, damage):
    # Scored as a table (JSON answer) and as a workbook (the xlsx round trip): each a problem document, never a 500.
    table = as_["viewer"].post("/v1/evaluate", data=damaged_xlsx(damage), content_type=XLSX)
    assert table.status_code == 422 and "<upload>: cannot read as xlsx" in table.json["detail"], table.json
    book = as_["viewer"].post("/v1/evaluate.xlsx", data=damaged_xlsx(damage), content_type=XLSX)
    said = ("no sheet has an account table" if damage == "a workbook naming no sheet"  # (read, with no sheet)
            else "<upload>: not an xlsx workbook")
    assert book.status_code == 422 and said in book.json["detail"], book.json


def test_score_sheet_writes_its_results_right_of_a_users_note_beside_the_table(as_):
    """A value right of the headers, in a column without one (a note), is never written over: the result
    columns start right of it, and the answer's warnings say so."""
    values = [row + [""] * 2 for row in LEDGER]
    values[3][7] = "周一回电"  # H4
    r = post_sheet(as_["viewer"], payload(values))
    assert r.status_code == 200, r.json
    block = r.json["actions"][0]
    assert (block["start_row"], block["start_column"]) == (2, 8)  # I3, where it was G3 without the note
    assert r.json["kam"]["warnings"][0].startswith("客户台账:4: H4 holds a value right of the table's headers, kept")
    written = {(a["start_row"] + i, a["start_column"] + j) for a in r.json["actions"] if "values" in a
               for i, row in enumerate(a["values"]) for j, _ in enumerate(row)}
    assert (3, 7) not in written


def test_xlsx_round_trip_refuses_a_value_far_right_of_the_table(as_):
    wb = openpyxl.load_workbook(io.BytesIO(workbook_bytes()))
    wb.active["XFD2"] = "stray"
    buffer = io.BytesIO()
    wb.save(buffer)
    r = as_["viewer"].post("/v1/evaluate.xlsx", data=buffer.getvalue(), content_type=XLSX)
    assert r.status_code == 422 and "<upload>:2: a value in column XFD, beyond the 1,024 columns" in r.json["detail"]


def test_xlsx_round_trip_refuses_a_merged_range_in_the_blocks_way_before_logging_a_decision(app, as_):
    wb = openpyxl.load_workbook(io.BytesIO(workbook_bytes()))
    wb.active["G2"] = "跟进"
    wb.active.merge_cells("G2:H3")
    buffer = io.BytesIO()
    wb.save(buffer)
    r = as_["viewer"].post("/v1/evaluate.xlsx", data=buffer.getvalue(), content_type=XLSX)
    assert r.status_code == 422 and "G2:H3 is merged where the result columns go" in r.json["detail"]
    assert app.extensions["kam"].decisions.verify().records == 0


def test_an_upload_whose_formulas_were_saved_without_values_is_a_422_naming_the_cell_on_both_xlsx_paths(as_):
    """Read as values, such a cell is empty, and the account would be evaluated without it (a tier D for an
    account of 4.2 million): refused, naming the row, cell, column and formula. A formula in a column no rule
    reads is no reason (see workbook_bytes: 合计毛利率)."""
    wb = openpyxl.load_workbook(io.BytesIO(workbook_bytes()))
    wb.active["B2"] = "=4200000*1"
    buffer = io.BytesIO()
    wb.save(buffer)
    for path, headers in (("/v1/evaluate", {}), ("/v1/evaluate.xlsx", {})):
        r = as_["viewer"].post(path, data=buffer.getvalue(), content_type=XLSX, headers=headers)
        assert r.status_code == 422, (path, r.data[:300])
        assert r.json["detail"].startswith("<upload>:2: B2 under '近12个月销售额' holds a formula saved without its "
                                           "value (=4200000*1): the file was written by a program that does not "
                                           "calculate"), r.json
