"""The customer pages in a real headless browser (Debian's chromium + chromedriver, selenium).

A simulated fortnight goes into Redis; the app runs under uvicorn on a free port with a token;
the browser signs in, opens the at-risk list, follows the first customer and checks the
timeline: the customer's score, every kept ledger entry, the score chart and promise bars.
Screenshots go to docs/img/ when VALEUR_UPDATE_SCREENSHOTS=1 (else to the test's tmp dir).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.fixtures.servers import run_services
from tests.integration.api_support import READ_TOKEN, Loaded, load, simulated
from valeur_monitor.api import resources as R
from valeur_monitor.api.app import create_app

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    if shutil.which("chromedriver") is None or shutil.which("chromium") is None:
        run_services("install", "chromium")
    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--hide-scrollbars", "--window-size=1200,900"):
        options.add_argument(arg)
    options.binary_location = str(shutil.which("chromium"))
    driver = webdriver.Chrome(service=Service(str(shutil.which("chromedriver"))),
                              options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def site(redis_db_url: str) -> Iterator[tuple[str, Loaded, R.Context]]:
    loaded = load(redis_db_url, simulated(seed=21, customers=120, days=14))
    context = loaded.context()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(context), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", loaded, context
    finally:
        server.should_exit = True
        thread.join(10)


def shot(driver: Any, name: str, tmp: Path, max_height: int) -> Path:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1200, min(int(height), max_height))
    folder = ROOT / "docs" / "img" if os.environ.get("VALEUR_UPDATE_SCREENSHOTS") else tmp
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    assert driver.save_screenshot(str(path)) and path.stat().st_size > 10_000
    driver.set_window_size(1200, 900)
    return path


def settled(driver: Any, condition: Any, what: str) -> Any:
    """Wait for a navigation a click or Enter started: WebDriver returns before the next page
    has loaded (a form post, a link), so reading the page at once can see the old one."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, 20, poll_frequency=0.05).until(condition)
    except TimeoutException:
        raise AssertionError(f"{what}: still at {driver.current_url}") from None


def test_timeline_and_at_risk_pages(browser: Any, site: tuple[str, Loaded, R.Context],
                                    tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    base, _loaded, context = site
    browser.get(f"{base}/ui/at-risk")
    assert "/ui/login" in browser.current_url                 # tokens configured: sign in
    browser.find_element(By.NAME, "token").send_keys(READ_TOKEN)
    browser.find_element(By.CSS_SELECTOR, "form button").click()
    settled(browser, ec.url_matches(r"/ui/at-risk$"), "signed in, back to the at-risk list")
    settled(browser, ec.presence_of_element_located((By.ID, "at-risk")), "at-risk table")
    rows = browser.find_elements(By.CSS_SELECTOR, "#at-risk a")
    expected = R.at_risk_list(context, limit=50, as_of=None, team=None, channel=None)
    assert [r.text for r in rows] == [i.customer for i in expected.items] and rows
    shot(browser, "at-risk.png", tmp_path, 1300)

    customer = rows[0].text
    rows[0].click()
    heading = settled(browser, ec.presence_of_element_located((By.ID, "customer")), "timeline")
    assert heading.text.startswith(customer)
    story = R.story(context, customer, None)
    assert browser.find_element(By.ID, "score").text == f"{story.view.score:+.2f}"
    assert browser.find_element(By.ID, "band").text == story.view.band
    entries = browser.find_elements(By.CSS_SELECTOR, "#ledger tr.entry")
    assert [int(e.get_attribute("data-seq")) for e in entries] == [
        e.seq for e in story.entries[:300]]
    first = story.entries[0]
    assert first.explain in entries[0].text and first.events[0] in entries[0].text
    line = browser.find_element(By.CSS_SELECTOR, "svg[data-chart=score] polyline.score-line")
    assert len(line.get_attribute("points").split()) == len(story.points) > 2
    bars = browser.find_elements(By.CSS_SELECTOR, "svg[data-chart=promises] rect")
    assert len(bars) == min(40, len(story.bars)) and bars
    outcomes = {b.get_attribute("data-outcome") for b in bars}
    assert outcomes <= {"open", "paused", "kept", "late", "broken"}
    dims = browser.find_elements(By.CSS_SELECTOR, "svg[data-chart=dimensions] rect")
    assert len(dims) == len(story.view.dims)
    shot(browser, "timeline.png", tmp_path, 1700)

    # search: a known id goes to its page, an unknown one says so
    box = browser.find_element(By.NAME, "q")
    box.clear()
    box.send_keys("nobody-here\n")
    message = settled(browser, ec.presence_of_element_located((By.ID, "message")), "search")
    assert "No customer" in message.text
