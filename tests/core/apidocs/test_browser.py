"""A real headless Chromium opens `/docs` and `/redoc` on a live server with every other host
unreachable: each page renders every operation, loads nothing from elsewhere, fails no
request and meets no Content-Security-Policy violation; on `/docs` the Authorize button
signs in and "Try it out" calls the API with the token."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import PASSWORD, Tenant
from tests.core.events.conftest import LiveServer, serve
from touchstone.core.config import Settings
from touchstone.core.db import Database

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PAGE_TIMEOUT_S = 60
SCROLL_SETTLE_S = 0.2
"""Time for Swagger UI's virtual list to draw what a scroll brought into view."""
REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
        "chromium-driver)",
    ),
]

WATCH_CSP = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""
"""Installed before any page script runs (DevTools scripts are not subject to the CSP)."""


@dataclass
class PageReport:
    requested: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    shown: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
async def server(settings: Settings, committed: Database) -> AsyncIterator[LiveServer]:
    async with serve(settings, committed) as running:
        yield running


@contextmanager
def chromium(profile: Path) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
        # No network: any host but the live server's address fails to resolve.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WATCH_CSP})
        driver.get_log("performance")  # the browser's own start page is not ours to judge
        yield driver
    finally:
        driver.quit()


def click(driver: WebDriver, element: WebElement) -> None:
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def report(driver: WebDriver, shown: dict[str, Any]) -> PageReport:
    """What the browser asked for and what went wrong, from its DevTools and console logs."""
    result = PageReport(shown=shown)
    urls: dict[str, str] = {}
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message["method"] == "Network.requestWillBeSent":
            urls[params["requestId"]] = params["request"]["url"]
            result.requested.append(params["request"]["url"])
        elif message["method"] == "Network.responseReceived":
            response = params["response"]
            if response["status"] >= 400:
                result.failed.append(f"{response['status']} {response['url']}")
        elif message["method"] == "Network.loadingFailed" and not params.get("canceled"):
            url = urls.get(params["requestId"], "?")
            result.failed.append(f"{params.get('errorText')} {url}")
    result.console = [
        entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"
    ]
    result.violations = list(driver.execute_script("return window.__violations"))
    return result


def shown_operations(driver: WebDriver) -> int:
    """The operations Swagger UI shows on the way down the page: it keeps a long list (150
    tags and operations or more) virtual, in the DOM only near the viewport."""
    seen: set[str] = set()
    bottom, position = False, 0
    while not bottom:
        ids = driver.execute_script(
            "return Array.from(document.querySelectorAll('.opblock'), e => e.id)"
        )
        seen.update(ids)
        position += driver.execute_script("return window.innerHeight") // 2
        bottom = position >= driver.execute_script("return document.body.scrollHeight")
        driver.execute_script("window.scrollTo(0, arguments[0])", position)
        time.sleep(SCROLL_SETTLE_S)
    driver.execute_script("window.scrollTo(0, 0)")
    return len(seen)


def open_docs(base: str, tenant: Tenant, profile: Path) -> PageReport:
    """Load /docs, count the operations it shows, sign in with Authorize and call GET /me."""
    with chromium(profile) as driver:
        wait = WebDriverWait(driver, PAGE_TIMEOUT_S)
        driver.get(f"{base}/docs")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock"))
        shown: dict[str, Any] = {
            "operations": shown_operations(driver),
            "title": driver.find_element(By.CSS_SELECTOR, ".info .title").text,
        }
        click(driver, driver.find_element(By.CSS_SELECTOR, ".auth-wrapper .authorize"))
        wait.until(lambda d: d.find_elements(By.ID, "oauth_username"))
        driver.find_element(By.ID, "oauth_username").send_keys(tenant.admin_email)
        driver.find_element(By.ID, "oauth_password").send_keys(PASSWORD)
        click(driver, driver.find_element(By.CSS_SELECTOR, ".auth-container .modal-btn.authorize"))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".auth-container .btn-done"))
        wait.until(lambda d: "Authorized" in d.find_element(By.CSS_SELECTOR, ".modal-ux").text)
        click(driver, driver.find_element(By.CSS_SELECTOR, ".auth-container .btn-done"))
        me = driver.find_element(
            By.CSS_SELECTOR, ".opblock-get .opblock-summary-path[data-path='/api/v1/me']"
        )
        block = me.find_element(By.XPATH, "./ancestor::div[contains(@class, 'opblock ')]")
        click(driver, me)
        wait.until(lambda d: block.find_elements(By.CSS_SELECTOR, ".try-out__btn"))
        click(driver, block.find_element(By.CSS_SELECTOR, ".try-out__btn"))
        click(driver, block.find_element(By.CSS_SELECTOR, ".execute"))
        status = ".live-responses-table .response .response-col_status"
        wait.until(lambda d: block.find_elements(By.CSS_SELECTOR, status))
        shown["me_status"] = block.find_element(By.CSS_SELECTOR, status).text
        shown["me_body"] = block.find_element(By.CSS_SELECTOR, ".live-responses-table").text
        return report(driver, shown)


