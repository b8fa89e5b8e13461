"""server/channel.py: waitress's main loop does not turn over and over while a request's thread is sending, and
every answer still arrives whole: large ones past the high-water mark to a slow reader, streamed ones, and
pipelined ones. Each test runs a real waitress server, built as `kam serve` builds it, on a loopback port."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from waitress.channel import HTTPChannel

from server import balance, dispatch
from server.channel import QuietChannel

WAIT_S = 20  # how long a test waits for an answer before it fails
SEND_PAUSE_S = 0.05  # a request thread's send, held this long (a send the interpreter lock makes wait)


def app_of(chunks: Callable[[], Iterator[bytes]], length: int | None = None):
    """A WSGI app answering every request with `chunks()` (with a Content-Length when given)."""

    def app(environ, start_response):
        environ["wsgi.input"].read()
        headers = [("Content-Type", "application/octet-stream")]
        if length is not None:
            headers.append(("Content-Length", str(length)))
        start_response("200 OK", headers)
        return chunks()

    return app


class Running:
    """`dispatch.build`'s server for `app`, its main loop on a thread; `channel` replaces the connection class."""

    def __init__(self, app, channel: type | None = None, threads: int = 2) -> None:
        self.server = dispatch.build(app, threads, host="127.0.0.1", port=0)
        if channel is not None:
            self.server.channel_class = channel
        self.port = self.server.effective_port
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT_S)

    def close(self) -> None:
        self.server.close()
        self.server.task_dispatcher.shutdown(timeout=WAIT_S)


@pytest.fixture
def serving():
    running: list[Running] = []

    def start(app, channel: type | None = None) -> Running:
        running.append(Running(app, channel))
        return running[-1]

    yield start
    for r in running:
        r.close()


def test_kam_serve_builds_its_servers_with_quiet_connections():
    server = dispatch.build(app_of(lambda: iter([b"ok"])), 1, host="127.0.0.1", port=0)
    try:
        assert server.channel_class is QuietChannel
    finally:
        server.close()
        server.task_dispatcher.shutdown(timeout=WAIT_S)
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
    running = serving(app_of(lambda: iter([b"x" * 100]), length=100), channel)
    loop.append(running.thread)
    connection = running.connection()
    for _ in range(3):
        connection.request("GET", "/")
        answer = connection.getresponse()
        assert answer.status == 200 and answer.read() == b"x" * 100
    connection.close()
    if spins:  # waitress's connection: the loop turns at full speed through each held send (hundreds of times)
        assert channel.turns > 20, channel.turns
    else:  # the answers were sent by their request threads; nothing was left for the loop to write
        assert channel.turns == 0


def test_an_answer_past_the_high_water_mark_reaches_a_slow_reader(serving):
    # The request thread waits for the main loop to drain its buffers below waitress's high-water mark (16 MiB)
    # before writing more: a loop that never wrote while a request runs would leave both waiting for ever. The
    # client reads nothing for a while, so that the buffers pass the mark (the sockets hold a few MiB).
    chunk, count = b"k" * (6 << 20), 5
    running = serving(app_of(lambda: iter([chunk] * count), length=len(chunk) * count))
    connection = running.connection()
    connection.request("GET", "/")
    time.sleep(1.0)
    answer = connection.getresponse()
    received = 0
    while piece := answer.read(1 << 20):
        received += len(piece)
    assert received == len(chunk) * count


def test_a_streamed_answer_with_pauses_arrives_whole(serving):
    def chunks():
        for i in range(5):
            yield f"part {i}\n".encode() * 20_000
            time.sleep(0.05)

    running = serving(app_of(chunks))
    connection = running.connection()
    connection.request("GET", "/")
    assert connection.getresponse().read() == b"".join(f"part {i}\n".encode() * 20_000 for i in range(5))


def test_pipelined_requests_are_all_answered_in_order(serving):
    # The first answer is larger than the socket takes at once: its tail waits while the next request runs.
    sizes = {"/1": 4 << 20, "/2": 10, "/3": 10}

    def app(environ, start_response):
        path = environ["PATH_INFO"]
        body = path.encode() * (sizes[path] // 2)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    running = serving(app)
    with socket.create_connection(("127.0.0.1", running.port), timeout=WAIT_S) as s:
        s.sendall(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = bytearray()
        while piece := s.recv(1 << 16):  # until the server closes, after the third answer
            data += piece
    bodies = []
    while data:
        head, _, rest = bytes(data).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        bodies.append(rest[:length])
        data = bytearray(rest[length:])
    assert bodies == [path.encode() * (size // 2) for path, size in sizes.items()]
