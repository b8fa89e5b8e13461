"""`kam serve --workers 2` for real: two processes accepting on one port, each a whole service. Decisions written
by both keep one linear hash chain, a rule change through the API is live in every worker, keep-alive connections
are shared out evenly, and a stopped worker does not hold new connections back."""

import http.client
import json
import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kamcore.demo import synthetic_portfolio
from server import heap
from server.balance import Board
from tests.server.conftest import launch

REQUESTS = 60


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = launch(tmp_path_factory.mktemp("workers"), args=("--workers", "2"))
    yield running
    running.stop()
    assert running.process.returncode == 0


@pytest.fixture(scope="module")
def tokens(server):
    return {role: server.token(f"{role}-user", role) for role in ("viewer", "editor", "auditor")}


def accounts(n=2):
    return json.loads(synthetic_portfolio(n, seed=5).to_json(orient="records", date_format="iso"))


def evaluate_many(server, token, n=REQUESTS):
    """n evaluations over n connections, 8 at a time, so both workers take some."""
    def one(_):
        status, _, body = server.call("POST", "/v1/evaluate", token=token, body={"accounts": accounts()})
        assert status == 200, body
        return body

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def workers_of(server, decision_ids):
    lines = [x for x in server.access_log() if x.get("decision_id") in decision_ids]
    assert len(lines) == len(decision_ids)
    return {x["worker"] for x in lines}


def worker_pids(running):
    """The workers' pids, once every worker is up (the service answers once the first one is)."""
    deadline = time.monotonic() + 60
    while "with 2 workers" not in running.out.read_text():
        assert time.monotonic() < deadline, running.err.read_text()
        time.sleep(0.1)
    return [int(pid) for pid in re.findall(r"^worker (\d+): rules revision", running.out.read_text(), re.M)]


