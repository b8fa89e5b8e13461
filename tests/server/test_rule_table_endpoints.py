"""`GET` / `PUT /v1/rules/<id>/table.xlsx` against the real app over a real rule repository: roles, a committed
edit, cell addresses on refusal, a stale table, change requests and the upload limit."""

import io
from urllib.parse import quote

import openpyxl

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ACCOUNT = {"revenue_12m": 2_800_000, "gross_profit_12m": 560_000, "dso_days": 60, "industry": "retail"}


def exported(client, rule_id="tier"):
    r = client.get(f"/v1/rules/{rule_id}/table.xlsx")
    assert r.status_code == 200 and r.mimetype == XLSX, r.data[:300]
    return r


def edited(data, changes):
    wb = openpyxl.load_workbook(io.BytesIO(data))
    for ref, value in changes.items():
        sheet, cell = ref.split("!")
        wb[sheet][cell] = value
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def put(client, data, message="Raise the bar", rule_id="tier", headers=None):
    return client.put(f"/v1/rules/{rule_id}/table.xlsx?message={quote(message)}", data=data, content_type=XLSX,
                      headers=headers)


def tier(client):
    r = client.post("/v1/evaluate", json={"accounts": [ACCOUNT]})
    assert r.status_code == 200, r.json
    return r.json["results"][0]["tier"]


def test_export_edit_and_import_commits_as_the_editor(as_):
    r = exported(as_["viewer"])
    head = r.headers["ETag"].strip('"')
    assert 'filename="tier.xlsx"' in r.headers["Content-Disposition"]
    assert openpyxl.load_workbook(io.BytesIO(r.data))["tier"]["B4"].value == head
    assert tier(as_["viewer"]) == "B"
    data = edited(r.data, {"tier!A8": ">= 2500000"})
    assert put(as_["viewer"], data).status_code == 403
    answer = put(as_["editor"], data)
    assert answer.status_code == 200, answer.json
    assert answer.json["revision"] and answer.json["unchanged"] is False and answer.json["base"] == head
    assert answer.headers["ETag"] == f'"{answer.json["revision"]}"'
    assert tier(as_["viewer"]) == "A"
    history = as_["viewer"].get("/v1/history").json
    latest = history[0] if isinstance(history, list) else history["revisions"][0]
    assert latest["message"] == "Raise the bar" and latest["author"] == "editor-user"


def test_refused_with_cell_addresses_and_nothing_committed(as_):
    r = exported(as_["viewer"])
    head = r.headers["ETag"]
    answer = put(as_["editor"], edited(r.data, {"tier!B9": ">= abc", "tier!E10": "Z", "tier!C11": "=1+1"}))
    assert answer.status_code == 422 and answer.mimetype == "application/problem+json"
    texts = [p["text"] for p in answer.json["problems"]]
    assert any(t.startswith("tier!B9: ") for t in texts), texts
    assert any(t.startswith("tier!E10: ") for t in texts), texts
    assert any(t.startswith("tier!C11: an Excel formula") for t in texts), texts
    assert {"sheet": "tier", "cell": "C11"}.items() <= answer.json["problems"][0].items() or \
        any(p["cell"] == "C11" for p in answer.json["problems"])
    assert exported(as_["viewer"]).headers["ETag"] == head


def test_a_stale_table_is_409_naming_the_newer_change(as_):
    old = exported(as_["viewer"])
    first = put(as_["editor"], edited(old.data, {"tier!F10": "量大利薄"}), "Shorter note")
    assert first.status_code == 200, first.json
    answer = put(as_["editor"], edited(old.data, {"tier!A8": ">= 2500000"}))
    assert answer.status_code == 409 and answer.mimetype == "application/problem+json"
    assert answer.json["changes"][0]["id"] == first.json["revision"]
    assert "Shorter note" in answer.json["detail"]
    # If-Match overrides the workbook's base: the same stale table with the new head as its base is a new edit
    again = put(as_["editor"], edited(exported(as_["viewer"]).data, {"tier!A8": ">= 2500000"}),
                headers={"If-Match": f'"{first.json["revision"]}"'})
    assert again.status_code == 200, again.json


def test_an_unchanged_table_commits_nothing(as_):
    r = exported(as_["viewer"], "account_score")
    answer = put(as_["editor"], r.data, "Nothing", "account_score")
    assert answer.status_code == 200 and answer.json["unchanged"] is True and answer.json["revision"] is None


def test_with_approval_required_an_import_is_a_change_request(new_app):
    _, as_ = new_app(require_approval=True)
    data = edited(exported(as_["viewer"]).data, {"tier!A8": ">= 2500000"})
    answer = put(as_["editor"], data)
    assert answer.status_code == 202 and answer.json["change_request"]["status"] == "open", answer.json
    assert tier(as_["viewer"]) == "B"


def test_bad_requests(as_):
    assert as_["anonymous"].get("/v1/rules/tier/table.xlsx").status_code == 401
    assert as_["viewer"].get("/v1/rules/nope/table.xlsx").status_code == 404
    r = as_["viewer"].get("/v1/rules/key_accounts/table.xlsx")
    assert r.status_code == 422 and "ranking" in r.json["detail"]
    data = exported(as_["viewer"]).data
    assert put(as_["editor"], data, rule_id="credit_status").status_code == 422  # another rule's table
    r = as_["editor"].put("/v1/rules/tier/table.xlsx?message=x", data=data, content_type="text/csv")
    assert r.status_code == 415
    r = as_["editor"].put("/v1/rules/tier/table.xlsx", data=data, content_type=XLSX)
    assert r.status_code == 422 and "message" in r.json["errors"]
    assert put(as_["editor"], b"PK\x03\x04 not a workbook").status_code == 422
    assert put(as_["editor"], b"x" * (2 * 1024 * 1024 + 1)).status_code == 413
    assert put(as_["editor"], data, headers={"If-Match": "*"}).status_code == 428


def test_documented_in_openapi(as_):
    spec = as_["viewer"].get("/openapi.json").json
    path = spec["paths"]["/v1/rules/{rule_id}/table.xlsx"]
    assert XLSX in path["get"]["responses"]["200"]["content"]
    assert XLSX in path["put"]["requestBody"]["content"]
    for status in ("409", "413", "415", "422"):
        assert "application/problem+json" in path["put"]["responses"][status]["content"], status
