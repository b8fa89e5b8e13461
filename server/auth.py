"""API tokens with roles: argon2-hashed in SQLite, checked on every endpoint but `/healthz`."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, g, request

from .problems import ApiProblem

ROLES = ("viewer", "editor", "approver", "auditor", "admin")

# Which roles may do what. Every endpoint names one permission; admin may do everything.
PERMISSIONS: dict[str, frozenset[str]] = {
    "read": frozenset(ROLES),  # rules, fields, history, diffs, evaluate
    "edit": frozenset({"editor", "admin"}),  # propose or commit rule changes, validate, impact
    "approve": frozenset({"approver", "admin"}),  # approve or reject change requests, revert
    "audit": frozenset({"auditor", "admin"}),  # decisions: look up, reproduce, verify the chain
}

# The environ key under which the evaluate lane (lane.py) hands the app the bearer token it checked and the caller
# it found for it (None: unknown or revoked), taken for that token only. A client cannot set it: a WSGI server
# puts headers under HTTP_ keys.
CHECKED_PRINCIPAL = "kam.checked_principal"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    hash TEXT NOT NULL,
    created TEXT NOT NULL,
    revoked TEXT
)"""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name and role."""

    token_id: str
    name: str
    role: str

    def may(self, permission: str) -> bool:
        return self.role in PERMISSIONS[permission]


class TokenStore:
    """Tokens look like `kam_<id>_<secret>`: the id finds the row, argon2 checks the secret. A verified token
    is remembered (by its SHA-256), so a request costs a dictionary lookup, not an argon2 run; its row is read
    again every `cache_seconds` to see a revocation."""

    def __init__(self, path: Path, cache_seconds: float = 30.0, memory_kib: int = 65536):
        self.path = path
        self.cache_seconds = cache_seconds
        self._hasher = PasswordHasher(memory_cost=memory_kib)
        self._verified: dict[str, tuple[Principal, float, str]] = {}  # sha256 → (who, checked at, argon2 hash)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def create(self, name: str, role: str) -> str:
        """A new token for `name` with `role`; the secret is shown once and only its hash is kept."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
        if not name.strip():
            raise ValueError("a token needs a name (who or what uses it)")
        token_id = secrets.token_hex(6)
        token = f"kam_{token_id}_{secrets.token_urlsafe(24)}"
        with self._connect() as db:
            db.execute("INSERT INTO tokens (id, name, role, hash, created) VALUES (?, ?, ?, ?, ?)",
                       (token_id, name.strip(), role, self._hasher.hash(token), _now()))
        return token

    def revoke(self, token_id: str) -> bool:
        with self._connect() as db:
            changed = db.execute("UPDATE tokens SET revoked = ? WHERE id = ? AND revoked IS NULL",
                                 (_now(), token_id)).rowcount
        with self._lock:
            self._verified = {k: v for k, v in self._verified.items() if v[0].token_id != token_id}
        return bool(changed)

    def list(self) -> list[dict[str, Any]]:
        with self._connect() as db:
            rows = db.execute("SELECT id, name, role, created, revoked FROM tokens ORDER BY created").fetchall()
        return [dict(zip(("id", "name", "role", "created", "revoked"), r, strict=True)) for r in rows]

    def principal(self, token: str) -> Principal | None:
        """The caller a token belongs to, or None for an unknown, malformed or revoked token. argon2 runs once
        per token and process; after `cache_seconds` the token's row is read again (one indexed SELECT), so a
        revocation by any process takes effect within that window, and a changed hash is verified afresh."""
        digest = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        now = time.monotonic()
        with self._lock:
            cached = self._verified.get(digest)
        if cached and now - cached[1] < self.cache_seconds:
            return cached[0]
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != "kam" or len(token) > 200:
            return None
        with self._connect() as db:
            row = db.execute("SELECT id, name, role, hash FROM tokens WHERE id = ? AND revoked IS NULL",
                             (parts[1],)).fetchone()
        if row is None:
            with self._lock:
                self._verified.pop(digest, None)
            return None
        principal = Principal(row[0], row[1], row[2])
        if not (cached and cached[2] == row[3]):  # this secret not yet checked against this hash
            try:
                self._hasher.verify(row[3], token)
            except (VerificationError, InvalidHashError):
                return None
        with self._lock:
            self._verified[digest] = (principal, now, row[3])
        return principal


def requires(permission: str) -> Callable:
    """Decorate a view: 401 without a valid bearer token, 403 when the token's role lacks `permission`."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            principal = authenticate()
            if not principal.may(permission):
                raise ApiProblem(403, "Forbidden",
                                 f"the {principal.role} role may not {permission}; ask an admin for a token with "
                                 f"one of: {', '.join(sorted(PERMISSIONS[permission]))}")
            return view(*args, **kwargs)

        checked.required_permission = permission  # type: ignore[attr-defined]
        return checked

    return decorate


def authenticate() -> Principal:
    """The caller of this request (401 problem without a valid bearer token), found once per request."""
    context = g._get_current_object()  # the proxies once each, not per attribute
    principal = context.get("principal")
    if principal is not None:
        return principal
    req = request._get_current_object()
    scheme, _, token = req.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiProblem(401, "Unauthorized", "send `Authorization: Bearer <token>`; create one with "
                                              "`kam token create --name NAME --role ROLE`")
    checked = req.environ.get(CHECKED_PRINCIPAL)
    if checked is not None and checked[0] == token.strip():  # the evaluate lane's verdict: not argon2 again
        principal = checked[1]
    else:
        principal = current_app._get_current_object().extensions["kam"].tokens.principal(token.strip())
    if principal is None:
        raise ApiProblem(401, "Unauthorized", "the token is unknown or revoked")
    context.principal = principal
    return principal


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
