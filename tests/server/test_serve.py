"""`kam serve` for real: waitress in a subprocess on a free loopback port, tokens from `kam token create`, and
every request over HTTP — auth, evaluate, hot reload of API and outside commits, a broken head, the access log,
and the first start on an empty data dir."""

import json
import os
import re
import subprocess
import time

import pygit2
import pytest

from kamcore.demo import synthetic_portfolio
from kamcore.store import RuleStore
from tests.server.conftest import KAM, launch


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    # --data on the command line wins over KAM_DATA_DIR; the decoy must stay untouched
    running = launch(root, env={"KAM_DATA_DIR": str(root / "decoy")})
    yield running
    running.stop()


@pytest.fixture(scope="module")
def tokens(server):
    return {role: server.token(f"{role}-user", role) for role in ("viewer", "editor", "auditor")}


def accounts(n=3):
    return json.loads(synthetic_portfolio(n, seed=5).to_json(orient="records", date_format="iso"))


def store_of(server):
    """The service's rule repository, opened by this process: another writer than the service."""
    return RuleStore.open(server.data, seed=None)


# --- first start ---

def test_first_start_on_an_empty_data_dir_creates_the_repository_and_databases(server):
    repo = pygit2.Repository(str(server.data / "rules.git"))
    assert repo.is_bare and not repo.head_is_unborn
    assert "tiering.yaml" in repo.revparse_single("refs/heads/main").peel(pygit2.Commit).tree
    for name in ("decisions.sqlite3", "service.sqlite3"):
        assert (server.data / name).read_bytes()[:16] == b"SQLite format 3\x00", name
    assert f"rules revision {str(repo.head.target)[:12]}" in server.out.read_text()
    assert not (server.data.parent / "decoy").exists()


def test_a_large_batch_is_rehearsed_as_the_service_starts_and_nothing_is_recorded(server, tokens):
    assert "rehearsed a batch of 10,000 accounts in " in server.out.read_text()
    status, _, check = server.call("GET", "/v1/decisions/verify", token=tokens["auditor"])
    assert status == 200 and check["ok"] and check["records"] == 0  # (the first request to record one follows)
    status, _, body = server.call("POST", "/v1/evaluate", token=tokens["viewer"], body={"accounts": accounts(2)})
    status, _, check = server.call("GET", "/v1/decisions/verify", token=tokens["auditor"])
    assert status == 200 and check["records"] >= 1
    status, _, found = server.call("GET", f"/v1/decisions/{body['decision_id']}", token=tokens["auditor"])
    assert status == 200 and found["actor"] != "rehearsal"


def test_kam_token_create_finds_the_data_dir_in_KAM_DATA_DIR_too(server):
    done = subprocess.run([KAM, "token", "create", "--name", "from-env", "--role", "viewer"], capture_output=True,
                          text=True, timeout=60, check=True, env=dict(os.environ, KAM_DATA_DIR=str(server.data)),
                          cwd=server.data.parent)  # where the default .kam-data would land
    token = done.stdout.strip().splitlines()[-1]
    assert server.call("GET", "/v1/fields", token=token)[0] == 200


# --- auth ---

def test_healthz_needs_no_token_and_everything_else_does(server, tokens):
    assert server.call("GET", "/healthz")[0] == 200
    status, headers, body = server.call("GET", "/v1/rules")
    assert status == 401 and headers["Content-Type"] == "application/problem+json"
    assert headers["WWW-Authenticate"].startswith("Bearer") and "kam token create" in body["detail"]
    forged = tokens["viewer"][:-4] + "xxxx"
    assert server.call("GET", "/v1/rules", token=forged)[0] == 401
    assert server.call("GET", "/v1/rules", token="not-a-token")[0] == 401


