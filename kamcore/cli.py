"""The `kam` command: check and test rule books, evaluate account tables, run the demo."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import click
import pandas as pd
from tqdm import tqdm

from . import ruletests
from .decisions import BookProvider, DecisionLog, DecisionLogError, log_path
from .dictionary import Dictionary
from .errors import InputError, KamError, Problem, RuleBookError
from .portfolio import format_of, labelled, read_sheet, read_table, write_table
from .rulebook import RuleBook
from .store import DATA_DIR

if TYPE_CHECKING:
    from .store import RuleStore

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
    if book.event_rules:
        click.echo(f"{folder}: {len(book.event_rules)} event rules OK")
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


# --- rule tables in Excel ------------------------------------------------------------------------------------

_table_data = click.option("--data", "data_dir", default=None, type=click.Path(file_okay=False),
                           help=f"the service's data dir: the live rule book (default: {DATA_DIR})")
_table_rules = click.option("--rules", "rules_dir", default=None, type=click.Path(file_okay=False),
                            help="a rules folder instead of the live rule book (the import then writes the file)")


def _table_source(data_dir: str | None, rules_dir: str | None) -> tuple[str | None, str | None]:
    if data_dir and rules_dir:
        raise click.UsageError("give --data (the live rule book) or --rules (a rules folder), not both")
    return (None, rules_dir) if rules_dir else (data_dir or DATA_DIR, None)


@rules.command("export-xlsx")
@click.argument("rule_id")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="the .xlsx file to write")
@_table_data
@_table_rules
def rules_export_xlsx(rule_id: str, output: str, data_dir: str | None, rules_dir: str | None) -> None:
    """Write the decision table or scorecard RULE_ID as an xlsx workbook to edit in Excel: one sheet per table
    (per indicator for a scorecard), headers in 中文 / English, the settings shown, the base revision kept in a
    hidden sheet for `kam rules import-xlsx`."""
    from . import ruletable

    data_dir, rules_dir = _table_source(data_dir, rules_dir)
    try:
        if rules_dir is not None:
            book = _load(rules_dir)
            if rule_id not in book:
                raise click.ClickException(f"no rule {rule_id!r} in {rules_dir}")
            text = (Path(rules_dir) / book.rule(rule_id).file).read_text(encoding="utf-8")
            data = ruletable.export_table(book, rule_id, text, ruletable.file_revision(text))
        else:
            store = _open_store(data_dir)
            base = store.head()
            book = store.book(base)
            if rule_id not in book:
                raise click.ClickException(f"no rule {rule_id!r} in the rule book at {base[:10]}")
            data = ruletable.export_table(book, rule_id, store.read(book.rule(rule_id).file, base), base)
    except KamError as e:
        raise click.ClickException(str(e)) from None
    Path(output).write_bytes(data)
    click.echo(f"{rule_id} written to {output}", err=True)


@rules.command("import-xlsx")
@click.argument("table", metavar="TABLE.xlsx", type=click.Path(exists=True, dir_okay=False))
@click.option("-m", "--message", required=True, help="why the rule changes (the commit message)")
@click.option("--author", default=None, help="who changes it, `Name <email>` (default: your login name)")
@click.option("--propose", is_flag=True, help="open a change request for an approver instead of committing "
              "(always so when KAM_REQUIRE_APPROVAL is set, as for the service)")
@_table_data
@_table_rules
def rules_import_xlsx(table: str, message: str, author: str | None, propose: bool, data_dir: str | None,
                      rules_dir: str | None) -> None:
    """Read an edited rule table back: the rule is rebuilt from its sheets, validated and its rule tests run, then
    committed with MESSAGE (exit 1 and `Sheet!C7: message` for every problem, nothing committed). A table exported
    before its rule file changed is refused, naming that change."""
    import getpass
    import os

    from . import ruletable
    from .store import StaleBase, StoreError

    data_dir, rules_dir = _table_source(data_dir, rules_dir)
    if not message.strip():
        raise click.UsageError("-m/--message must say why the rule changes")
    data = Path(table).read_bytes()
    try:
        if rules_dir is not None:
            _import_into_folder(rules_dir, data, table)
            return
        store = _open_store(data_dir)
        store.require_approval = propose or os.environ.get("KAM_REQUIRE_APPROVAL", "").strip().lower() in (
            "1", "true", "yes", "on")
        done = ruletable.import_table(store, data, author or getpass.getuser(), message, name=table)
    except ruletable.TableRefused as e:
        for problem in e.problems:
            click.echo(str(problem), err=True)
        raise click.ClickException(f"{table}: refused, {len(e.problems)} problem(s); nothing was committed") \
            from None
    except StaleBase as e:
        raise click.ClickException(str(e)) from None
    except (KamError, StoreError) as e:
        raise click.ClickException(str(e)) from None
    if done.unchanged:
        click.echo(f"{done.rule_id}: the table says what the rule at {done.base[:10]} says: nothing to commit")
    elif done.change_request is not None:
        click.echo(f"{done.rule_id}: change request {done.change_request.id} opened on {done.base[:10]}; "
                   "an approver other than you commits it")
    else:
        click.echo(f"{done.rule_id}: committed {done.revision[:10]} ({done.file})")


def _import_into_folder(rules_dir: str, data: bytes, name: str) -> None:
    """The import into a rules folder (no repository): checked and tested like a commit, then the file written."""
    from . import ruletable
    from .store import RULE_SUFFIXES, checked_book  # the same checks and rule tests a commit runs

    upload = ruletable.read_workbook(data, name)
    book = _load(rules_dir)
    if upload.rule_id not in book:
        raise click.ClickException(f"{name}: no rule {upload.rule_id!r} in {rules_dir}")
    folder = Path(rules_dir)
    path = folder / book.rule(upload.rule_id).file  # from the rule book, never from the upload
    text = path.read_text(encoding="utf-8")
    if ruletable.file_revision(text) != upload.base:
        raise click.ClickException(f"{path} changed since this table was exported from it; export the table "
                                   "again and redo your edit")
    edit = ruletable.rebuild(upload, book, text)
    if edit.unchanged:
        click.echo(f"{edit.rule_id}: the table says what {path} says: nothing to write")
        return
    files = {p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8")
             for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix in RULE_SUFFIXES}
    files[edit.file] = edit.text
    edit.checked(lambda: checked_book(files))
    path.write_text(edit.text, encoding="utf-8")
    click.echo(f"{edit.rule_id}: written to {path} (checked and its rule tests pass; commit it with your message)")


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="csv, xlsx or json; with --engine dask a folder of parquet parts (or csv parts if named *.csv)")
@click.option("--rules", "rules_dir", default="rules/", show_default=True, type=click.Path(file_okay=False))
@click.option("--explain", is_flag=True, help="add an `explanation` column with each account's trace")
@click.option("--lang", type=click.Choice(["zh", "en"]),
              help="head result columns with their 中文 / English labels and show coded values as labels "
                   "(default: field names and codes, for machines)")
@click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), help="the date today() means (default: today)")
@click.option("--table", is_flag=True, help="xlsx to xlsx: write a plain results table instead of the input "
                                            "workbook with result columns beside its account table")
@click.option("--engine", type=click.Choice(["pandas", "dask"]), default="pandas", show_default=True,
              help="dask: csv or parquet INPUT (a file, a glob or a folder) evaluated in partitions")
@click.option("--scheduler", metavar="ADDRESS", help="with --engine dask: a running dask scheduler "
              "(default: a local cluster)")
def evaluate(input_path: str, output: str, rules_dir: str, explain: bool, lang: str | None,
             as_of: dt.datetime | None, table: bool, engine: str, scheduler: str | None) -> None:
    """Evaluate the accounts in INPUT (a sheet may have title rows above its headers and a totals row); write
    every good row to OUTPUT and the bad ones, with their errors, to OUTPUT's name + `.errors.csv`. From xlsx to
    xlsx, OUTPUT is INPUT's workbook with the results beside its account table (other sheets, formulas and
    formats kept), unless --table. With --engine dask, INPUT may be a glob or folder of csv / parquet files and
    OUTPUT a folder of part files."""
    book = _load(rules_dir)
    if engine == "dask":
        _evaluate_on_dask(book, input_path, output, lang if explain else None, as_of, scheduler)
        return
    if scheduler:
        raise click.UsageError("--scheduler needs --engine dask")
    try:
        if format_of(output) == format_of(input_path) == "xlsx" and not table:
            _evaluate_workbook(book, rules_dir, input_path, output, lang, as_of.date() if as_of else None)
            return
        sheet = read_sheet(input_path, dictionary=book.dictionary, reads=book.inputs)
    except InputError as e:
        raise click.ClickException(str(e)) from None
    for warning in sheet.warnings:
        click.echo(str(warning), err=True)
    frame = sheet.frame
    bar = tqdm(total=len(book.rules), desc="rules", unit="rule", disable=len(frame) < PROGRESS_FROM, file=sys.stderr)
    ev = book.evaluate(frame, as_of=as_of.date() if as_of else None, progress=lambda _: bar.update())
    bar.close()
    result = results_frame(ev.frame, book)
    if explain:
        result = result.assign(explanation=[ev.explain(i).text(lang or "en") for i in range(len(result))])
    good = ev.ok
    written = result[good]
    write_table(labelled(written, book.dictionary, lang, output_labels(book)) if lang else written, output)
    errors_path = Path(output).with_suffix(".errors.csv")
    if not good.all():
        bad = pd.DataFrame([{"row": e.row + 1, "line": int(sheet.lines[e.row]), "rule": e.rule, "field": e.field,
                             "message": e.message} for e in ev.errors])
        write_table(bad, errors_path, "csv")
    elif errors_path.exists():
        errors_path.unlink()  # a stale errors file from an earlier run would mislead
    for e in ev.errors[:20]:
        click.echo(f"{input_path}:{sheet.lines[e.row]}: {e.rule or 'input'}/{e.field or '-'}: {e.message}", err=True)
    if ev.missing_fields:
        click.echo(f"note: no column for {', '.join(ev.missing_fields)}; treated as empty", err=True)
    summary = f"{int(good.sum())} of {len(result)} accounts written to {output}"
    if not good.all():
        summary += f"; {int((~good).sum())} with errors in {errors_path}"
    click.echo(summary, err=True)


def _evaluate_workbook(book: RuleBook, rules_dir: str, input_path: str, output: str, lang: str | None,
                      as_of: dt.date | None) -> None:
    """The xlsx round trip: the same workbook back with result columns, colours, notes and the rules version."""
    from .sheetscore import local_evaluator
    from .workbook import score_workbook

    lang = lang or "zh"
    evaluate = local_evaluator(book, as_of, lang, source=str(Path(rules_dir).resolve()))
    result = score_workbook(Path(input_path).read_bytes(), book, evaluate, lang, name=input_path)
    Path(output).write_bytes(result.data)
    scored = result.scored
    for warning in scored.warnings:
        if ": warning: " in warning:
            click.echo(warning, err=True)
    errors_path = Path(output).with_suffix(".errors.csv")
    if scored.errors:
        bad = pd.DataFrame([{"row": e["row"] + 1, "line": e["line"], "rule": e["rule"], "field": e["field"],
                             "message": e["message"]} for e in scored.errors])
        write_table(bad, errors_path, "csv")
    elif errors_path.exists():
        errors_path.unlink()
    for e in scored.errors[:20]:
        click.echo(f"{input_path}:{e['line']}: {e['rule'] or 'input'}/{e['field'] or '-'}: {e['message']}", err=True)
    total = scored.scored + len({e["row"] for e in scored.errors})
    summary = f"{scored.scored} of {total} accounts written to {output}"
    if scored.errors:
        summary += f"; {total - scored.scored} with errors in {errors_path}"
    click.echo(summary, err=True)


def results_frame(frame: pd.DataFrame, book: RuleBook) -> pd.DataFrame:
    """The evaluated table without the sheet's own columns that hold an output under another header (`客户等级`
    from an earlier run): the new results replace them rather than sit beside them."""
    stale = [c for c in frame.columns if c not in book.outputs and book.dictionary.field_for_header(c) in book.outputs]
    return frame.drop(columns=stale)


def output_labels(book: RuleBook) -> dict[str, dict[str, str]]:
    """Each output's labels as its rule gives them (for outputs the data dictionary does not list)."""
    labels = {name: dict(rule.outputs[name].label) for name, rule in book.outputs.items()}
    labels["explanation"] = {"zh": "说明", "en": "Explanation"}
    return labels


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
@click.option("--seed", default=7, show_default=True)
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
def demo(rules_dir: str, accounts: int, seed: int, lang: str) -> None:
    """Evaluate the rule book on a synthetic demo portfolio and print its tiers, segments and credit status."""
    from .demo import AS_OF, synthetic_portfolio

    book = _load(rules_dir)
    frame = synthetic_portfolio(accounts, seed)
    ev = book.evaluate(frame, as_of=AS_OF)
    click.echo(demo_summary(ev.frame, lang, book.dictionary))
    top = int(frame["revenue_12m"].idxmax())
    click.echo(f"\n— {frame.loc[top, 'account_name']} ({frame.loc[top, 'account_id']}) —")
    click.echo(ev.explain(top).text(lang))


