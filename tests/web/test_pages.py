"""Every page through the Flask client for every role: sign-in, CSRF, role gates, language, JSON twins, and the
editor's check / impact / save / stale-base paths against a real rule repository."""

import fcntl
import json
import os

import pytest

from kamcore import decisions
from server.auth import PERMISSIONS, ROLES

READ_PAGES = ["/ui/rules", "/ui/rules/tier", "/ui/history", "/ui/history?rule=tier", "/ui/rules/tier/blame",
              "/ui/changes", "/ui/evaluate", "/ui/dashboard"]
EDIT_PAGES = ["/ui/rules/tier/edit", "/ui/rules/account_score/edit?indicator=growth"]
AUDIT_PAGES = ["/ui/decisions"]


def tier_rows(browser):
    page = browser.get("/ui/rules/tier/edit?format=json")
    assert page.status_code == 200
    return page.get_json()


@pytest.mark.parametrize("path", READ_PAGES + EDIT_PAGES + AUDIT_PAGES)
def test_anonymous_is_sent_to_sign_in(shared, path):
    r = shared["anonymous"].get(path)
    assert r.status_code == 302 and r.location.startswith("/ui/signin?next=")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("path", READ_PAGES + EDIT_PAGES + AUDIT_PAGES)
def test_each_page_answers_each_role_as_its_permission_says(shared, role, path):
    r = shared[role].get(path)
    needed = "edit" if path in EDIT_PAGES else "audit" if path in AUDIT_PAGES else "read"
    if role in PERMISSIONS[needed]:
        assert r.status_code == 200, r.text[:500]
        assert f'<span id="role">{role}</span>' in r.text
    else:
        assert r.status_code == 403
        assert "may not" in r.text


@pytest.mark.parametrize("path", READ_PAGES + AUDIT_PAGES + EDIT_PAGES)
def test_every_page_has_a_json_twin(shared, path):
    sep = "&" if "?" in path else "?"
    r = shared["admin"].get(path + sep + "format=json")
    assert r.status_code == 200 and r.is_json
    assert "api" in r.get_json() or "revision" in r.get_json()


def test_a_bad_token_is_refused_and_a_revoked_one_ends_the_session(app, browsers):
    anon = browsers["anonymous"]
    r = anon.sign_in("kam_nope_nope")
    assert r.status_code == 401 and "unknown or revoked" in r.text
    tokens = app.extensions["kam"].tokens
    token = tokens.create("short-lived", "viewer")
    assert anon.sign_in(token).status_code == 302
    assert anon.get("/ui/rules").status_code == 200
    tokens.revoke(token.split("_")[1])
    assert anon.get("/ui/rules").status_code == 302


def test_forms_without_the_csrf_token_are_refused(browsers):
    editor = browsers["editor"]
    r = editor.client.post("/ui/rules/tier/save", data={"message": "x", "rows": "[]"})
    assert r.status_code == 400 and "out of date" in r.text
    r = editor.client.post("/ui/signout")
    assert r.status_code == 400


def test_language_switch_is_remembered_in_session_and_cookie(browsers):
    viewer = browsers["viewer"]
    r = viewer.get("/ui/lang/zh?next=/ui/rules")
    assert r.status_code == 302 and r.location == "/ui/rules"
    assert "kam_lang=zh" in r.headers["Set-Cookie"]
    page = viewer.get("/ui/rules").text
    assert "规则手册" in page and "客户等级" in page  # the UI words and the rules' own zh labels
    assert viewer.get("/ui/lang/en?next=https://evil.example/").location == "/ui/rules"  # no open redirect
    assert "Account tier" in viewer.get("/ui/rules").text


def test_role_aware_controls(shared):
    browsers = shared
    assert 'class="edit"' not in browsers["viewer"].get("/ui/rules").text
    assert 'class="edit"' in browsers["editor"].get("/ui/rules").text
    assert "Decisions" not in browsers["editor"].get("/ui/rules").text.split("</nav>")[0]
    assert "Decisions" in browsers["auditor"].get("/ui/rules").text.split("</nav>")[0]


def test_grid_round_trips_the_tier_table_unchanged(app, browsers):
    editor = browsers["editor"]
    grid = tier_rows(editor)
    assert grid["columns"][:4] == ["revenue_12m", "gross_margin", "dso_days", "industry"]
    assert grid["rows"][0]["cells"]["tier"] == "A"
    r = editor.post("/ui/rules/tier/check", json={"base": grid["base"], "rows": grid["rows"]})
    assert r.get_json() == {"ok": True, "cells": [], "problems": []}


