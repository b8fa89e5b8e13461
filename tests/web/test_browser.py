"""A real browser (Debian chromium, headless, through selenium) against a real `kam serve --demo` process:
sign in, edit the tier table in the grid, see a bad cell's message, preview the impact, save, find the change in
history with its semantic diff, evaluate an account and see its new tier, switch to 中文."""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER) and not os.environ.get("CI"),
                                reason="Debian chromium + chromium-driver are not installed (make test installs them)")

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    data = tmp_path_factory.mktemp("served")
    port = _free_port()
    kam = Path(sys.executable).with_name("kam")
    log = (data / "serve.log").open("w+")
    proc = subprocess.Popen([str(kam), "serve", "--demo", "--data", str(data / "kam"), "--port", str(port),
                             "--threads", "4"], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "KAM_TOKEN_MEMORY_KIB": "1024"})
    token, deadline = None, time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        log.seek(0)
        found = re.search(r"admin token \(shown once\): (\S+)", log.read())
        if found:
            token = found.group(1)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                pass
        time.sleep(0.3)
    assert token, "kam serve did not start"
    yield f"http://127.0.0.1:{port}", token
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)  # Debian's driver: no download
    yield driver
    driver.quit()


def test_edit_preview_save_history_evaluate_and_chinese(service, browser):
    url, token = service
    wait = WebDriverWait(browser, 30)
    browser.get(url + "/ui/rules")
    assert "/ui/signin" in browser.current_url
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.ID, "signin").click()
    wait.until(EC.presence_of_element_located((By.ID, "rule-tier")))

    def evaluate():
        browser.get(url + "/ui/evaluate")
        for name, value in (("account_id", "BROWSER-1"), ("revenue_12m", "5000000"),
                            ("gross_profit_12m", "650000"), ("dso_days", "45")):
            browser.find_element(By.ID, f"field-{name}").send_keys(value)
        browser.find_element(By.ID, "evaluate").click()
        return wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#out-tier td"))).text

    assert evaluate() == "B"  # 13% margin: under the 15% a ¥5M account needs for A

    browser.get(url + "/ui/rules/tier/edit")
    cell = browser.find_element(By.CSS_SELECTOR, 'tr.row:nth-child(1) td[data-col="gross_margin"] input')
    cell.clear()
    cell.send_keys(">= abc")
    message = browser.find_element(By.CSS_SELECTOR, 'tr.row:nth-child(1) td[data-col="gross_margin"] .msg')
    wait.until(lambda _: message.text.strip())
    assert browser.find_element(By.CSS_SELECTOR, 'tr.row:nth-child(1) td[data-col="gross_margin"]') \
        .get_attribute("class") == "bad"

    cell.clear()
    cell.send_keys(">= 0.12")
    wait.until(lambda _: not message.text.strip())
    browser.find_element(By.ID, "preview").click()
    migration = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#impact #migration")))
    assert migration.is_displayed()
    assert int(browser.find_element(By.ID, "tier-changed").text) > 0

    browser.find_element(By.ID, "message").send_keys("Big accounts reach A from a 12% margin")
    browser.find_element(By.ID, "save").click()
    wait.until(EC.presence_of_element_located((By.ID, "diff-tier")))
    assert "0.12" in browser.find_element(By.ID, "diff-tier").text

    browser.get(url + "/ui/history?rule=tier")
    browser.find_element(By.LINK_TEXT, browser.find_element(By.CSS_SELECTOR, "tr.revision td a").text).click()
    wait.until(EC.presence_of_element_located((By.ID, "diff-tier")))
    assert "Big accounts reach A from a 12% margin" in browser.find_element(By.CSS_SELECTOR, "b.message").text
    assert "lowered" in browser.find_element(By.ID, "diff-tier").text

    assert evaluate() == "A"

    browser.find_element(By.ID, "lang-zh").click()
    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "试算"))
    browser.get(url + "/ui/rules")
    assert "规则手册" in browser.find_element(By.TAG_NAME, "h1").text
    assert "客户等级" in browser.find_element(By.ID, "rule-tier").text

    browser.get(url + "/ui/dashboard")
    wait.until(lambda d: d.find_element(By.ID, "chart-pareto").get_attribute("data-drawn") == "1")
    assert browser.find_elements(By.CSS_SELECTOR, "#chart-pyramid svg")
    browser.save_screenshot(str(Path(os.environ.get("KAM_SCREENSHOTS", "/tmp")) / "kam-dashboard.png"))
