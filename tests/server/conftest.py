"""The real app over a real rule repository and real SQLite in a temp dir, with a token per role."""

import shutil
from pathlib import Path

import pytest

from server import create_app
from server.auth import ROLES

SHIPPED = Path(__file__).resolve().parents[2] / "rules"


class Client:
    """The Flask test client with a role's bearer token on every request."""

    def __init__(self, app, role=None):
        self.app, self.raw, self.role, self._token = app, app.test_client(), role, None

    @property
    def token(self):
        if self.role and self._token is None:
            self._token = self.app.extensions["kam"].tokens.create(f"{self.role}-user", self.role)
        return self._token

    def _headers(self, headers):
        headers = dict(headers or {})
        if self.token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        return headers

    def open(self, method, path, headers=None, **kwargs):
        return self.raw.open(path, method=method, headers=self._headers(headers), **kwargs)

    def get(self, path, **kwargs):
        return self.open("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.open("POST", path, **kwargs)

    def put(self, path, **kwargs):
        return self.open("PUT", path, **kwargs)

    def delete(self, path, **kwargs):
        return self.open("DELETE", path, **kwargs)


def make_app(tmp_path, **config):
    seed = tmp_path / "seed"
    if not seed.exists():
        shutil.copytree(SHIPPED, seed)
    return create_app({"data_dir": tmp_path / "data", "rules_seed": seed, "testing": True, "access_log": False,
                       "events_sweep_s": 0,
                       "token_memory_kib": 1024,  # cheap hashes: tests check who may do what, not argon2's cost
                       **config})


def clients(app):
    return {role: Client(app, role) for role in ROLES} | {"anonymous": Client(app)}


@pytest.fixture
def new_app(tmp_path):
    """`new_app(max_rows=3)`: an app with other settings, and its clients."""
    def build(**config):
        app = make_app(tmp_path, **config)
        return app, clients(app)

    return build


@pytest.fixture(scope="module")
def module_app(tmp_path_factory):
    """One app shared by a module's tests (a fuzzer's many requests, or tests that build on each other)."""
    return make_app(tmp_path_factory.mktemp("app"))


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)


@pytest.fixture
def as_(app):
    """`as_["editor"].put(...)`: a client per role, and one without a token."""
    return clients(app)
