"""Exactly once under concurrent submitters: threads sharing one ledger, and processes each with their own,
all on one SQLite file, sending the same events in different orders."""

import json
import random
import subprocess
import sys
import threading

from kamcore.events.synthetic import end_of, synthetic_events
from tests.events.conftest import RULES, SUBMITTER, picture


def shuffled(events, seed):
    out = list(events)
    random.Random(seed).shuffle(out)
    return out


def test_threads_sharing_a_ledger_apply_every_event_once(open_ledger, portfolio):
    events = synthetic_events(list(portfolio["account_id"]), 400, seed=21)
    shared = open_ledger("shared.db")
    applied: list[str] = []
    failures: list[BaseException] = []

    def submitter(seed):
        try:
            mine = shuffled(events, seed)
            for start in range(0, len(mine), 25):
                sub = shared.submit(mine[start:start + 25])
                applied.extend(o.event_id for o in sub.outcomes if o.status == "applied")
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=submitter, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert sorted(applied) == sorted(e["id"] for e in events)
    assert shared.store.event_count() == len(events)
    reference = open_ledger("reference.db")
    reference.submit(events)
    assert picture(shared) == picture(reference)


def test_threads_with_their_own_connections_apply_every_event_once(open_ledger, portfolio):
    events = synthetic_events(list(portfolio["account_id"]), 300, seed=22)
    ledgers = [open_ledger("own.db", register=(i == 0)) for i in range(3)]
    applied: list[str] = []
    lock = threading.Lock()

    def submitter(ledger, seed):
        mine = shuffled(events, seed)
        for start in range(0, len(mine), 20):
            sub = ledger.submit(mine[start:start + 20])
            with lock:
                applied.extend(o.event_id for o in sub.outcomes if o.status == "applied")

    threads = [threading.Thread(target=submitter, args=(led, i)) for i, led in enumerate(ledgers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(applied) == sorted(e["id"] for e in events)
    reference = open_ledger("reference.db")
    reference.submit(events)
    # each connection caught up with what the others wrote before applying its own events
    assert picture(ledgers[1]) == picture(reference)
    assert all(not d for d in ledgers[2].verify().values())


def test_processes_on_one_database_apply_every_event_once(tmp_path, open_ledger, portfolio):
    events = synthetic_events(list(portfolio["account_id"]), 300, seed=23)
    first = open_ledger("multi.db")
    now = end_of(events).isoformat()
    workers = []
    for seed in range(3):
        path = tmp_path / f"events-{seed}.json"
        path.write_text(json.dumps(shuffled(events, seed)), encoding="utf-8")
        workers.append(subprocess.Popen(
            [sys.executable, str(SUBMITTER), str(tmp_path / "multi.db"), str(RULES), str(path), "15", now],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    applied = 0
    for w in workers:
        out, err = w.communicate(timeout=300)
        assert w.returncode == 0, err
        applied += sum(int(line.split()[1]) for line in out.splitlines())
    assert applied == len(events)
    assert first.store.event_count() == len(events)
    reference = open_ledger("reference.db")
    reference.submit(events)
    assert picture(first) == picture(reference)
    assert all(not d for d in first.verify().values())
