"""The `kam` command: check and test rule books, evaluate account tables, run the demo."""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import click
import pandas as pd
from tqdm import tqdm

from . import ruletests
from .errors import InputError, Problem, RuleBookError
from .portfolio import format_of, read_table, write_table
from .rulebook import RuleBook

PROGRESS_FROM = 50_000  # accounts; below this an evaluation takes well under a second


@click.group()
@click.version_option(package_name="kam-rules")
def main() -> None:
    """KAM Rules: key-account tiering, entitlements, credit and loyalty rules."""


@main.group()
def rules() -> None:
    """Check and test a rule book."""


def _shown(problem: Problem, folder: str) -> str:
    """A problem with its file named as the user would open it (relative to where they ran `kam`)."""
    if problem.file is None:
        return str(problem)
    return str(replace(problem, file=(Path(folder) / problem.file).as_posix()))


def _load(folder: str) -> RuleBook:
    try:
        return RuleBook.load(folder)
    except RuleBookError as e:
        for p in e.problems:
            click.echo(_shown(p, folder), err=True)
        errors = sum(p.is_error for p in e.problems)
        raise click.ClickException(f"{errors} error(s) in {folder}") from None


@rules.command("check")
@click.argument("folder", default="rules/", type=click.Path(file_okay=False))
def rules_check(folder: str) -> None:
    """Validate every rule file: prints `file:line:col: rule/row: message`, exits 1 on any error."""
    book = _load(folder)
    for p in book.problems:
        click.echo(_shown(p, folder))
    warnings = f", {len(book.problems)} warning(s)" if book.problems else ""
    click.echo(f"{folder}: {len(book.rules)} rules OK{warnings}")


@rules.command("test")
@click.argument("folder", default="rules/", type=click.Path(file_okay=False))
def rules_test(folder: str) -> None:
    """Run the rule tests in FOLDER/tests/ against the rules in FOLDER."""
    book = _load(folder)
    run = ruletests.run(book, ruletests.case_files(folder))
    for p in run.problems:
        click.echo(_shown(p, folder), err=True)
    for r in run.failed:
        click.echo(str(replace(r, file=(Path(folder) / r.file).as_posix())), err=True)
    passed = sum(r.passed for r in run.results)
    click.echo(f"{passed} passed, {len(run.failed)} failed")
    if not run.passed:
        sys.exit(1)


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="csv, xlsx or json; with --engine dask a folder of parquet parts (or csv parts if named *.csv)")
@click.option("--rules", "rules_dir", default="rules/", show_default=True, type=click.Path(file_okay=False))
@click.option("--explain", is_flag=True, help="add an `explanation` column with each account's trace")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="en", show_default=True)
@click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), help="the date today() means (default: today)")
@click.option("--engine", type=click.Choice(["pandas", "dask"]), default="pandas", show_default=True,
              help="dask: csv or parquet INPUT (a file, a glob or a folder) evaluated in partitions")
@click.option("--scheduler", metavar="ADDRESS", help="with --engine dask: a running dask scheduler "
              "(default: a local cluster)")
def evaluate(input_path: str, output: str, rules_dir: str, explain: bool, lang: str, as_of: dt.datetime | None,
             engine: str, scheduler: str | None) -> None:
    """Evaluate the accounts in INPUT; write every good row to OUTPUT and the bad ones, with their errors,
    to OUTPUT's name + `.errors.csv`."""
    book = _load(rules_dir)
    if engine == "dask":
        _evaluate_on_dask(book, input_path, output, lang if explain else None, as_of, scheduler)
        return
    if scheduler:
        raise click.UsageError("--scheduler needs --engine dask")
    try:
        format_of(output)
        frame = read_table(input_path)
    except InputError as e:
        raise click.ClickException(str(e)) from None
    bar = tqdm(total=len(book.rules), desc="rules", unit="rule", disable=len(frame) < PROGRESS_FROM, file=sys.stderr)
    ev = book.evaluate(frame, as_of=as_of.date() if as_of else None, progress=lambda _: bar.update())
    bar.close()
    result = ev.frame
    if explain:
        result = result.assign(explanation=[ev.explain(i).text(lang) for i in range(len(result))])
    good = ev.ok
    write_table(result[good], output)
    errors_path = Path(output).with_suffix(".errors.csv")
    header_lines = 1 if format_of(input_path) in ("csv", "xlsx") else 0
    if not good.all():
        bad = pd.DataFrame([{"row": e.row + 1, "line": e.row + 1 + header_lines, "rule": e.rule, "field": e.field,
                             "message": e.message} for e in ev.errors])
        write_table(bad, errors_path, "csv")
    elif errors_path.exists():
        errors_path.unlink()  # a stale errors file from an earlier run would mislead
    for e in ev.errors[:20]:
        line = e.row + 1 + header_lines
        click.echo(f"{input_path}:{line}: {e.rule or 'input'}/{e.field or '-'}: {e.message}", err=True)
    if ev.missing_fields:
        click.echo(f"note: no column for {', '.join(ev.missing_fields)}; treated as empty", err=True)
    summary = f"{int(good.sum())} of {len(result)} accounts written to {output}"
    if not good.all():
        summary += f"; {int((~good).sum())} with errors in {errors_path}"
    click.echo(summary, err=True)


