"""A real headless Chromium runs the live page against a live server: signs in with a
token, picks (or creates) the appraisal and item, streams the synthetic 22K clip as its
camera over WebRTC (and, in a second run, over the WebSocket fallback) and shows the karat;
then values it, the branch manager approves it and issues the certificate, and the
certificate's verification page says it is genuine."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from bench.generators.touchstone_clips import ClipSpec, Timeline, TouchstoneClip, write_y4m
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.appraisal.conftest import API, RING, Bank
from tests.core.events.conftest import LiveServer, serve
from touchstone.appraisal.purity.pipeline import Karat
from touchstone.core.config import Settings
from touchstone.core.db import Database

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PAGE_TIMEOUT_S = 60
LEAD_IN_S = 4.0

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
        "chromium-driver)",
    ),
]


@pytest.fixture
async def server(settings: Settings, committed: Database) -> AsyncIterator[LiveServer]:
    async with serve(settings, committed) as running:
        yield running


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "touchstone_22k.y4m"
    # Chromium's fake camera plays the clip from when the page opens the camera; the first
    # seconds show the bare stone while the page connects, as with a real appraiser who
    # opens the camera and then starts rubbing (a test joined mid-rubbing sees only part of
    # the streak and cannot read it under the acid).
    timeline = Timeline(
        ornament_enters=LEAD_IN_S + 0.4,
        rubbing_starts=LEAD_IN_S + 0.8,
        rubbing_ends=LEAD_IN_S + 3.0,
        ornament_gone=LEAD_IN_S + 3.4,
        acid_starts=LEAD_IN_S + 3.6,
        duration=LEAD_IN_S + 16.0,  # the test ends long before the clip loops
    )
    spec = ClipSpec(karat=Karat.K22, seed=3, timeline=timeline)
    frames = (frame for frame, _ in TouchstoneClip(spec))
    write_y4m(frames, path, fps=15)
    return path


def run_page(
    url: str,
    tokens: tuple[str, str],
    picked: tuple[str, str] | None,
    transport: str,
    clip: Path,
    profile: Path,
) -> dict[str, str]:
    """Drive the page in Chromium (blocking: run it in a thread); the body's data-* state.

    `tokens` are the appraiser's and the branch manager's. `picked` is the (appraisal, item)
    to test; None creates them with the page's form. After the test the appraiser values
    the appraisal, the manager approves it and issues the certificate, and the certificate's
    verification page is opened.
    """
    token, manager_token = tokens
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={clip}",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--allow-loopback-in-peer-connection",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        wait = WebDriverWait(driver, PAGE_TIMEOUT_S)
        driver.get(url)
        driver.find_element(By.ID, "token").send_keys(token)
        driver.find_element(By.CSS_SELECTOR, "#token-form button").click()
        wait.until(
            lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "ready"
        )
        if picked is None:
            driver.find_element(By.CSS_SELECTOR, "#new-appraisal summary").click()
            for field, value in (
                ("c-name", "Ravi Kumar"),
                ("c-phone", "+91 91234 56789"),
                ("c-id-number", "ABCDE1234F"),
                ("i-gross", "12.500"),
            ):
                driver.find_element(By.ID, field).send_keys(value)
            Select(driver.find_element(By.ID, "c-id-type")).select_by_value("pan")
            Select(driver.find_element(By.ID, "i-type")).select_by_value("chain")
            driver.find_element(By.CSS_SELECTOR, "#new-form button").click()
            wait.until(lambda d: "created" in d.find_element(By.ID, "message").text)
        else:
            appraisal_id, item_id = picked
            Select(driver.find_element(By.ID, "appraisal")).select_by_value(appraisal_id)
            wait.until(
                expected_conditions.presence_of_element_located(
                    (By.CSS_SELECTOR, f"#item option[value='{item_id}']")
                )
            )
            Select(driver.find_element(By.ID, "item")).select_by_value(item_id)
        Select(driver.find_element(By.ID, "transport")).select_by_value(transport)
        driver.find_element(By.ID, "start").click()
        body = driver.find_element(By.TAG_NAME, "body")
        wait.until(lambda d: body.get_attribute("data-state") == "completed")
        state = {
            "result": body.get_attribute("data-result") or "",
            "transport": body.get_attribute("data-transport") or "",
            "shown": driver.find_element(By.ID, "result").text,
            "message": driver.find_element(By.ID, "message").text,
            "appraisal": Select(
                driver.find_element(By.ID, "appraisal")
            ).first_selected_option.get_attribute("value")
            or "",
        }
        driver.find_element(By.ID, "amount").send_keys("50000")
        driver.find_element(By.ID, "value").click()
        outcome = driver.find_element(By.ID, "outcome")
        wait.until(lambda d: "status: valued" in outcome.text)
        driver.find_element(By.ID, "signout").click()
        driver.find_element(By.ID, "token").clear()
        driver.find_element(By.ID, "token").send_keys(manager_token)
        driver.find_element(By.CSS_SELECTOR, "#token-form button").click()
        wait.until(lambda d: body.get_attribute("data-state") == "ready")
        Select(driver.find_element(By.ID, "appraisal")).select_by_value(state["appraisal"])
        driver.find_element(By.ID, "comment").send_keys("Checked against the stone")
        driver.find_element(By.ID, "approve").click()
        wait.until(lambda d: "status: approved" in outcome.text)
        driver.find_element(By.ID, "certificate").click()
        verify = driver.find_element(By.ID, "verify")
        wait.until(lambda d: verify.is_displayed())
        # The printed link starts at PUBLIC_URL; its path and digest, on this test's server.
        state["verify_href"] = verify.get_attribute("href") or ""
        printed = urlsplit(state["verify_href"])
        driver.get(urlunsplit((*urlsplit(url)[:2], printed.path, printed.query, "")))
        state["verification"] = driver.find_element(By.TAG_NAME, "body").text
        return state
    finally:
        driver.quit()


@pytest.mark.parametrize(
    ("transport", "expected"), [("auto", "webrtc"), ("websocket", "websocket")]
)
async def test_browser_runs_a_purity_test_end_to_end(
    server: LiveServer,
    live_bank: Bank,
    settings: Settings,
    clip: Path,
    tmp_path: Path,
    transport: str,
    expected: str,
) -> None:
    picked: tuple[str, str] | None = None
    if transport == "auto":  # the WebSocket run creates its appraisal in the page instead
        appraisal_id = await live_bank.new_appraisal(RING)
        picked = (appraisal_id, (await live_bank.items(appraisal_id))[0]["id"])
    tokens = (
        live_bank.appraiser.headers["Authorization"].removeprefix("Bearer "),
        live_bank.manager.headers["Authorization"].removeprefix("Bearer "),
    )
    state = await asyncio.to_thread(
        run_page,
        f"{server.url}/app/appraisal/live",
        tokens,
        picked,
        transport,
        clip,
        tmp_path / "profile",
    )
    appraisal_id = state["appraisal"]
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
    assert state["transport"] == expected, state
    assert state["result"] == "22K", state
    assert state["shown"].startswith("22K")
    async with httpx.AsyncClient(base_url=server.url, headers=live_bank.appraiser.headers) as http:
        detail = (await http.get(f"{API}/appraisals/{appraisal_id}")).json()
    assert detail["status"] == "approved"
    assert detail["items"][0]["karat"] == "22K"
    assert state["verify_href"].startswith(f"{settings.link_base}/verify/certificates/")
    assert "Genuine" in state["verification"]
