"""The real app over a real rule repository and real SQLite in a temp dir, with a token per role."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
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


# --- a real `kam serve` in a subprocess ---

KAM = str(Path(sys.executable).parent / "kam")
START_TIMEOUT_S = 60


class Server:
    """A running `kam serve` and what it printed."""

    def __init__(self, data: Path, port: int, process: subprocess.Popen, out: Path, err: Path):
        self.data, self.port, self.process, self.out, self.err = data, port, process, out, err
        self.url = f"http://127.0.0.1:{port}"

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def call(self, method, path, token=None, body=None, headers=None):
        """(status, headers, parsed body) — error statuses included, never raised."""
        headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                return r.status, r.headers, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, e.headers, json.loads(e.read() or b"null")

    def token(self, name, role):
        """A token from `kam token create`: the last line of what it prints."""
        done = subprocess.run([KAM, "token", "create", "--name", name, "--role", role, "--data", str(self.data)],
                              capture_output=True, text=True, timeout=60, check=True)
        return done.stdout.strip().splitlines()[-1]

    def access_log(self):
        """The JSON lines the service logged so far (one per request)."""
        lines = []
        for text in (self.err.read_text(encoding="utf-8"), self.out.read_text(encoding="utf-8")):
            for line in text.splitlines():
                if line.startswith("{"):
                    lines.append(json.loads(line))
        return lines


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(root, env=None, data=None, args=()):
    """`kam serve` (plus `args`) on a free port with its data dir under `root`; waits until /healthz answers."""
    data = data or root / "data"
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    out, err = root / f"stdout-{port}.txt", root / f"stderr-{port}.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen([KAM, "serve", "--data", str(data), "--port", str(port), "--threads", "4", *args],
                                   stdout=stdout, stderr=stderr, env=dict(os.environ, **(env or {})))
    running = Server(data, port, process, out, err)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"kam serve exited with {process.returncode}:\n{out.read_text()}\n{err.read_text()}")
        try:
            if running.call("GET", "/healthz")[0] == 200:
                return running
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"kam serve did not answer /healthz in {START_TIMEOUT_S} s:\n{err.read_text()}")
        time.sleep(0.2)
