"""The `kam` command: check and test rule books, evaluate account tables, run the demo."""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import replace
from pathlib import Path

import click
import pandas as pd
from tqdm import tqdm

from . import ruletests
from .dictionary import Dictionary
from .errors import InputError, Problem, RuleBookError
from .portfolio import format_of, labelled, read_sheet, write_table
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
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="csv, xlsx or json")
@click.option("--rules", "rules_dir", default="rules/", show_default=True, type=click.Path(file_okay=False))
@click.option("--explain", is_flag=True, help="add an `explanation` column with each account's trace")
@click.option("--lang", type=click.Choice(["zh", "en"]),
              help="head result columns with their 中文 / English labels and show coded values as labels "
                   "(default: field names and codes, for machines)")
@click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), help="the date today() means (default: today)")
def evaluate(input_path: str, output: str, rules_dir: str, explain: bool, lang: str | None,
             as_of: dt.datetime | None) -> None:
    """Evaluate the accounts in INPUT (a sheet may have title rows above its headers and a totals row); write
    every good row to OUTPUT and the bad ones, with their errors, to OUTPUT's name + `.errors.csv`."""
    book = _load(rules_dir)
    try:
        format_of(output)
        sheet = read_sheet(input_path, dictionary=book.dictionary)
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
