"""Issue 11, end to end through the services: an organization admin makes a member HR_LOCAL and
gives them a sign-in; the emailed link sets their password through the real portal; they sign
in and approve an application in their unit; the applicant's approval email arrives at the real
SMTP server; the audit log shows the three steps with before and after. (The window half of
this journey is the desktop's pytest-qt test.)"""

from __future__ import annotations

import re

from invite_desk.services import adhesion, auth
from invite_desk.services.admin import audit_log, people
from invite_desk.services.admin.audit_log import AuditQuery
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from tests.conftest import MakeOperator, MakeUnit
from tests.integration.test_admin_notifications import applicant, deliver
from tests.portal_client import HttpClient, csrf_from, portal_app, running_portal
from tests.registration_fixtures import enable_confirmation_email, mail_text
from tests.smtp_server import LoopbackSmtpServer


def test_admin_gives_hr_a_sign_in_and_hr_approves_in_their_unit(
        uow: UnitOfWork, admin: Operator, engine, smtp_server: LoopbackSmtpServer,  # type: ignore[no-untyped-def]
        make_unit: MakeUnit, make_operator: MakeOperator) -> None:
    north = make_unit("North")
    helen = make_operator(Role.USER, north, email="helen@example.org")
    app = portal_app(engine, uow)
    with running_portal(app) as base:
        enable_confirmation_email(uow, admin, smtp_server, base_url=base)
        # 1. The admin makes Helen local HR and emails her a sign-in link.
        people.update_person(uow, admin, helen.member_id, role=Role.HR_LOCAL)
        people.issue_sign_in_link(uow, admin, helen.member_id)
        deliver(uow, admin)
        link = re.search(re.escape(base) + r"/set-password/\S+",
                         mail_text(smtp_server, "helen@example.org"))
        assert link
        client = HttpClient()
        form = client.get(link.group(0))
        done = client.post(link.group(0), {"csrf_token": csrf_from(form.text),
                                           "password": "helen's password",
                                           "password_confirmation": "helen's password"})
        assert done.status == 200
    # 2. Helen signs in and approves an application in her unit.
    hr = auth.sign_in(uow, "helen@example.org", "helen's password")
    assert (hr.role, hr.unit_id) == (Role.HR_LOCAL, north)
    olga = applicant(uow, admin, "olga@example.org", north, first="Olga", last="Olsen")
    adhesion.approve(uow, hr, olga)
    # 3. Olga receives the approval email.
    assert deliver(uow, admin).sent == 1
    assert "was approved" in mail_text(smtp_server, "olga@example.org")
    # The audit log shows the three steps, newest first.
    rows = audit_log.fetch_audit_page(uow, admin, AuditQuery(since=None)).rows
    steps = [(r.action, r.actor) for r in rows
             if r.action in ("member.update", "member.sign_in_link", "member.password_set",
                             "adhesion.approved")]
    assert steps == [("adhesion.approved", hr.name),
                     ("member.password_set", hr.name),
                     ("member.sign_in_link", admin.name),
                     ("member.update", admin.name)]
    role_change = next(r for r in rows if r.action == "member.update")
    assert (role_change.before["role"], role_change.after["role"]) == ("USER", "HR_LOCAL")
