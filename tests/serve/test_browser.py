"""The triage app in a real browser: Debian's headless Chromium driven by Selenium.

`malseq serve` runs as a user would start it (a child process on 127.0.0.1, a free port) over a
test database with hostile packages. The browser loads the queue, opens a hostile release, labels
it with the form, and the label is checked in the database. No script may exist or run on any
page, and the Content-Security-Policy must not have had to block anything (which would mean a
page relies on something it forbids). Screenshots of each page are kept in tests/artifacts/
(git-ignored) and in the test's tmp folder.

Skipped only when Chromium or its driver is absent outside CI; with `CI` set it must run
(.ci/run installs `chromium` and `chromium-driver`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from triage_db import HANDLER, HOSTILE_FILE, HOSTILE_NPM_NAME, SCRIPT

from malseq.watch.store import Label, open_store

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
STARTUP_SECONDS = 90  # generous: a busy 2-core machine; we poll, never sleep a fixed time


def _browser_available() -> bool:
    return Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()


if not _browser_available():
    if os.environ.get("CI"):
        raise RuntimeError("CI must run the browser test: install Debian's chromium and chromium-driver (.ci/run)")
    pytest.skip("Chromium and chromedriver are not installed (apt-get install -y chromium chromium-driver)",
                allow_module_level=True)

selenium = pytest.importorskip("selenium", reason="selenium is in the dev extra")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(triage_db: tuple[Path, dict[str, int], float], tmp_path: Path) -> Iterator[tuple[str, Path, dict[str, int]]]:
    db, ids, _ = triage_db
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    env.pop("MALSEQ_SERVE_TOKEN", None)
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "malseq", "serve", "--db", str(db), "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"malseq serve exited {proc.returncode}: "
                                     f"{(tmp_path / 'serve.log').read_text(errors='replace')}")
            try:
                with urllib.request.urlopen(f"{base}/", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError("malseq serve did not answer in time")
            time.sleep(0.2)
        yield base, db, ids
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1100", "--hide-scrollbars"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _screenshot(driver: Any, tmp_path: Path, name: str) -> Path:
    # the whole page, not only the window
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(1280, min(max(height + 40, 600), 4000))
    path = tmp_path / name
    assert driver.save_screenshot(str(path)), name
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, ARTIFACTS / name)
    assert path.stat().st_size > 10_000  # a rendered page, not an empty image
    return path


def _assert_harmless(driver: Any) -> None:
    assert driver.execute_script("return document.title") != "pwned"  # what every injected payload would set
    assert driver.find_elements(By.TAG_NAME, "script") == []
    assert driver.find_elements(By.TAG_NAME, "img") == []  # the only images would be injected ones
    assert driver.find_elements(By.CSS_SELECTOR, "[onerror], [onmouseover], [onload]") == []
    for a in driver.find_elements(By.TAG_NAME, "a"):
        assert not (a.get_attribute("href") or "").lower().startswith("javascript:")


def _csp_violations(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]


def test_queue_release_label_in_chromium(server: tuple[str, Path, dict[str, int]], browser: Any,
                                         tmp_path: Path) -> None:
    base, db, ids = server
    wait = WebDriverWait(browser, 30)

    browser.get(f"{base}/")
    wait.until(expected_conditions.presence_of_element_located((By.ID, "queue")))
    _assert_harmless(browser)
    queue_text = browser.find_element(By.ID, "queue").text
    assert f"{HOSTILE_NPM_NAME} 6.6.6" in queue_text  # shown as text, exactly as the registry named it
    first_row = browser.find_elements(By.CSS_SELECTOR, "#queue tbody tr")[0].text
    assert "malicious" in first_row  # highest score first
    _screenshot(browser, tmp_path, "queue.png")

    browser.find_element(By.PARTIAL_LINK_TEXT, "6.6.6").click()
    wait.until(expected_conditions.presence_of_element_located((By.ID, "sequence")))
    assert browser.current_url == f"{base}/release/{ids['hostile_npm']}"
    _assert_harmless(browser)
    assert browser.find_element(By.ID, "release-title").text == f"npm: {HOSTILE_NPM_NAME} 6.6.6"
    assert HOSTILE_FILE in browser.find_element(By.ID, "sequence").text
    code = "\n".join(x.text for x in browser.find_elements(By.CSS_SELECTOR, ".excerpt .code"))
    assert SCRIPT in code and HANDLER in code  # the hostile code shown as code
    assert "\\x1b]0;pwned" in browser.find_element(By.ID, "metadata").text  # terminal escapes made visible
    _screenshot(browser, tmp_path, "release.png")

    browser.find_element(By.ID, "reviewer").clear()
    browser.find_element(By.ID, "reviewer").send_keys("carol")
    browser.find_element(By.ID, "note").send_keys(f"exfiltrates env; {SCRIPT}")
    browser.find_element(By.ID, "label-malicious").click()
    wait.until(expected_conditions.presence_of_element_located((By.ID, "saved")))
    _assert_harmless(browser)
    assert browser.find_element(By.ID, "current-label").text == "malicious"
    assert f"exfiltrates env; {SCRIPT}" in browser.find_element(By.ID, "label-history").text
    with open_store(db, readonly=True) as store:
        detail = store.release(ids["hostile_npm"])
        assert detail is not None and detail.label is not None
        assert (detail.label.label, detail.label.reviewer, detail.label.note) == (
            Label.MALICIOUS, "carol", f"exfiltrates env; {SCRIPT}")
    _screenshot(browser, tmp_path, "release-labelled.png")

    browser.get(f"{base}/release/{ids['tiny_lib']}")
    wait.until(expected_conditions.presence_of_element_located((By.ID, "diff")))
    _assert_harmless(browser)
    _screenshot(browser, tmp_path, "release-diff.png")

    browser.get(f"{base}/dashboard")
    wait.until(expected_conditions.presence_of_element_located((By.ID, "scanned-per-hour")))
    _assert_harmless(browser)
    # flagged and reviewed: env-collector (malicious, by ann) and the release labelled above; unsure left out
    assert browser.find_element(By.ID, "precision").text == "100%"
    _screenshot(browser, tmp_path, "dashboard.png")
    assert _csp_violations(browser) == []
