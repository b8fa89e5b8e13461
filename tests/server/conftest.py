"""The real app over a real rule repository and real SQLite in a temp dir, with a token per role."""

import shutil
from pathlib import Path

import pytest

from server import create_app
from server.auth import ROLES

SHIPPED = Path(__file__).resolve().parents[2] / "rules"


class Client:
    """The Flask test client with a role's bearer token on every request."""

    def __init__(self, app, token=None):
        self.app, self.raw, self.token = app, app.test_client(), token

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
                       **config})


def clients(app):
    tokens = app.extensions["kam"].tokens
    return {role: Client(app, tokens.create(f"{role}-user", role)) for role in ROLES} | {"anonymous": Client(app)}


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)


@pytest.fixture
def as_(app):
    """`as_["editor"].put(...)`: a client per role, and one without a token."""
    return clients(app)
