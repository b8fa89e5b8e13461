"""The JSON API through the real Flask app: evaluate, rules, change requests, history, decisions, auth, errors."""

import io
import json
import time

import pandas as pd
import pygit2
import pytest

from kamcore.demo import synthetic_portfolio
from tests.web.conftest import Browser

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def accounts(n=5, seed=3):
    frame = synthetic_portfolio(n, seed=seed)
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def head(app):
    return app.extensions["kam"].store.head()


# --- evaluate ---

def test_evaluate_returns_every_good_row_and_an_error_for_the_bad_one(app, as_):
    rows = accounts(4)
    rows[2]["revenue_12m"] = "lots"
    r = as_["viewer"].post("/v1/evaluate", json={"accounts": rows})
    assert r.status_code == 200, r.json
    body = r.json
    assert body["rules_version"] == head(app)
    assert [res["row"] for res in body["results"]] == [0, 1, 3]
    assert all(res["tier"] in ("A", "B", "C", "D") for res in body["results"])
    (error,) = [e for e in body["errors"] if e["severity"] == "error"]
    assert (error["row"], error["field"]) == (2, "revenue_12m") and "lots" in error["message"]
    assert len(body["decision_id"]) > 8


def test_chinese_headers_give_the_same_results(app, as_):
    book = app.extensions["kam"].rules.book()
    rows = accounts(6)
    chinese = [{book.dictionary.fields[k].label["zh"]: v for k, v in row.items()} for row in rows]
    english = as_["viewer"].post("/v1/evaluate", json={"accounts": rows, "as_of": "2026-06-30"}).json
    zh = as_["viewer"].post("/v1/evaluate", json={"accounts": chinese, "as_of": "2026-06-30"}).json
    assert zh["results"] == english["results"] and zh["errors"] == []


def test_csv_and_xlsx_uploads(as_):
    frame = pd.DataFrame(accounts(5))
    csv = frame.to_csv(index=False).encode("utf-8")
    via_csv = as_["viewer"].post("/v1/evaluate?as_of=2026-06-30", data=csv, content_type="text/csv")
    buffer = io.BytesIO()
    frame.to_excel(buffer, index=False)
    via_xlsx = as_["viewer"].post("/v1/evaluate?as_of=2026-06-30", data=buffer.getvalue(), content_type=XLSX)
    assert via_csv.status_code == via_xlsx.status_code == 200, (via_csv.json, via_xlsx.json)
    tiers = [r["tier"] for r in via_csv.json["results"]]
    assert len(tiers) == 5 and tiers == [r["tier"] for r in via_xlsx.json["results"]]


def test_explain_gives_a_trace_per_account(as_):
    r = as_["viewer"].post("/v1/evaluate?explain=true&lang=zh", json={"accounts": accounts(1)})
    (result,) = r.json["results"]
    assert result["trace"]["steps"] and isinstance(result["explanation"], str)


def test_evaluate_at_an_earlier_revision(app, as_):
    first = head(app)
    rule = as_["editor"].get("/v1/rules/tier").json["rule"]
    rule["description"] = "Relabelled for the test"
    r = as_["editor"].put("/v1/rules/tier", json={"rule": rule, "message": "x"}, headers={"If-Match": f'"{first}"'})
    assert r.status_code == 200, r.json
    now = as_["viewer"].post("/v1/evaluate", json={"accounts": accounts(3)}).json
    then = as_["viewer"].post(f"/v1/evaluate?rev={first}", json={"accounts": accounts(3)}).json
    assert then["rules_version"] == first and now["rules_version"] == r.json["revision"] != first
    assert as_["viewer"].post("/v1/evaluate?rev=abcdef12", json={"accounts": accounts(1)}).status_code == 404


