"""A writer killed with SIGKILL at random moments never leaves a half-written commit or a stuck repository."""

import multiprocessing
import os
import random
import signal
import time

import pygit2

from kamcore import ruletests
from kamcore.rulebook import SourceFile
from kamcore.store import RuleStore, StaleBase

KILLS = 60


def commit_forever(data_dir, ready, price_change):
    store = RuleStore.open(data_dir, seed=None)
    ready.set()
    factor = 3
    while True:
        try:
            store.commit(price_change(factor), store.head(), "writer", f"Factor {factor}")
        except StaleBase:
            continue
        factor += 1


def assert_sound(data_dir):
    """The repository opens, its head is a commit whose rule book loads and passes its tests, and every object
    reachable from it reads back."""
    store = RuleStore.open(data_dir, seed=None)
    head = store.head()
    files = store.files(head)
    tests = [SourceFile(p, t) for p, t in files.items() if p.startswith("tests/")]
    assert ruletests.run(store.book(head), tests).passed
    repo = pygit2.Repository(str(data_dir / "rules.git"))
    for commit in repo.walk(repo.references["refs/heads/main"].target):
        for entry in commit.tree:
            assert repo[entry.id] is not None
    return len(store.history())


def test_sigkill_during_commits_leaves_a_sound_repository(tmp_path, seed, price_change):
    data_dir = tmp_path / "data"
    RuleStore.open(data_dir, seed=seed)
    fork = multiprocessing.get_context("fork")
    rng = random.Random(20261123)
    commits = []
    for _ in range(KILLS):
        ready = fork.Event()
        writer = fork.Process(target=commit_forever, args=(data_dir, ready, price_change), daemon=True)
        writer.start()
        assert ready.wait(30)
        # fork makes the writer start at once, so random delays up to a few commits' time land anywhere in one
        time.sleep(rng.uniform(0, 0.06))
        os.kill(writer.pid, signal.SIGKILL)
        writer.join()
        assert writer.exitcode == -signal.SIGKILL
        commits.append(assert_sound(data_dir))
    # writers kept committing after earlier writers died mid-write (no stale lock blocked them)
    assert commits[-1] > commits[len(commits) // 2] > 1


def race(data_dir, base, factor, barrier, outcomes, price_change):
    store = RuleStore.open(data_dir, seed=None)
    barrier.wait()
    try:
        store.commit(price_change(factor), base, f"writer{factor}", "Race")
        outcomes.put("won")
    except StaleBase:
        outcomes.put("stale")


def test_two_writer_processes_with_the_same_base_exactly_one_wins(tmp_path, seed, price_change):
    data_dir = tmp_path / "data"
    base = RuleStore.open(data_dir, seed=seed).head()
    fork = multiprocessing.get_context("fork")
    barrier, outcomes = fork.Barrier(2), fork.Queue()
    writers = [fork.Process(target=race, args=(data_dir, base, f, barrier, outcomes, price_change)) for f in (3, 4)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(60)
    assert sorted(outcomes.get(timeout=5) for _ in writers) == ["stale", "won"]
    assert len(RuleStore.open(data_dir, seed=None).history()) == 2
