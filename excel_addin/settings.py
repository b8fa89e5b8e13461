"""Where the desktop add-in finds its service and rule book: a sheet named `xlwings.conf` in the workbook (key in
column A, value in column B, from A1 down to the first empty key, as xlwings reads its own settings there), else
the environment (KAM_URL, KAM_TOKEN, KAM_LANG, KAM_RULES), else the defaults: offline, 中文, the shipped rules."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONF_SHEET = "xlwings.conf"
SHIPPED_RULES = Path(__file__).resolve().parent.parent / "rules"
LANGS = ("zh", "en")
# Our keys, and the shorter ones the Office Script (excel_addin/officescripts) reads from the same sheet
KEYS = {"KAM_URL": "url", "URL": "url", "KAM_TOKEN": "token", "TOKEN": "token", "KAM_LANG": "lang", "LANG": "lang",
        "KAM_RULES": "rules"}
ENDPOINT = "/xlwings/score-sheet"  # a URL copied from the Office Script names the endpoint; we want the service


class AddinError(Exception):
    """Something the person at Excel must fix (settings, the service, the token); the text is 中文 / English."""


@dataclass(frozen=True)
class Settings:
    url: str | None = None  # the service (http://host:8080); None: evaluate offline against `rules`
    token: str | None = None
    lang: str = "zh"
    rules: Path = SHIPPED_RULES

    @property
    def remote(self) -> bool:
        return self.url is not None

    def where(self) -> str:
        return self.url if self.url else f"{self.rules} (offline / 离线)"


def conf_values(rows: Sequence[Sequence[Any]] | None) -> dict[str, Any]:
    """The key/value pairs of an `xlwings.conf` sheet's cells from A1: keys upper-cased, up to the first empty key
    (xlwings' own keys such as INTERPRETER_WIN may sit in the same sheet; they are not ours and stay unread)."""
    found: dict[str, Any] = {}
    for row in rows or []:
        key = row[0] if row else None
        if key is None or (isinstance(key, str) and not key.strip()):
            break
        found[str(key).strip().upper()] = row[1] if len(row) > 1 else None
    return found


def read_settings(conf: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """The settings from the sheet's pairs (`conf_values`), each missing one from the environment."""
    env = os.environ if env is None else env
    chosen: dict[str, str] = {}
    for source, keys in ((conf or {}, KEYS), (env, [k for k in KEYS if k.startswith("KAM_")])):
        for key in keys:  # the environment's LANG is the locale, never ours: only KAM_* there
            name, value = KEYS[key], source.get(key)
            if name not in chosen and value is not None and str(value).strip():
                chosen[name] = str(value).strip()
    lang = chosen.get("lang", "zh").lower()
    if lang not in LANGS:
        raise AddinError(f"KAM_LANG 只能是 zh 或 en / KAM_LANG must be zh or en, not {lang!r}")
    url = _service_url(chosen.get("url"))
    rules = Path(chosen["rules"]).expanduser() if "rules" in chosen else SHIPPED_RULES
    return Settings(url=url, token=_token_for(url, conf or {}, env), lang=lang, rules=rules)


def _service_url(url: str | None) -> str | None:
    """The service's base URL from what a user typed (the Office Script's endpoint URL is understood too)."""
    if url is None:
        return None
    if not url.startswith(("http://", "https://")):
        raise AddinError(f"KAM_URL 需以 http:// 或 https:// 开头 / KAM_URL must start with http:// or https://: "
                         f"{url!r}")
    return url.split("?", 1)[0].rstrip("/").removesuffix(ENDPOINT).rstrip("/")


def _token_for(url: str | None, conf: Mapping[str, Any], env: Mapping[str, str]) -> str | None:
    """The token for `url`: the workbook's own, or the environment's (KAM_TOKEN) only when the URL is the
    environment's too — a workbook someone sent, naming a host of its choosing, never gets the user's token."""
    def given(source: Mapping[str, Any], *keys: str) -> str | None:
        for key in keys:
            value = source.get(key)
            if value is not None and str(value).strip():
                return str(value).strip()
        return None

    sheet_token = given(conf, "KAM_TOKEN", "TOKEN")
    if sheet_token or url is None:
        return sheet_token
    env_url = given(env, "KAM_URL")
    return given(env, "KAM_TOKEN") if env_url is not None and _service_url(env_url) == url else None
