"""waitress's connection, with a main loop that sleeps while one of its requests is running.

waitress's main loop (one thread) asks every connection on each turn whether it wants to write
(`HTTPChannel.writable`), and selects those for writing. A connection says yes whenever output is waiting in its
buffers. But a request's thread writes its response into those buffers and sends them itself (waitress's
`send_bytes` is 1: every write is flushed at once), while holding the buffers' lock. Until the request is done
and off the connection, the main loop can only try that lock and fail: the socket is writable, so `select`
returns at once, and the loop turns again. Measured with cProfile on a bare WSGI app (`return [b"{}"]`) under
wrk with 8 connections: 20 turns of the loop per request, each a `select` and a wait for the interpreter lock
that the request's thread holds. The request's thread in turn waits for the lock at each of its socket calls.
A bare app made 640-1,280 req/s at 0.5-1.8 ms of CPU per request that way; with this connection it makes
3,400-3,700 req/s at 0.3 ms. A Flask "ok" made 700-835 req/s against 990-1,290.

So a connection wants the main loop to write only when no request of it is running (or waiting to run), when
its buffers have passed waitress's high-water mark (a running request then waits for the main loop to drain
them), or when it is to be closed. A running request sends what it writes itself. What it could not send (the
client is not reading fast enough) waits for its next write or its end: at its end waitress takes the request
off the connection and then wakes the main loop, which finds the connection writable and sends the rest.
The one wait this adds: with HTTP pipelining (a client sending its next request before reading the answer to
the last), an answer's unsent tail waits for the next request's first write, not for the client to read."""

from __future__ import annotations

from waitress.channel import HTTPChannel


class QuietChannel(HTTPChannel):
    """waitress's HTTP connection; `writable` as the module doc says."""

    def writable(self) -> bool:
        if self.will_close or self.close_when_flushed:
            return True
        waiting = self.total_outbufs_len
        return bool(waiting) and (not self.requests or waiting >= self.adj.outbuf_high_watermark)
