"""How many malloc arenas a service process keeps (glibc's M_ARENA_MAX): two, shared by all its threads.

glibc gives each new thread an arena of its own (up to 8 per core), a heap that grows the first time a thread
needs much memory and is handed back to the system as it is freed. A 10,000-account batch needs ~150 MB, on its
request thread and on the threads that log its decision (one per batch, server/api/evaluate.py). So after a worker
starts, each of its first batches met arenas that had never held one, and faulted their pages in: 2,000-
10,000 page faults in each part of the request (`ru_minflt` per thread) for the first four or five batches, then
none. Those batches took 250-450 ms of server time where the later ones took ~200 (bench/http.py's
batch figure, a median of the first seven, was mostly theirs).

With two arenas for all threads, a batch finds the memory the ones before it freed from its second request on.
Measured over HTTP, two fresh `kam serve` side by side (without and with the limit), a batch to each in turn,
three rounds: the third and fourth batches took 196-245 ms of server time with it against 250-333 ms without.
Once both were warm, no difference told apart from the noise (with/without per pair 0.910 and 1.005, 20-24 pairs
in two sittings). Single-account requests lose nothing by it: requests/s over 8 connections (wrk, two workers
each, 4 s runs in turn) with/without 1.097 per pair (1.04-1.20, 8 pairs). One arena was slower once warm (1.05
and 1.12 per pair): the decision log's thread compresses with the interpreter lock released, and then waits for
the arena's lock.

Only glibc has the setting; elsewhere (musl, macOS, Windows) the call changes nothing and the variable is not
read. An operator's own `MALLOC_ARENA_MAX` (or `glibc.malloc.arena_max` in `GLIBC_TUNABLES`) is left to glibc,
which applies it as the process starts; `KAM_MALLOC_ARENAS=0` leaves glibc's default. The workers of
`kam serve --workers` are started with `MALLOC_ARENA_MAX` in their environment (`worker_environment`), so glibc
holds them to it from their first thread."""

from __future__ import annotations

import ctypes
import os

M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)


def limit_arenas(arenas: int) -> bool:
    """At most `arenas` malloc arenas for threads that take one from now on (threads holding one keep it); 0, or
    an operator's own glibc setting, leaves glibc's. Returns whether glibc accepted the setting: it does not hold
    to it once the process has more than 8 arenas already (then call it earlier)."""
    if arenas <= 0 or operator_set():
        return False
    try:
        libc = ctypes.CDLL(None)  # the C library this process runs on
    except (OSError, TypeError):  # none to ask (Windows)
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # not glibc: no such setting
        return False
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    libc.mallopt.restype = ctypes.c_int
    return libc.mallopt(M_ARENA_MAX, arenas) == 1


def operator_set() -> bool:
    """Whether glibc's own arena setting is in the environment, as a number it takes (glibc applied it as the
    process started). An empty or unreadable one (`MALLOC_ARENA_MAX=` of an unset variable in a compose file) is
    none: glibc ignores it, and so does the service."""
    value = os.environ.get("MALLOC_ARENA_MAX", "").strip()
    return value.isdigit() and int(value) > 0 or "glibc.malloc.arena_max=" in os.environ.get("GLIBC_TUNABLES", "")


def worker_environment(arenas: int) -> dict[str, str]:
    """The environment for a worker process of `kam serve --workers`: this one's, with `MALLOC_ARENA_MAX` (read by
    glibc as the worker starts, before any of its threads) unless the operator set glibc's own or `arenas` is 0."""
    env = dict(os.environ)
    if arenas > 0 and not operator_set():
        env["MALLOC_ARENA_MAX"] = str(arenas)
    return env
