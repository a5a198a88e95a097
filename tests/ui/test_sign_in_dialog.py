"""The sign-in dialog: the right password signs in; any failure says the same thing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt, QThreadPool
from PySide6.QtWidgets import QDialog
from pytestqt.qtbot import QtBot

from invite_desk.services import auth
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from invite_desk.ui.sign_in_dialog import MISSING_CREDENTIALS, SignInDialog
from invite_desk.ui.tasks import SynchronousRunner, ThreadPoolRunner
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, MakeOperator

WRONG = "The email or password is incorrect."


@pytest.fixture
def dialog(qtbot: QtBot, uow: UnitOfWork, admin: Operator) -> SignInDialog:
    dlg = SignInDialog(uow, database_label="sqlite:///test.sqlite3", runner=SynchronousRunner())
    qtbot.addWidget(dlg)
    dlg.show()
    return dlg


def attempt(qtbot: QtBot, dialog: SignInDialog, email: str, password: str) -> None:
    dialog.email_edit.clear()
    qtbot.keyClicks(dialog.email_edit, email)
    dialog.password_edit.clear()
    qtbot.keyClicks(dialog.password_edit, password)
    qtbot.mouseClick(dialog.sign_in_button, Qt.MouseButton.LeftButton)


def test_the_right_password_signs_in(qtbot: QtBot, dialog: SignInDialog, admin: Operator) -> None:
    with qtbot.waitSignal(dialog.signed_in) as signed_in:
        attempt(qtbot, dialog, ADMIN_EMAIL.upper(), ADMIN_PASSWORD)

    assert dialog.result() == QDialog.DialogCode.Accepted
    assert signed_in.args[0] == dialog.operator
    assert dialog.operator is not None
    assert dialog.operator.member_id == admin.member_id
    assert dialog.operator.role is Role.ADMIN_TENANT
    assert dialog.error_text == ""


def test_enter_in_the_password_field_signs_in(qtbot: QtBot, dialog: SignInDialog) -> None:
    qtbot.keyClicks(dialog.email_edit, ADMIN_EMAIL)
    qtbot.keyClicks(dialog.password_edit, ADMIN_PASSWORD)
    with qtbot.waitSignal(dialog.accepted):
        qtbot.keyClick(dialog.password_edit, Qt.Key.Key_Return)
    assert dialog.operator is not None


def test_wrong_password_and_unknown_email_look_exactly_the_same(
    qtbot: QtBot, dialog: SignInDialog
) -> None:
    attempt(qtbot, dialog, ADMIN_EMAIL, "not the password")
    wrong_password = (dialog.error_text, dialog.password_edit.text(), dialog.email_edit.text())
    assert dialog.isVisible()
    assert dialog.focusWidget() is dialog.password_edit

    attempt(qtbot, dialog, "nobody@example.org", "not the password")
    unknown_email = (dialog.error_text, dialog.password_edit.text(), dialog.email_edit.text())
    assert dialog.focusWidget() is dialog.password_edit

    assert wrong_password[0] == unknown_email[0] == WRONG
    assert wrong_password[1] == unknown_email[1] == ""  # the password is cleared
    assert (wrong_password[2], unknown_email[2]) == (ADMIN_EMAIL, "nobody@example.org")
    assert dialog.isVisible()
    assert dialog.operator is None
    assert dialog.sign_in_button.isEnabled()


def test_a_member_without_an_operator_password_gets_the_same_message(
    qtbot: QtBot, dialog: SignInDialog, make_operator: MakeOperator
) -> None:
    member = make_operator(Role.USER)  # a member, but no password: cannot sign in
    attempt(qtbot, dialog, member.email, "whatever password")
    assert dialog.error_text == WRONG


def test_empty_fields_are_caught_before_the_service(
    qtbot: QtBot, dialog: SignInDialog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "sign_in", lambda *a: pytest.fail("sign_in called"))
    qtbot.keyClicks(dialog.email_edit, ADMIN_EMAIL)
    qtbot.mouseClick(dialog.sign_in_button, Qt.MouseButton.LeftButton)
    assert dialog.error_text == MISSING_CREDENTIALS
    assert dialog.focusWidget() is dialog.password_edit


def test_the_email_can_be_prefilled(qtbot: QtBot, uow: UnitOfWork, admin: Operator) -> None:
    dlg = SignInDialog(uow, email=ADMIN_EMAIL, runner=SynchronousRunner())
    qtbot.addWidget(dlg)
    dlg.show()
    assert dlg.email_edit.text() == ADMIN_EMAIL
    assert dlg.focusWidget() is dlg.password_edit


@pytest.fixture
def pool() -> Iterator[QThreadPool]:
    pool = QThreadPool()
    yield pool
    pool.waitForDone()


def test_sign_in_runs_off_the_gui_thread_with_the_form_disabled(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator, pool: QThreadPool
) -> None:
    dlg = SignInDialog(uow, runner=ThreadPoolRunner(pool))
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.keyClicks(dlg.email_edit, ADMIN_EMAIL)
    qtbot.keyClicks(dlg.password_edit, ADMIN_PASSWORD)
    with qtbot.waitSignal(dlg.signed_in, timeout=10_000):
        qtbot.mouseClick(dlg.sign_in_button, Qt.MouseButton.LeftButton)
        assert not dlg.sign_in_button.isEnabled()
        assert not dlg.password_edit.isEnabled()
        assert dlg.sign_in_button.text() == "Signing in…"
    assert dlg.result() == QDialog.DialogCode.Accepted
    assert dlg.operator is not None and dlg.operator.member_id == admin.member_id


def test_the_last_email_is_remembered_for_the_next_sign_in_but_never_the_password(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator
) -> None:
    from invite_desk.services import local_config

    first = SignInDialog(uow, database_label="sqlite:///a.sqlite3", runner=SynchronousRunner())
    qtbot.addWidget(first)
    assert first.email_edit.text() == ""
    attempt(qtbot, first, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert first.operator is not None

    again = SignInDialog(uow, database_label="sqlite:///a.sqlite3", runner=SynchronousRunner())
    qtbot.addWidget(again)
    again.show()
    assert again.email_edit.text() == ADMIN_EMAIL
    assert again.password_edit.text() == ""
    assert again.focusWidget() is again.password_edit
    # Another database does not offer this one's email.
    other = SignInDialog(uow, database_label="postgresql://db/other", runner=SynchronousRunner())
    qtbot.addWidget(other)
    assert other.email_edit.text() == ""
    stored = "\n".join(path.read_text(errors="replace")
                       for path in local_config.config_path().parent.rglob("*") if path.is_file())
    assert ADMIN_EMAIL in stored and ADMIN_PASSWORD not in stored


def test_a_failed_sign_in_does_not_replace_the_remembered_email(
    qtbot: QtBot, uow: UnitOfWork, admin: Operator
) -> None:
    first = SignInDialog(uow, database_label="x", runner=SynchronousRunner())
    qtbot.addWidget(first)
    attempt(qtbot, first, ADMIN_EMAIL, ADMIN_PASSWORD)
    wrong = SignInDialog(uow, database_label="x", runner=SynchronousRunner())
    qtbot.addWidget(wrong)
    attempt(qtbot, wrong, "someone.else@example.org", "not it at all")
    assert wrong.error_text == WRONG
    later = SignInDialog(uow, database_label="x", runner=SynchronousRunner())
    qtbot.addWidget(later)
    assert later.email_edit.text() == ADMIN_EMAIL