def test_a_bad_cell_gets_its_message_under_that_cell(browsers):
    editor = browsers["editor"]
    grid = tier_rows(editor)
    rows = grid["rows"]
    rows[1]["cells"]["gross_margin"] = ">= abc"
    answer = editor.post("/ui/rules/tier/check", json={"base": grid["base"], "rows": rows}).get_json()
    assert answer["ok"] is False
    assert [(c["row"], c["column"]) for c in answer["cells"]] == [(1, "gross_margin")], answer
    rows = tier_rows(editor)["rows"]
    rows[0]["cells"]["tier"] = "Z"  # not one of the tier's values
    answer = editor.post("/ui/rules/tier/check", json={"base": grid["base"], "rows": rows}).get_json()
    assert answer["ok"] is False and (answer["cells"] or answer["problems"])


def test_a_scorecard_band_with_points_that_are_no_number(browsers):
    editor = browsers["editor"]
    grid = editor.get("/ui/rules/account_score/edit?indicator=growth&format=json").get_json()
    rows = grid["rows"]
    rows[2]["cells"]["points"] = "lots"
    answer = editor.post("/ui/rules/account_score/check",
                         json={"base": grid["base"], "indicator": "growth", "rows": rows}).get_json()
    assert answer["cells"] == [{"row": 2, "column": "points", "message": "'lots' is not a number"}]


def test_impact_preview_on_the_portfolio_then_save_then_history(app, browsers):
    editor = browsers["editor"]
    grid = tier_rows(editor)
    rows = grid["rows"]
    rows[0]["cells"]["gross_margin"] = ">= 0.12"  # easier A for the largest accounts
    answer = editor.post("/ui/rules/tier/impact", json={"base": grid["base"], "rows": rows}).get_json()
    assert answer["impact"]["accounts"] == 300
    migration = answer["impact"]["tier_migration"]
    assert migration["changed"] > 0
    assert 'id="migration"' in answer["html"]
    r = editor.post("/ui/rules/tier/save", data={"base": grid["base"], "rows": json.dumps(rows),
                                                 "message": "Large accounts reach A from 12% margin"})
    assert r.status_code == 302 and r.location.startswith("/ui/revisions/")
    page = editor.get(r.location).text
    assert "Large accounts reach A from 12% margin" in page
    assert 'id="diff-tier"' in page and "0.15" in page and "0.12" in page and "lowered" in page
    history = editor.get("/ui/history?rule=tier").text
    assert "Large accounts reach A from 12% margin" in history
    assert app.extensions["kam"].store.book().rule("tier") is not None


def test_save_needs_a_message_and_never_overwrites_a_newer_head(app, browsers):
    editor = browsers["editor"]
    grid = tier_rows(editor)
    rows = grid["rows"]
    r = editor.post("/ui/rules/tier/save", data={"base": grid["base"], "rows": json.dumps(rows), "message": ""})
    assert r.status_code == 422 and "needs a message" in r.text
    other = [dict(row) for row in rows]
    other[2] = {**rows[2], "cells": {**rows[2]["cells"], "note": "someone else"}}
    assert editor.post("/ui/rules/tier/save", data={"base": grid["base"], "rows": json.dumps(other),
                                                    "message": "Another note"}).status_code == 302
    mine = [dict(row) for row in rows]
    mine[0] = {**rows[0], "cells": {**rows[0]["cells"], "dso_days": "<= 80"}}
    r = editor.post("/ui/rules/tier/save", data={"base": grid["base"], "rows": json.dumps(mine), "message": "Mine"})
    assert r.status_code == 409
    assert 'id="stale"' in r.text and 'id="rebase"' in r.text and "someone else" in r.text
    head = app.extensions["kam"].store.head()
    assert app.extensions["kam"].store.history()[0].message.startswith("Another note")
    r = editor.post("/ui/rules/tier/save", data={"base": head, "rows": json.dumps(mine), "message": "Mine"})
    assert r.status_code == 302


def test_revert_is_for_approvers_only(app, browsers):
    store = app.extensions["kam"].store
    first = store.history()[-1].id
    grid = tier_rows(browsers["editor"])
    grid["rows"][0]["cells"]["note"] = "changed"
    browsers["editor"].post("/ui/rules/tier/save", data={"base": grid["base"], "rows": json.dumps(grid["rows"]),
                                                         "message": "A note"})
    assert browsers["editor"].post("/ui/revert", data={"revision": first, "message": "no"}).status_code == 403
    assert 'id="revert"' not in browsers["editor"].get(f"/ui/revisions/{first}").text
    assert 'id="revert"' in browsers["approver"].get(f"/ui/revisions/{first}").text
    r = browsers["approver"].post("/ui/revert", data={"revision": first, "message": "Back to the shipped book"})
    assert r.status_code == 302
    assert store.history()[0].message.startswith("Back to the shipped book")


