"""The first-run setup dialog creates the organization and its first administrator."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog
from pytestqt.qtbot import QtBot
from sqlalchemy import select

from invite_desk.services import auth
from invite_desk.services.models import Member, Organization
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from invite_desk.ui.setup_dialog import PASSWORDS_DIFFER, SetupDialog
from invite_desk.ui.tasks import SynchronousRunner

PASSWORD = "a long passphrase"


@pytest.fixture
def dialog(qtbot: QtBot, uow: UnitOfWork) -> SetupDialog:
    dlg = SetupDialog(uow, runner=SynchronousRunner())
    qtbot.addWidget(dlg)
    dlg.show()
    return dlg


def fill(qtbot: QtBot, dialog: SetupDialog, **overrides: str) -> None:
    values = {
        "organization_name": "Harbour Rowing Club",
        "description": "Rowing along the coast.",
        "registration_url": "https://join.harbour.example",
        "first_name": "Ada",
        "last_name": "Byron",
        "email": "Ada.Byron@Harbour.example",
        "password": PASSWORD,
        "confirm": PASSWORD,
    } | overrides
    for name, value in values.items():
        editor = getattr(dialog, f"{name}_edit")
        editor.clear()
        if value:
            qtbot.keyClicks(editor, value)


def test_creates_the_organization_and_its_first_admin(
    qtbot: QtBot, dialog: SetupDialog, uow: UnitOfWork
) -> None:
    fill(qtbot, dialog)
    with qtbot.waitSignal(dialog.organization_created) as created:
        qtbot.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)

    assert dialog.result() == QDialog.DialogCode.Accepted
    operator = created.args[0]
    assert isinstance(operator, Operator)
    assert operator is dialog.operator
    assert operator.role is Role.ADMIN_TENANT
    with uow:
        org = uow.session.scalars(select(Organization)).one()
        admin = uow.session.scalars(select(Member)).one()
        assert org.name == "Harbour Rowing Club"
        assert org.description == "Rowing along the coast."
        assert org.registration_base_url == "https://join.harbour.example"
        assert (admin.first_name, admin.last_name) == ("Ada", "Byron")
        assert admin.email_normalized == "ada.byron@harbour.example"
        assert admin.role == "ADMIN_TENANT"
        assert admin.organization_id == org.id
        assert admin.password_hash is not None
        assert admin.password_hash.startswith("$argon2")
        assert PASSWORD not in admin.password_hash
        admin_id = admin.id
    assert operator.member_id == admin_id
    assert not auth.needs_setup(uow)
    assert auth.sign_in(uow, "ada.byron@harbour.example", PASSWORD).member_id == admin_id


def test_errors_are_shown_next_to_the_fields_and_the_dialog_stays_open(
    qtbot: QtBot, dialog: SetupDialog, uow: UnitOfWork
) -> None:
    fill(qtbot, dialog, organization_name="", email="ada@", password="short", confirm="short")
    qtbot.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)

    assert dialog.isVisible()
    assert dialog.result() != QDialog.DialogCode.Accepted
    assert dialog.field_error("organization_name") == "Organization name is required"
    assert "@" in dialog.field_error("email")
    assert "at least 10 characters" in dialog.field_error("password")
    assert dialog.field_error("first_name") == ""
    assert dialog.field_error("registration_base_url") == ""
    assert dialog.error_text == ""  # every error found its field: no message box, no banner
    assert dialog.organization_name_edit.property("invalid") == "true"
    assert dialog.focusWidget() is dialog.organization_name_edit  # the first field to fix
    assert dialog.create_button.isEnabled()
    assert auth.needs_setup(uow)


def test_a_bad_registration_address_is_shown_next_to_its_field(
    qtbot: QtBot, dialog: SetupDialog, uow: UnitOfWork
) -> None:
    fill(qtbot, dialog, registration_url="join.harbour")
    qtbot.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)

    assert dialog.isVisible()
    assert "https://" in dialog.field_error("registration_base_url")
    assert auth.needs_setup(uow)


def test_errors_clear_once_corrected(qtbot: QtBot, dialog: SetupDialog, uow: UnitOfWork) -> None:
    fill(qtbot, dialog, first_name="", last_name="")
    qtbot.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)
    assert dialog.field_error("first_name") == "Your name is required"

    fill(qtbot, dialog)
    qtbot.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)
    assert dialog.field_error("first_name") == ""
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert not auth.needs_setup(uow)


def test_password_mismatch_is_caught_before_the_service_is_called(
    qtbot: QtBot, dialog: SetupDialog, uow: UnitOfWork, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("setup_organization called despite the mismatch")

    monkeypatch.setattr(auth, "setup_organization", must_not_run)
    fill(qtbot, dialog, confirm="a long passphrasE")
    qtbot.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)

    assert dialog.isVisible()
    assert dialog.field_error("password_confirmation") == PASSWORDS_DIFFER
    assert dialog.focusWidget() is dialog.confirm_edit
    assert auth.needs_setup(uow)


def test_a_database_that_already_has_an_organization_says_so(
    qtbot: QtBot, dialog: SetupDialog, uow: UnitOfWork, admin: Operator
) -> None:
    fill(qtbot, dialog)
    qtbot.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)

    assert dialog.isVisible()
    assert "already has an organization" in dialog.error_text
    assert "sign in" in dialog.error_text


def test_quit_rejects(qtbot: QtBot, dialog: SetupDialog, uow: UnitOfWork) -> None:
    with qtbot.waitSignal(dialog.rejected):
        qtbot.mouseClick(dialog.quit_button, Qt.MouseButton.LeftButton)
    assert dialog.operator is None
    assert auth.needs_setup(uow)


@pytest.mark.parametrize("field, editor, bad, good", [
    ("organization_name", "organization_name", "", "Harbour Rowing Club"),
    ("email", "email", "ada@", "ada@harbour.example"),
    ("registration_base_url", "registration_url", "join.harbour", "https://join.example"),
    ("password", "password", "short", "a much longer passphrase"),
])
def test_a_field_stops_being_red_as_soon_as_it_is_edited(
    qtbot: QtBot, dialog: SetupDialog, field: str, editor: str, bad: str, good: str
) -> None:
    fill(qtbot, dialog, **{editor: bad}, **({"confirm": bad} if editor == "password" else {}))
    qtbot.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)
    widget = getattr(dialog, f"{editor}_edit")
    assert dialog.field_error(field) and widget.property("invalid") == "true"

    widget.clear()
    qtbot.keyClicks(widget, good)

    assert dialog.field_error(field) == ""
    assert widget.property("invalid") == "false"
    assert widget.toolTip() == ""


def test_the_confirmation_error_goes_when_either_password_is_edited(
    qtbot: QtBot, dialog: SetupDialog
) -> None:
    fill(qtbot, dialog, confirm="a long passphrasE")
    qtbot.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)
    assert dialog.field_error("password_confirmation") == PASSWORDS_DIFFER

    dialog.password_edit.clear()
    qtbot.keyClicks(dialog.password_edit, "a long passphrasE")

    assert dialog.field_error("password_confirmation") == ""
    assert dialog.confirm_edit.property("invalid") == "false"
