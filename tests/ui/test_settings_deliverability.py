"""Settings › Invitations: the reminder and soft-bounce settings (issue 13) load, check and save
like the page's other fields."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from invite_desk.services import settings
from invite_desk.services.operator import Operator
from invite_desk.services.uow import UnitOfWork
from tests.ui.test_settings_pages import click, open_settings, retype


def test_reminder_days_and_soft_bounces_are_saved_and_checked(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator
) -> None:
    window = open_settings(qtbot, uow, admin, "invitations")
    page = window.page("invitations")
    assert page.reminder_edit.text() == "0" and page.soft_bounce_edit.text() == "3"
    retype(qtbot, page.reminder_edit, "3")
    retype(qtbot, page.soft_bounce_edit, "2")
    with qtbot.waitSignal(window.settings_saved, timeout=2000):
        click(qtbot, window.save_button)
    stored = settings.get_settings(uow, admin.organization_id)
    assert (stored.reminder_days_before, stored.soft_bounces_to_suppress) == (3, 2)

    retype(qtbot, page.soft_bounce_edit, "0")  # at least 1
    click(qtbot, window.save_button)
    assert settings.get_settings(uow, admin.organization_id).soft_bounces_to_suppress == 2
    assert "between 1 and 100" in page.check()["soft_bounces_to_suppress"]
