"""server/channel.py: waitress's main loop does not turn over and over while a request's thread is sending, and
still sends what a request's thread could not: between a streamed answer's writes, at the end of a request
while the next pipelined one runs, and past the high-water mark; a streaming request still learns that its
client left. Each test runs a real waitress server, built as `kam serve` builds it, on a loopback port, and
makes sure the case it is about really happened (output left unsent, a wait at the high-water mark)."""

from __future__ import annotations

import http.client
import socket
import threading
import time

import pytest
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer

from server import balance, dispatch
from server.channel import QuietChannel

WAIT_S = 20  # how long a test waits for something that should happen, before it fails
SEND_PAUSE_S = 0.05  # a request thread's send, held this long (a send the interpreter lock makes wait)
SMALL_RECEIVE = 32 << 10  # the client's socket buffer: a large answer is then left partly unsent by its thread


def answer(body: bytes, start_response) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))])
    return [body]


class Running:
    """`dispatch.build`'s server for `app` (with `channel` as its connection class when given), its main loop
    turning on a thread until `stop`."""

    def __init__(self, app, channel: type | None = None, **adjustments) -> None:
        self.server = dispatch.build(app, 2, host="127.0.0.1", port=0, **adjustments)
        if channel is not None:
            self.server.channel_class = channel
        self.port = int(self.server.effective_port)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        # Turns only when woken (a socket ready, the trigger pulled), never on a timer: a wake-up that is
        # missing shows as a wait, not as a delay of one timer's turn.
        while not self.stopping.is_set():
            wasyncore.loop(timeout=10 * WAIT_S, map=self.server._map, count=1)

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT_S)

    def client(self) -> socket.socket:
        """A raw client socket with a small receive buffer (set before connecting, so that it holds)."""
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RECEIVE)
        s.settimeout(WAIT_S)
        s.connect(("127.0.0.1", self.port))
        return s

    def stop(self) -> None:
        self.stopping.set()
        self.server.pull_trigger()
        self.thread.join(WAIT_S)
        self.server.task_dispatcher.shutdown(timeout=5)
        for dispatcher in list(self.server._map.values()):
            dispatcher.close()


@pytest.fixture
def serving():
    running: list[Running] = []

    def start(app, channel: type | None = None, **adjustments) -> Running:
        running.append(Running(app, channel, **adjustments))
        return running[-1]

    yield start
    for r in running:
        r.stop()


def received(s: socket.socket) -> bytes:
    """What `s` has to read next (at least a byte: the server closing early fails the test)."""
    piece = s.recv(1 << 20)
    assert piece, "the server closed the connection early"
    return piece


def read_answers(s: socket.socket, count: int) -> list[bytes]:
    """The bodies of `count` answers with a Content-Length, read from `s`."""
    data, bodies = bytearray(), []
    while len(bodies) < count:
        head_end = data.find(b"\r\n\r\n")
        if head_end >= 0:
            head = bytes(data[:head_end])
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            if len(data) >= head_end + 4 + length:
                assert head.startswith(b"HTTP/1.1 200 OK"), head
                bodies.append(bytes(data[head_end + 4:head_end + 4 + length]))
                del data[:head_end + 4 + length]
                continue
        data += received(s)
    return bodies


def test_kam_serve_builds_its_servers_with_quiet_connections():
    for host in ("127.0.0.1", "localhost"):  # localhost may be two servers (IPv4 and IPv6), each quiet
        server = dispatch.build(lambda e, s: answer(b"ok", s), 1, host=host, port=0)
        socket_map = server._map if isinstance(server, BaseWSGIServer) else server.map  # (several: MultiSocket)
        try:
            servers = [d for d in socket_map.values() if isinstance(d, BaseWSGIServer)]
            assert servers and all(d.channel_class is QuietChannel for d in servers)
        finally:
            server.task_dispatcher.shutdown(timeout=5)
            for d in list(socket_map.values()):
                d.close()
    assert balance.BalancedServer.channel_class is QuietChannel  # the workers of `kam serve --workers N`


def counting(base: type, loop: list[threading.Thread]) -> type:
    """`base` with its main loop's writes counted, and a request thread's sends held `SEND_PAUSE_S`: the window
    in which waitress's own connection has output waiting and its lock taken. The main loop is woken as each send
    begins, as another connection's request or a finished task wakes it under load."""

    class Counting(base):
        turns = 0

        def handle_write(self):
            type(self).turns += 1
            super().handle_write()

        def send(self, data, do_close=True):
            if threading.current_thread() is not loop[0]:
                self.server.pull_trigger()
                time.sleep(SEND_PAUSE_S)
            return super().send(data, do_close=do_close)

    return Counting


@pytest.mark.parametrize(("base", "spins"), [(QuietChannel, False), (HTTPChannel, True)],
                         ids=["quiet", "waitress's own (the control: the test sees the spin)"])
