"""Fair shares of connections for the workers of `kam serve --workers N`: a worker accepts a new connection only
while it holds no more open connections than the least-loaded live worker.

All workers accept on one inherited listening socket. Left to itself, whichever worker wakes first takes a burst
of new connections (wrk's 8 keep-alive connections often all landed on one of two workers), and a keep-alive
connection stays with the worker that accepted it: one core idled while the other was saturated. Each worker
writes its count of open connections and a heartbeat into a small shared board (a file mapped into every
worker); its accept loop (waitress's `readable()`, asked on every turn of the loop, at least every LOOP_S)
listens for new connections only while no live worker holds fewer, and asks again just before it accepts one.
A worker whose heartbeat is older than `STALE_S` (stopped, wedged) is left out of the comparison, so the others
take every new connection and none waits on it for ever. The rule is a preference, not a lock: two workers may
both accept at once, which only moves the split by one.

`SO_REUSEPORT` (a listening socket per worker, the kernel hashing connections over them) was weighed and not
taken: the hash splits 8 connections 2/6 or worse in about 3 runs of 10, and connections hashed to a stuck
worker's socket wait there.
"""

from __future__ import annotations

import mmap
import os
import socket
import tempfile
import time

from waitress.adjustments import Adjustments
from waitress.server import TcpWSGIServer

from .channel import QuietChannel
from .dispatch import RECV_BYTES
from .dispatch import dispatcher as patient_dispatcher

# A worker's loop turns at least this often (waitress's default is once a second, and only in whole seconds).
# A worker that stopped listening (another held fewer connections) learns that it should listen again only when
# its loop turns: with a 1 s turn, new connections waited up to a second in the backlog while every worker
# thought another should take them (measured: p99 0.9-1.0 s at 8 connections once an idle keep-alive connection
# stood on one worker). 20 turns a second bound that wait at 50 ms, at no cost an idle worker notices.
LOOP_S = 0.05
STALE_S = 3.0  # a worker's accept loop turns at least every LOOP_S: a heartbeat 3 s old is a stuck worker
SLOT = 16  # per worker: open connections (int64), heartbeat on the monotonic clock (float64)


class Board:
    """The shared board: a slot per worker of (open connections, last heartbeat)."""

    def __init__(self, fd: int, workers: int, index: int) -> None:
        self.workers, self.index = workers, index
        self._map = mmap.mmap(fd, workers * SLOT)
        self._counts = memoryview(self._map).cast("q")
        self._beats = memoryview(self._map).cast("d")

    @staticmethod
    def create(workers: int) -> int:
        """A new zeroed board for `workers` workers, as an inheritable file descriptor (the file is already
        unlinked: it goes when the last worker closes it)."""
        fd, path = tempfile.mkstemp(prefix="kam-workers-")
        os.unlink(path)
        os.ftruncate(fd, workers * SLOT)
        os.set_inheritable(fd, True)
        return fd

    def publish(self, connections: int) -> None:
        """Say how many connections this worker holds, and that it is alive."""
        self._counts[2 * self.index] = connections
        self._beats[2 * self.index + 1] = time.monotonic()

    def fewest_elsewhere(self) -> int | None:
        """The fewest connections any other live worker holds (None: no other worker is live)."""
        now = time.monotonic()
        live = [self._counts[2 * i] for i in range(self.workers)
                if i != self.index and now - self._beats[2 * i + 1] < STALE_S]
        return min(live, default=None)

    def may_accept(self, connections: int) -> bool:
        """Publish this worker's count; True while no live worker holds fewer connections."""
        self.publish(connections)
        fewest = self.fewest_elsewhere()
        return fewest is None or connections <= fewest


class BalancedServer(TcpWSGIServer):
    """waitress's TCP server on an inherited socket, listening for new connections only while it may take one;
    its connections are quiet (server.channel)."""

    board: Board
    channel_class = QuietChannel

    def readable(self) -> bool:
        if not super().readable():  # waitress's own reasons first (connection limit, shutting down)
            self.board.publish(len(self.active_channels))
            return False
        return self.board.may_accept(len(self.active_channels))

    def handle_accept(self) -> None:
        # Asked again: the loop may have listened since before another worker's count dropped (a quiet loop turns
        # every LOOP_S). Declining leaves the connection to a worker that may take it (the listening socket is
        # shared); this loop's next turn stops listening.
        if self.board.may_accept(len(self.active_channels)):
            super().handle_accept()
            self.board.publish(len(self.active_channels))  # now, not at the next turn of the loop


def serve(app: object, listening: socket.socket, board: Board, threads: int, **adjustments: object) -> None:
    """Serve `app` on `listening` (bound by the supervisor) as one worker of several, until stopped."""
    build(app, listening, board, threads, **adjustments).run()


def build(app: object, listening: socket.socket, board: Board, threads: int,
          **adjustments: object) -> BalancedServer:
    """The worker's server, listening and ready to `run()`."""
    adj = Adjustments(sockets=[listening], threads=threads, **{"recv_bytes": RECV_BYTES, **adjustments})
    adj.asyncore_loop_timeout = LOOP_S  # set after parsing: waitress reads this setting as whole seconds
    dispatcher = patient_dispatcher(threads)
    server = BalancedServer(app, {}, False, listening, dispatcher=dispatcher, adj=adj, bind_socket=False,
                            sockinfo=(listening.family, listening.type, listening.proto, listening.getsockname()))
    server.board = board
    server.accept_connections()
    return server
