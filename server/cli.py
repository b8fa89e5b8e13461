"""The `kam` command: the engine's commands plus `kam serve` and `kam token`."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import click

from kamcore.cli import main
from kamcore.store import DATA_DIR

from . import PORTFOLIO
from .auth import ROLES, TokenStore
from .config import SHIPPED_RULES, Config


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
@click.option("--threads", default=8, show_default=True, type=int)
@click.option("--demo", is_flag=True, help="write a demo portfolio into the data dir and print an admin token")
def serve(data_dir: str, rules_dir: str, host: str, port: int, threads: int, demo: bool) -> None:
    """Run the KAM Rules service under waitress."""
    import waitress

    from . import create_app

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = replace(Config.from_env(), data_dir=Path(data_dir), rules_seed=Path(rules_dir))
    portfolio = config.data_dir / PORTFOLIO
    if demo and not portfolio.exists():  # before the app starts, so the event ledger registers its accounts
        from kamcore.demo import synthetic_portfolio
        from kamcore.portfolio import write_table

        config.data_dir.mkdir(parents=True, exist_ok=True)
        write_table(synthetic_portfolio(2000), portfolio)
    app = create_app(config)
    kam = app.extensions["kam"]
    click.echo(f"rules revision {kam.store.head()[:12]} from {config.data_dir / 'rules.git'}")
    if demo:
        click.echo(f"demo portfolio: {portfolio}")
        click.echo(f"admin token (shown once): {kam.tokens.create('admin (make run)', 'admin')}")
    click.echo(f"KAM Rules on http://{host}:{port}/  (API docs: http://{host}:{port}/docs)")
    waitress.serve(app, host=host, port=port, threads=threads, ident="kam-rules")


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
