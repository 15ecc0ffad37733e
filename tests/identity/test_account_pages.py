"""The pages emailed links open, in a real headless Chromium against a live server: the
invitation link sets the first password, the reset link a new one; the token leaves the
address bar at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import Tenant, login
from tests.core.events.conftest import LiveServer, serve
from tests.identity.conftest import Deliver
from tests.mail import TOKEN, MailServer, text_of
from touchstone.core.config import Settings
from touchstone.core.db import Database

API = "/api/v1"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FIRST, SECOND = "first chosen passphrase", "second chosen passphrase"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs Debian's chromium and chromium-driver",
    ),
]


@pytest.fixture
async def server(settings: Settings, committed: Database) -> AsyncIterator[LiveServer]:
    async with serve(settings, committed) as running:
        yield running


def _link_on(server: LiveServer, mail_text: str) -> str:
    """The mail's link, on the live server (links start at PUBLIC_URL)."""
    line = next(line for line in mail_text.splitlines() if TOKEN.search(line))
    link = urlsplit(line.strip())
    return f"{server.url}{link.path}#{link.fragment}"


def choose_password(url: str, password: str, profile: Path) -> tuple[str, str]:
    """Open the link, type the password twice, submit; (the page's words, its URL after)."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 30)
        wait.until(lambda d: d.find_element(By.ID, "form").is_displayed())
        address = driver.current_url
        driver.find_element(By.ID, "password").send_keys(password)
        driver.find_element(By.ID, "again").send_keys(password)
        driver.find_element(By.ID, "save").click()
        wait.until(lambda d: d.find_element(By.ID, "done").is_displayed())
        return driver.find_element(By.TAG_NAME, "main").text, address
    finally:
        driver.quit()


async def test_invitation_and_reset_links_work_in_a_browser(
    server: LiveServer,
    live_client: httpx.AsyncClient,
    tenant: Tenant,
    smtp_server: MailServer,
    deliver: Deliver,
    tmp_path: Path,
) -> None:
    email = f"browser-{uuid.uuid4().hex[:6]}@{tenant.slug}.example.com"
    created = await live_client.post(
        f"{API}/users",
        headers=tenant.headers,
        json={"email": email, "full_name": "Browser User", "role": "viewer"},
    )
    assert created.status_code == 201, created.text
    await deliver()
    (invitation,) = smtp_server.to(email)
    url = _link_on(server, text_of(invitation.message))
    words, address = await asyncio.to_thread(choose_password, url, FIRST, tmp_path / "a")
    assert "Accept your invitation" in words
    assert "Your password is set" in words
    assert "token" not in address, "the token leaves the address bar"
    assert await login(live_client, email, FIRST)

    reset = await live_client.post(f"{API}/auth/password-reset", json={"email": email})
    assert reset.status_code == 202
    await deliver()
    url = _link_on(server, text_of(smtp_server.to(email)[-1].message))
    words, _ = await asyncio.to_thread(choose_password, url, SECOND, tmp_path / "b")
    assert "Choose a new password" in words
    assert await login(live_client, email, SECOND)
    form = {"username": email, "password": FIRST}
    assert (await live_client.post(f"{API}/auth/token", data=form)).status_code == 401
