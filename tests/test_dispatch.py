"""server/dispatch.py: the patient dispatcher runs queued requests on the thread that finished, and lets another
thread take them once every running request is a long one."""

from __future__ import annotations

import threading

import pytest

from server.dispatch import PatientDispatcher

WAIT_S = 10  # how long a test waits for something that should happen at once, before it fails


class Task:
    """A waitress task as the dispatcher sees one: `service()` and `cancel()`."""

    def __init__(self, name: str, log: list, body=None) -> None:
        self.name, self.log, self.body = name, log, body
        self.started, self.done = threading.Event(), threading.Event()
        self.thread: int | None = None
        self.cancelled = False

    def service(self) -> None:
        self.thread = threading.get_ident()
        self.started.set()
        try:
            if self.body:
                self.body()
            self.log.append(self.name)
        finally:
            self.done.set()

    def cancel(self) -> None:
        self.cancelled = True


@pytest.fixture
def pool():
    pools = []

    def make(threads: int, patience_s: float) -> PatientDispatcher:
        p = PatientDispatcher(patience_s)
        p.set_thread_count(threads)
        pools.append(p)
        return p

    yield make
    for p in pools:
        assert p.shutdown(timeout=WAIT_S)
        assert not p.threads


def test_queued_short_tasks_run_one_after_another_on_the_thread_that_finished(pool):
    dispatcher = pool(4, patience_s=WAIT_S)
    release, log = threading.Event(), []
    first = Task("first", log, body=lambda: release.wait(WAIT_S))
    dispatcher.add_task(first)
    assert first.started.wait(WAIT_S)
    queued = [Task(f"t{i}", log) for i in range(5)]
    for task in queued:
        dispatcher.add_task(task)
    release.set()
    for task in queued:
        assert task.done.wait(WAIT_S)
    assert log == ["first", "t0", "t1", "t2", "t3", "t4"]  # in order,
    assert {task.thread for task in queued} == {first.thread}  # on the thread that ran the first one
    assert dispatcher.running == {}


def test_a_long_task_holds_the_queue_back_no_longer_than_the_patience(pool):
    dispatcher = pool(2, patience_s=0.05)
    log: list[str] = []
    short = Task("short", log)
    # The long task ends only once the short one has run: the short one must not wait for it.
    long = Task("long", log, body=lambda: short.done.wait(WAIT_S))
    dispatcher.add_task(long)
    assert long.started.wait(WAIT_S)
    dispatcher.add_task(short)
    assert long.done.wait(WAIT_S)
    assert log == ["short", "long"]
    assert short.thread != long.thread


def test_a_second_thread_serves_the_queue_while_a_long_task_runs_and_no_third_is_taken(pool):
    dispatcher = pool(3, patience_s=0.5)  # a third thread would need the box to stall this long to step in
    log: list[str] = []
    shorts = [Task(f"s{i}", log) for i in range(4)]
    long = Task("long", log, body=lambda: shorts[-1].done.wait(WAIT_S))
    dispatcher.add_task(long)
    assert long.started.wait(WAIT_S)
    for task in shorts:
        dispatcher.add_task(task)
    assert long.done.wait(WAIT_S)
    assert log == ["s0", "s1", "s2", "s3", "long"]
    assert len({task.thread for task in shorts}) == 1  # the short ones never wait the patience for each other
    assert shorts[0].thread != long.thread


def test_short_tasks_queued_behind_two_long_ones_do_not_wait_for_either(pool):
    """The standby that takes the second long task wakes another to stand by for the short ones left (review
    find: they waited for the first long task to end, with two threads idle)."""
    dispatcher = pool(4, patience_s=0.05)
    log: list[str] = []
    shorts = [Task(f"s{i}", log) for i in range(3)]
    saw_shorts_done = []
    longs = [Task(f"long{i}", log, body=lambda: saw_shorts_done.append(shorts[-1].done.wait(WAIT_S)))
             for i in range(2)]
    dispatcher.add_task(longs[0])
    assert longs[0].started.wait(WAIT_S)
    for task in (longs[1], *shorts):
        dispatcher.add_task(task)
    for task in longs:
        assert task.done.wait(2 * WAIT_S)
    assert saw_shorts_done == [True, True]  # both long tasks saw every short one done while they ran
    assert log[:3] == ["s0", "s1", "s2"]


def test_a_failing_task_is_logged_and_its_thread_goes_on(pool, caplog):
    dispatcher = pool(1, patience_s=0.05)
    log: list[str] = []

    def fail() -> None:
        raise RuntimeError("boom")

    bad, good = Task("bad", log, body=fail), Task("good", log)
    dispatcher.add_task(bad)
    dispatcher.add_task(good)
    assert good.done.wait(WAIT_S)
    assert log == ["good"]
    assert "Exception when servicing" in caplog.text and "boom" in caplog.text


def test_shutdown_stops_a_standby_thread_and_cancels_what_is_left():
    dispatcher = PatientDispatcher(patience_s=6 * WAIT_S)  # a standby left to its patience would outlast the test
    dispatcher.set_thread_count(2)
    release, log = threading.Event(), []
    first = Task("first", log, body=lambda: release.wait(WAIT_S))
    dispatcher.add_task(first)
    assert first.started.wait(WAIT_S)
    left = Task("left", log)
    dispatcher.add_task(left)  # wakes the other thread, which stands by
    dispatcher.set_thread_count(0)  # both told to stop before the first task ends: neither takes `left`
    release.set()
    assert dispatcher.shutdown(timeout=WAIT_S)
    assert not dispatcher.threads  # both threads left, the standby at once
    assert left.cancelled and log == ["first"]
