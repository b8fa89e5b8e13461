"""kamcore.aside: work on a thread of its own, its value or its exception taken by the caller."""

import threading

import pytest

from kamcore.aside import Aside


def test_the_work_runs_on_its_own_thread_while_the_caller_goes_on():
    started, release = threading.Event(), threading.Event()

    def work(a, b):
        started.set()
        assert release.wait(10)
        return threading.current_thread().name, a + b

    aside = Aside(work, 2, 3, name="kam-test")
    assert started.wait(10)  # running before the caller asks for it
    assert aside.is_alive()
    release.set()
    assert aside.result() == ("kam-test", 5)
    assert aside.result() == ("kam-test", 5)  # asked again: the same value


def test_what_the_work_raises_is_raised_to_the_caller():
    def work():
        raise KeyError("missing")

    aside = Aside(work)
    with pytest.raises(KeyError, match="missing") as caught:
        aside.result()
    assert any(frame.name == "work" for frame in caught.traceback)  # where it was raised, on the other thread
