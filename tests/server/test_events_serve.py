"""Events through a real `kam serve`: the server is killed with SIGKILL while a batch is being applied; after a
restart (state rebuilt from the event log) and a resubmission, every account's state equals a clean run's."""

import json
import os
import signal
import threading
import time

from kamcore.demo import synthetic_portfolio
from kamcore.events import EventLedger
from kamcore.events.synthetic import synthetic_events
from kamcore.rulebook import RuleBook
from kamcore.store import RuleStore
from tests.server.conftest import launch

BATCHES, PER_BATCH = 6, 150


def test_sigkill_mid_batch_then_replay_equals_a_clean_run(tmp_path):
    portfolio = synthetic_portfolio(40, seed=5)
    accounts = json.loads(portfolio.to_json(orient="records", date_format="iso"))
    ids = [a["account_id"] for a in accounts]
    events = synthetic_events(ids, BATCHES * PER_BATCH, seed=3)
    batches = [events[i * PER_BATCH:(i + 1) * PER_BATCH] for i in range(BATCHES)]

    server = launch(tmp_path, env={"KAM_EVENTS_SWEEP_S": "0", "KAM_ACCESS_LOG": "false"})
    editor = server.token("editor", "editor")
    assert server.call("POST", "/v1/accounts", editor, {"accounts": accounts})[0] == 200
    for batch in batches[:-1]:
        status, _, body = server.call("POST", "/v1/events", editor, {"events": batch})
        assert status == 200 and body["rejected"] == 0, body
    before = {i: server.call("GET", f"/v1/accounts/{i}/state", editor)[2] for i in ids}

    in_flight = threading.Thread(target=lambda: _swallow(server.call, "POST", "/v1/events", editor,
                                                         {"events": batches[-1]}))
    in_flight.start()
    time.sleep(0.05)
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    in_flight.join()

    again = launch(tmp_path, data=server.data, env={"KAM_EVENTS_SWEEP_S": "0", "KAM_ACCESS_LOG": "false"})
    try:
        status, _, body = again.call("POST", "/v1/events", editor, {"events": batches[-1]})
        assert status == 200 and body["applied"] + body["duplicates"] == PER_BATCH, body
        after = {i: again.call("GET", f"/v1/accounts/{i}/state", editor)[2] for i in ids}
    finally:
        again.stop()

    book = RuleStore.open(server.data, seed=None).book()
    reference = EventLedger(tmp_path / "reference.sqlite3", RuleBook.from_files(
        {f.path: f.text for f in book.files}, revision=book.revision))
    reference.register_accounts(accounts)
    for batch in batches:
        reference.submit(batch)
    clean = {i: reference.state(i) for i in ids}
    assert any(before[i] != after[i] for i in ids)  # the last batch did land
    for i in ids:
        assert _comparable(after[i]) == _comparable(clean[i]), i


def _swallow(call, *args):
    try:
        call(*args)
    except OSError:
        pass  # the connection died with the server


def _comparable(state):
    from server.encoding import plain

    return json.loads(json.dumps(plain(state), sort_keys=True, default=str))
