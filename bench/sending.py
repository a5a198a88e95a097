"""Send a 10,000-invitation batch end to end, and the same prepared messages with bare smtplib."""

from __future__ import annotations

import smtplib
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench.common import configure_smtp, fresh_database, result, sink_smtp_server
from invite_desk.services import mail_settings, organization
from invite_desk.services.invitations.importing import InviteeInput
from invite_desk.services.invitations.preflight import run_preflight
from invite_desk.services.invitations.queueing import queue_invitations
from invite_desk.services.invitations.rendering import InvitationContent, build_invitation_message
from invite_desk.services.invitations.sending import OutboxSender
from invite_desk.services.models import utcnow
from invite_desk.services.smtp.transport import SmtpTransport


def run(quick: bool = False) -> list[dict[str, Any]]:
    count = 1_000 if quick else 10_000
    with tempfile.TemporaryDirectory() as folder, sink_smtp_server() as (host, port):
        uow, admin = fresh_database(f"sqlite:///{Path(folder) / 'bench.sqlite3'}")
        configure_smtp(uow, admin, host, port)
        rows = [InviteeInput(i + 1, f"invitee{i:05d}@example.org", f"Invitee {i}")
                for i in range(count)]
        pre = run_preflight(uow, admin.organization_id, rows)
        queue_invitations(uow, admin, pre.ready, personal_message="See you on the water!",
                          source="csv")
        mail = mail_settings.get_mail_settings(uow, admin.organization_id)

        # Baseline: the same number of prepared messages, bare smtplib on one connection.
        org = organization.get_organization(uow, admin.organization_id)
        templates = mail_settings.get_templates(uow, admin.organization_id)
        prepared = []
        for row in pre.ready:
            content = InvitationContent(row.email, row.name, admin.name, "See you on the water!",
                                        utcnow())
            message, _ = build_invitation_message(org, mail, templates, content, "x" * 43)
            prepared.append((row.email, message.as_bytes()))
        started = time.perf_counter()
        with smtplib.SMTP(host, port) as smtp:
            for to, raw in prepared:
                smtp.sendmail(mail.from_address, [to], raw)
        baseline_rate = count / (time.perf_counter() - started)

        started = time.perf_counter()
        sender = OutboxSender(uow, SmtpTransport(mail.smtp_config(), None),
                              organization_id=admin.organization_id)
        report = sender.run()
        elapsed = time.perf_counter() - started
        assert report.sent == count, report
        rate = count / elapsed
        with uow:
            from invite_desk.services.models import Invitation
            sent = len(list(uow.session.scalars(select(Invitation.id).where(Invitation.status == "sent"))))
        uow.engine.dispose()
    return [result("sending", rate, "messages/s", baseline_rate, messages=count,
                   baseline_name="bare smtplib, same prepared messages, one connection",
                   sent_in_database=sent)]
