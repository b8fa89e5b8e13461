"""A bounded memo: a dict of results worth keeping between requests (header lookups, date texts), which forgets
everything at once when full. Clearing rather than evicting one by one keeps a hit a plain `dict.get`, and a
service whose inputs change (new clients, new dates) soon fills it again with what they send now."""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Memo(dict[K, V], Generic[K, V]):
    """Read with `get` like any dict; write with `remember`, which empties the memo first once it holds `most`."""

    def __init__(self, most: int):
        super().__init__()
        self.most = most

    def remember(self, key: K, value: V) -> V:
        if len(self) >= self.most:
            self.clear()
        self[key] = value
        return value
