"""Submit events from a JSON file to an event ledger in batches, printing the number of events after each
committed batch: the worker the multi-process and crash tests start as separate processes."""

import datetime as dt
import json
import sys

from kamcore import RuleBook
from kamcore.events import EventLedger


def main(db: str, rules: str, events_file: str, batch: int, now: str) -> None:
    clock = dt.datetime.fromisoformat(now)
    ledger = EventLedger(db, RuleBook.load(rules, revision="rev-1"), clock=lambda: clock)
    with open(events_file, encoding="utf-8") as f:
        events = json.load(f)
    done = 0
    for start in range(0, len(events), batch):
        submission = ledger.submit(events[start:start + batch])
        done += len(events[start:start + batch])
        print(done, submission.count("applied"), submission.count("duplicate"), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
