"""The registration journey in a real browser: Debian's chromium, headless, driven by Selenium
through the system chromedriver (Selenium Manager is never asked to download anything).

The invitation is sent by the desktop services through the loopback SMTP server; chromium opens
the link from the received email on the running portal, registers, and then sees the
invite-only notice once the organization switches it on. Screenshots of the pages are saved in
artifacts/ (and the test's tmp_path) for people to look at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine

from invite_desk.services.models import ReferralStatus
from invite_desk.services.operator import Operator
from invite_desk.services.referrals import referrals_of
from invite_desk.services.uow import UnitOfWork
from tests.db_servers import skip_or_fail
from tests.images import PNG_LOGO
from tests.portal_client import portal_app, running_portal, send_invitation
from tests.registration_fixtures import PASSWORD, member_by_email, set_policy
from tests.smtp_server import LoopbackSmtpServer

pytestmark = pytest.mark.chromium

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"




def _executable(env: str, *candidates: str) -> str:
    for candidate in (os.environ.get(env, ""), *candidates):
        found = shutil.which(candidate) if candidate else None
        if found:
            return found
    skip_or_fail(f"{env}: chromium/chromedriver not installed (Debian: chromium chromium-driver)")


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    chromium = _executable("INVITE_DESK_CHROMIUM", "chromium", "/usr/bin/chromium")
    chromedriver = _executable("INVITE_DESK_CHROMEDRIVER", "chromedriver", "/usr/bin/chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common import selenium_manager
    except ImportError:
        skip_or_fail("selenium is not installed (pip install '.[test]')")

    def no_downloads(*args: object, **kwargs: object) -> None:
        raise AssertionError("Selenium Manager must not run: the system chromedriver is used")

    monkeypatch.setattr(selenium_manager.SeleniumManager, "binary_paths", no_downloads)
    monkeypatch.setenv("SE_AVOID_STATS", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-extensions",
        "--password-store=basic", "--lang=en-US", "--window-size=1200,1000",
        "--hide-scrollbars", f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    service = Service(executable_path=chromedriver, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: Any, tmp_path: Path, name: str, *, width: int = 1200) -> Path:
    """The whole page at `width` CSS pixels (a phone's below 500), in tmp_path and copied to
    artifacts/."""
    metrics = {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": width < 500}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    height = int(driver.execute_script(
        "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)"))
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": height})
    path = tmp_path / name
    try:
        assert driver.save_screenshot(str(path)), name
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(path, ARTIFACTS / name)
    return path


@pytest.fixture
def app(engine: Engine, uow: UnitOfWork, admin: Operator) -> Flask:
    return portal_app(engine, uow)


def test_register_in_chromium_then_see_the_invite_only_notice(
    browser: Any, app: Flask, uow: UnitOfWork, admin: Operator,
    smtp_server: LoopbackSmtpServer, tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as expected
    from selenium.webdriver.support.ui import WebDriverWait

    with running_portal(app) as portal_url:
        link = send_invitation(
            uow, admin, smtp_server, portal_url, "Zoë Martin <zoe@example.org>",
            "Hi Zoë! We row every Saturday morning from the north pier.\n"
            "Come and try it — the first month is on us.",
            logo=PNG_LOGO, logo_mime="image/png",
        )
        browser.get(link)
        heading = browser.find_element(By.TAG_NAME, "h1").text
        assert heading == "Ada Admin invited you to join Harbour Rowing Club"
        assert "We row every Saturday" in browser.find_element(By.CSS_SELECTOR, ".message").text
        email = browser.find_element(By.ID, "email")
        assert email.get_attribute("value") == "zoe@example.org"
        assert email.get_attribute("readonly") is not None
        assert browser.find_element(By.ID, "first_name").get_attribute("value") == "Zoë"
        logo_width = browser.execute_script(
            "return document.querySelector('.brand-logo').naturalWidth")
        assert logo_width > 0  # the logo loaded (same origin, allowed by the CSP)
        accent = browser.execute_script(
            "return getComputedStyle(document.querySelector('.button')).backgroundColor")
        assert accent == "rgb(11, 122, 117)"  # #0B7A75 from /brand.css
        screenshot(browser, tmp_path, "portal-join.png")
        screenshot(browser, tmp_path, "portal-join-mobile.png", width=390)

        browser.find_element(By.ID, "password").send_keys(PASSWORD)
        browser.find_element(By.ID, "password_confirmation").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        # A click returns before the navigation it starts has finished: wait for it.
        WebDriverWait(browser, 30).until(expected.url_to_be(f"{portal_url}/welcome"))
        assert browser.find_element(By.TAG_NAME, "h1").text == (
            "Welcome to Harbour Rowing Club, Zoë!")
        screenshot(browser, tmp_path, "portal-welcome.png")

        set_policy(uow, admin, number_of_referrals_needed_for_signup=1)
        browser.get(f"{portal_url}/register")
        assert browser.find_element(By.TAG_NAME, "h1").text == "Registration is by invitation only"
        assert "Public registration is disabled" in browser.find_element(By.TAG_NAME, "main").text
        assert browser.find_elements(By.TAG_NAME, "form") == []
        screenshot(browser, tmp_path, "portal-invite-only.png")

        console = browser.get_log("browser")
        assert not [entry for entry in console if entry.get("level") == "SEVERE"], console

        browser.get(link)  # the used link, as its holder would see it later
        assert browser.find_element(By.TAG_NAME, "h1").text == (
            "This invitation has already been used")
        screenshot(browser, tmp_path, "portal-link-used.png")

    member = member_by_email(uow, "zoe@example.org")
    assert member is not None and member.referred_by_id == admin.member_id
    assert [(r.referrer_id, r.status) for r in referrals_of(uow, member.id)] == [
        (admin.member_id, ReferralStatus.COMPLETED)]
