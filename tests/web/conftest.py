"""The real app over a real rule repository in a temp dir, a demo portfolio, and a signed-in browser session per
role (the token goes through the sign-in form, the CSRF token is read off the page)."""

import re
import shutil
from pathlib import Path

import pytest

from kamcore.demo import synthetic_portfolio
from kamcore.portfolio import write_table
from server import create_app
from server.auth import ROLES

SHIPPED = Path(__file__).resolve().parents[2] / "rules"
CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')


class Browser:
    """A Flask test client that signed in through the form; `post` adds the page's CSRF token."""

    def __init__(self, app, role=None):
        self.app, self.client, self.role, self.csrf = app, app.test_client(), role, None
        if role:
            self.sign_in(app.extensions["kam"].tokens.create(f"{role}-user", role))

    def sign_in(self, token):
        page = self.client.get("/ui/signin")
        self.csrf = CSRF.search(page.text).group(1)
        answer = self.client.post("/ui/signin", data={"token": token, "csrf_token": self.csrf, "next": "/ui/changes"})
        if answer.status_code == 302:  # a new session has a new CSRF token
            self.refresh_csrf()
        return answer

    def refresh_csrf(self):
        self.csrf = CSRF.search(self.client.get("/ui/changes").text).group(1)

    def get(self, path, **kw):
        return self.client.get(path, **kw)

    def post(self, path, data=None, json=None, **kw):
        if json is not None:
            headers = {"X-CSRF-Token": self.csrf, "Accept": "application/json", **kw.pop("headers", {})}
            return self.client.post(path, json=json, headers=headers, **kw)
        return self.client.post(path, data={"csrf_token": self.csrf, **(data or {})}, **kw)


def make_app(tmp_path, **config):
    seed = tmp_path / "seed"
    if not seed.exists():
        shutil.copytree(SHIPPED, seed)
    app = create_app({"data_dir": tmp_path / "data", "rules_seed": seed, "testing": True, "access_log": False,
                      "token_memory_kib": 1024, **config})
    write_table(synthetic_portfolio(300, seed=7), tmp_path / "data" / "portfolio.csv")
    return app


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)


@pytest.fixture
def browsers(app):
    return {role: Browser(app, role) for role in ROLES} | {"anonymous": Browser(app)}


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One app and its signed-in browsers for the tests that only read (the role matrix, the JSON twins)."""
    app = make_app(tmp_path_factory.mktemp("shared"))
    return {role: Browser(app, role) for role in ROLES} | {"anonymous": Browser(app)}