def open_redoc(base: str, profile: Path) -> PageReport:
    """Load /redoc and count the operations in its side menu."""
    with chromium(profile) as driver:
        wait = WebDriverWait(driver, PAGE_TIMEOUT_S)
        driver.get(f"{base}/redoc")
        operations = "[data-section-id^='operation/']"
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, operations))
        sections = driver.find_elements(By.CSS_SELECTOR, operations)
        shown = {
            # each operation is in the side menu and in the page, under the same section id
            "operations": len({s.get_attribute("data-section-id") for s in sections}),
            "title": driver.find_element(By.TAG_NAME, "h1").text,
        }
        return report(driver, shown)


async def operation_count(base: str) -> int:
    async with httpx.AsyncClient(base_url=base) as http:
        document = (await http.get("/openapi.json")).json()
    return sum(len(set(item) & METHODS) for item in document["paths"].values())


def assert_offline_and_clean(found: PageReport, base: str, *, blocked: str | None = None) -> None:
    """Nothing but this server (and `data:`/`blob:` URLs the page makes), no failure, no
    policy violation; `blocked` is the one external URL the page may try and the policy stop."""
    requested = [url for url in found.requested if url != blocked]
    elsewhere = [url for url in requested if not url.startswith((base, "data:", "blob:"))]
    assert elsewhere == [], f"requests to other hosts: {elsewhere}"
    failed = [line for line in found.failed if not (blocked and line.endswith(f" {blocked}"))]
    assert failed == [], f"failed requests: {failed}"
    violations = [v for v in found.violations if v != f"img-src {blocked}"]
    assert violations == [], f"Content-Security-Policy violations: {violations}"
    console = [line for line in found.console if not (blocked and blocked in line)]
    assert console == [], f"console errors: {console}"


async def test_swagger_ui_renders_signs_in_and_calls_the_api_offline(
    server: LiveServer, tenant: Tenant, tmp_path: Path
) -> None:
    found = await asyncio.to_thread(open_docs, server.url, tenant, tmp_path / "profile")
    assert found.shown["title"].startswith("Touchstone")
    assert found.shown["operations"] == await operation_count(server.url)
    assert found.shown["me_status"] == "200", found.shown
    assert tenant.admin_email in found.shown["me_body"]
    assert_offline_and_clean(found, server.url)
    assert f"{server.url}/docs/assets/swagger-ui-bundle.js" in found.requested


async def test_redoc_renders_every_operation_offline(server: LiveServer, tmp_path: Path) -> None:
    """ReDoc 2 always shows Redocly's logo from their CDN in its footer; the page's policy
    blocks it before any request leaves (ReDoc then hides the image). Nothing else may."""
    found: PageReport = await asyncio.to_thread(open_redoc, server.url, tmp_path / "profile")
    assert found.shown["title"].startswith("Touchstone")
    assert found.shown["operations"] == await operation_count(server.url)
    assert_offline_and_clean(found, server.url, blocked=REDOCLY_LOGO)
