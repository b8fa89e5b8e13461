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


@pytest.mark.parametrize("error", [SystemExit(3), KeyboardInterrupt()])
def test_an_exit_raised_by_the_work_reaches_the_caller_too(error):
    def work():
        raise error

    with pytest.raises(type(error)):
        Aside(work).result()


def test_as_a_context_manager_it_is_waited_for_however_the_block_ends():
    release = threading.Event()

    def work():
        assert release.wait(10)
        raise ValueError("the digest failed too")

    threading.Timer(0.2, release.set).start()
    with pytest.raises(RuntimeError, match="the block failed") as caught, Aside(work, name="kam-test") as aside:
        raise RuntimeError("the block failed")
    assert not aside.is_alive()  # joined before the block's exception left it
    assert caught.value.__notes__ == ["meanwhile, on thread kam-test: ValueError('the digest failed too')"]
    with pytest.raises(ValueError, match="the digest failed too"):
        aside.result()


def test_a_block_that_ends_well_leaves_the_result_to_be_taken():
    with Aside(lambda: 42) as aside:
        pass
    assert not aside.is_alive() and aside.result() == 42


@pytest.fixture
def no_threads(monkeypatch):
    """The process at its limit of threads: starting one fails as CPython's does."""
    refuse_threads(monkeypatch)


def refuse_threads(monkeypatch, asked=None):
    """Make `Thread.start` fail as at the process's limit of threads (`asked` collects the attempts)."""
    def refuse(*args, **kwargs):
        if asked is not None:
            asked.append(args)
        raise RuntimeError("can't start new thread")

    # What Thread.start calls: _start_joinable_thread from Python 3.13, _start_new_thread before
    name = "_start_joinable_thread" if hasattr(threading, "_start_joinable_thread") else "_start_new_thread"
    monkeypatch.setattr(threading, name, refuse)


def test_where_no_thread_can_be_started_the_work_is_done_on_the_callers_thread(no_threads):
    aside = Aside(lambda a, b: (threading.current_thread().name, a + b), 2, 3, name="kam-test")
    assert aside.inline and not aside.is_alive()
    assert aside.result() == (threading.current_thread().name, 5)
    with Aside(lambda: 42) as inline:
        pass
    assert inline.inline and inline.result() == 42


def test_what_inline_work_raises_is_raised_when_its_result_is_taken(no_threads):
    def work():
        raise KeyError("missing")

    aside = Aside(work)  # no exception yet: taken with the result, as from a thread
    with pytest.raises(KeyError, match="missing"):
        aside.result()
    with pytest.raises(RuntimeError, match="the block failed") as caught, Aside(work):
        raise RuntimeError("the block failed")
    assert caught.value.__notes__ == ["before, on this thread (no thread could be started): KeyError('missing')"]


@pytest.mark.parametrize("error", [SystemExit(3), KeyboardInterrupt()])
def test_an_exit_raised_by_inline_work_is_raised_at_once(no_threads, error):
    """As a thread's caller would receive a Ctrl-C: not held back until the result is asked for, nor turned into
    a note on whatever the caller's block raises next."""
    def work():
        raise error

    with pytest.raises(type(error)):
        Aside(work)
    with pytest.raises(type(error)), Aside(work):
        raise AssertionError("not reached: the exit left before the block")