def evaluate_on(connection, token):
    """One evaluation over an open keep-alive connection; its decision id."""
    connection.request("POST", "/v1/evaluate", body=json.dumps({"accounts": accounts(1)}),
                       headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    response = connection.getresponse()
    body = json.loads(response.read())
    assert response.status == 200, body
    return body["decision_id"]


def answered_by(server, decision_ids):
    """decision id -> the pid of the worker that answered it, from the access log."""
    return {x["decision_id"]: x["worker"] for x in server.access_log() if x.get("decision_id") in decision_ids}


def test_two_workers_answer_on_one_port_and_keep_one_decision_chain(server, tokens):
    answers = evaluate_many(server, tokens["viewer"])
    ids = {a["decision_id"] for a in answers}
    assert len(ids) == REQUESTS
    assert len(workers_of(server, ids)) == 2 and server.process.pid not in workers_of(server, ids)
    status, _, check = server.call("GET", "/v1/decisions/verify", token=tokens["auditor"])
    assert status == 200 and check["ok"] and check["records"] >= REQUESTS, check
    for decision_id in list(ids)[:3]:  # a decision written by either worker is found by any
        status, _, found = server.call("GET", f"/v1/decisions/{decision_id}", token=tokens["auditor"])
        assert status == 200 and found["decision_id"] == decision_id


def test_a_rule_change_through_the_api_is_live_in_every_worker(server, tokens):
    status, headers, body = server.call("GET", "/v1/rules/margins", token=tokens["editor"])
    assert status == 200
    changed = dict(body["rule"], formulas={**body["rule"]["formulas"], "revenue_k": {"expr": "revenue_12m / 1000"}})
    status, _, written = server.call("PUT", "/v1/rules/margins", token=tokens["editor"],
                                     body={"rule": changed, "message": "Revenue in thousands"},
                                     headers={"If-Match": headers["ETag"]})
    assert status == 200, written
    answers = evaluate_many(server, tokens["viewer"])
    assert {a["rules_version"] for a in answers} == {written["revision"]}
    assert all("revenue_k" in r for a in answers for r in a["results"])
    assert len(workers_of(server, {a["decision_id"] for a in answers})) == 2


def test_keep_alive_connections_are_shared_evenly_between_the_workers(server, tokens):
    """Eight connections opened at once, as connection pools do, then used: each worker holds some, and every
    request on a connection goes to the worker that accepted it. A loose check (2..6 of 8: two workers may accept
    at the same instant, and a loaded box delays one); it can pass by luck without the balance board (wrk's
    bursts of connections often all went to one worker; these sequential connects less so). The rule itself is
    tested with a stopped worker below."""
    workers = worker_pids(server)
    for _ in range(3):
        connections = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=60) for _ in range(8)]
        for c in connections:
            c.connect()
        ids = [evaluate_on(c, tokens["viewer"]) for c in connections]
        ids += [evaluate_on(c, tokens["viewer"]) for c in connections]  # the same connection, the same worker
        by = answered_by(server, set(ids))
        for c in connections:
            c.close()
        assert [by[i] for i in ids[:8]] == [by[i] for i in ids[8:]]
        held = [list(by.values()).count(pid) // 2 for pid in workers]
        assert sum(held) == 8 and min(held) >= 2, held


def live_on_the_board(pid):
    """True once every worker of the service `pid` belongs to has a fresh heartbeat on the balance board (read
    through /proc: the board is an unlinked file every worker has open)."""
    fds = Path(f"/proc/{pid}/fd")
    name = next(fd for fd in fds.iterdir() if "kam-workers-" in os.readlink(fd))
    fd = os.open(name, os.O_RDWR)
    try:
        return all(Board(fd, 2, index).fewest_elsewhere() is not None for index in range(2))
    finally:
        os.close(fd)


def test_a_stopped_worker_is_passed_over_and_then_takes_its_share(tmp_path):
    """A worker accepts only while no live worker holds fewer connections. A worker that stops answering (here
    SIGSTOP) drops out of that comparison, so the other takes every new connection rather than leaving them
    waiting; once it runs again it holds the fewest, so it takes every new connection until it has as many."""
    running = launch(tmp_path, args=("--workers", "2"))
    try:
        stopped, live = worker_pids(running)
        viewer = running.token("viewer-user", "viewer")
        os.kill(stopped, signal.SIGSTOP)
        try:
            first = [http.client.HTTPConnection("127.0.0.1", running.port, timeout=60) for _ in range(4)]
            ids = [evaluate_on(c, viewer) for c in first]
        finally:
            os.kill(stopped, signal.SIGCONT)
        assert set(answered_by(running, set(ids)).values()) == {live}
        deadline = time.monotonic() + 60
        while not live_on_the_board(live):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        second = [http.client.HTTPConnection("127.0.0.1", running.port, timeout=60) for _ in range(4)]
        ids = [evaluate_on(c, viewer) for c in second]
        assert set(answered_by(running, set(ids)).values()) == {stopped}
        for c in first + second:
            c.close()
    finally:
        running.stop()
    assert running.process.returncode == 0


def test_stopping_the_supervisor_stops_every_worker(tmp_path):
    running = launch(tmp_path, args=("--workers", "2"))
    deadline = time.monotonic() + 60
    while "with 2 workers" not in running.out.read_text():  # /healthz answers once the first worker is up
        assert time.monotonic() < deadline, running.err.read_text()
        time.sleep(0.1)
    workers = [int(pid) for pid in re.findall(r"^worker (\d+): rules revision", running.out.read_text(), re.M)]
    assert len(workers) == 2 and running.process.pid not in workers
    running.stop()
    assert running.process.returncode == 0
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_worker_that_stopped_listening_looks_again_within_a_twentieth_of_a_second():
    """A worker that stopped listening (another held fewer connections) starts again only when its loop turns;
    waitress turns it once a second, so new connections waited up to a second while each worker left them to
    the other (p99 0.9 s at 8 connections, with one idle keep-alive connection on a worker). The workers' loop
    turns every LOOP_S instead."""
    import socket

    from server import balance

    fd = Board.create(2)
    listening = socket.create_server(("127.0.0.1", 0))
    try:
        server = balance.build(lambda environ, start_response: [], listening, Board(fd, 2, 0), threads=1)
        try:
            assert server.adj.asyncore_loop_timeout == balance.LOOP_S <= 0.05
            assert server.readable()  # alone on the board: it listens
        finally:
            server.close()
    finally:
        listening.close()
        os.close(fd)


def test_a_worker_and_a_single_process_read_a_connection_recv_bytes_at_a_time():
    """waitress's 8 KiB reads made a 5 MB batch 670 turns of the loop; both servers read RECV_BYTES at once."""
    import socket

    from server import balance
    from server.dispatch import RECV_BYTES, build

    def app(environ, start_response):
        return []

    single = build(app, threads=1, host="127.0.0.1", port=0)
    try:
        assert single.adj.recv_bytes == RECV_BYTES > 8192
    finally:
        single.close()
    fd = Board.create(2)
    listening = socket.create_server(("127.0.0.1", 0))
    try:
        worker = balance.build(app, listening, Board(fd, 2, 0), threads=1)
        try:
            assert worker.adj.recv_bytes == RECV_BYTES
        finally:
            worker.close()
    finally:
        listening.close()
        os.close(fd)


def test_each_worker_starts_with_the_services_malloc_arenas(server):
    """glibc reads MALLOC_ARENA_MAX as a worker starts, before any of its threads (server/heap.py): the service's
    2, or the runner's own setting where it has one."""
    expected = heap.worker_environment(int(os.environ.get("KAM_MALLOC_ARENAS", "2"))).get("MALLOC_ARENA_MAX")
    for pid in worker_pids(server):
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert [e for e in environ if e.startswith(b"MALLOC_ARENA_MAX=")] == \
            ([] if expected is None else [f"MALLOC_ARENA_MAX={expected}".encode()])