def test_the_main_loop_waits_while_a_request_thread_sends(serving, base, spins):
    loop: list[threading.Thread] = []
    channel = counting(base, loop)
    running = serving(lambda e, s: answer(b"x" * 100, s), channel)
    loop.append(running.thread)
    connection = running.connection()
    for _ in range(3):
        connection.request("GET", "/")
        got = connection.getresponse()
        assert got.status == 200 and got.read() == b"x" * 100
    connection.close()
    if spins:  # waitress's connection: the loop turns at full speed through each held send (thousands of times)
        assert channel.turns > 20, channel.turns
    else:  # the answers were sent by their request threads; nothing was left for the loop to write
        assert channel.turns == 0


def test_a_streamed_answers_unsent_part_is_sent_before_its_next_write(serving):
    # The app writes a part larger than the client's socket takes (the client reads nothing until that write is
    # over), then waits until the client has read it all: a loop that left the unsent rest to the next write
    # would leave both waiting.
    part = b"s" * (8 << 20)
    part_written, client_has_part, tails = threading.Event(), threading.Event(), []

    class Watched(QuietChannel):
        def write_soon(self, data):
            sent = super().write_soon(data)
            if len(data) == len(part):
                tails.append(self.total_outbufs_len)
                part_written.set()
            return sent

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", str(len(part) + 3))])
        yield part
        assert client_has_part.wait(WAIT_S)
        yield b"end"

    running = serving(app, Watched)
    pull = running.server.pull_trigger

    def pull_and_pause() -> None:  # a wake-up from inside the write reaches the loop before the write is over
        pull()
        if threading.current_thread() is not running.thread:
            time.sleep(0.2)

    running.server.pull_trigger = pull_and_pause
    with running.client() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert part_written.wait(WAIT_S)
        assert tails[0] > 0, "the request's thread sent everything itself: the case did not arise"
        data = bytearray()
        while (start := data.find(b"\r\n\r\n")) < 0 or len(data) < start + 4 + len(part):
            data += received(s)
        client_has_part.set()
        while len(data) < start + 4 + len(part) + 3:
            data += received(s)
    assert data.endswith(part + b"end")


def test_an_answers_unsent_tail_is_sent_while_the_next_pipelined_request_runs(serving):
    # /1's answer is left partly unsent when its request ends; /2 waits until the client has all of /1 (a loop
    # that left the tail to /2's first write would leave both waiting); /3 closes the connection.
    first = b"1" * (8 << 20)
    client_has_first, ended_with_tail = threading.Event(), threading.Event()

    class Watched(QuietChannel):
        def service(self):
            super().service()
            if self.total_outbufs_len:
                ended_with_tail.set()

    def app(environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/2":
            assert client_has_first.wait(WAIT_S)
        return answer(first if path == "/1" else path.encode(), start_response)

    running = serving(app, Watched)
    with running.client() as s:
        s.sendall(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert ended_with_tail.wait(WAIT_S), "/1's thread sent everything itself: the case did not arise"
        assert read_answers(s, 1) == [first]
        client_has_first.set()
        assert read_answers(s, 2) == [b"/2", b"/3"]
        assert s.recv(1) == b""  # closed after /3, as asked


def test_an_answer_past_the_high_water_mark_reaches_a_slow_reader(serving):
    # Past the high-water mark (here 1 MiB) a request's thread waits inside its write for the loop to drain the
    # buffers: the loop must write then, though the thread is sending. The client reads nothing until it waits.
    chunk, count, waiting = b"k" * (1 << 20), 12, threading.Event()

    class Watched(QuietChannel):
        def _flush_outbufs_below_high_watermark(self):
            if self.total_outbufs_len > self.adj.outbuf_high_watermark:
                waiting.set()
            super()._flush_outbufs_below_high_watermark()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", str(len(chunk) * count))])
        return iter([chunk] * count)

    running = serving(app, Watched, outbuf_high_watermark=1 << 20)
    with running.client() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert waiting.wait(WAIT_S), "the thread never waited at the high-water mark: the case did not arise"
        assert read_answers(s, 1) == [chunk * count]


def test_a_streaming_request_stops_soon_after_its_client_leaves(serving):
    ticks, stopped = [], threading.Event()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/event-stream")])

        def events():
            try:
                for i in range(500):  # 5 s or more, unless stopped
                    ticks.append(i)
                    yield b"data: tick\n\n"
                    time.sleep(0.01)
            finally:
                stopped.set()

        return events()

    running = serving(app)
    s = running.client()
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert s.recv(1000)
    s.close()
    assert stopped.wait(WAIT_S)
    assert len(ticks) < 250, "the request went on writing to a closed connection"
