"""The rule book the service answers with: the head revision when it loads, else the last one that did."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from kamcore.errors import KamError, RuleBookError
from kamcore.rulebook import RuleBook
from kamcore.store import RuleStore, StoreError, UnknownRevision

ANCESTORS_TRIED = 20  # how far back a service started on a broken head looks for a revision to serve


class NotReady(KamError):
    """Neither the head nor any recent revision loads: there is no rule book to answer with."""


@dataclass(frozen=True)
class Readiness:
    ready: bool
    serving: str | None  # the revision new requests are answered with
    head: str | None
    problem: str | None  # why the head is not the one being served

    def to_dict(self) -> dict:
        return {"ready": self.ready, "serving": self.serving, "head": self.head, "problem": self.problem}


class LiveRules:
    """A commit through the API becomes live for the next request (the head is read on every request, the
    compiled book is cached per revision). A head broken behind the service's back is never served: the last
    revision that loaded is, or after a restart the newest recent ancestor that loads."""

    def __init__(self, store: RuleStore):
        self.store = store
        self._good: RuleBook | None = None
        self._bad: tuple[str, str] | None = None  # (head, problem) known not to load
        self._lock = threading.Lock()

    def book(self, rev: str | None = None) -> RuleBook:
        if rev:
            return self.store.book(rev)
        head = self.store.head()
        good, bad = self._good, self._bad
        if good is not None and good.revision == head:
            return good
        if bad is not None and bad[0] == head:
            if good is None:
                raise NotReady(bad[1])
            return good
        try:
            book = self.store.book(head)
        except (RuleBookError, StoreError) as e:
            if good is None:  # just started on a broken head: no revision served yet to fall back on
                good = self._last_loading(head)
            with self._lock:
                self._good, self._bad = good, (head, _summary(e))
            if good is None:
                raise NotReady(_summary(e)) from None
            return good
        with self._lock:
            self._good, self._bad = book, None
        return book

    def _last_loading(self, head: str) -> RuleBook | None:
        """The newest of the head's last few first-parent ancestors that loads."""
        for back in range(1, ANCESTORS_TRIED + 1):
            try:
                return self.store.book(f"{head}~{back}")
            except UnknownRevision:
                return None  # the start of the history
            except (RuleBookError, StoreError):
                continue
        return None

    def readiness(self) -> Readiness:
        try:
            book = self.book()
        except (NotReady, StoreError) as e:
            return Readiness(False, None, _head(self.store), _summary(e))
        head = _head(self.store)
        problem = self._bad[1] if self._bad is not None and self._bad[0] == head else None
        return Readiness(True, book.revision, head, problem)


def _head(store: RuleStore) -> str | None:
    try:
        return store.head()
    except (StoreError, KeyError):
        return None


def _summary(e: Exception) -> str:
    if isinstance(e, RuleBookError):
        errors = [p for p in e.problems if p.is_error]
        return f"the head revision does not load: {errors[0] if errors else e}"
    return str(e)
