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


def test_a_rehearsal_that_fails_is_logged_and_leaves_nothing_behind(new_app, caplog):
    """A batch the service refuses (here: out of time) fails the rehearsal only: a warning with its traceback, no
    scratch log, thread or record left, and the service answers."""
    app, as_ = new_app(evaluate_timeout_s=0)
    scratch_before = set(Path(tempfile.gettempdir()).glob("kam-rehearsal-*"))
    threads_before = sorted(t.name for t in threading.enumerate())
    with caplog.at_level(logging.WARNING, logger="server.warm"):
        assert warm.rehearse(app, 600) is None
    (record,) = [r for r in caplog.records if r.name == "server.warm"]
    assert record.getMessage().startswith("the start-up rehearsal of a 600-account batch failed (ApiProblem:")
    assert record.exc_info is not None
    assert set(Path(tempfile.gettempdir()).glob("kam-rehearsal-*")) == scratch_before
    assert sorted(t.name for t in threading.enumerate()) == threads_before
    assert app.extensions["kam"].decisions.verify().records == 0
    assert as_["viewer"].post("/v1/evaluate", json={"accounts": [{"revenue_12m": 1}]}).status_code == 413


def test_a_rehearsal_is_never_larger_than_the_service_takes(new_app, monkeypatch):
    app, _ = new_app(max_rows=300)
    sizes = []
    portfolio = warm.synthetic_portfolio
    monkeypatch.setattr(warm, "synthetic_portfolio", lambda rows, seed: sizes.append(rows) or portfolio(rows, seed))
    assert warm.rehearse(app, 10_000) is not None and sizes == [300]