def demo_summary(result: pd.DataFrame, lang: str = "en", dictionary: Dictionary | None = None) -> str:
    """The customer pyramid, the Pareto share, and the segment and credit-status counts of an evaluated
    portfolio, values shown by their labels in `lang` where the dictionary has them."""
    zh = lang == "zh"
    n = len(result)
    total = result["revenue_12m"].sum()
    lines = [f"{'演示客户组合' if zh else 'Demo portfolio'}: {n:,} {'个客户' if zh else 'accounts'}, "
             + (f"年销售额 {total / 1e8:,.2f} 亿元" if zh else f"revenue ¥{total / 1e6:,.1f}M"), ""]
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
    for name, title in (("segment", ("客户分群", "Segments")), ("credit_status", ("信用状态", "Credit status"))):
        if name in result:
            counts = result[name].astype(object).fillna("-").value_counts()
            shown = ", ".join(f"{_value(dictionary, name, k, lang)} {v:,}" for k, v in counts.items())
            lines += ["", f"{title[0] if zh else title[1]}: {shown}"]
    return "\n".join(lines)


# --- decision log ------------------------------------------------------------------------------------------

DIFFERENCES_SHOWN = 200  # a re-run of a large batch can differ everywhere; the count says the rest


@main.group()
def decisions() -> None:
    """Check the decision log's hash chain and reproduce past decisions."""


