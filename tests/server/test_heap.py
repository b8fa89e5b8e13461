"""server/heap.py: a service process's threads share two malloc arenas (glibc), counted by glibc itself
(`malloc_info`), in fresh processes: `limit_arenas` on its own, and `kam serve` applying it before its threads."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]



def glibc() -> bool:
    try:
        return hasattr(ctypes.CDLL(None), "gnu_get_libc_version")
    except (OSError, TypeError):  # no C library to ask (Windows)
        return False


pytestmark = pytest.mark.skipif(not glibc(), reason="malloc arenas are glibc's")
# glibc's own arena settings, and the service's: each test's child process starts without them unless it says so
ARENA_SETTINGS = ("MALLOC_ARENA_MAX", "MALLOC_ARENA_TEST", "GLIBC_TUNABLES", "KAM_MALLOC_ARENAS")

# In the child: `arenas()` is how many arenas glibc's malloc_info reports; `crowd(n)` starts n threads that each
# allocate (a thread takes its arena at its first malloc) and returns the count while they are all alive.
COUNTING = textwrap.dedent("""
    import ctypes, os, tempfile, threading

    def arenas():
        libc = ctypes.CDLL(None)
        libc.fopen.restype = ctypes.c_void_p
        libc.fopen.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
        libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
        libc.fclose.argtypes = (ctypes.c_void_p,)
        fd, path = tempfile.mkstemp()
        os.close(fd)
        stream = libc.fopen(path.encode(), b"w")
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        with open(path) as f:
            text = f.read()
        os.unlink(path)
        return text.count("<heap nr=")

    def crowd(n):
        ready, done = threading.Barrier(n + 1), threading.Event()
        def work():
            held = [bytearray(1000 + k) for k in range(100)]  # malloc'd: above pymalloc's 512 bytes
            ready.wait()
            done.wait()
            del held
        threads = [threading.Thread(target=work) for _ in range(n)]
        for t in threads:
            t.start()
        ready.wait()
        count = arenas()
        done.set()
        for t in threads:
            t.join()
        return count
""")


def run(code: str, env: dict[str, str] | None = None) -> list[str]:
    base = {k: v for k, v in os.environ.items() if k not in ARENA_SETTINGS}
    done = subprocess.run([sys.executable, "-c", COUNTING + textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**base, **(env or {})})
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_threads_share_two_arenas_once_limited():
    applied, limited = run("""
        from server import heap
        print(heap.limit_arenas(2), crowd(6))
    """)
    (unlimited,) = run("print(crowd(6))")
    assert applied == "True"
    assert int(limited) <= 2
    assert int(unlimited) > 2  # glibc's own default: an arena per thread here (8 per core at most)


def test_an_operators_own_setting_is_left_to_glibc_and_a_worker_starts_with_the_services():
    """MALLOC_ARENA_MAX in the environment is glibc's own setting, applied as the process starts: `limit_arenas`
    leaves it be; `worker_environment` puts the service's there for a worker of `kam serve --workers`."""
    applied, count = run("""
        from server import heap
        print(heap.limit_arenas(2), crowd(6))
    """, {"MALLOC_ARENA_MAX": "3"})
    assert applied == "False" and int(count) == 3
    (worker,) = run("""
        from server import heap
        print(heap.worker_environment(2).get("MALLOC_ARENA_MAX"))
    """)
    assert worker == "2"
    (count,) = run("print(crowd(6))", {"MALLOC_ARENA_MAX": worker})  # a process started with it, as a worker is
    assert int(count) <= 2


def test_zero_leaves_glibcs_setting():
    applied, count = run("""
        from server import heap
        print(heap.limit_arenas(0), crowd(6))
    """)
    assert applied == "False"
    assert int(count) > 2


@pytest.mark.parametrize(("setting", "most"), [(None, 2), ("0", None)])
def test_kam_serve_limits_arenas_before_its_threads(tmp_path, setting, most):
    """`kam serve` up to the point waitress would start: the app built (its decision log's checkpointer and the
    event sweeper started), then six more threads; the process's arena count is checked there."""
    env = {"KAM_EVENTS_SWEEP_S": "60"}
    if setting is not None:
        env["KAM_MALLOC_ARENAS"] = setting
    printed = run(f"""
        import sys
        from server import dispatch
        def counted(app, threads, **adjustments):
            print("arenas", crowd(6))
        dispatch.serve = counted
        from server.cli import main
        main(["serve", "--data", {str(tmp_path / "data")!r}, "--port", "0"], standalone_mode=False)
    """, env)
    count = printed[printed.index("arenas") + 1]  # after what `kam serve` prints on starting
    if most is None:
        assert int(count) > 2
    else:
        assert int(count) <= most


def test_the_workers_environment_is_this_ones_with_the_services_arenas(monkeypatch):
    """`worker_environment` adds MALLOC_ARENA_MAX and changes nothing else; it leaves an operator's setting (a
    number glibc takes, or the tunable) and `KAM_MALLOC_ARENAS=0` alone; an empty one is no setting."""
    from server import heap

    for name in ARENA_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAM_SOMETHING", "kept")
    env = heap.worker_environment(2)
    assert env.pop("MALLOC_ARENA_MAX") == "2" and env == dict(os.environ)
    assert "MALLOC_ARENA_MAX" not in heap.worker_environment(0)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert heap.worker_environment(2)["MALLOC_ARENA_MAX"] == "4" and heap.operator_set()
    for unset in ("", "0", "abc"):
        monkeypatch.setenv("MALLOC_ARENA_MAX", unset)
        assert not heap.operator_set() and heap.worker_environment(2)["MALLOC_ARENA_MAX"] == "2"
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=3")
    assert heap.operator_set() and "MALLOC_ARENA_MAX" not in heap.worker_environment(2)
