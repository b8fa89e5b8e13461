"""The `kam` command: the engine's commands plus `kam serve` and `kam token`."""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import click

from kamcore.cli import main
from kamcore.store import DATA_DIR

from . import PORTFOLIO, balance, gcpause, heap
from .auth import ROLES, TokenStore
from .config import SHIPPED_RULES, Config
from .live import NotReady


def _tokens(data_dir: str) -> TokenStore:
    from . import SERVICE_DB

    Path(data_dir).mkdir(parents=True, exist_ok=True)
    return TokenStore(Path(data_dir) / SERVICE_DB)


# `--data` falls back on KAM_DATA_DIR, like the service's settings, so `kam token create` writes its tokens where
# `kam serve` reads them; given on the command line, it wins over the variable.
DATA_OPTION = {"default": DATA_DIR, "envvar": "KAM_DATA_DIR", "show_default": True, "show_envvar": True,
               "type": click.Path(file_okay=False)}


@main.command()
@click.option("--data", "data_dir", **DATA_OPTION, help="where the rule repository and databases live")
@click.option("--rules", "rules_dir", default=str(SHIPPED_RULES), envvar="KAM_RULES_SEED",
              type=click.Path(file_okay=False), help="the rule book a new data dir starts from (default: shipped)")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 256),
              help="request threads per worker: more than one, so a slow request (a large batch) does not hold up "
                   "the quick ones on the same worker; a few, as the threads share one interpreter lock")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="worker processes sharing the port (Python runs one thread at a time per process: use about "
                   "one per core)")
@click.option("--demo", is_flag=True, help="write a demo portfolio into the data dir and print an admin token")
@click.option("--listen-fd", type=int, hidden=True)  # a worker: serve on this inherited listening socket
@click.option("--ready-fd", type=int, hidden=True)  # a worker: write a byte here once the app is built
@click.option("--board", type=(int, int), hidden=True)  # a worker: the balance board's fd and this worker's slot
def serve(data_dir: str, rules_dir: str, host: str, port: int, threads: int, workers: int, demo: bool,
          listen_fd: int | None, ready_fd: int | None, board: tuple[int, int] | None) -> None:
    """Run the KAM Rules service under waitress (with --workers, in several processes on one port)."""
    from . import create_app, dispatch, warm

    config = replace(Config.from_env(), data_dir=Path(data_dir), rules_seed=Path(rules_dir))
    heap.limit_arenas(config.malloc_arenas)  # before the app starts its threads (server/heap.py)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    portfolio = config.data_dir / PORTFOLIO
    if demo and not portfolio.exists():  # before the app starts, so the event ledger registers its accounts
        from kamcore.demo import synthetic_portfolio
        from kamcore.portfolio import write_table

        config.data_dir.mkdir(parents=True, exist_ok=True)
        write_table(synthetic_portfolio(2000), portfolio)
    if workers > 1 and listen_fd is None:
        _supervise(config, host, port, threads, workers, demo)
        return
    app = create_app(config)
    kam = app.extensions["kam"]
    try:
        kam.rules.book()  # loaded and compiled now, before the heap is settled (not by the first request)
    except NotReady:
        pass  # /readyz says why; the service starts all the same
    else:  # a large batch worked through once, as the first batches were slow (server/warm.py)
        if (took := warm.rehearse(app, config.rehearsal_rows)) is not None:
            click.echo(f"rehearsed a batch of {config.rehearsal_rows:,} accounts in {took:.1f} s")
    gcpause.settle()
    if listen_fd is not None:  # one worker of several: the supervisor says where and with which token
        listening = socket.socket(fileno=listen_fd)
        click.echo(f"worker {os.getpid()}: rules revision {kam.store.head()[:12]}")
        if ready_fd is not None:
            os.write(ready_fd, b"1")
            os.close(ready_fd)
        if board is None:
            dispatch.serve(app, threads, sockets=[listening], ident="kam-rules")
        else:
            balance.serve(app, listening, balance.Board(board[0], workers, board[1]), threads, ident="kam-rules")
        return
    click.echo(f"rules revision {kam.store.head()[:12]} from {config.data_dir / 'rules.git'}")
    if demo:
        click.echo(f"demo portfolio: {portfolio}")
        click.echo(f"admin token (shown once): {kam.tokens.create('admin (make run)', 'admin')}")
    click.echo(f"KAM Rules on http://{host}:{port}/  (API docs: http://{host}:{port}/docs)")
    dispatch.serve(app, threads, host=host, port=port, ident="kam-rules")


