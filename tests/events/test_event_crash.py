"""Replay after a crash: a process applying events is killed with SIGKILL; the ledger reopened from the same file
shows exactly the state its committed events give, and taking every event again ends where a clean run ends."""

import json
import random
import signal
import subprocess
import sys

from kamcore.events.synthetic import end_of, synthetic_events
from tests.events.conftest import RULES, SUBMITTER, picture


def test_state_after_sigkill_is_the_replay_of_the_committed_events(tmp_path, open_ledger, portfolio, clock):
    events = synthetic_events(list(portfolio["account_id"]), 700, seed=31)
    order = list(events)
    random.Random(4).shuffle(order[150:])  # after the first 150, events arrive in any order: late ones re-derive
    path = tmp_path / "events.json"
    path.write_text(json.dumps(order), encoding="utf-8")
    open_ledger("crash.db").close()  # accounts registered, then the database is left to the worker
    worker = subprocess.Popen(
        [sys.executable, str(SUBMITTER), str(tmp_path / "crash.db"), str(RULES), str(path), "5",
         clock().isoformat()], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = 0
    while done < 300:
        line = worker.stdout.readline()
        assert line, worker.stderr.read()
        done = int(line.split()[0])
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=60)
    assert worker.returncode == -signal.SIGKILL

    restarted = open_ledger("crash.db", register=False)
    committed = {r[0] for r in restarted.store.db.execute("SELECT event_id FROM events")}
    assert 300 <= len(committed) < len(events)
    assert all(not diffs for diffs in restarted.verify().values())

    replayed = open_ledger("replayed.db")
    replayed.submit([e for e in order if e["id"] in committed])
    assert picture(restarted) == picture(replayed)

    again = restarted.submit(order)
    assert again.count("duplicate") == len(committed)
    assert again.count("applied") == len(events) - len(committed)
    clean = open_ledger("clean.db")
    clean.submit(order)
    assert picture(restarted) == picture(clean)
    clock.set(end_of(events).isoformat())
    restarted.sweep()
    clean.sweep()
    assert picture(restarted) == picture(clean)
