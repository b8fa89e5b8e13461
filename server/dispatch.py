"""Which of waitress's task threads runs the next request: a thread already running requests, while they are
short; another one only once every running request has run longer than `PATIENCE_S`.

waitress hands each request to an idle thread of `--threads`, woken for it. Under load a worker's requests then
run side by side on its threads and take turns at the GIL. Each turn is a thread woken, a context switch and a
request's working set brought back into the core's caches. A single-account evaluate is ~2 ms of Python, so
those turns cost a large share of it. Measured with `bench/http.py --workers 2` at 8 connections: with one
thread per worker, 735-807 req/s at 2.2-2.5 ms of server CPU per request; with four, 444-589 req/s at
2.7-3.7 ms. But one thread would leave every request of a worker waiting behind its slowest one: a 10,000-row
batch, an xlsx upload or an impact report takes hundreds of milliseconds.

So this dispatcher runs queued requests one after another on a thread that is already warm, as one thread
would. It lets another thread start one only when every running request has run `PATIENCE_S`, that is, when
they are all long ones. So a short request waits behind long ones for about `PATIENCE_S` at most, then runs
beside them. Short requests still queue behind each other, each ~2 ms, as they would on one thread. While the
queue waits, one standby thread sleeps until the youngest running request reaches the patience, then looks
again (under steady short load, about 50 times a second). Other threads are woken only for a task arriving
when none runs (a burst may wake a few; they go back to sleep), or to stand by. A thread that finishes while
another has just started a request stands by or sleeps. So after a burst the work narrows back to one thread.

Measured the same way, old and new in turn: 416-602 req/s at 2.8-3.7 ms per request with waitress's
dispatcher, 702-775 req/s at 2.4-2.6 ms with this one. waitress's "Task queue depth" warning is not logged: a
queue is this dispatcher's normal state, not a sign of too few threads."""

from __future__ import annotations

import time
from typing import Any

from waitress.server import BaseWSGIServer, MultiSocketServer, create_server
from waitress.task import ThreadedTaskDispatcher

from .channel import QuietChannel

PATIENCE_S = 0.02  # ~10 single-account requests: longer than any of them, far shorter than a batch


class PatientDispatcher(ThreadedTaskDispatcher):
    """waitress's thread pool and shutdown, another rule for which thread takes the next task (module doc)."""

    def __init__(self, patience_s: float = PATIENCE_S) -> None:
        super().__init__()
        self.patience_s = patience_s
        self.running: dict[int, float] = {}  # thread number → when its task started (monotonic)
        self.standby: int | None = None  # the thread waiting for the running tasks to show they are long

    def add_task(self, task: Any) -> None:
        with self.lock:
            self.queue.append(task)
            # Nothing running: an idle thread takes it. Something running and no standby: one thread is woken
            # to stand by. Otherwise a running thread takes it when done, or the standby when its time comes.
            if not self.running or self.standby is None:
                self.queue_cv.notify()

    def handler_thread(self, thread_no: int) -> None:
        while True:
            with self.lock:
                task = self._next_task(thread_no)
                if task is None:
                    return
            try:
                task.service()
            except BaseException:  # noqa: BLE001 - as waitress: a task's failure never ends its thread
                self.logger.exception("Exception when servicing %r", task)

    def _next_task(self, thread_no: int) -> Any:
        """The task this thread runs next (None: the thread is to stop). Called with the lock held."""
        self.running.pop(thread_no, None)
        while True:
            if self.stop_count > 0:  # as waitress: a thread told to stop leaves at once
                self._leave_standby(thread_no)
                self.active_count -= 1
                self.stop_count -= 1
                self.threads.discard(thread_no)
                self.thread_exit_cv.notify()
                return None
            if self.queue:
                now = time.monotonic()
                youngest = max(self.running.values(), default=None)
                if youngest is None or now - youngest >= self.patience_s:
                    self._leave_standby(thread_no)
                    self.running[thread_no] = now
                    task = self.queue.popleft()
                    if self.queue and self.standby is None:  # someone to stand by for what is left (if this
                        self.queue_cv.notify()  # task is long too, it must not wait for the running ones to end)
                    return task
                if self.standby in (None, thread_no):
                    self.standby = thread_no
                    self._wait(youngest + self.patience_s - now)
                    continue
            self._leave_standby(thread_no)
            self._wait(None)

    def _leave_standby(self, thread_no: int) -> None:
        if self.standby == thread_no:
            self.standby = None

    def _wait(self, timeout: float | None) -> None:
        self.active_count -= 1  # idle while waiting, as waitress counts its threads
        self.queue_cv.wait(timeout)
        self.active_count += 1


def dispatcher(threads: int) -> PatientDispatcher:
    """A started pool of `threads` task threads."""
    pool = PatientDispatcher()
    pool.set_thread_count(threads)
    return pool


# What a connection reads from its socket at once: waitress's 8 KiB made a 5 MB batch 670 turns of its loop (each
# chunk parsed, then written to the body's temporary file), ~30 ms of the loop's thread holding the GIL.
RECV_BYTES = 256 * 1024


def build(app: object, threads: int, **adjustments: object) -> BaseWSGIServer | MultiSocketServer:
    """`waitress.create_server(app, threads=..., **adjustments)` with the patient dispatcher and quiet connections
    (server.channel), ready to `run()`."""
    socket_map: dict[int, object] = {}  # waitress's: its servers, their triggers, later their connections
    adjustments = {"recv_bytes": RECV_BYTES, **adjustments}
    server = create_server(app, socket_map, _dispatcher=dispatcher(threads), threads=threads, **adjustments)
    for listening in socket_map.values():  # a server per address the host name has (IPv4 and IPv6: two)
        if isinstance(listening, BaseWSGIServer):
            listening.channel_class = QuietChannel
    return server


def serve(app: object, threads: int, **adjustments: object) -> None:
    """`build` and run: until stopped."""
    server = build(app, threads, **adjustments)
    server.print_listen("Serving on http://{}:{}")
    server.run()
