"""What evaluates for the desktop add-in: the running KAM service over HTTP (bearer token), or, with no URL set, a
rule book folder on this PC. Both answer as `POST /v1/evaluate` does, so what the add-in shows is the same."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Collection
from pathlib import Path
from typing import Any

from kamcore.errors import RuleBookError
from kamcore.rulebook import RuleBook
from kamcore.sheetscore import NOTE_RULES, Evaluator, local_evaluator

from .settings import AddinError, Settings

TIMEOUT_S = 120  # a 10,000-row sheet with notes takes a few seconds on the service; a busy one longer
_BOOKS: dict[Path, tuple[tuple, RuleBook]] = {}


class Service:
    """The KAM service at `url`; every failure is an AddinError saying what to check."""

    def __init__(self, url: str, token: str | None, timeout: float = TIMEOUT_S):
        self.url, self.token, self.timeout = url, token, timeout

    def score_sheet(self, payload: dict[str, Any], lang: str, notes: bool = True) -> dict[str, Any]:
        """`POST /xlwings/score-sheet`: the book payload in, `{"actions", "kam"}` out."""
        return self._post("/xlwings/score-sheet", {"lang": lang, "notes": str(notes).lower()}, payload)

    def evaluate(self, accounts: list[dict[str, Any]], lang: str, explain: bool = False) -> dict[str, Any]:
        """`POST /v1/evaluate`: accounts keyed by field names or sheet headers in, the API's answer out."""
        return self._post("/v1/evaluate", {"lang": lang, "explain": str(explain).lower()}, {"accounts": accounts})

    def _post(self, path: str, query: dict[str, str], body: Any) -> dict[str, Any]:
        address = f"{self.url}{path}?{urllib.parse.urlencode(query)}"
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")
        request = urllib.request.Request(address, data=data, method="POST", headers=headers)  # noqa: S310 (http(s) only)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            raise AddinError(self._refusal(e)) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            reason = getattr(e, "reason", e)
            raise AddinError(f"无法连接 KAM 服务 / cannot reach the KAM service at {self.url} ({reason}). "
                             f"请检查 KAM_URL 以及服务是否在运行；删除 KAM_URL 可离线评分 / check KAM_URL and that "
                             f"the service is running; remove KAM_URL to score offline") from None
        except ValueError as e:
            raise AddinError(f"{self.url}{path} 的回答不是 JSON / the answer from {self.url}{path} is not JSON "
                             f"({e}); is KAM_URL the KAM service?") from None

    def _refusal(self, e: urllib.error.HTTPError) -> str:
        try:
            problem = json.loads(e.read() or b"{}")
        except ValueError:
            problem = {}
        detail = problem.get("detail") or problem.get("title") or e.reason if isinstance(problem, dict) else e.reason
        if e.code == 401:
            return (f"KAM 服务拒绝了令牌 / the KAM service at {self.url} refused the token: set KAM_TOKEN (sheet "
                    f"xlwings.conf or environment) to a token from `kam token create` ({detail})")
        if e.code == 403:
            return f"该令牌无权评分 / this token may not score accounts ({detail})"
        return f"KAM 服务回答 {e.code} / the KAM service answered {e.code}: {detail}"


def local_book(folder: Path) -> RuleBook:
    """The rule book in `folder`, loaded once and again whenever one of its files changes."""
    root = Path(folder).resolve()
    try:
        files = sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
        stamp = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
    except OSError:
        stamp = ()
    cached = _BOOKS.get(root)
    if cached and cached[0] == stamp:
        return cached[1]
    try:
        book = RuleBook.load(root)
    except RuleBookError as e:
        raise AddinError(f"本地规则库无法加载 / the local rule book {root} cannot be loaded (KAM_RULES):\n"
                         f"{e}") from None
    _BOOKS[root] = (stamp, book)
    return book


def evaluator(settings: Settings, explain: bool = True,
              explain_rules: Collection[str] | None = NOTE_RULES) -> Evaluator:
    """Accounts → the API's answer, from the service or the local rule book. The service's `explain=true` covers
    every rule; offline `explain_rules` narrows it (None: every rule, as the service)."""
    if settings.remote:
        service = Service(settings.url, settings.token)
        return lambda accounts: service.evaluate(accounts, settings.lang, explain)
    book = local_book(settings.rules)
    return local_evaluator(book, lang=settings.lang, notes=explain, source=str(settings.rules),
                           explain_rules=explain_rules)