def _evaluate_on_dask(book: RuleBook, source: str, output: str, explain: str | None, as_of: dt.datetime | None,
                      scheduler: str | None) -> None:
    """`kam evaluate --engine dask`: partitioned input, a folder of part files, one errors file."""
    from pyarrow import ArrowException

    from . import partitioned

    errors_path = Path(output).with_suffix(".errors.csv")
    try:
        fmt = partitioned.check_output(output)
        accounts = partitioned.read_accounts(source)
        with _dask_client(scheduler):
            ev = partitioned.evaluate(book, accounts.frame, as_of.date() if as_of else None, explain, progress=True)
            written = ev.write(output, fmt)
    except InputError as e:
        raise click.ClickException(str(e)) from None
    except (pd.errors.ParserError, UnicodeDecodeError, ArrowException) as e:  # from reading a part, here or on a worker
        reason = str(e).splitlines()[-1].removeprefix("Original Message: ")
        raise click.ClickException(f"{source}: cannot read: {reason}") from None
    errors = written.errors
    files, rows = accounts.locate(errors["row"].to_numpy(), written.lengths)
    located = pd.DataFrame({
        "file": files, "row": rows + 1,
        "line": pd.array(rows + 2, dtype="Int64") if accounts.fmt == "csv" else pd.array([None] * len(rows), "Int64"),
        "rule": errors["rule"], "field": errors["field"], "message": errors["message"],
        "rules_version": ev.revision})
    if len(located):
        write_table(located, errors_path, "csv")
    elif errors_path.exists():
        errors_path.unlink()  # a stale errors file from an earlier run would mislead
    for e in located.head(20).itertuples():
        where = f"{e.file}:{e.line}" if accounts.fmt == "csv" else f"{e.file}: row {e.row}"
        click.echo(f"{where}: {e.rule if isinstance(e.rule, str) else 'input'}/"
                   f"{e.field if isinstance(e.field, str) else '-'}: {e.message}", err=True)
    summary = f"{written.accounts - written.failed} of {written.accounts} accounts written to {output} " \
              f"({len(written.lengths)} parts, rules_version {ev.revision})"
    if written.failed:
        summary += f"; {written.failed} with errors in {errors_path}"
    click.echo(summary, err=True)


@contextlib.contextmanager
def _dask_client(scheduler: str | None) -> Iterator[None]:
    """A client of the scheduler at ADDRESS, or of a local cluster (one worker process per core) for the run."""
    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        if scheduler:
            try:
                client = stack.enter_context(Client(scheduler))
            except (OSError, TimeoutError) as e:
                raise click.ClickException(f"cannot reach the dask scheduler at {scheduler}: {e}") from None
        else:
            client = stack.enter_context(Client(stack.enter_context(LocalCluster(dashboard_address=":0"))))
        workers = len(client.scheduler_info()["workers"])
        link = f"; dashboard {client.dashboard_link}" if scheduler and client.dashboard_link else ""
        click.echo(f"dask: {workers} worker(s) at {client.scheduler.address}{link}", err=True)
        yield


@main.command()
@click.option("--rules", "rules_dir", default="rules/", show_default=True, type=click.Path(file_okay=False))
@click.option("--accounts", default=2000, show_default=True, help="size of the synthetic demo portfolio")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
def demo(rules_dir: str, accounts: int, lang: str) -> None:
    """Evaluate the rule book on a synthetic demo portfolio and print the tier summary."""
    from .demo import synthetic_portfolio

    book = _load(rules_dir)
    frame = synthetic_portfolio(accounts)
    ev = book.evaluate(frame, as_of="2026-11-23")
    click.echo(demo_summary(ev.frame, lang))
    top = int(frame["revenue_12m"].idxmax())
    click.echo(f"\n— {frame.loc[top, 'account_name']} ({frame.loc[top, 'account_id']}) —")
    click.echo(ev.explain(top).text(lang))


def demo_summary(result: pd.DataFrame, lang: str = "en") -> str:
    """The customer pyramid, the Pareto share and credit status counts of an evaluated portfolio."""
    zh = lang == "zh"
    n = len(result)
    total = result["revenue_12m"].sum()
    lines = [f"{'演示客户组合' if zh else 'Demo portfolio'}: {n:,} {'个客户' if zh else 'accounts'}", ""]
    lines.append("客户金字塔 (等级 / 客户数 / 销售额占比):" if zh else "Customer pyramid (tier / accounts / revenue):")
    by_tier = result.groupby("tier", observed=True)["revenue_12m"].agg(["count", "sum"])
    for tier, row in by_tier.sort_index().iterrows():
        bar = "█" * max(1, round(40 * row["count"] / n))
        lines.append(f"  {tier}  {int(row['count']):>6,}  {row['sum'] / total:6.1%}  {bar}")
    if "pareto_class" in result:
        key = result["pareto_class"] == "key"
        share = result.loc[key, "revenue_12m"].sum() / total
        lines.append("")
        lines.append(f"帕累托: {key.mean():.1%} 的客户贡献了 {share:.1%} 的销售额" if zh
                     else f"Pareto: {key.mean():.1%} of accounts make {share:.1%} of revenue")
    if "credit_status" in result:
        counts = result["credit_status"].value_counts()
        lines.append("")
        lines.append(("信用状态: " if zh else "Credit status: ") + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    return "\n".join(lines)
