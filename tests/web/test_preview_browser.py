"""The preview page end to end in headless Chromium (Debian's packages, tests/web/browser.py) against
the real `dah-cds serve` on a loopback port with the bundled content: pick a scenario patient (the
page's script fills in its hook, service and date), run it, read the cards in the DOM (the
scenario's golden summaries and indicators), and check a screenshot: not blank, and the critical
card's colour stripe is where the card is.  A malicious pasted Bundle shows as text and runs no
script.  A card marked overridden on the page is shown quiet, greyed, and not among the live cards."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import CONTENT
from tests.processes import stop_process
from tests.protocol_content import CONTENT as FIXTURE_CONTENT
from tests.protocol_content import patient_view_request
from tests.web.browser import BrowserUnavailable, ensure_chromium, start_chrome

CASE_ID = "DAH-05/p01-gpa-hypoxemic"
GOLDEN = CONTENT / "tests" / "DAH-05" / "p01-gpa-hypoxemic.response.json"
CRITICAL_RGB = (211, 47, 47)  # service/web/static/preview.css: .indicator-critical .stripe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser_ready():
    try:
        ensure_chromium()
    except BrowserUnavailable as exc:
        pytest.skip(f"no headless Chromium for the browser test: {exc}")


@pytest.fixture(scope="module")
def service_url(tmp_path_factory, browser_ready):
    yield from serve(tmp_path_factory.mktemp("preview-serve"))


@pytest.fixture(scope="module")
def proto_service_url(tmp_path_factory, browser_ready):
    """The service on the synthetic content (tests/fixtures/content), whose rules set quiet policies."""
    yield from serve(tmp_path_factory.mktemp("preview-proto"), FIXTURE_CONTENT)


def serve(tmp: Path, content: Path | None = None):
    """`dah-cds serve` on a free loopback port until the module's tests are done: its URL."""
    port = free_port()
    log = tmp / "serve.log"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
    environ.update({"CDS_HOST": "127.0.0.1", "CDS_PORT": str(port), "CDS_WORKERS": "1", "CDS_THREADS": "4",
                    "CDS_DATABASE_URL": f"sqlite:///{tmp / 'feedback.sqlite3'}", "CDS_LOG_LEVEL": "WARNING"})
    if content is not None:
        environ["CDS_CONTENT_DIR"] = str(content)
    process = subprocess.Popen([str(Path(sys.executable).parent / "dah-cds"), "serve"], env=environ,
                               stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(url + "/preview", timeout=2).read()
                break
            except OSError:
                assert process.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, "dah-cds serve did not answer within 180 s"
                time.sleep(0.5)
        yield url
    finally:
        stop_process(process, signal.SIGINT, 15, 15)


@pytest.fixture
def driver(tmp_path, browser_ready):
    chrome = start_chrome(tmp_path / "profile")
    chrome.set_page_load_timeout(120)
    yield chrome
    chrome.quit()


def golden_cards() -> list[tuple[str, str, str]]:
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    return [(c["source"]["topic"]["code"], c["indicator"], c["summary"]) for c in golden["cards"]]


def test_a_scenario_patient_shows_its_cards_with_their_colours(service_url, driver, tmp_path):
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver.get(service_url + "/preview")
    Select(driver.find_element(By.ID, "scenario")).select_by_value(CASE_ID)
    assert driver.find_element(By.ID, "now").get_attribute("value") == "2026-03-01T12:00:00Z"
    assert driver.find_element(By.ID, "service").get_attribute("value") == "dah-patient-view"
    assert driver.find_element(By.ID, "hook").get_attribute("value") == "patient-view"
    assert not driver.find_element(By.ID, "orders-field").is_displayed(), "no draft orders on patient-view"
    driver.find_element(By.ID, "run").click()
    WebDriverWait(driver, 120).until(lambda d: d.find_elements(By.ID, "results"))

    cards = driver.find_elements(By.CSS_SELECTOR, "article.card")
    shown = [(c.get_attribute("data-rule"), c.get_attribute("data-indicator"),
              c.find_element(By.CSS_SELECTOR, "h3.summary").text) for c in cards]
    assert shown == golden_cards()
    critical = next(c for c in cards if c.get_attribute("data-indicator") == "critical")
    stripe = critical.find_element(By.CSS_SELECTOR, ".stripe")
    assert stripe.value_of_css_property("background-color") == "rgba({}, {}, {}, 1)".format(*CRITICAL_RGB)
    assert driver.find_elements(By.CSS_SELECTOR, ".card-row aside.trace details")

    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", critical)
    box = driver.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "return [r.left, r.top, r.width, r.height, window.devicePixelRatio];", stripe)
    png = driver.get_screenshot_as_png()
    (tmp_path / "preview.png").write_bytes(png)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 20, "the screenshot is blank"
    white = sum(n for n, rgb in colours if rgb == (255, 255, 255) or rgb == (250, 250, 250))
    assert white < 0.98 * image.width * image.height, "the screenshot is blank"
    left, top, width, height, ratio = box
    assert width >= 8 and height >= 20, box
    region = image.crop((int((left + 2) * ratio), int((top + 4) * ratio),
                         int((left + width - 2) * ratio), int((top + height - 4) * ratio)))
    pixels = list(region.get_flattened_data())
    close = [p for p in pixels if all(abs(a - b) <= 12 for a, b in zip(p, CRITICAL_RGB, strict=True))]
    assert len(close) >= 0.9 * len(pixels), f"the critical colour is not where the card is: {region.getcolors()}"


