"""Bounces end to end: invitations sent to the loopback SMTP server, real-world bounce and
auto-reply formats (tests/data/bounces/) in a bounce mailbox on the real dovecot IMAP server,
then `fetch_bounces`: hard bounces mark the invitation bounced and suppress the address with
the evidence, soft ones are counted, auto-replies never suppress anyone, processed mail is
moved (never deleted), and a re-run counts nothing twice."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from invite_desk.services import settings as settings_service
from invite_desk.services.bounces.classifier import BounceKind, classify
from invite_desk.services.bounces.mailbox import (
    PROCESSED_FLAG,
    MailboxError,
    fetch_bounces,
    load_imap_settings,
    save_imap_settings,
)
from invite_desk.services.bounces.processing import process_bounce
from invite_desk.services.errors import PermissionDenied
from invite_desk.services.invitations.importing import parse_pasted
from invite_desk.services.invitations.preflight import RowStatus, run_preflight
from invite_desk.services.models import (
    AuditLog,
    Invitation,
    InvitationStatus,
    ProcessedBounce,
    Setting,
    Suppression,
)
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from tests.conftest import MakeOperator
from tests.imap_fixtures import CORPUS, BounceMailbox, corpus_message
from tests.integration.test_sending import configure, queue, sender
from tests.smtp_server import LoopbackSmtpServer

HARD = {"office365_5.1.10.eml": "5.1.10", "gmail_5.1.1.eml": "5.1.1",
        "postfix_5.1.1.eml": "5.1.1", "qmail_5.1.1.eml": "5.1.1"}
SOFT = {"postfix_4.2.2_mailbox_full.eml": "4.2.2", "exim_4.2.2_mailbox_full.eml": "4.2.2"}
AUTO = ("vacation_out_of_office.eml", "vacation_exchange_automatic_reply.eml",
        "vacation_precedence_bulk.eml", "vacation_subject_only.eml")


def test_the_corpus_is_complete() -> None:
    assert sorted(p.name for p in CORPUS.glob("*.eml")) == sorted([*HARD, *SOFT, *AUTO])


@pytest.mark.parametrize("name", sorted([*HARD, *SOFT, *AUTO]))
def test_each_format_is_classified(name: str) -> None:
    invitation_id = uuid.uuid4()
    raw = corpus_message(name, recipient="Nobody.Here@Example.NET", invitation_id=invitation_id,
                         message_id="<orig.1@rowing.example>")
    verdict = classify(raw)
    if name in HARD:
        assert verdict.kind is BounceKind.HARD
        assert verdict.status == HARD[name]
        assert HARD[name] in verdict.evidence and len(verdict.evidence) > len(HARD[name])
        assert verdict.recipients == ("nobody.here@example.net",)
    elif name in SOFT:
        assert verdict.kind is BounceKind.SOFT
        assert verdict.status == SOFT[name]
        assert "Mailbox full" in verdict.diagnostic
    else:
        assert verdict.kind is BounceKind.AUTO_REPLY
    if name != "office365_5.1.10.eml" and name not in AUTO:  # O365 returns no X- headers
        assert verdict.invitation_ids == (invitation_id,)
    if name not in AUTO:
        assert "<orig.1@rowing.example>" in verdict.message_ids


def test_a_successful_delivery_notice_is_not_a_bounce() -> None:
    raw = corpus_message("postfix_5.1.1.eml", recipient="a@example.net")
    raw = raw.replace(b"Action: failed", b"Action: delivered").replace(b"Status: 5.1.1",
                                                                       b"Status: 2.0.0")
    assert classify(raw).kind is BounceKind.OTHER


def _send(uow: UnitOfWork, admin: Operator, smtp: LoopbackSmtpServer,
          addresses: list[str]) -> dict[str, tuple[uuid.UUID, str]]:
    """Queue and send invitations; {address: (invitation id, Message-ID)}."""
    configure(uow, admin, smtp)
    queue(uow, admin, "\n".join(addresses))
    report = sender(uow, admin, smtp).run()
    assert report.sent == len(addresses), report
    with uow:
        rows = uow.session.scalars(select(Invitation).where(Invitation.email.in_(addresses)))
        sent = {row.email: (row.id, row.message_id or "") for row in rows}
    # The header bounces are matched by went out with each message.
    for message in smtp.messages:
        address = message.rcpt_tos[0]
        assert message.message["X-Invite-Desk-Invitation"] == str(sent[address][0])
    return sent


def _row(uow: UnitOfWork, address: str) -> Invitation:
    with uow:
        row = uow.session.scalars(select(Invitation).where(Invitation.email == address)).one()
        uow.session.expunge(row)
        return row


def _suppressions(uow: UnitOfWork) -> dict[str, Suppression]:
    with uow:
        rows = list(uow.session.scalars(select(Suppression).where(
            Suppression.undone_at.is_(None))))
        for row in rows:
            uow.session.expunge(row)
        return {row.address_normalized: row for row in rows}


def test_fetch_reads_the_mailbox_marks_bounces_and_ignores_auto_replies(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
    bounce_mailbox: BounceMailbox,
) -> None:
    names = sorted([*HARD, *SOFT, *AUTO])
    addresses = [f"person{i}@example.net" for i in range(len(names))]
    sent = _send(uow, admin, smtp_server, addresses)
    by_address = dict(zip(addresses, names, strict=True))
    for address, name in by_address.items():
        invitation_id, message_id = sent[address]
        bounce_mailbox.append(corpus_message(name, recipient=address,
                                             invitation_id=invitation_id,
                                             message_id=message_id))

    report = fetch_bounces(uow, admin, bounce_mailbox.settings(), bounce_mailbox.password)

    assert report.seen == len(names)
    assert (report.hard, report.soft, report.auto_replies) == (len(HARD), len(SOFT), len(AUTO))
    assert report.unmatched == 0 and report.other == 0
    suppressed = _suppressions(uow)
    assert sorted(suppressed) == sorted(a for a, n in by_address.items() if n in HARD)
    for address, name in by_address.items():
        row = _row(uow, address)
        if name in HARD:
            assert row.status == InvitationStatus.BOUNCED
            assert row.bounce_kind == "hard" and HARD[name] in row.bounce_detail
            entry = suppressed[address]
            assert entry.reason == "hard_bounce" and HARD[name] in entry.evidence
            assert entry.invitation_id == row.id
        elif name in SOFT:
            assert row.status == InvitationStatus.SENT
            assert (row.bounce_kind, row.soft_bounces) == ("soft", 1)
        else:  # a vacation reply changes nothing at all
            assert row.status == InvitationStatus.SENT
            assert row.bounce_kind is None and row.soft_bounces == 0
    # Processed mail was moved, not deleted.
    assert bounce_mailbox.count("INBOX") == 0
    assert bounce_mailbox.count("Processed") == len(names)
    with uow:
        audited = uow.session.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "invitation.bounced"))
    assert audited == len(HARD)

    # Pre-flight now refuses the hard-bounced addresses, with the evidence.
    hard_address = next(a for a, n in by_address.items() if n == "postfix_5.1.1.eml")
    check = run_preflight(uow, admin.organization_id,
                          parse_pasted(f"{hard_address}\nfresh@example.net").rows)
    refused = {r.email: r for r in check.rows}
    assert refused[hard_address].status is RowStatus.SUPPRESSED
    assert "5.1.1" in refused[hard_address].reason
    assert refused["fresh@example.net"].status is RowStatus.READY

    # A re-run reads nothing new; the same bounce delivered again is not counted twice.
    again = fetch_bounces(uow, admin, bounce_mailbox.settings(), bounce_mailbox.password)
    assert again.seen == 0
    soft_address = next(a for a, n in by_address.items() if n == "postfix_4.2.2_mailbox_full.eml")
    invitation_id, message_id = sent[soft_address]
    duplicate = corpus_message("postfix_4.2.2_mailbox_full.eml", recipient=soft_address,
                               invitation_id=invitation_id, message_id=message_id)
    bounce_mailbox.append(duplicate)
    third = fetch_bounces(uow, admin, bounce_mailbox.settings(), bounce_mailbox.password)
    assert (third.seen, third.already_processed, third.soft) == (1, 1, 0)
    assert _row(uow, soft_address).soft_bounces == 1
    assert bounce_mailbox.count("Processed") == len(names) + 1


def test_soft_bounces_suppress_after_the_configured_number(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
    bounce_mailbox: BounceMailbox,
) -> None:
    settings_service.update_settings(uow, admin, {"soft_bounces_to_suppress": 2})
    sent = _send(uow, admin, smtp_server, ["full@example.net"])
    invitation_id, message_id = sent["full@example.net"]
    for name in SOFT:  # two different notices (different Message-IDs)
        bounce_mailbox.append(corpus_message(name, recipient="full@example.net",
                                             invitation_id=invitation_id,
                                             message_id=message_id))
    report = fetch_bounces(uow, admin, bounce_mailbox.settings(), bounce_mailbox.password)
    assert report.soft == 2 and report.suppressed == ["full@example.net"]
    entry = _suppressions(uow)["full@example.net"]
    assert entry.reason == "soft_bounces" and "4.2.2" in entry.evidence
    assert _row(uow, "full@example.net").soft_bounces == 2


def test_without_move_mail_is_copied_and_flagged_never_deleted(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
    bounce_mailbox: BounceMailbox,
) -> None:
    sent = _send(uow, admin, smtp_server, ["gone@example.net"])
    invitation_id, message_id = sent["gone@example.net"]
    bounce_mailbox.append(corpus_message("qmail_5.1.1.eml", recipient="gone@example.net",
                                         invitation_id=invitation_id, message_id=message_id))
    bounce_mailbox.append(corpus_message("vacation_out_of_office.eml",
                                         recipient="gone@example.net"))
    settings = bounce_mailbox.settings(processed_folder="Bounces-Done")
    report = fetch_bounces(uow, admin, settings, bounce_mailbox.password, prefer_move=False)
    assert (report.seen, report.hard, report.auto_replies, report.moved) == (2, 1, 1, 2)
    assert bounce_mailbox.count("INBOX") == 2  # still there, flagged
    assert bounce_mailbox.count("INBOX", "KEYWORD", PROCESSED_FLAG) == 2
    assert bounce_mailbox.count("Bounces-Done") == 2
    assert fetch_bounces(uow, admin, settings, bounce_mailbox.password,
                         prefer_move=False).seen == 0
    assert _row(uow, "gone@example.net").status == InvitationStatus.BOUNCED


def test_a_crash_after_recording_and_before_moving_counts_once(
    uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
    bounce_mailbox: BounceMailbox,
) -> None:
    sent = _send(uow, admin, smtp_server, ["twice@example.net"])
    invitation_id, message_id = sent["twice@example.net"]
    raw = corpus_message("postfix_4.2.2_mailbox_full.eml", recipient="twice@example.net",
                         invitation_id=invitation_id, message_id=message_id)
    process_bounce(uow, admin.organization_id, raw)  # recorded, then "crashed" before the move
    bounce_mailbox.append(raw)
    report = fetch_bounces(uow, admin, bounce_mailbox.settings(), bounce_mailbox.password)
    assert (report.seen, report.already_processed, report.moved) == (1, 1, 1)
    assert _row(uow, "twice@example.net").soft_bounces == 1
    with uow:
        assert uow.session.scalar(select(func.count()).select_from(ProcessedBounce)) == 1


def test_a_bounce_about_someone_else_suppresses_nobody(
    uow: UnitOfWork, admin: Operator, bounce_mailbox: BounceMailbox,
) -> None:
    bounce_mailbox.append(corpus_message("gmail_5.1.1.eml", recipient="stranger@example.net"))
    report = fetch_bounces(uow, admin, bounce_mailbox.settings(), bounce_mailbox.password)
    assert (report.seen, report.unmatched, report.suppressed) == (1, 1, [])
    assert _suppressions(uow) == {}


def test_wrong_password_and_permissions_are_refused_with_a_reason(
    uow: UnitOfWork, admin: Operator, make_operator: MakeOperator,
    bounce_mailbox: BounceMailbox,
) -> None:
    with pytest.raises(MailboxError, match="refused the sign-in"):
        fetch_bounces(uow, admin, bounce_mailbox.settings(), "wrong password")
    hr = make_operator(Role.HR_TENANT)
    with pytest.raises(PermissionDenied):
        fetch_bounces(uow, hr, bounce_mailbox.settings(), bounce_mailbox.password)


def test_mailbox_settings_are_saved_and_the_password_only_in_the_keyring(
    uow: UnitOfWork, admin: Operator, credentials: object,
) -> None:
    from invite_desk.services.credentials import MemoryCredentialStore

    assert isinstance(credentials, MemoryCredentialStore)
    saved = save_imap_settings(uow, admin, {"host": "imap.rowing.example", "port": 993,
                                            "security": "ssl", "username": "bounces"},
                               credentials=credentials, password="s3cret")
    assert load_imap_settings(uow, admin.organization_id) == saved
    assert credentials.get(saved.password_key()) == "s3cret"
    with uow:
        texts = [r.value_json for r in uow.session.scalars(select(Setting))]
        logs = [r.after_json for r in uow.session.scalars(select(AuditLog))]
    assert not any("s3cret" in t for t in texts + logs)


@pytest.mark.parametrize(("headers", "body", "kind"), [
    ("Subject: Automatische Antwort: Einladung", "Ich bin abwesend.", BounceKind.AUTO_REPLY),
    ("Subject: RE: [Out of Office] Invitation", "Back on Monday.", BounceKind.AUTO_REPLY),
    ("Subject: Re: hi\r\nPrecedence: auto_reply", "Back soon.", BounceKind.AUTO_REPLY),
    ("Subject: Re: hi\r\nX-Autorespond: yes", "Back soon.", BounceKind.AUTO_REPLY),
    ("Subject: Réponse automatique : invitation", "Absent.", BounceKind.AUTO_REPLY),
    ("Subject: =?utf-8?q?R=C3=A9ponse_automatique_:_invitation?=", "Absent.",
     BounceKind.AUTO_REPLY),
    ("Subject: Thanks for the invitation", "See you there, 550 km away!", BounceKind.OTHER),
    ("From: MAILER-DAEMON@mx.example\r\nSubject: Mail system error\r\n"
     "X-Failed-Recipients: gone@example.com\r\nAuto-Submitted: auto-replied",
     "Could not deliver: 550 5.1.1 no such user", BounceKind.HARD),
])
def test_other_auto_replies_and_bounces(headers: str, body: str, kind: BounceKind) -> None:
    if "From:" not in headers:
        headers = "From: someone@example.de\r\n" + headers
    raw = f"{headers}\r\nTo: invitations@rowing.example\r\n\r\n{body}\r\n".encode()
    assert classify(raw).kind is kind
