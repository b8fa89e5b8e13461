"""Event endpoints through the real app: batches with per-event errors, exactly once, ledger, state, alerts."""

import threading

A = {"account_id": "A1", "revenue_12m": 12000000, "gross_profit_12m": 3600000, "dso_days": 45, "credit_score": 80,
     "receivables": 1000000, "open_orders": 200000}


def order(event_id, at, amount, account="A1"):
    return {"id": event_id, "account_id": account, "type": "order_placed", "at": at, "amount": amount}


def register(as_):
    r = as_["editor"].post("/v1/accounts", json={"accounts": [A, {"revenue_12m": 5}]})
    assert r.status_code == 200, r.json
    assert r.json["registered"] == 1 and r.json["errors"][0]["row"] == 1


def test_a_batch_applies_every_good_event_and_names_each_bad_one(as_):
    register(as_)
    r = as_["editor"].post("/v1/events", json={"events": [
        order("o1", "2026-01-05", 10000),
        order("o2", "2026-01-06", -5),
        {"account_id": "A1", "type": "order_placed", "at": "2026-01-07", "amount": 5},
        order("o3", "2026-01-08", 3000, account="nobody"),
    ]})
    assert r.status_code == 200, r.json
    body = r.json
    assert [e["status"] for e in body["events"]] == ["applied", "rejected", "rejected", "rejected"]
    assert body["applied"] == 1 and body["rejected"] == 3
    fields = [e["errors"][0]["field"] for e in body["events"][1:]]
    assert fields[0] == "amount" and fields[1] == "id"
    again = as_["editor"].post("/v1/events", json={"events": [order("o1", "2026-01-05", 10000)]}).json
    assert again["duplicates"] == 1 and again["applied"] == 0
    state = as_["viewer"].get("/v1/accounts/A1/state").json
    assert state["tier"] == "A" and state["points"] == 20
    lines = as_["viewer"].get("/v1/accounts/A1/ledger?measure=points").json
    assert [(ln["event_id"], ln["rule"]) for ln in lines] == [("o1", "order_points")]
    assert lines[0]["revision"]
    assert as_["viewer"].get("/v1/accounts/nobody/state").status_code == 404


def test_concurrent_posts_of_the_same_events_apply_each_once(as_):
    register(as_)
    events = [order(f"o{i}", f"2026-02-{i + 1:02d}", 1000 * (i + 1)) for i in range(12)]
    outcomes = []

    def post():
        outcomes.append(as_["editor"].post("/v1/events", json={"events": events}).json)

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(o["applied"] for o in outcomes) == 12
    assert sum(o["duplicates"] for o in outcomes) == 36
    lines = as_["viewer"].get("/v1/accounts/A1/ledger?measure=points").json
    assert sorted(ln["event_id"] for ln in lines if ln["rule"] == "order_points") == sorted(e["id"] for e in events)


def test_alerts_and_roles(as_):
    register(as_)
    assert as_["viewer"].post("/v1/events", json={"events": []}).status_code == 403
    as_["editor"].post("/v1/events", json={"events": [
        {"id": "d1", "account_id": "A1", "type": "invoice_overdue", "at": "2026-03-02", "invoice_no": "I-1",
         "days_overdue": 61}]})
    alerts = as_["viewer"].get("/v1/alerts?level=hold").json
    assert [a["account_id"] for a in alerts] == ["A1"]
    assert as_["viewer"].get("/v1/accounts/A1/state").json["credit_status"] == "hold"