def test_a_role_without_the_permission_gets_403(server, tokens):
    status, headers, body = server.call("GET", "/v1/decisions/verify", token=tokens["viewer"])
    assert status == 403 and headers["Content-Type"] == "application/problem+json"
    assert "auditor" in body["detail"]
    status, _, _ = server.call("PUT", "/v1/rules/tier", token=tokens["viewer"],
                               body={"rule": {}, "message": "x"}, headers={"If-Match": "HEAD"})
    assert status == 403
    assert server.call("GET", "/v1/decisions/verify", token=tokens["auditor"])[0] == 200


# --- evaluate and hot reload ---

def test_evaluate(server, tokens):
    status, _, body = server.call("POST", "/v1/evaluate", token=tokens["viewer"], body={"accounts": accounts(3)})
    assert status == 200, body
    assert body["rules_version"] == store_of(server).head()
    assert [r["row"] for r in body["results"]] == [0, 1, 2]
    assert all(r["tier"] in ("A", "B", "C", "D") for r in body["results"])


def test_a_large_batch_is_received_read_in_halves_answered_and_logged(server, tokens):
    """4,000 accounts (2 MB, received in RECV_BYTES reads into waitress's temporary file, read by Arrow in two
    halves, its inputs sealed beside the evaluation): every account answered in order, one with its row error,
    and the decision logged with the accounts as sent."""
    from server import batchbody
    from server.dispatch import RECV_BYTES

    sent = accounts(4000)
    sent[2500]["credit_score"] = "abc"
    body = json.dumps({"accounts": sent}).encode()
    assert len(body) > max(batchbody.SPLIT_BODY_BYTES, 4 * RECV_BYTES) and len(batchbody._halves(body)) == 2
    status, _, answer = server.call("POST", "/v1/evaluate", token=tokens["viewer"], body={"accounts": sent})
    assert status == 200, answer
    assert [r["row"] for r in answer["results"]] == [i for i in range(4000) if i != 2500]
    assert [(e["row"], e["field"]) for e in answer["errors"]] == [(2500, "credit_score")]
    status, _, found = server.call("GET", f"/v1/decisions/{answer['decision_id']}", token=tokens["auditor"])
    assert status == 200 and len(found["inputs"]) == 4000
    assert found["inputs"][2500]["credit_score"] == "abc" and found["inputs"][3999] == sent[3999]
    status, _, check = server.call("GET", "/v1/decisions/verify", token=tokens["auditor"])
    assert status == 200 and check["ok"], check


def with_formula(rule, name, expr):
    return dict(rule, formulas={**rule["formulas"], name: {"expr": expr}})


def test_a_change_through_put_is_live_for_the_next_request(server, tokens):
    status, headers, body = server.call("GET", "/v1/rules/margins", token=tokens["editor"])
    assert status == 200
    base = headers["ETag"]
    changed = with_formula(body["rule"], "revenue_k", "revenue_12m / 1000")
    status, headers, body = server.call("PUT", "/v1/rules/margins", token=tokens["editor"],
                                        body={"rule": changed, "message": "Revenue in thousands"},
                                        headers={"If-Match": base})
    assert status == 200, body
    assert headers["ETag"] == f'"{body["revision"]}"'
    rows = accounts(2)
    status, _, out = server.call("POST", "/v1/evaluate", token=tokens["viewer"], body={"accounts": rows})
    assert out["rules_version"] == body["revision"]
    assert out["results"][0]["revenue_k"] == pytest.approx(rows[0]["revenue_12m"] / 1000)
    status, _, stale = server.call("PUT", "/v1/rules/margins", token=tokens["editor"],
                                   body={"rule": changed, "message": "again"}, headers={"If-Match": base})
    assert status == 409 and stale["head"] == body["revision"]


