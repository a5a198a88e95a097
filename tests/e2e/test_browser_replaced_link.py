"""A link closed as a duplicate, opened in a real browser (headless chromium via Selenium and
the system chromedriver, as test_browser_registration.py): the page explains, the button asks
for the current link, and the confirmation says it is on its way. Screenshots go to
artifacts/ for people to look at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine

from invite_desk.services import organization
from invite_desk.services.operator import Operator
from invite_desk.services.uow import UnitOfWork
from tests.e2e.test_browser_registration import browser, screenshot  # noqa: F401 (fixture)
from tests.images import PNG_LOGO
from tests.portal_client import portal_app, running_portal
from tests.registration_fixtures import invite
from tests.replaced_link_fixtures import close_as_duplicate, link_emails

pytestmark = pytest.mark.chromium


@pytest.fixture
def app(engine: Engine, uow: UnitOfWork, admin: Operator) -> Flask:
    return portal_app(engine, uow)


def test_the_replaced_link_page_asks_for_the_current_link_in_chromium(
        browser: Any, app: Flask, uow: UnitOfWork, admin: Operator,  # noqa: F811
        tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as expected
    from selenium.webdriver.support.ui import WebDriverWait

    organization.update_organization(uow, admin, {
        "logo": PNG_LOGO, "logo_mime": "image/png", "accent_color": "#0B7A75"})
    live = invite(uow, admin, "zoe@example.org")
    closed = close_as_duplicate(uow, admin, "zoe@example.org")
    with running_portal(app) as portal_url:
        browser.get(f"{portal_url}/join/{closed.token}")
        assert browser.find_element(By.TAG_NAME, "h1").text == (
            "This link was replaced by another invitation")
        main = browser.find_element(By.TAG_NAME, "main").text
        assert "use the link in the most recent email" in main
        assert live.token not in browser.page_source
        screenshot(browser, tmp_path, "portal-link-replaced.png")

        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(browser, 30).until(
            expected.url_to_be(f"{portal_url}/join/{closed.token}/current-link"))
        assert browser.find_element(By.TAG_NAME, "h1").text == (
            "Your current invitation is on its way")
        assert "zoe@example.org" in browser.find_element(By.TAG_NAME, "main").text
        screenshot(browser, tmp_path, "portal-link-replaced-sent.png")
        console = browser.get_log("browser")
        # The page's own 410 and the 202 are logged as "failed" loads; a blocked style or
        # image (the CSP) would be an error of another source.
        severe = [e for e in console if e.get("level") == "SEVERE"
                  and "responded with a status of" not in e.get("message", "")]
        assert not severe, console
    assert len(link_emails(uow)) == 1
