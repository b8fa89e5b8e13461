"""Dashboard page load at 100k accounts through the Flask client: cold (read the csv, evaluate two revisions)
and warm (evaluations cached), plus the rule book and editor pages. Run by hand: `python bench/web.py`."""

import re
import sys
import tempfile
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])  # the repo, not bench/ (its http.py shadows http)

from kamcore.demo import synthetic_portfolio  # noqa: E402
from kamcore.portfolio import write_table  # noqa: E402
from server import create_app  # noqa: E402

ACCOUNTS = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000


def main() -> None:
    data = Path(tempfile.mkdtemp()) / "data"
    app = create_app({"data_dir": data, "access_log": False, "token_memory_kib": 1024})
    write_table(synthetic_portfolio(ACCOUNTS, seed=11), data / "portfolio.csv")
    token = app.extensions["kam"].tokens.create("bench", "admin")
    client = app.test_client()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/ui/signin").text).group(1)
    client.post("/ui/signin", data={"token": token, "csrf_token": csrf})
    # A second revision, so the migration compares two books.
    store = app.extensions["kam"].store
    text = store.read("tiering.yaml").replace('gross_margin: ">= 0.15"', 'gross_margin: ">= 0.12"', 1)
    store.commit({"tiering.yaml": text}, store.head(), "bench", "A from 12% margin")
    for label, path in (("dashboard cold", "/ui/dashboard"), ("dashboard warm", "/ui/dashboard"),
                        ("dashboard warm", "/ui/dashboard"), ("rule book cold", "/ui/rules"),
                        ("rule book warm", "/ui/rules"), ("editor", "/ui/rules/tier/edit")):
        started = time.perf_counter()
        response = client.get(path)
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.text[:300]
        print(f"{label:16} {ACCOUNTS:>7} accounts  {elapsed:6.2f} s  {len(response.data) / 1024:7.1f} KiB")


if __name__ == "__main__":
    main()