def test_with_approval_a_save_becomes_a_change_request_reviewed_on_its_page(tmp_path):
    from tests.web.conftest import Browser, make_app

    app = make_app(tmp_path, require_approval=True)
    editor, approver = Browser(app, "editor"), Browser(app, "approver")
    grid = tier_rows(editor)
    grid["rows"][0]["cells"]["note"] = "needs review"
    r = editor.post("/ui/rules/tier/save", data={"base": grid["base"], "rows": json.dumps(grid["rows"]),
                                                 "message": "Reviewed note"})
    assert r.status_code == 302 and r.location.startswith("/ui/changes/")
    page = editor.get(r.location).text
    assert "Reviewed note" in page and 'id="approve"' not in page  # an editor cannot approve
    assert 'id="approve"' in approver.get(r.location).text
    assert approver.post(r.location + "/review", data={"decision": "approve"}).status_code == 302
    assert "approved" in approver.get(r.location).text
    assert app.extensions["kam"].store.history()[0].approver == "approver-user"


def test_evaluate_then_look_the_decision_up_and_reproduce_it(browsers):
    viewer, auditor = browsers["viewer"], browsers["auditor"]
    account = {"account_id": "K1", "revenue_12m": "5000000", "gross_profit_12m": "1000000", "dso_days": "45",
               "industry": "energy"}
    r = viewer.post("/ui/evaluate", data=account)
    assert r.status_code == 200
    assert '<tr id="out-tier"><th>Tier</th><td>A</td></tr>' in r.text
    decision_id = viewer.post("/ui/evaluate?format=json", data=account).get_json()["result"]["decision_id"]
    page = auditor.get(f"/ui/decisions?id={decision_id}").text
    assert "intact" in page and "K1" in page and "Account tier [tier]" in page
    r = auditor.post("/ui/decisions", data={"id": decision_id})
    assert 'id="reproduction"' in r.text and "identical" in r.text
    assert viewer.get(f"/ui/decisions?id={decision_id}").status_code == 403


def test_an_unknown_or_altered_decision_reads_as_the_api_answers_it(app, browsers):
    """404 for a decision the log does not hold, 409 for one altered since it was written, a page either way
    (or its JSON twin's problem document): not a 422 that would blame the auditor's request."""
    auditor = browsers["auditor"]
    r = auditor.get("/ui/decisions?id=nope")
    assert r.status_code == 404 and "no decision nope in the log" in r.text
    account = {"account_id": "K1", "revenue_12m": "5000000", "industry": "energy"}
    decision_id = browsers["viewer"].post("/ui/evaluate?format=json", data=account).get_json()["result"]["decision_id"]
    log = app.extensions["kam"].decisions
    with log._lock:
        log._db.execute("UPDATE decisions SET actor = 'mallory' WHERE id = ?", (decision_id,))
    r = auditor.get(f"/ui/decisions?id={decision_id}")
    assert r.status_code == 409 and "it was altered" in r.text and "integrity check" in r.text
    twin = auditor.get(f"/ui/decisions?id={decision_id}&format=json")
    assert twin.status_code == 409 and twin.get_json()["title"] == "The decision record fails its integrity check"


def test_a_decision_log_held_past_the_wait_is_a_503_page_to_try_again(app, browsers, monkeypatch):
    monkeypatch.setattr(decisions, "BUSY_TIMEOUT_S", 0.3)
    fd = os.open(f"{app.extensions['kam'].decisions.path}.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a worker stopped mid-write would hold it
        r = browsers["viewer"].post("/ui/evaluate", data={"account_id": "K1", "revenue_12m": "5000000"})
    finally:
        os.close(fd)
    assert r.status_code == 503 and r.headers["Retry-After"] == "1" and "busy" in r.text


def test_dashboard_figures_match_the_portfolio(shared):
    browsers = shared
    data = browsers["viewer"].get("/ui/dashboard?format=json").get_json()
    assert data["portfolio"]["accounts"] == 300
    assert sum(r["accounts"] for r in data["pyramid"]) == data["portfolio"]["evaluated"]
    assert 0 < data["pareto"]["share_of_accounts_for_80pct"] < 1
    assert sum(map(sum, data["migration"]["counts"])) == data["portfolio"]["evaluated"]
    assert data["migration"]["changed"] == 0  # the head against itself
    assert sum(s["accounts"] for s in data["segments"]) == data["portfolio"]["evaluated"]
    page = browsers["viewer"].get("/ui/dashboard").text
    assert "vendor/vega-embed.min.js" in page and "cdn" not in page.lower()
    assert '"$schema": "https://vega.github.io/schema/vega-lite/' in page or "vega-lite" in page


def test_vendored_chart_library_is_served_from_the_package(shared):
    browsers = shared
    for name in ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js"):
        r = browsers["anonymous"].get(f"/ui/static/vendor/{name}")
        assert r.status_code == 200 and len(r.data) > 50_000
