"""waitress's connection, with a main loop that leaves it alone while a request's thread is sending on it.

waitress's main loop (one thread) asks every connection on each turn whether it wants to write
(`HTTPChannel.writable`), and selects those for writing. A connection says yes whenever output is waiting in its
buffers. A request's thread writes its answer through `write_soon`, which appends to those buffers and, as
waitress's `send_bytes` is 1, sends them at once, holding the buffers' lock throughout. In that window the output
is waiting and the socket is writable, so a loop woken by anything else (another connection's request, a
finished task) finds the connection writable, `select` returns at once, the loop fails to take the lock and turns
again, until the sender is done; each turn is a `select` and a wait for the interpreter lock, which the sender
also needs back after its socket call. Measured with cProfile on a bare WSGI app (`return [b"{}"]`) under wrk
with 8 connections: 20 turns of the loop per request (a reviewer counted 165 with 8 in-process clients, all of
them failed tries of the lock). A bare app made 640-1,280 req/s at 0.5-1.8 ms of CPU per request that way, and
3,400-3,700 req/s at 0.3 ms with this connection. `bench/http.py --workers 2`, old and new in turn: a single-account
evaluate 618-660 -> 727-822 req/s at 8 connections (3.01-2.82 -> 2.50-2.22 ms of server CPU per request).

So a connection does not ask to be written while a request's thread is inside `write_soon`: that thread sends
what it appends. Once it leaves, anything it could not send (the client reads slower than the answer comes) is
the loop's again, at once: the thread wakes the loop, which finds the connection writable and sends the rest as
the client reads, as waitress does, between one write and the next, at the end of a request, and while the next
pipelined request runs. A send that fails there tells the loop that the client is gone, so a streaming request
stops at its next write. Two cases still ask for the loop while a thread is inside `write_soon`: output past
waitress's high-water mark (the thread then waits for the loop to drain it), and a connection to be closed."""

from __future__ import annotations

from typing import Any

from waitress.channel import HTTPChannel


class QuietChannel(HTTPChannel):
    """waitress's HTTP connection; `writable` and `write_soon` as the module doc says."""

    sending = False  # a request's thread is inside write_soon (appending, sending, or waiting for the loop)

    def writable(self) -> bool:
        if self.will_close or self.close_when_flushed:
            return True
        waiting = self.total_outbufs_len
        return bool(waiting) and (not self.sending or waiting >= self.adj.outbuf_high_watermark)

    def write_soon(self, data: Any) -> int:
        self.sending = True
        try:
            return super().write_soon(data)
        finally:
            self.sending = False
            if self.total_outbufs_len and self.connected:  # not all sent: the loop's to send, woken now
                self.server.pull_trigger()
