"""The garbage collector held off during large requests: resumed by the last one, never switched on when it was
off, never starved by requests that keep overlapping, and a large evaluate through the real app leaves it on."""

import gc
import json
import threading

import pytest

from kamcore.demo import synthetic_portfolio
from server import gcpause


@pytest.fixture(autouse=True)
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    assert gcpause.holders() == 0
    (gc.enable if was else gc.disable)()


def test_paused_holds_the_collector_off_for_the_block():
    with gcpause.paused():
        assert not gc.isenabled()
        assert gcpause.holders() == 1
    assert gc.isenabled()


def test_a_small_request_leaves_it_alone():
    with gcpause.paused(False):
        assert gc.isenabled()
        assert gcpause.holders() == 0


def test_it_resumes_when_the_last_of_overlapping_requests_ends():
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with gcpause.paused():
            first_in.set()
            second_in.wait(5)
        seen["after first"] = gc.isenabled()
        first_out.set()

    def second():
        first_in.wait(5)
        with gcpause.paused():
            second_in.set()
            first_out.wait(5)
            seen["inside second"] = gc.isenabled()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == {"after first": False, "inside second": False}
    assert gc.isenabled()


def test_a_collector_switched_off_before_stays_off():
    gc.disable()
    with gcpause.paused():
        pass
    assert not gc.isenabled()


def test_an_error_in_the_block_still_resumes_it():
    with pytest.raises(ZeroDivisionError), gcpause.paused():
        1 / 0  # noqa: B018
    assert gc.isenabled()


def test_overlapping_requests_that_never_all_end_still_collect(monkeypatch):
    monkeypatch.setattr(gcpause, "MAX_PAUSE_S", 0.0)
    collections = []

    def watch(phase, info):
        if phase == "stop":
            collections.append(info["generation"])

    gc.callbacks.append(watch)
    try:
        with gcpause.paused():
            with gcpause.paused():
                pass
            assert 2 in collections  # the inner one ended past the longest pause: a full collection
            assert not gc.isenabled()
    finally:
        gc.callbacks.remove(watch)
    assert gc.isenabled()


def test_a_large_evaluate_answers_and_leaves_the_collector_on(app):
    from tests.server.conftest import clients

    viewer = clients(app)["viewer"]
    accounts = json.loads(synthetic_portfolio(600, seed=3).to_json(orient="records", date_format="iso"))
    body = json.dumps({"accounts": accounts}).encode()
    assert len(body) >= gcpause.LARGE_BODY_BYTES
    response = viewer.post("/v1/evaluate", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert len(response.json["results"]) + len({e["row"] for e in response.json["errors"]}) == 600
    assert gc.isenabled()


def test_a_started_worker_settles_its_heap_out_of_the_collectors_view():
    """`settle` (called by `kam serve` once the app is built and the rule book loaded): what exists then is frozen
    out of the collector's walks, and the young generation is walked every YOUNG_OBJECTS new containers. Run in a
    child process, so this test process's collector is left as it is."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", (
        "import gc, json\n"
        "from server import gcpause\n"
        "before = gc.get_freeze_count()\n"
        "gcpause.settle()\n"
        "print(json.dumps([before, gc.get_freeze_count(), gc.get_threshold()[0], gcpause.YOUNG_OBJECTS]))")],
        capture_output=True, text=True, check=True).stdout
    before, frozen, young, wanted = json.loads(out)
    assert before == 0 and frozen > 10_000
    assert young == wanted == 10_000
