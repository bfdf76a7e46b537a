"""The report of a tiny workflow run, opened in a real headless Chromium (Debian's chromium and chromium-driver).

Checks what a reader's browser does with the page: no console error, no request leaving the file, every
image loaded, and the pooled table showing the numbers of pooled/fixed_effects.csv as the page formats them.
Skipped, with the reason, where selenium, Chromium or chromedriver is missing (``.ci/run`` installs them).
"""
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from mlmi.report.run_report import FIGURES, number, p_text
from test_report import legends
from test_workflow import TINY, finished

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = shutil.which("chromium")
#: Chromium flags: headless, and nothing that talks to the network on its own.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
         "--no-first-run", "--disable-component-update", "--disable-sync", "--window-size=1366,900"]

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
if CHROMIUM is None or not CHROMEDRIVER.exists():
    pytest.skip("Chromium or /usr/bin/chromedriver is missing (apt-get install -y chromium chromium-driver)",
                allow_module_level=True)


def chromium(profile: Path):
    """A headless Chromium driven by /usr/bin/chromedriver, logging the console and the network."""
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def requests(performance_log: list[dict]) -> list[dict]:
    """Every request the browser sent: its URL and the document that asked for it."""
    messages = [json.loads(entry["message"])["message"] for entry in performance_log]
    return [{"url": m["params"]["request"]["url"], "document": m["params"].get("documentURL", "")}
            for m in messages if m["method"] == "Network.requestWillBeSent"]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return finished(tmp_path_factory.mktemp("browser"), TINY)


@pytest.fixture(scope="module")
def opened(results, tmp_path_factory):
    """Load report.html once; keep the logs, the images' state and the pooled table's cells."""
    driver = chromium(tmp_path_factory.mktemp("profile"))
    try:
        url = (results / "report.html").resolve().as_uri()
        driver.get(url)
        return {
            "url": url,
            "console": driver.get_log("browser"),
            "requests": requests(driver.get_log("performance")),
            "images": driver.execute_script(
                "return Array.from(document.images, i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth}))"),
            "table": driver.execute_script(
                "const table = document.querySelector('#fixed-effects table');"
                "const texts = cells => Array.from(cells, cell => cell.textContent);"
                "return {head: texts(Array.from(table.tHead.rows).pop().cells),"
                "        rows: Array.from(table.tBodies[0].rows, row => texts(row.cells))};"),
            "model_info": driver.execute_script(
                "const table = document.querySelector('#model-information table');"
                "const warnings = Array.from(table.tHead.rows[0].cells, cell => cell.textContent).indexOf('warnings');"
                "return {table: table.getBoundingClientRect().width, overflow: table.parentElement.scrollWidth"
                "        - table.parentElement.clientWidth, page: document.documentElement.clientWidth,"
                "        line: 1.45 * parseFloat(getComputedStyle(table).fontSize),"
                "        rows: Array.from(table.tBodies[0].rows,"
                "                         row => ({height: row.getBoundingClientRect().height,"
                "                                  text: row.cells[warnings].textContent}))};"),
        }
    finally:
        driver.quit()


def test_no_console_error(opened):
    assert [entry for entry in opened["console"] if entry["level"] == "SEVERE"] == []


def test_no_request_leaves_the_file(opened):
    own = [r["url"] for r in opened["requests"] if r["document"] == opened["url"]]
    assert opened["url"] in own
    assert all(url.startswith(("file:", "data:")) for url in own), own
    assert not [r["url"] for r in opened["requests"] if r["url"].startswith(("http:", "https:", "ws:", "wss:"))]


def test_every_image_loaded(opened):
    assert len(opened["images"]) == len(FIGURES)
    assert all(image["complete"] and image["width"] > 0 for image in opened["images"]), opened["images"]


def test_pooled_table_shows_the_csv(opened, results):
    fixed = pd.read_csv(results / "pooled" / "fixed_effects.csv")
    head, rows = opened["table"]["head"], opened["table"]["rows"]
    pooled = ["estimate", "std_error", "df", "conf_low", "conf_high", "p_value", "riv", "fmi"]
    assert head[-len(pooled):] == ["estimate", "SE", "df", "95% CI low", "95% CI high", "p", "riv", "fmi"]
    assert [row[0] for row in rows] == list(fixed["term"])
    for row, expected in zip(rows, fixed.itertuples(index=False)):
        assert row[-len(pooled):] == [(p_text if column == "p_value" else number)(getattr(expected, column))
                                      for column in pooled], row[0]


def test_model_information_fits_the_page_with_its_warnings_wrapped(opened):
    """The widest table, with the longest text (a fit's warnings), within the page and its section (no sideways
    scrolling), its warnings wrapped at 20 characters a line or more, never a word a line."""
    shown = opened["model_info"]
    assert max(len(row["text"]) for row in shown["rows"]) > 120, "too few warnings for this test to show anything"
    assert shown["table"] <= shown["page"] and shown["overflow"] <= 0, shown
    for row in shown["rows"]:
        assert row["height"] <= (len(row["text"]) / 20 + 2) * shown["line"], row


def test_every_column_of_every_table_is_explained(results):
    for header, explained in legends((results / "report.html").read_text()):
        assert header <= explained, header - explained