_data_option = click.option("--data", "data_dir", default=DATA_DIR, show_default=True,
                            type=click.Path(file_okay=False), help="the service's data dir")


def _decision_log(data_dir: str) -> DecisionLog:
    try:
        return DecisionLog.open(log_path(data_dir), create=False)
    except DecisionLogError as e:
        raise click.ClickException(str(e)) from None


def _rule_store(data_dir: str) -> BookProvider:
    """The rule store under the data dir: it hands out the rule book at any revision."""
    from .store import RuleStore

    return RuleStore.open(data_dir)


@decisions.command("verify")
@_data_option
def decisions_verify(data_dir: str) -> None:
    """Walk the decision log's hash chain and name every record altered or removed (exit 1 if any)."""
    with _decision_log(data_dir) as log:
        result = log.verify()
    for finding in result.findings:
        click.echo(f"{log.path}: {finding}", err=True)
    click.echo(f"{log.path}: {result}")
    if not result.ok:
        sys.exit(1)


@decisions.command("reproduce")
@click.argument("decision_id", metavar="ID")
@_data_option
def decisions_reproduce(decision_id: str, data_dir: str) -> None:
    """Evaluate decision ID again with the rule book at its revision and its as-of date; list every output
    that comes out differently (exit 1 if any)."""
    with _decision_log(data_dir) as log:
        try:
            log.get(decision_id)  # an unknown id is reported before the rule store is opened
            result = log.reproduce(decision_id, _rule_store(data_dir))
        except KamError as e:
            raise click.ClickException(str(e)) from None
    for difference in result.differences[:DIFFERENCES_SHOWN]:
        click.echo(str(difference))
    if len(result.differences) > DIFFERENCES_SHOWN:
        click.echo(f"... and {len(result.differences) - DIFFERENCES_SHOWN} more")
    click.echo(str(result))
    if not result.identical:
        sys.exit(1)


