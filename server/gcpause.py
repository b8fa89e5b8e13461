"""The cyclic garbage collector held off while a large request is answered.

A 10,000-account evaluate makes a few hundred thousand short-lived objects (parsed accounts, result rows, the
decision log's cells), none of them in reference cycles: they are freed by reference counting when the request
ends. Meanwhile the collector is triggered every 700 new containers and walks the young ones, now and then the
whole heap: measured (bench/batch.py) 150-200 ms of a ~600 ms request, for nothing to collect. Held off, the
collector resumes when the last large request ends and finds only what outlived them.

The collector is one per process, so the pause is counted across threads: the first large request pauses it,
the last one to end lets it run again (if it ran before). Requests that overlap without end never starve it:
one ending after the pause has lasted `MAX_PAUSE_S` collects."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

LARGE_BODY_BYTES = 256 * 1024  # a request body this large (about 500 accounts as JSON) pauses the collector
MAX_PAUSE_S = 10.0

_lock = threading.Lock()
_holders = 0
_resume = False  # whether the collector ran before the pause (a caller may have disabled it for its own reasons)
_since = 0.0


@contextmanager
def paused(large: bool = True) -> Iterator[None]:
    """The collector held off for the block when `large`; a no-op otherwise."""
    if not large:
        yield
        return
    global _holders, _resume, _since
    with _lock:
        if _holders == 0:
            _resume = gc.isenabled()
            _since = time.monotonic()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        collect = False
        with _lock:
            _holders -= 1
            if _holders == 0:
                if _resume:
                    gc.enable()
            elif _resume and time.monotonic() - _since > MAX_PAUSE_S:
                collect, _since = True, time.monotonic()
        if collect:
            gc.collect()


def holders() -> int:
    """How many requests hold the collector off now (for tests)."""
    with _lock:
        return _holders


# After start-up, the collector's young generation is let grow this large before it is walked (Python's default
# is 700): a request of one account makes a few thousand short-lived containers, freed by reference counting.
YOUNG_OBJECTS = 10_000


def settle() -> None:
    """Called once a worker has started (app built, rule book loaded): what exists now (modules, the compiled
    rule book, pandas and numpy) lives as long as the process, so it is moved out of the collector's view
    (`gc.freeze`). A full collection then walks only what requests made since: measured, one of 199 ms stalled a
    worker's requests every few seconds of load before. The young generation is walked every YOUNG_OBJECTS new
    containers instead of 700."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_OBJECTS, older, oldest)
