"""Issue 11 end to end, through the real windows, services, database and a loopback SMTP
server: an organization admin makes a member Local HR with a one-time password (the member
edit dialog), that member signs in (the real sign-in dialog: they choose their own password)
and approves an application in their unit (the Applications page), the Outbox delivers the
approval email to the applicant, and the audit log window shows all three steps."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot
from sqlalchemy import Engine

from invite_desk.app import AppContext
from invite_desk.services.admin import people
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.models import MemberStatus
from invite_desk.services.operator import Operator
from invite_desk.services.registration.joining import register_with_invitation
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from invite_desk.ui.admin import AuditLogWindow
from invite_desk.ui.applications import ApplicationsPage
from invite_desk.ui.hub import APPLICATIONS, MEMBERS, REFERRALS, OperationsHub
from invite_desk.ui.members import edit_dialog
from invite_desk.ui.members.edit_dialog import MemberEditDialog
from invite_desk.ui.outbox import Outbox
from invite_desk.ui.sign_in_dialog import SignInDialog
from invite_desk.ui.tasks import SynchronousRunner
from tests.conftest import MakeOperator, MakeUnit
from tests.registration_fixtures import (
    enable_confirmation_email,
    form,
    invite,
    mail_text,
    set_policy,
)
from tests.smtp_server import LoopbackSmtpServer

pytestmark = pytest.mark.qt_log_ignore(r"^This plugin does not support propagateSizeHints\(\)$")

NEW_PASSWORD = "harbour-lights-at-dawn"


def _apply(uow: UnitOfWork, inviter: Operator, email: str, unit_id: uuid.UUID) -> uuid.UUID:
    sent = invite(uow, inviter, email, unit_id=unit_id)
    result = register_with_invitation(uow, sent.token, form("Zoë", "Martin", email=email))
    assert result.application_pending and result.member_id is not None
    return result.member_id


def test_admin_grants_hr_local_who_signs_in_and_approves_and_the_applicant_is_emailed(
        qtbot: QtBot, engine: Engine, uow: UnitOfWork, admin: Operator,
        make_unit: MakeUnit, make_operator: MakeOperator, smtp_server: LoopbackSmtpServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    north = make_unit("North")
    hal = make_operator(Role.USER, north, email="hal@example.org")
    enable_confirmation_email(uow, admin, smtp_server)
    set_policy(uow, admin, adhesion_required=True)
    zoe = _apply(uow, admin, "zoe@example.org", north)
    smtp_server.clear()
    context = AppContext(engine=engine, uow=uow, credentials=MemoryCredentialStore(),
                         database_label="test")
    hub = OperationsHub(runner=SynchronousRunner())
    outbox = Outbox(engine, admin.organization_id, hub, notify_idle_ms=0)

    # 1. The admin makes Hal Local HR and gives him a one-time password, shown once.
    shown: list[Any] = []
    monkeypatch.setattr(edit_dialog, "show_one_time_password", lambda _p, issued:
                        shown.append(issued))
    dialog = MemberEditDialog(hub, admin, hal.member_id, uow=uow)
    qtbot.addWidget(dialog)
    dialog.role_combo.setCurrentIndex(dialog.role_combo.findData("HR_LOCAL"))
    dialog.save()
    dialog.one_time_password()
    [issued] = shown
    assert people.get_person(uow, admin, hal.member_id).role is Role.HR_LOCAL

    # 2. Hal signs in with it in the real sign-in dialog and chooses his own password.
    sign_in = SignInDialog(uow, email="hal@example.org", runner=SynchronousRunner())
    qtbot.addWidget(sign_in)
    sign_in.password_edit.setText(issued.password)
    qtbot.mouseClick(sign_in.sign_in_button, Qt.MouseButton.LeftButton)
    assert sign_in.operator is None and "one-time password" in sign_in.error_text
    assert not sign_in.new_password_box.isHidden()
    sign_in.new_password_edit.setText(NEW_PASSWORD)
    sign_in.confirm_password_edit.setText(NEW_PASSWORD)
    qtbot.mouseClick(sign_in.sign_in_button, Qt.MouseButton.LeftButton)
    hal_now = sign_in.operator
    assert hal_now is not None and hal_now.role is Role.HR_LOCAL and hal_now.unit_id == north

    # 3. Hal approves Zoë's application in his unit; the approval reaches the outbox, which
    #    delivers the queued email on its own thread to the (real, loopback) SMTP server.
    page = ApplicationsPage(context, hal_now, runner=SynchronousRunner())
    qtbot.addWidget(page)
    page.resize(1000, 700)
    page.show()
    page.applications_decided.connect(  # as the main window wires it
        lambda _n: hub.broadcast({APPLICATIONS, MEMBERS, REFERRALS}, page))
    page.select_members([zoe])
    # (Earlier drains, after the role change, found nothing to send: wait for the one that did.)
    with qtbot.waitSignal(outbox.notifications_sent, timeout=20_000,
                          check_params_cb=lambda run: run.sent > 0) as delivered:
        qtbot.mouseClick(page.approve_button, Qt.MouseButton.LeftButton)
    assert delivered.args[0].sent >= 1  # (the inviter is told their invitee joined, too)
    assert people.get_person(uow, admin, zoe).status == MemberStatus.ACTIVE.value
    assert smtp_server.count_for("zoe@example.org") == 1
    assert "Zoë" in mail_text(smtp_server, "zoe@example.org")

    # 4. The audit log window shows the three steps, by whom.
    window = AuditLogWindow(hub, admin, uow=uow)
    qtbot.addWidget(window)
    window.show()
    steps = {(row.action, row.actor, row.entity_id) for row in window.visible_rows()}
    assert ("member.update", admin.name, hal.member_id) in steps
    assert ("member.one_time_password", admin.name, hal.member_id) in steps
    assert ("adhesion.approved", hal_now.name, zoe) in steps
    window.show_history("member", hal.member_id, "member Hal")
    assert {row.action for row in window.visible_rows()} >= {
        "member.update", "member.one_time_password", "member.password_set"}

    outbox.stop(10_000)
    hub.shutdown(10_000)