# --- impact of a rule change -----------------------------------------------------------------------------------


def _impact_base(rules_dir: str, data_dir: str | None) -> tuple[RuleBook, dict[str, str]]:
    """The book a change applies to, and its files by path: the live rule store's head when a data dir is
    given, else the rules folder."""
    if data_dir is not None:
        store = _open_store(data_dir)
        files = store.files()
        return store.book(), {p: t for p, t in files.items() if not p.startswith("tests/")}
    book = _load(rules_dir)
    return book, {f.path: f.text for f in book.files}


def _with_changes(base: dict[str, str], change_paths: tuple[str, ...]) -> tuple[dict[str, str], dict[str, str]]:
    """The base files with each change file put in place of the base file of the same name (a new file when
    the book has none of that name), and which change file each replaced path came from."""
    files, origin = dict(base), {}
    for change in change_paths:
        name = Path(change).name
        same = [p for p in base if PurePosixPath(p).name == name]
        if len(same) > 1:
            raise click.ClickException(f"{change}: the rule book has {len(same)} files named {name!r}: "
                                       + ", ".join(same))
        path = same[0] if same else name
        try:
            files[path] = Path(change).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise click.ClickException(f"{change}: cannot read: {e}") from None
        origin[path] = change
    return files, origin


@main.command("impact")
@click.option("--change", "changes", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False),
              help="a changed rule file; replaces the rule book's file of the same name (repeatable)")
