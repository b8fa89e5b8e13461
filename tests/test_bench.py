"""The benchmark's engine-vs-numpy equality check, run on a tiny portfolio (correctness only, never speed)."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "evaluate.py"


def load_bench():
    with mock.patch.dict(os.environ):  # the script pins numpy to one thread; keep that out of this process
        spec = importlib.util.spec_from_file_location("bench_evaluate", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def test_engine_equals_hand_written_numpy():
    done = subprocess.run([sys.executable, str(SCRIPT), "--sizes", "3000", "--repeat", "1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3,000 accounts: engine" in done.stdout


def test_the_check_catches_a_difference():
    bench = load_bench()
    from kamcore import RuleBook
    from kamcore.demo import synthetic_portfolio

    book = RuleBook.load(bench.BOOK)
    df = synthetic_portfolio(500, seed=bench.SEED)
    got, want = bench.engine(book, df), bench.by_hand(df)
    assert bench.differences(got, want, list(book.outputs)) == []
    want.loc[3, "tier"] = None  # a null where the engine has a value
    want.loc[[5, 8], "utilisation"] = -1.0
    problems = bench.differences(got, want, list(book.outputs))
    assert [p.split(":")[0] for p in problems] == ["tier", "utilisation"]
    assert "1 of 500 rows differ" in problems[0]
    assert "2 of 500 rows differ" in problems[1]


def test_the_http_benchmark_drives_a_real_multi_worker_service():
    """bench/http.py end to end on small numbers with its Python clients (it runs, its requests succeed; its
    figures are not checked)."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "http.py"), "--client", "python", "--requests", "20",
                           "--clients", "2", "--seconds", "1", "--workers", "2", "--batch", "50"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "single account, 1 client, 20 requests (2 worker(s) x 4 threads): p50" in done.stdout
    assert "2 concurrent client processes" in done.stdout and "req/s" in done.stdout
    assert "50-row batch" in done.stdout and "50 results" in done.stdout
    assert re.search(r"host: \d+\.\d% of this machine's CPU time was stolen by the host during the run; "
                     r"reference work \d+\.\d ms before, \d+\.\d ms after", done.stdout)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (make test and make bench install it)")
def test_the_http_benchmark_drives_the_service_with_wrk():
    """bench/http.py with wrk driving a real two-worker service (it runs, its figures are not checked)."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "http.py"), "--clients", "2", "--seconds", "1",
                           "--workers", "2", "--batch", "50"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "single account (of 1,000 distinct), 1 connection, wrk 1 s" in done.stdout
    assert re.search(r"server time p50 [\d.]+ ms, of it CPU [\d.]+ ms", done.stdout), done.stdout
    assert "single account, 2 connections, wrk 1 s (2 worker(s) x 4 threads)" in done.stdout
    assert re.search(r"ms CPU per request, of it the app's \(Server-Timing cpu\) p50 [\d.]+ ms \(server time p50 "
                     r"[\d.]+ ms\)", done.stdout), done.stdout
    assert re.search(r"the HTTP stack alone \(GET /healthz, wrk 1 s each\): p50 [\d.]+ ms at 1 connection; at 2, "
                     r"[\d,]+ req/s, server CPU: [\d.]+ of \d+ cores busy, [\d.]+ ms CPU per request", done.stdout)
    assert "50-row batch" in done.stdout and "50 results" in done.stdout


def test_the_in_process_batch_benchmark_runs():
    """bench/batch.py on a small batch, with its profile (it runs and its request succeeds; figures not checked)."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "batch.py"), "--accounts", "300", "--runs", "1",
                           "--profile", "--top", "5"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "300 accounts" in done.stdout and "server time" in done.stdout and "function calls" in done.stdout


def test_the_in_process_batch_benchmark_sends_an_xlsx_upload():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "batch.py"), "--accounts", "300", "--runs", "1",
                           "--xlsx"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^300 accounts \([\d.]+ MiB xlsx\), median of 1: server time \d+ ms", done.stdout, re.M), \
        done.stdout


def test_the_in_process_request_benchmark_times_the_lane_and_flask():
    """bench/wsgi.py, the lane and (--no-lane) Flask's path each in a child, with the profile's share of the
    request spent outside the engine (figures not checked: the shares only have to be shares)."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "wsgi.py"), "--calls", "20", "--rounds", "1",
                           "--no-lane", "--profile"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    shares = re.findall(r"^ *(no lane|this tree): median of 1 round p50s [\d.]+ ms CPU, outside the engine "
                        r"([\d.]+)% of the request$", done.stdout, re.M)
    assert [name for name, _ in shares] == ["no lane", "this tree"], done.stdout
    assert all(0 < float(share) < 100 for _, share in shares), done.stdout


def test_the_stack_benchmark_splits_a_round_trip_into_steps():
    """bench/stack.py on a few requests: every step of a round trip found for every request, each step a time
    within the round trip's, and the app the largest part of the server's (figures otherwise not checked)."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "stack.py"), "--requests", "40", "--distinct", "3",
                           "--threads", "2"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    trip = float(re.search(r"40 requests .* round trip p50 ([\d.]+) ms$", done.stdout, re.M)[1])
    steps = dict(re.findall(r"^  (\S.*?) +([\d.]+) ms$", done.stdout, re.M))
    assert len(steps) == 8 and "lacked a mark" not in done.stdout, done.stdout
    app = float(steps["the app: evaluate lane (token, rules, decision log)"])
    outside = float(re.search(r"the server outside the app: ([\d.]+) ms", done.stdout)[1])
    assert 0 < app < trip and 0 < outside < app, done.stdout
    assert all(0 <= float(ms) < 2 * trip for ms in steps.values()), done.stdout
