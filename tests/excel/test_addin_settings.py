"""Where the desktop add-in finds its service: the xlwings.conf sheet's pairs first, then the environment."""

from pathlib import Path

import pytest

from excel_addin.settings import SHIPPED_RULES, AddinError, conf_values, read_settings


def test_conf_sheet_pairs_are_read_as_xlwings_reads_them():
    rows = [["Interpreter_Win", "python"], ["kam_url", "http://kam:8080"], ["KAM_TOKEN", "kam_a_b"], [None, None],
            ["KAM_LANG", "en"]]  # after the first empty key nothing is read, as xlwings does
    assert conf_values(rows) == {"INTERPRETER_WIN": "python", "KAM_URL": "http://kam:8080", "KAM_TOKEN": "kam_a_b"}
    assert conf_values([[None]]) == {} and conf_values(None) == {}


def test_sheet_wins_over_environment_and_fills_in_what_it_lacks():
    env = {"KAM_URL": "http://env:1", "KAM_TOKEN": "kam_env", "KAM_LANG": "en"}
    got = read_settings({"KAM_URL": "http://env:1/", "KAM_TOKEN": "  "}, env)
    assert (got.url, got.token, got.lang, got.remote) == ("http://env:1", "kam_env", "en", True)
    assert read_settings({"KAM_LANG": "zh"}, env).token == "kam_env"


def test_a_workbook_naming_another_host_never_gets_the_users_token():
    """A workbook someone sent, whose xlwings.conf names a host of its choosing, gets no KAM_TOKEN from the
    environment: only a token it carries itself."""
    env = {"KAM_URL": "http://kam.internal:8080", "KAM_TOKEN": "kam_users_own"}
    assert read_settings({"KAM_URL": "https://attacker.example"}, env).token is None
    assert read_settings({"URL": "https://attacker.example", "TOKEN": "kam_its_own"}, env).token == "kam_its_own"
    assert read_settings({"KAM_URL": "https://attacker.example"}, {"KAM_TOKEN": "kam_users_own"}).token is None


def test_defaults_are_offline_chinese_shipped_rules():
    got = read_settings({}, {})
    assert (got.url, got.token, got.lang, got.rules, got.remote) == (None, None, "zh", SHIPPED_RULES, False)
    assert "offline" in got.where()


def test_office_script_keys_and_its_endpoint_url_are_understood():
    got = read_settings({"URL": "https://kam.example.com/xlwings/score-sheet?lang=en", "TOKEN": "kam_x", "LANG": "EN"},
                        {})
    assert (got.url, got.token, got.lang) == ("https://kam.example.com", "kam_x", "en")


def test_the_locale_in_the_environment_is_not_our_language():
    assert read_settings({}, {"LANG": "C.UTF-8", "URL": "http://elsewhere", "KAM_LANG": "en"}).lang == "en"
    assert read_settings({}, {"LANG": "C.UTF-8", "URL": "http://elsewhere"}).url is None


def test_rule_book_folder_from_the_environment(tmp_path):
    assert read_settings({}, {"KAM_RULES": str(tmp_path)}).rules == Path(tmp_path)


@pytest.mark.parametrize("conf,words", [({"KAM_LANG": "fr"}, "KAM_LANG must be zh or en"),
                                        ({"KAM_URL": "kam:8080"}, "must start with http")])
def test_bad_settings_say_which_key(conf, words):
    with pytest.raises(AddinError, match=words):
        read_settings(conf, {})