@click.option("--portfolio", required=True, type=click.Path(exists=True, dir_okay=False), help="csv, xlsx or json")
@click.option("--rules", "rules_dir", default="rules/", show_default=True, type=click.Path(file_okay=False))
@click.option("--data", "data_dir", default=None, type=click.Path(file_okay=False),
              help="compare against the live rule store's head in this data dir instead of --rules")
@click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), help="the date today() means (default: today)")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="en", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the diff and the impact as one JSON document")
@click.option("--limit", default=20, show_default=True, help="changed accounts listed per output in the text")
def impact_command(changes: tuple[str, ...], portfolio: str, rules_dir: str, data_dir: str | None,
                   as_of: dt.datetime | None, lang: str, as_json: bool, limit: int) -> None:
    """What the changed rule files would do to the accounts in PORTFOLIO: the rule diff, the tier migration,
    accounts whose entitlements, credit status or segment change, and the change in credit limit, exposure on
    hold and loyalty points. Nothing is written."""
    from .impact import impact
    from .rulediff import diff_books

    base_book, base = _impact_base(rules_dir, data_dir)
    changed, origin = _with_changes(base, changes)
    try:
        changed_book = RuleBook.from_files(changed)
    except RuleBookError as e:
        for p in e.problems:
            click.echo(str(replace(p, file=origin[p.file])) if p.file in origin else _shown(p, rules_dir), err=True)
        raise click.ClickException("the changed rule book does not load; nothing was evaluated") from None
    try:
        frame = read_table(portfolio)
    except InputError as e:
        raise click.ClickException(str(e)) from None
    diff = diff_books(base, changed)
    result = impact(base_book, changed_book, frame, as_of.date() if as_of else None)
    if as_json:
        click.echo(json.dumps({"diff": diff.to_dict(), "impact": result.to_dict()}, ensure_ascii=False, indent=2))
        return
    click.echo(diff.text(lang))
    click.echo()
    click.echo(result.text(lang, limit))


# --- rule history ----------------------------------------------------------------------------------------------


def _open_store(data_dir: str) -> RuleStore:
    from .store import RuleStore, StoreError

    try:
        return RuleStore.open(data_dir, seed=None)
    except StoreError as e:
        raise click.ClickException(f"{e} (start the service once, or run `kam serve --data {data_dir}`)") from None


@main.command("history")
@click.option("--rule", "rule_id", help="only revisions that changed this rule")
@click.option("--path", help="only revisions that changed this file")
@_data_option
def history_command(rule_id: str | None, path: str | None, data_dir: str) -> None:
    """Who changed the rules, when and why (newest first), with approvers and reverts."""
    from .store import StoreError

    try:
        revisions = _open_store(data_dir).history(path=path, rule_id=rule_id)
    except StoreError as e:
        raise click.ClickException(str(e)) from None
    for r in revisions:
        extra = "".join([f"  approved by {r.approver}" if r.approver else "",
                         f"  reverts {r.reverts[:10]}" if r.reverts else ""])
        click.echo(f"{r.id[:10]}  {r.time:%Y-%m-%d %H:%M}  {r.author:<16} {r.message.splitlines()[0]}{extra}")


