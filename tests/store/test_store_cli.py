"""`kam history`, `kam diff`, `kam blame` and `kam impact --data` over a real rule store."""

from click.testing import CliRunner

from kamcore.cli import main
from kamcore.store import RuleStore


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


def test_history_diff_blame(tmp_path, seed, price_change):
    data = tmp_path / "data"
    store = RuleStore.open(data, seed=seed)
    first = store.head()
    store.commit(price_change(3), first, "Alice <alice@example.com>", "Raise the factor to 3")
    code, out = run("history", "--data", data)
    assert code == 0 and "Alice" in out and "Raise the factor to 3" in out and "Seed" in out
    code, out = run("history", "--rule", "price", "--data", data)
    assert code == 0 and out.count("\n") == 2
    code, out = run("diff", first[:10], "HEAD", "--raw", "--data", data)
    assert code == 0 and "price" in out and "amount * 3" in out
    code, out = run("blame", "price", "--data", data)
    assert code == 0 and "formula:price" in out and "Alice" in out
    code, out = run("blame", "nothing", "--data", data)
    assert code == 1 and "no rule" in out
    code, out = run("history", "--data", tmp_path / "empty")
    assert code == 1 and "no rule repository" in out


def test_impact_against_the_live_store(tmp_path, seed, price_change):
    data = tmp_path / "data"
    RuleStore.open(data, seed=seed)
    change = tmp_path / "price.yaml"
    change.write_text(price_change(5)["price.yaml"], encoding="utf-8")
    portfolio = tmp_path / "accounts.csv"
    portfolio.write_text("amount\n1\n2\n", encoding="utf-8")
    code, out = run("impact", "--change", change, "--portfolio", portfolio, "--data", data, "--json")
    assert code == 0, out
    assert '"amount * 5"' in out or "amount * 5" in out