WORKER_START_TIMEOUT_S = 120


def _supervise(config: Config, host: str, port: int, threads: int, workers: int, demo: bool) -> None:
    """Bind the port once and start `workers` processes that all accept on it, each a whole service (its own
    app, database connections and rule cache; hot reload works in each, as the head is read per request; the
    decision log's chain stays linear across processes). The workers share out new connections through a board
    of their connection counts (`balance.py`). The first worker starts alone, so a new data dir is created once.
    Stops them all on SIGTERM / Ctrl-C, or when any one exits."""
    listening = socket.create_server((host, port), backlog=2048)
    listening.set_inheritable(True)
    board = balance.Board.create(workers)
    command = [sys.executable, "-m", "server.cli", "serve", "--data", str(config.data_dir), "--rules",
               str(config.rules_seed), "--threads", str(threads), "--workers", str(workers),
               "--listen-fd", str(listening.fileno())]
    processes: list[subprocess.Popen] = []

    def stop(*_: object, code: int = 0) -> None:
        for p in processes:
            if p.poll() is None:
                p.terminate()
        for p in processes:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        raise SystemExit(code)

    signal.signal(signal.SIGTERM, stop)
    try:
        for index in range(workers):
            read, write = os.pipe()
            processes.append(subprocess.Popen([*command, "--ready-fd", str(write), "--board", str(board), str(index)],  # noqa: S603 (our own argv)
                                              pass_fds=(listening.fileno(), write, board),
                                              env=heap.worker_environment(config.malloc_arenas)))
            os.close(write)
            with os.fdopen(read, "rb") as ready:
                if not select.select([ready], [], [], WORKER_START_TIMEOUT_S)[0] or ready.read(1) != b"1":
                    click.echo(f"worker {processes[-1].pid} did not start", err=True)
                    stop(code=1)
        if demo:
            click.echo(f"demo portfolio: {config.data_dir / PORTFOLIO}")
            click.echo(f"admin token (shown once): {_tokens(str(config.data_dir)).create('admin (make run)', 'admin')}")
        bound = listening.getsockname()[1]
        click.echo(f"KAM Rules on http://{host}:{bound}/ with {workers} workers  (API docs: http://{host}:{bound}/docs)")
        while True:
            for p in processes:
                if p.poll() is not None:
                    click.echo(f"worker {p.pid} exited ({p.returncode}): stopping the others", err=True)
                    stop(code=1)
            time.sleep(0.5)
    except KeyboardInterrupt:
        stop()


@main.group()
def token() -> None:
    """Create, list and revoke API tokens."""


@token.command("create")
@click.option("--name", required=True, help="who or what uses the token")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--data", "data_dir", **DATA_OPTION)
def token_create(name: str, role: str, data_dir: str) -> None:
    """Print a new token (its last line); only its argon2 hash is stored."""
    click.echo(f"created a {role} token for {name}; it is shown once:")
    click.echo(_tokens(data_dir).create(name, role))


@token.command("list")
@click.option("--data", "data_dir", **DATA_OPTION)
def token_list(data_dir: str) -> None:
    """The tokens (never their secrets)."""
    for t in _tokens(data_dir).list():
        state = f"revoked {t['revoked']}" if t["revoked"] else "active"
        click.echo(f"{t['id']}  {t['role']:<8}  {t['name']}  created {t['created']}  {state}")


@token.command("revoke")
@click.argument("token_id")
@click.option("--data", "data_dir", **DATA_OPTION)
def token_revoke(token_id: str, data_dir: str) -> None:
    """Revoke a token by its id (the part after `kam_`)."""
    if not _tokens(data_dir).revoke(token_id):
        raise click.ClickException(f"no active token {token_id}")
    click.echo(f"revoked {token_id}")


def _register_excel() -> None:
    """`kam excel ...`: the desktop add-in's commands live with the add-in."""
    from excel_addin.quickstart import excel

    main.add_command(excel)


_register_excel()


if __name__ == "__main__":  # how the workers of `kam serve --workers N` start
    main()