@main.command("diff")
@click.argument("rev_a")
@click.argument("rev_b", default="HEAD")
@click.option("--raw", is_flag=True, help="also print the text diff of each file")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="en", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@_data_option
def diff_command(rev_a: str, rev_b: str, raw: bool, lang: str, as_json: bool, data_dir: str) -> None:
    """What changed in the rules between two revisions: rows added / removed / changed, thresholds moved."""
    from .store import StoreError

    try:
        diff = _open_store(data_dir).diff(rev_a, rev_b)
    except StoreError as e:
        raise click.ClickException(str(e)) from None
    if as_json:
        click.echo(json.dumps(diff.to_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(diff.text(lang, raw=raw))


@main.command("blame")
@click.argument("rule_id")
@_data_option
def blame_command(rule_id: str, data_dir: str) -> None:
    """For each element of a rule (header, table row, scorecard band…): the revision that last changed it."""
    from .store import StoreError

    try:
        entries = _open_store(data_dir).blame(rule_id)
    except StoreError as e:
        raise click.ClickException(str(e)) from None
    for b in entries:
        r = b.revision
        click.echo(f"{b.element:<24} {r.id[:10]}  {r.time:%Y-%m-%d}  {r.author:<16} {r.message.splitlines()[0]}")


# --- DMN in and out ------------------------------------------------------------------------------------------------


@main.command("import-dmn")
@click.argument("dmn_file", metavar="FILE.dmn", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="folder for the YAML rule files (created if missing; existing files are never overwritten)")
def import_dmn(dmn_file: str, out_dir: str) -> None:
    """Write the decision tables of FILE.dmn (DMN 1.1-1.5) as YAML rule files: one per decision, plus the input
    data as a data dictionary. Features outside the supported subset are refused with their line."""
    from . import dmn

    source = Path(dmn_file)
    try:
        model = dmn.read(source.read_bytes(), source.name)
        dmn.load(source.read_bytes(), source.name)  # the same checks as evaluating it: refuse now, not later
    except KamError as e:
        raise click.ClickException(str(e)) from None
    files = model.files()
    target = Path(out_dir)
    clashes = [name for name in files if (target / name).exists()]
    if clashes:
        raise click.ClickException(f"{', '.join(str(target / c) for c in clashes)} already exist(s); "
                                   "choose another --out folder or move them")
    target.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (target / name).write_text(text, encoding="utf-8")
        click.echo(str(target / name))
    click.echo(f"{len(model.rules)} decision(s) from {source} (DMN {model.version}) written to {target}", err=True)


@main.command("export-dmn")
@click.argument("rule_id")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="the .dmn file to write")
@click.option("--rules", "rules_dir", default="rules/", show_default=True, type=click.Path(file_okay=False))
def export_dmn(rule_id: str, output: str, rules_dir: str) -> None:
    """Write the decision_table rule RULE_ID as a DMN 1.5 model (decision, input data and diagram)."""
    from . import dmn

    book = _load(rules_dir)
    try:
        xml = dmn.write(book, rule_id)
    except KamError as e:
        raise click.ClickException(str(e)) from None
    Path(output).write_text(xml, encoding="utf-8")
    click.echo(f"{rule_id} written to {output} (DMN 1.5)", err=True)


def _value(dictionary: Dictionary | None, name: str, value: str, lang: str) -> str:
    if value == "-":
        return "无" if lang == "zh" else "none"
    return str(dictionary.value_label(name, value, lang)) if dictionary else value


# --- demo data ---------------------------------------------------------------------------------------------


@main.command("demo-data")
@click.option("--accounts", default=2000, show_default=True, type=click.IntRange(min=1), help="how many accounts")
@click.option("--seed", default=7, show_default=True, help="the same seed writes the same accounts")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True,
              help="headers and industry / region names in 中文 or English")
@click.option("--rules", "rules_dir", default="rules/", show_default=True, type=click.Path(file_okay=False),
              help="the rule book whose data dictionary names the columns")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="csv or xlsx (or json)")
def demo_data(accounts: int, seed: int, lang: str, rules_dir: str, output: str) -> None:
    """Write a realistic demo account sheet (Chinese company names, seven sales regions, ten industries, a long
    tail of small accounts under a few large ones) to try `kam evaluate` on."""
    from .demo import as_sheet, synthetic_portfolio

    book = _load(rules_dir)
    try:
        format_of(output)
    except InputError as e:
        raise click.ClickException(str(e)) from None
    write_table(as_sheet(synthetic_portfolio(accounts, seed), book.dictionary, lang), output)
    click.echo(f"{accounts:,} accounts written to {output}", err=True)