def test_a_malicious_bundle_runs_no_script_in_the_browser(service_url, driver):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    payload = '</textarea><script>alert("x")</script><img src=x onerror=alert("y")>'
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p1", "name": [{"text": payload}]}}]}
    driver.get(service_url + "/preview")
    field = driver.find_element(By.ID, "bundle")
    driver.execute_script("arguments[0].value = arguments[1]", field, json.dumps(bundle) + payload)
    driver.find_element(By.ID, "run").click()
    WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "p.error"))
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018
    assert driver.find_element(By.ID, "bundle").get_attribute("value").endswith(payload), "shown back as text"
    assert not driver.find_elements(By.CSS_SELECTOR, "img")


def test_a_card_marked_overridden_shows_as_quiet_and_not_among_the_live_cards(proto_service_url, driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    prefetch = patient_view_request()["prefetch"]
    resources = [prefetch["patient"]] + [e["resource"] for key in ("conditions", "observations")
                                         for e in prefetch[key]["entry"]]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}
    driver.get(proto_service_url + "/preview")
    Select(driver.find_element(By.ID, "hook")).select_by_value("patient-view")
    Select(driver.find_element(By.ID, "service")).select_by_value("proto-patient-view")
    driver.execute_script("arguments[0].value = arguments[1]", driver.find_element(By.ID, "bundle"), json.dumps(bundle))
    driver.find_element(By.ID, "now").send_keys("2026-03-01T12:00:00Z")
    driver.find_element(By.ID, "run").click()
    WebDriverWait(driver, 120).until(lambda d: d.find_elements(By.ID, "results"))
    live = lambda: [c.get_attribute("data-rule") for c in driver.find_elements(By.CSS_SELECTOR, "article.card")]  # noqa: E731
    assert live() == ["PROTO-VERY-HIGH", "PROTO-HIGH", "PROTO-PROBLEMS"]
    assert not driver.find_elements(By.CSS_SELECTOR, "article.quiet-card")

    high = driver.find_element(By.CSS_SELECTOR, 'article.card[data-rule="PROTO-HIGH"]')
    mark = next(b for b in high.find_elements(By.CSS_SELECTOR, "button.mark-overridden")
                if b.text == "Mark overridden: Already done")
    mark.click()
    WebDriverWait(driver, 120).until(lambda d: d.find_elements(By.CSS_SELECTOR, "article.quiet-card"))
    assert live() == ["PROTO-VERY-HIGH", "PROTO-PROBLEMS"], "the quiet card is not among the live cards"
    [quiet] = driver.find_elements(By.CSS_SELECTOR, "article.quiet-card")
    assert (quiet.get_attribute("data-rule"), quiet.get_attribute("data-reason")) == ("PROTO-HIGH", "overridden")
    assert quiet.value_of_css_property("background-color") == "rgba(238, 238, 238, 1)", "greyed"
    assert quiet.find_element(By.CSS_SELECTOR, ".until").text == "2026-03-02T12:00:00+00:00"
    assert quiet.find_element(By.CSS_SELECTOR, ".override-reason").text == "done"
    page = quiet.find_element(By.CSS_SELECTOR, ".rule-page a")
    assert page.get_attribute("href").endswith("/guidance/PROTO-HIGH")
    assert "PROTO-HIGH: overridden" in driver.find_element(By.ID, "decisions-marked").text
