"""server.warm: the large batch a `kam serve` worker works through as it starts goes the way a request's does (read
by Arrow, evaluated, its answer encoded and its decision logged, on a thread of its own), records nothing in the
service's log and leaves nothing behind; one that fails is logged, and the service starts all the same."""

import logging
import tempfile
import threading
from pathlib import Path

import pandas as pd

from server import warm


def test_a_rehearsal_goes_the_requests_way_and_records_nothing(app, monkeypatch):
    seen = []
    decide = warm.decide

    def watched(kam, actor, accounts, **kwargs):
        seen.append((threading.current_thread().name, type(accounts), len(accounts), kam.decisions, kwargs))
        return decide(kam, actor, accounts, **kwargs)

    monkeypatch.setattr(warm, "decide", watched)
    scratch_before = set(Path(tempfile.gettempdir()).glob("kam-rehearsal-*"))
    threads_before = sorted(t.name for t in threading.enumerate())
    took = warm.rehearse(app, 1500)
    assert took is not None and took > 0
    ((thread, kind, rows, log, kwargs),) = seen
    assert thread == "kam-rehearsal" and kind is pd.DataFrame and rows == 1500  # read by Arrow, as a request's
    assert kwargs == {"encoded": True}
    kam = app.extensions["kam"]
    assert log is not kam.decisions and kam.decisions.verify().records == 0  # nothing in the service's log
    assert set(Path(tempfile.gettempdir()).glob("kam-rehearsal-*")) == scratch_before  # the scratch log deleted
    assert sorted(t.name for t in threading.enumerate()) == threads_before  # the scratch log's checkpointer too


def test_no_rows_no_rehearsal(app, monkeypatch):
    monkeypatch.setattr(warm, "decide", None)  # never called
    assert warm.rehearse(app, 0) is None


def test_a_rehearsal_that_fails_is_logged_and_nothing_else(new_app, caplog):
    """A batch the service refuses (here: more accounts than `max_rows`) fails the rehearsal only."""
    app, as_ = new_app(max_rows=100)
    with caplog.at_level(logging.WARNING, logger="server.warm"):
        assert warm.rehearse(app, 600) is None
    (message,) = [r.getMessage() for r in caplog.records if r.name == "server.warm"]
    assert message.startswith("the start-up rehearsal of a 600-account batch failed (ApiProblem:")
    assert app.extensions["kam"].decisions.verify().records == 0
    assert as_["viewer"].post("/v1/evaluate", json={"accounts": [{"revenue_12m": 1}]}).status_code == 200
