"""flask-smorest's decorators for what they write into the OpenAPI document alone, the view called as it is.

Each of `blp.arguments`, `blp.response`, `blp.alt_response` and `blp.doc` both records the view's part of the
document and wraps the view in a function of its own, which on every request looks up the app through Flask's
proxy and asks `ensure_sync` of the next one in; `blp.arguments` also loads its schema through webargs. A view
that reads its own arguments and returns a Response itself needs none of that at request time: `documented`
applies the decorators, keeps what they recorded (`_apidoc`) and hands back the undecorated view."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def documented(*decorators: Callable[[Callable], Callable]) -> Callable[[Callable], Callable]:
    """`@documented(blp.arguments(...), blp.response(...))` documents the view as `@blp.arguments(...)`
    `@blp.response(...)` stacked in that order would, and leaves its calls alone: the view must load its
    arguments itself (with the errors webargs would give) and return a Response (which `blp.response` passes
    through untouched)."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        wrapped = view
        for decorator in reversed(decorators):  # the innermost first, as stacked decorators apply
            wrapped = decorator(wrapped)
        view._apidoc = wrapped._apidoc  # type: ignore[attr-defined]
        return view

    return decorate