def test_a_commit_by_another_process_is_picked_up(server, tokens):
    store = store_of(server)
    head = store.head()
    text = store.read("tiering.yaml")
    changed = text.replace("      revenue_growth:\n",
                           "      revenue_m:\n        expr: revenue_12m / 1000000\n      revenue_growth:\n", 1)
    assert changed != text
    revision = store.commit({"tiering.yaml": changed}, head, "another process", "Revenue in millions")
    rows = accounts(2)
    status, _, out = server.call("POST", "/v1/evaluate", token=tokens["viewer"], body={"accounts": rows})
    assert status == 200 and out["rules_version"] == revision
    assert out["results"][1]["revenue_m"] == pytest.approx(rows[1]["revenue_12m"] / 1_000_000)
    status, _, ready = server.call("GET", "/readyz", token=tokens["viewer"])
    assert (status, ready["serving"], ready["head"], ready["problem"]) == (200, revision, revision, None)


def test_a_head_broken_behind_the_services_back_is_reported_and_not_served(server, tokens):
    store = store_of(server)
    served = store.head()
    repo = pygit2.Repository(str(server.data / "rules.git"))
    parent = repo[served]
    index = pygit2.Index()
    index.read_tree(parent.tree)
    index.add(pygit2.IndexEntry("tiering.yaml", repo.create_blob(b"rules:\n  - id: [broken\n"),
                                pygit2.enums.FileMode.BLOB))
    sig = pygit2.Signature("someone", "someone@example.com")
    broken = str(repo.create_commit("refs/heads/main", sig, sig, "oops", index.write_tree(repo), [parent.id]))

    status, _, ready = server.call("GET", "/readyz", token=tokens["viewer"])
    assert status == 200 and ready["ready"], ready  # still serving: the last valid revision
    assert ready["serving"] == served and ready["head"] == broken
    assert "tiering.yaml" in ready["problem"]
    status, _, out = server.call("POST", "/v1/evaluate", token=tokens["viewer"], body={"accounts": accounts(1)})
    assert status == 200 and out["rules_version"] == served

    repaired = store.commit({"tiering.yaml": store.read("tiering.yaml", served)}, broken, "someone", "Repair")
    status, _, ready = server.call("GET", "/readyz", token=tokens["viewer"])
    assert status == 200 and ready == {"ready": True, "serving": repaired, "head": repaired, "problem": None}


# --- access log ---

def test_one_json_access_line_per_request_with_decision_and_revision(server, tokens):
    status, headers, out = server.call("POST", "/v1/evaluate", token=tokens["viewer"], body={"accounts": accounts(1)})
    assert status == 200
    # the request's time on the clock, and its thread's CPU time within it
    timing = re.fullmatch(r"app;dur=([\d.]+), cpu;dur=([\d.]+)", headers["Server-Timing"])
    assert timing, headers["Server-Timing"]
    assert 0 < float(timing[2]) <= float(timing[1]) + 0.02  # (each rounded to 0.01 ms)
    server.call("GET", "/v1/rules/nope", token=tokens["viewer"])
    assert server.call("GET", "/v1/rules", token="not-a-token")[0] == 401  # this test's own, not another's

    def logged(lines: list[dict]) -> bool:  # a line is written as its request ends: maybe after its answer
        return (any(x.get("decision_id") == out["decision_id"] for x in lines)
                and any(x["path"] == "/v1/rules/nope" for x in lines)
                and any(x["path"] == "/v1/rules" and x["status"] == 401 for x in lines))

    deadline = time.monotonic() + 10
    while not logged(lines := server.access_log()):
        assert time.monotonic() < deadline, "the three requests were not all logged"
        time.sleep(0.1)
    (line,) = [x for x in lines if x.get("decision_id") == out["decision_id"]]
    assert line["revision"] == out["rules_version"] and line["status"] == 200
    assert (line["method"], line["path"], line["actor"]) == ("POST", "/v1/evaluate", "viewer-user")
    assert line["ms"] >= 0 and 0 < line["cpu_ms"] <= line["ms"] + 0.02 and line["bytes_in"] > 0
    assert any(x["path"] == "/v1/rules/nope" and x["status"] == 404 and x["decision_id"] is None for x in lines)
    assert any(x["path"] == "/v1/rules" and x["status"] == 401 and x["actor"] is None for x in lines)