@pytest.mark.parametrize("body, status", [
    ({"accounts": "nope"}, 422),
    ({"rows": []}, 422),
    ({"accounts": [], "explain": "maybe"}, 422),
])
def test_bad_requests_are_problem_documents_with_field_messages(as_, body, status):
    r = as_["viewer"].post("/v1/evaluate", json=body)
    assert r.status_code == status
    assert r.mimetype == "application/problem+json"
    assert r.json["errors"]


def test_a_body_that_is_not_json_says_where(as_):
    r = as_["viewer"].post("/v1/evaluate", data=b'{"accounts": [{"revenue_12m": 1,}]}', content_type="application/json")
    assert r.status_code == 400 and r.mimetype == "application/problem+json"
    assert "line 1 column 33" in r.json["detail"]
    for body, says in ((b'{"accounts": [{"\\ud800": 1}]}', "not valid Unicode"),
                       (b'{"accounts": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply")):
        r = as_["viewer"].post("/v1/evaluate", data=body, content_type="application/json")
        assert r.status_code == 400 and says in r.json["detail"], r.json


def test_limits(new_app):
    _, as_ = new_app(max_rows=3, max_body_bytes=20_000)
    viewer = as_["viewer"]
    r = viewer.post("/v1/evaluate", json={"accounts": accounts(4)})
    assert r.status_code == 413 and "limit is 3" in r.json["detail"]
    r = viewer.post("/v1/evaluate", data=b"x" * 30_000, content_type="text/csv")
    assert r.status_code == 413 and r.mimetype == "application/problem+json"
    r = viewer.post("/v1/evaluate", data=b"hello", content_type="text/plain")
    assert r.status_code == 415
    r = as_["editor"].post("/v1/rules/impact", json={"accounts": accounts(4), "changes": {}})
    assert r.status_code == 413 and "limit is 3" in r.json["detail"]


def test_an_evaluation_past_its_time_limit_is_a_413_saying_to_split_the_table(new_app):
    app, as_ = new_app(evaluate_timeout_s=0)  # every evaluation is over its limit after its first rule
    r = as_["viewer"].post("/v1/evaluate", json={"accounts": accounts(5)})
    assert r.status_code == 413 and r.mimetype == "application/problem+json"
    assert "5 accounts" in r.json["detail"] and "0 s" in r.json["detail"] and "split the table" in r.json["detail"]
    assert "账户过多" in r.json["title"]
    assert app.extensions["kam"].decisions.verify().records == 0  # nothing half-done was logged


def test_the_evaluate_request_check_names_each_bad_field(as_):
    r = as_["viewer"].post("/v1/evaluate", json={"accounts": [{"revenue_12m": 1}, 3, "x"], "explain": "perhaps",
                                                 "colour": "red"})
    assert r.status_code == 422 and r.mimetype == "application/problem+json"
    assert r.json["errors"] == {"accounts": {"1": ["Not a valid mapping type."], "2": ["Not a valid mapping type."]},
                                "explain": ["Not a valid boolean."], "colour": ["Unknown field."]}
    for body, field, message in (({}, "accounts", "Missing data for required field."),
                                 ({"accounts": {"a": 1}}, "accounts", "Not a valid list."),
                                 ({"accounts": None}, "accounts", "Field may not be null."),
                                 ({"accounts": [], "as_of": "2026-02-30"}, "as_of", "Not a valid date.")):
        r = as_["viewer"].post("/v1/evaluate", json=body)
        assert r.status_code == 422 and r.json["errors"] == {field: [message]}, body
    r = as_["viewer"].post("/v1/evaluate", json=[])
    assert r.status_code == 422 and r.json["errors"] == {"_schema": ["Invalid input type."]}
    r = as_["viewer"].post("/v1/evaluate", json={"accounts": [], "explain": "yes", "as_of": "2026-01-31"})
    assert r.status_code == 200 and r.json["results"] == [] and r.json["as_of"] == "2026-01-31"


def test_results_equal_the_result_frame_with_errors_and_unreadable_rows(app, as_):
    """The results are read from the engine's columns; they hold exactly what the result frame holds."""
    from server.encoding import records

    rows = accounts(40)
    for i, bad in ((3, "n/a"), (7, None), (11, "2026-13-01"), (19, 1e300)):
        rows[i]["revenue_12m" if i != 11 else "last_order_date"] = bad
    body = as_["viewer"].post("/v1/evaluate", json={"accounts": rows, "as_of": "2026-06-30"}).json
    evaluation = app.extensions["kam"].rules.book().evaluate(rows, as_of="2026-06-30")
    out = evaluation.frame.loc[evaluation.ok, evaluation.output_names]
    want = records(out)
    for row, result in zip(out.index.tolist(), want, strict=True):
        result["row"] = row
    assert body["results"] == want and len(want) < 40 and body["errors"]


def test_a_null_boolean_output_is_json_null(app, as_):
    rule = {"id": "big_account", "kind": "formula", "label": {"zh": "大客户", "en": "Big account"},
            "formulas": {"big_account": "revenue_12m >= 10000000"}}
    r = as_["editor"].post("/v1/rules", json={"rule": rule, "message": "Flag big accounts", "file": "extra.yaml"},
                           headers={"If-Match": head(app)})
    assert r.status_code == 201, r.json
    rows = accounts(2)
    rows[1]["revenue_12m"] = None  # a boolean output of a null is null: pandas NA in a nullable column
    r = as_["viewer"].post("/v1/evaluate", json={"accounts": rows})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert [res["big_account"] for res in r.json["results"]] == [rows[0]["revenue_12m"] >= 10_000_000, None]
    decision = as_["auditor"].get(f"/v1/decisions/{r.json['decision_id']}").json
    assert decision["outputs"][1]["big_account"] is None


def test_a_list_or_mapping_in_a_text_field_fails_only_its_row(as_):
    rows = accounts(3)
    rows[0]["industry"], rows[2]["account_id"] = ["retail"], {"id": 7}
    r = as_["viewer"].post("/v1/evaluate", json={"accounts": rows})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert [res["row"] for res in r.json["results"]] == [1]
    assert [(e["row"], e["field"]) for e in r.json["errors"]] == [(0, "industry"), (2, "account_id")]
    assert "is not text" in r.json["errors"][0]["message"]


def test_an_account_with_no_keys_is_still_answered(as_):
    r = as_["viewer"].post("/v1/evaluate", json={"accounts": [{}, {}]})
    assert r.status_code == 200 and [res["row"] for res in r.json["results"]] == [0, 1]


def test_the_answer_is_strict_json_even_for_infinite_values(as_):
    rows = accounts(2)
    rows[0]["revenue_12m"] = "__inf__"
    body = json.dumps({"accounts": rows}).replace('"__inf__"', "Infinity")  # Python's JSON reader takes it
    r = as_["viewer"].post("/v1/evaluate", data=body, content_type="application/json")
    assert r.status_code == 200

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    body = json.loads(r.get_data(as_text=True), parse_constant=refuse)
    assert [res["row"] for res in body["results"]] == [1]
    assert [(e["row"], e["field"]) for e in body["errors"]] == [(0, "revenue_12m")]  # an infinite amount is unreadable


# --- auth ---

def test_every_endpoint_but_healthz_needs_a_token(app, as_):
    assert as_["anonymous"].get("/healthz").status_code == 200
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.rule in ("/healthz", "/", "/docs") or rule.rule.startswith(("/docs/assets/", "/static", "/ui/")):
            continue  # the web pages (and /docs) sign in with a session cookie instead; static assets hold no data
        path = rule.rule.replace("<rule_id>", "tier").replace("<cr_id>", "0" * 12) \
            .replace("<decision_id>", "x").replace("<path:name>", "x")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            r = as_["anonymous"].open(method, path)
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
            checked += 1
    assert checked >= 15
    bad = as_["anonymous"].get("/v1/rules", headers={"Authorization": "Bearer kam_123456789012_forged"})
    assert bad.status_code == 401


def test_roles(as_):
    assert as_["viewer"].get("/v1/rules").status_code == 200
    assert as_["viewer"].post("/v1/rules/validate", json={"changes": {}}).status_code == 403
    assert as_["viewer"].get("/v1/decisions/verify").status_code == 403
    assert as_["editor"].get("/v1/decisions/verify").status_code == 403
    assert as_["auditor"].get("/v1/decisions/verify").status_code == 200
    assert as_["editor"].post("/v1/revert", json={"revision": "HEAD", "message": "x"}).status_code == 403


def test_a_revoked_token_stops_working(app, as_):
    tokens = app.extensions["kam"].tokens
    token_id = as_["viewer"].token.split("_", 2)[1]
    tokens.revoke(token_id)
    assert as_["viewer"].get("/v1/rules").status_code == 401


def test_a_known_token_is_hashed_once_and_a_revocation_elsewhere_counts_after_the_cache_window(tmp_path):
    from argon2 import PasswordHasher

    from server.auth import TokenStore

    verified = []

    class CountingHasher(PasswordHasher):  # real argon2, counted
        def verify(self, hash, password):
            verified.append(1)
            return super().verify(hash, password)

    service = TokenStore(tmp_path / "tokens.sqlite3", cache_seconds=1.0, memory_kib=1024)
    service._hasher = CountingHasher(memory_cost=1024)
    elsewhere = TokenStore(tmp_path / "tokens.sqlite3", memory_kib=1024)  # e.g. `kam token revoke`
    token = service.create("robot", "viewer")
    for _ in range(2):
        time.sleep(1.05)  # past the window: the row is read again, argon2 is not run again
        assert service.principal(token).role == "viewer"
    assert len(verified) == 1
    assert service.principal(token[:-1] + ("x" if token[-1] != "x" else "y")) is None  # another secret: checked
    assert len(verified) == 2
    elsewhere.revoke(token.split("_", 2)[1])
    assert service.principal(token) is not None  # within the window (the machine may be slow: 1 s is ample)
    time.sleep(1.05)
    assert service.principal(token) is None


# --- rules ---

def test_list_and_read_rules(app, as_):
    r = as_["viewer"].get("/v1/rules")
    assert r.headers["ETag"] == f'"{head(app)}"'
    ids = [rule["id"] for rule in r.json["rules"]]
    assert "tier" in ids
    one = as_["viewer"].get("/v1/rules/tier").json
    assert one["kind"] == "decision_table" and one["rule"]["id"] == "tier"
    assert one["source"].startswith("- id: tier")
    assert as_["viewer"].get("/v1/rules/nope").status_code == 404


def test_put_needs_if_match_refuses_stale_and_invalid_and_goes_live(app, as_):
    editor = as_["editor"]
    rule = editor.get("/v1/rules/tier").json["rule"]
    base = head(app)
    r = editor.put("/v1/rules/tier", json={"rule": rule, "message": "no base"})
    assert r.status_code == 428
    broken = dict(rule, hit_policy="SOMETIMES")
    r = editor.put("/v1/rules/tier", json={"rule": broken, "message": "bad"}, headers={"If-Match": base})
    assert r.status_code == 422 and r.json["problems"][0]["file"] == "tiering.yaml"
    assert r.json["problems"][0]["line"]
    renamed = dict(rule, label={"zh": "客户等级（新）", "en": "Account tier (new)"})
    r = editor.put("/v1/rules/tier", json={"rule": renamed, "message": "Relabel"}, headers={"If-Match": base})
    assert r.status_code == 200, r.json
    assert head(app) == r.json["revision"] == r.headers["ETag"].strip('"')
    assert as_["viewer"].get("/v1/rules/tier").json["label"]["en"] == "Account tier (new)"
    r = editor.put("/v1/rules/tier", json={"rule": rule, "message": "stale"}, headers={"If-Match": base})
    assert r.status_code == 409 and r.json["head"] == head(app)
    history = as_["viewer"].get("/v1/history?rule=tier").json
    assert history[0]["message"] == "Relabel" and history[0]["author"] == "editor-user"


def test_put_as_yaml_source_post_and_delete(app, as_):
    editor = as_["editor"]
    source = editor.get("/v1/rules/tier").json["source"]
    r = editor.put("/v1/rules/tier", json={"source": source.replace("Account tier", "Tier"), "message": "yaml"},
                   headers={"If-Match": head(app)})
    assert r.status_code == 200, r.json
    new_rule = {"id": "big_account", "kind": "formula", "label": {"zh": "大客户", "en": "Big account"},
                "formulas": {"big_account": "revenue_12m >= 10000000"}}
    r = editor.post("/v1/rules", json={"rule": new_rule, "message": "Flag big accounts", "file": "extra.yaml"},
                    headers={"If-Match": head(app)})
    assert r.status_code == 201, r.json
    out = as_["viewer"].post("/v1/evaluate", json={"accounts": accounts(2)}).json["results"][0]
    assert "big_account" in out
    r = editor.delete("/v1/rules/big_account", json={"message": "Not needed"}, headers={"If-Match": head(app)})
    assert r.status_code == 200, r.json
    assert as_["viewer"].get("/v1/rules/big_account").status_code == 404


def test_put_keeps_the_rule_id_of_its_url(app, as_):
    editor = as_["editor"]
    rule = editor.get("/v1/rules/tier").json["rule"]
    r = editor.put("/v1/rules/tier", json={"rule": dict(rule, id="grade"), "message": "rename"},
                   headers={"If-Match": head(app)})
    assert r.status_code == 422 and r.json["errors"] == {"rule": {"id": ["must be 'tier'"]}}
    unnamed = {k: v for k, v in rule.items() if k != "id"} | {"label": {"zh": "等级", "en": "Grade"}}
    r = editor.put("/v1/rules/tier", json={"rule": unnamed, "message": "relabel"}, headers={"If-Match": head(app)})
    assert r.status_code == 200, r.json
    assert as_["viewer"].get("/v1/rules/tier").json["label"]["en"] == "Grade"


@pytest.mark.parametrize("body", [
    {"rule": {"id": ["tier"], "kind": "formula"}},
    {"rule": {"id": {"a": 1}}},
    {"source": "- id: [tier]\n  kind: formula\n"},
])
def test_a_rule_id_that_is_not_text_is_refused(app, as_, body):
    r = as_["editor"].post("/v1/rules", json={**body, "message": "x"}, headers={"If-Match": head(app)})
    assert r.status_code == 422 and r.mimetype == "application/problem+json"
    assert r.json["errors"] == {"rule": {"id": ["must be text"]}}


@pytest.mark.parametrize("if_match", ["HEAD", '"HEAD"', "*", "HEAD~0"])
def test_if_match_must_name_a_revision_not_whatever_the_head_is(app, as_, if_match):
    rule = as_["editor"].get("/v1/rules/tier").json["rule"]
    r = as_["editor"].put("/v1/rules/tier", json={"rule": rule, "message": "blind"}, headers={"If-Match": if_match})
    assert r.status_code == 428 and "commit id" in r.json["detail"]


def test_control_characters_in_yaml_are_a_problem_with_its_position(app, as_):
    source = as_["editor"].get("/v1/rules/tier").json["source"]
    pasted = source.replace("Account tier", "Account\x08tier", 1)
    r = as_["editor"].put("/v1/rules/tier", json={"source": pasted, "message": "x"}, headers={"If-Match": head(app)})
    assert r.status_code == 422, r.get_data(as_text=True)
    (problem,) = r.json["problems"]
    line = pasted[:pasted.index("\x08")].count("\n") + 1
    assert "U+0008" in problem["message"] and problem["line"] == line
    text = app.extensions["kam"].store.read("credit.yaml")
    r = as_["editor"].post("/v1/rules/validate", json={"changes": {"credit.yaml": "\x1f" + text}})
    assert r.status_code == 200 and not r.json["ok"]
    assert r.json["problems"][0]["file"] == "credit.yaml" and r.json["problems"][0]["line"] == 1


def test_validate(app, as_):
    rule = as_["editor"].get("/v1/rules/tier").json["rule"]
    ok = as_["editor"].post("/v1/rules/validate", json={"rule": rule}).json
    assert ok == {"ok": True, "base": head(app), "problems": []}
    bad = as_["editor"].post("/v1/rules/validate", json={"rule": dict(rule, inputs=["no_such_field"])}).json
    assert not bad["ok"] and bad["problems"]


def break_head(app):
    """Commit a rule file that does not parse onto main, straight through git as another tool would."""
    repo = pygit2.Repository(str(app.extensions["kam"].store.data_dir / "rules.git"))
    parent = repo[head(app)]
    index = pygit2.Index()
    index.read_tree(parent.tree)
    index.add(pygit2.IndexEntry("tiering.yaml", repo.create_blob(b"rules: [\n"), pygit2.enums.FileMode.BLOB))
    sig = pygit2.Signature("someone", "someone@example.com")
    return str(repo.create_commit("refs/heads/main", sig, sig, "oops", index.write_tree(repo), [parent.id]))


def test_a_head_broken_behind_the_services_back_is_not_served(app, as_):
    served = head(app)
    as_["viewer"].post("/v1/evaluate", json={"accounts": accounts(1)})
    broken = break_head(app)
    ready = as_["viewer"].get("/readyz").json
    assert ready["serving"] == served and ready["head"] == broken and "does not load" in ready["problem"]
    r = as_["viewer"].post("/v1/evaluate", json={"accounts": accounts(1)})
    assert r.status_code == 200 and r.json["rules_version"] == served


def test_a_service_started_on_a_broken_head_serves_the_newest_revision_that_loads(new_app):
    app, _ = new_app()
    served = head(app)
    broken = break_head(app)
    _, as_ = new_app()  # a restart: the new process never saw `served` load
    r = as_["viewer"].get("/readyz")
    assert r.status_code == 200 and (r.json["serving"], r.json["head"]) == (served, broken) and r.json["problem"]
    r = as_["viewer"].post("/v1/evaluate", json={"accounts": accounts(1)})
    assert r.status_code == 200 and r.json["rules_version"] == served


def test_nothing_to_serve_is_a_503(new_app, monkeypatch):
    monkeypatch.setattr("server.live.ANCESTORS_TRIED", 1)
    app, _ = new_app()
    break_head(app)
    break_head(app)
    _, as_ = new_app()
    for _ in range(2):  # the second time from what the first one learnt
        r = as_["viewer"].post("/v1/evaluate", json={"accounts": accounts(1)})
        assert r.status_code == 503 and r.mimetype == "application/problem+json" and "/readyz" in r.json["detail"]
    r = as_["viewer"].get("/readyz")
    assert r.status_code == 503 and not r.json["ready"] and "does not load" in r.json["problem"]


# --- change requests ---

def test_four_eyes(new_app):
    app, as_ = new_app(require_approval=True)
    base = head(app)
    rule = as_["editor"].get("/v1/rules/tier").json["rule"]
    rule["label"] = {"zh": "等级", "en": "Grade"}
    r = as_["editor"].put("/v1/rules/tier", json={"rule": rule, "message": "Rename"}, headers={"If-Match": base})
    assert r.status_code == 202 and r.json["revision"] is None
    cr = r.json["change_request"]
    assert head(app) == base
    assert as_["viewer"].get("/v1/changes?status=open").json[0]["id"] == cr["id"]
    assert "tier" in json.dumps(as_["viewer"].get(f"/v1/changes/{cr['id']}").json["diff"])
    assert as_["editor"].post(f"/v1/changes/{cr['id']}/approve").status_code == 403
    r = as_["approver"].post(f"/v1/changes/{cr['id']}/approve")
    assert r.status_code == 200, r.json
    assert head(app) == r.json["revision"]
    assert as_["viewer"].get("/v1/history").json[0]["approver"] == "approver-user"


# --- history, diff, blame ---

def test_history_diff_blame_and_revert(app, as_):
    first = head(app)
    rule = as_["editor"].get("/v1/rules/tier").json["rule"]
    rule["label"] = {"zh": "等级", "en": "Grade"}
    as_["editor"].put("/v1/rules/tier", json={"rule": rule, "message": "Rename tier"}, headers={"If-Match": first})
    diff = as_["viewer"].get(f"/v1/diff?from={first}&to=HEAD").json
    assert "tier" in json.dumps(diff)
    blame = as_["viewer"].get("/v1/rules/tier/blame").json
    assert {b["message"] for b in blame} >= {"Rename tier"}
    r = as_["approver"].post("/v1/revert", json={"revision": first, "message": "Back"})
    assert r.status_code == 200
    assert as_["viewer"].get("/v1/history").json[0]["reverts"] == first
    assert as_["viewer"].get("/v1/diff?from=nothex").status_code == 404


# --- decisions ---

def test_decisions_are_logged_reproduced_and_verified(as_):
    r = as_["viewer"].post("/v1/evaluate", json={"accounts": accounts(3), "as_of": "2026-03-31"}).json
    decision = as_["auditor"].get(f"/v1/decisions/{r['decision_id']}").json
    assert decision["actor"] == "viewer-user" and decision["rules_version"] == r["rules_version"]
    assert decision["as_of"] == "2026-03-31"
    again = as_["auditor"].post(f"/v1/decisions/{r['decision_id']}/reproduce").json
    assert again["identical"] and again["differences"] == []
    assert as_["auditor"].get("/v1/decisions/verify").json["ok"]
    assert as_["auditor"].get("/v1/decisions/nope").status_code == 404


def test_a_decision_altered_after_it_was_written_is_a_409_and_unknown_ones_404(app, as_):
    r = as_["viewer"].post("/v1/evaluate", json={"accounts": accounts(2), "as_of": "2026-03-31"}).json
    log = app.extensions["kam"].decisions
    with log._lock:
        log._db.execute("UPDATE decisions SET actor = 'mallory' WHERE id = ?", (r["decision_id"],))
    for response in (as_["auditor"].get(f"/v1/decisions/{r['decision_id']}"),
                     as_["auditor"].post(f"/v1/decisions/{r['decision_id']}/reproduce")):
        assert response.status_code == 409 and response.content_type == "application/problem+json"
        assert response.json["detail"].endswith("does not match its hash: it was altered")
    for response in (as_["auditor"].get("/v1/decisions/nope"), as_["auditor"].post("/v1/decisions/nope/reproduce")):
        assert response.status_code == 404 and "no decision nope in the log" in response.json["detail"]


def test_a_decision_the_service_cannot_reproduce_is_its_own_fault_500(app, as_, monkeypatch, caplog):
    """The rule store handing back another revision than the decision's is the service's failure, not the
    auditor's request: 500 with the log's reason (before, the generic 422 for engine errors)."""
    r = as_["viewer"].post("/v1/evaluate", json={"accounts": accounts(2), "as_of": "2026-03-31"}).json
    rule = as_["editor"].get("/v1/rules/tier").json["rule"]
    rule["label"] = {"zh": "等级", "en": "Grade"}
    assert as_["editor"].put("/v1/rules/tier", json={"rule": rule, "message": "Rename tier"},
                             headers={"If-Match": r["rules_version"]}).status_code == 200
    store = app.extensions["kam"].store
    latest = store.book
    monkeypatch.setattr(store, "book", lambda rev="HEAD": latest())  # whatever is asked for, the head
    response = as_["auditor"].post(f"/v1/decisions/{r['decision_id']}/reproduce")
    assert response.status_code == 500 and response.content_type == "application/problem+json"
    assert response.json["title"] == "The decision log failed / 决策日志出错"
    assert response.json["detail"].startswith(f"asked for the rule book at {r['rules_version']}, got ")
    failed = [rec for rec in caplog.records if rec.getMessage().startswith("the decision log failed: asked for")]
    assert failed and failed[0].levelname == "ERROR" and failed[0].exc_info  # the service's log keeps the trace


def test_a_few_odd_records_are_logged_as_sent_and_reproduce(as_):
    """A request's few records are logged as they came (not through a DataFrame): a key one record lacks, a
    null among whole numbers, 中文 headers, 万 text and an unreadable cell still reproduce exactly."""
    sent = [{"客户编号": "KH1", "近12个月销售额（元）": 12_000_000, "回款天数": 45, "gross_profit_12m": None},
            {"客户编号": "KH2", "近12个月销售额（元）": "1200万", "gross_profit_12m": 3_600_000, "industry": "制造业"},
            {"客户编号": "KH3", "近12个月销售额（元）": "很多", "回款天数": None}]
    r = as_["viewer"].post("/v1/evaluate", json={"accounts": sent, "as_of": "2026-03-31"}).json
    assert [res["row"] for res in r["results"]] == [0, 1] and r["errors"][0]["row"] == 2
    decision = as_["auditor"].get(f"/v1/decisions/{r['decision_id']}").json
    assert len(decision["inputs"]) == 3 and decision["inputs"][1]["近12个月销售额（元）"] == "1200万"
    again = as_["auditor"].post(f"/v1/decisions/{r['decision_id']}/reproduce").json
    assert again["identical"] and again["differences"] == []


# --- meta ---

def test_fields_readyz_and_openapi(app, as_):
    fields = {f["name"]: f for f in as_["viewer"].get("/v1/fields").json}
    assert fields["revenue_12m"]["source"] == "input" and fields["revenue_12m"]["label"]["zh"]
    assert fields["tier"]["source"] == "tier"
    assert as_["viewer"].get("/readyz").json == {"ready": True, "serving": head(app), "head": head(app),
                                                 "problem": None}
    spec = as_["viewer"].get("/openapi.json").json
    assert "/v1/evaluate" in spec["paths"] and "bearer" in spec["components"]["securitySchemes"]
    assert as_["anonymous"].get("/openapi.json").status_code == 401
    assert as_["viewer"].get("/openapi.json", headers={"Authorization": "Bearer kam_123456789012_forged"}) \
        .status_code == 401
    # A browser navigating to /docs cannot send a bearer header: it signs in to the web pages first.
    anonymous = as_["anonymous"].get("/docs")
    assert anonymous.status_code == 302 and "/ui/signin" in anonymous.headers["Location"]
    browser = Browser(app)
    assert browser.sign_in(as_["viewer"].token).status_code == 302
    docs = browser.client.get("/docs")
    assert docs.status_code == 200 and b"/docs/assets/" in docs.data
    assert browser.client.get("/openapi.json").status_code == 200
    assert as_["anonymous"].get("/docs/assets/swagger-ui-bundle.js").status_code == 200


def test_every_shipped_rule_reads_back_and_saves_unchanged(app, as_):
    """Rules that share YAML anchors (`&bands` / `*bands`) read and save like any other."""
    for summary in as_["viewer"].get("/v1/rules").json["rules"]:
        one = as_["viewer"].get(f"/v1/rules/{summary['id']}")
        assert one.status_code == 200, (summary["id"], one.json)
    for rule_id in ("order_class", "credit_class"):
        rule = as_["editor"].get(f"/v1/rules/{rule_id}").json["rule"]
        r = as_["editor"].put(f"/v1/rules/{rule_id}", json={"rule": rule, "message": f"Save {rule_id} as is"},
                              headers={"If-Match": head(app)})
        assert r.status_code == 200, r.json
