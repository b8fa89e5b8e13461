"""Work done beside the caller's: on a thread of its own, started at once, its result (or its exception) taken
when the caller needs it. For work that lets go of the GIL (zstd, hashlib, SQLite) while the caller's thread
does its own: the machine has a second core."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Aside(threading.Thread, Generic[T]):
    """`work(*args)` on a new thread; `result()` waits for it and gives its value or raises what it raised. As a
    context manager it is waited for when the block ends, however it ends: no thread outlives the call that
    started it, and what it raised while the block failed is named on the block's exception.

    A plain thread per call rather than a pool: a pool's idle threads do not survive a fork, and starting a thread
    (~0.1 ms) is small beside the work worth setting aside (milliseconds). Where no thread can be started (the
    process is at its limit of threads), the work is done on the caller's thread at once instead (`inline`): the
    caller waits for it rather than failing, and takes its value or exception in the same way (an exit raised by
    the work is raised at once)."""

    def __init__(self, work: Callable[..., T], *args: Any, name: str = "kam-aside"):
        super().__init__(name=name, daemon=True)
        self._work, self._args = work, args
        self._value: Any = None
        self._error: BaseException | None = None
        self.inline = False  # whether the work ran on the caller's thread (no thread could be started)
        try:
            self.start()
        except RuntimeError:  # "can't start new thread"
            self.inline = True
            # On the caller's thread, an exit (KeyboardInterrupt, SystemExit) is raised at once, where a thread's
            # caller would have received it; other exceptions are kept for `result()`, as from a thread.
            self._do(Exception)

    def run(self) -> None:
        self._do(BaseException)  # on the thread: whatever the work raises is handed to the caller by result()

    def _do(self, kept: type[BaseException]) -> None:
        try:
            self._value = self._work(*self._args)
        except kept as e:
            self._error = e
        finally:
            self._args = ()

    def __enter__(self) -> Aside[T]:
        return self

    def join(self, timeout: float | None = None) -> None:
        if not self.inline:  # (a thread never started cannot be joined; its work is done)
            super().join(timeout)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        self.join()
        if error is not None and self._error is not None:
            where = "before, on this thread (no thread could be started)" if self.inline else \
                f"meanwhile, on thread {self.name}"
            error.add_note(f"{where}: {self._error!r}")

    def result(self) -> T:
        self.join()
        if self._error is not None:
            raise self._error
        return self._value
