"""`invite-desk bounces|suppression|reminders`: deliverability jobs without a window.

    invite-desk bounces configure --operator EMAIL --host H --user U [--port P] [--security S]
    invite-desk bounces fetch --operator EMAIL          read the bounce mailbox (scheduled job)
    invite-desk suppression list --operator EMAIL [--search TEXT] [--all]
    invite-desk suppression add --operator EMAIL ADDRESS [--note TEXT]
    invite-desk suppression remove --operator EMAIL ADDRESS
    invite-desk reminders send --operator EMAIL [--all]   (scheduled job)

The operator's password comes from the keyring entry `operator:EMAIL` or
$INVITE_DESK_OPERATOR_PASSWORD (as for `send`); the bounce mailbox's from the keyring entry
`imap:HOST:PORT:USER` or $INVITE_DESK_IMAP_PASSWORD; the SMTP password as for `send`.
Exit codes: 0 done, 1 some reminders failed or are uncertain, 2 refused or unreachable.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from invite_desk.app import AppContext
from invite_desk.services import auth, mail_settings, reminders, scheduling, suppression
from invite_desk.services.bounces import mailbox
from invite_desk.services.bounces.processing import BounceOutcome
from invite_desk.services.errors import DomainError
from invite_desk.services.invitations.send_scope import SendScope, sendable_scope
from invite_desk.services.operator import Operator
from invite_desk.services.smtp.transport import SmtpTransport

IMAP_PASSWORD_ENV = "INVITE_DESK_IMAP_PASSWORD"

Handler = Callable[[AppContext, argparse.Namespace], int]


def _common(parser: argparse.ArgumentParser, handler: Handler) -> None:
    parser.add_argument("--db", metavar="URL", default=argparse.SUPPRESS)
    parser.add_argument("--operator", metavar="EMAIL", required=True)
    parser.set_defaults(handler=handler)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bounces = sub.add_parser("bounces", help="read the bounce mailbox (IMAP)").add_subparsers(
        dest="bounces_command", required=True)
    configure = bounces.add_parser(
        "configure", help="set the bounce mailbox (organization admins)",
        description=f"The password, if given in ${IMAP_PASSWORD_ENV}, goes to the keyring.")
    _common(configure, _bounces_configure)
    configure.add_argument("--host", required=True)
    configure.add_argument("--port", type=int)
    configure.add_argument("--security", choices=mailbox.SECURITIES, default="ssl")
    configure.add_argument("--user", required=True, dest="username")
    configure.add_argument("--folder", default="INBOX")
    configure.add_argument("--processed-folder", default="Processed")
    fetch = bounces.add_parser(
        "fetch", help="process new bounces: hard ones suppress the address (scheduled job)",
        description="Reads every unprocessed message of the bounce mailbox, marks hard-bounced "
        "invitations bounced and suppresses their address, counts soft bounces, ignores "
        "auto-replies, and moves each processed message to the processed folder.")
    _common(fetch, _bounces_fetch)
    fetch.add_argument("--limit", type=int, help="at most this many messages")

    lists = sub.add_parser("suppression", help="the suppression list").add_subparsers(
        dest="suppression_command", required=True)
    show = lists.add_parser("list", help="show suppressed addresses and why")
    _common(show, _suppression_list)
    show.add_argument("--search", default="", help="addresses starting with this")
    show.add_argument("--all", action="store_true", dest="include_undone",
                      help="include entries that were undone")
    add = lists.add_parser("add", help="suppress an address (organization admins)")
    _common(add, _suppression_add)
    add.add_argument("address")
    add.add_argument("--note", default="", help="why (kept as the evidence)")
    remove = lists.add_parser("remove", help="undo a suppression (organization admins)")
    _common(remove, _suppression_remove)
    remove.add_argument("address")

    remind = sub.add_parser("reminders", help="reminders before links expire").add_subparsers(
        dest="reminders_command", required=True)
    send = remind.add_parser(
        "send", help="send the reminders that are due (scheduled job)",
        description="One reminder per invitation, N days before its link expires (Settings: "
        "reminder days; 0 = off); never for revoked, accepted, expired, bounced or suppressed "
        "invitations, and never twice.")
    _common(send, _reminders_send)
    send.add_argument("--all", action="store_true", dest="send_all",
                      help="every invitation within your scope (HR and admins), not only "
                      "those you sent")


def _sign_in(context: AppContext, email: str) -> Operator | None:
    from invite_desk.cli_send import OPERATOR_PASSWORD_ENV  # cli_send imports this module

    password = os.environ.get(OPERATOR_PASSWORD_ENV) or context.credentials.get(
        f"operator:{email.lower()}")
    if not password:
        print(f"No password for {email}: store it in the keyring entry "
              f"'operator:{email.lower()}' or set {OPERATOR_PASSWORD_ENV}.", file=sys.stderr)
        return None
    return auth.sign_in(context.uow, email, password)


def run(context: AppContext, args: argparse.Namespace) -> int:
    """Run the sub-command `args.handler` names; DomainErrors are printed, exit 2."""
    handler: Handler = args.handler
    try:
        return handler(context, args)
    except (DomainError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _bounces_configure(context: AppContext, args: argparse.Namespace) -> int:
    operator = _sign_in(context, args.operator)
    if operator is None:
        return 2
    values = {"host": args.host, "security": args.security, "username": args.username,
              "folder": args.folder, "processed_folder": args.processed_folder}
    if args.port:
        values["port"] = args.port
    saved = mailbox.save_imap_settings(context.uow, operator, values,
                                       credentials=context.credentials,
                                       password=os.environ.get(IMAP_PASSWORD_ENV) or None)
    print(f"bounce mailbox: {saved.username}@{saved.host}:{saved.port} ({saved.security}), "
          f"processed mail goes to {saved.processed_folder!r}")
    return 0


def _bounces_fetch(context: AppContext, args: argparse.Namespace) -> int:
    operator = _sign_in(context, args.operator)
    if operator is None:
        return 2
    settings = mailbox.load_imap_settings(context.uow, operator.organization_id)
    password = os.environ.get(IMAP_PASSWORD_ENV) or (
        context.credentials.get(settings.password_key()) if settings.configured else None)

    def show(outcome: BounceOutcome) -> None:
        if outcome.already_processed:
            return
        if outcome.suppressed:
            print(f"suppressed: {outcome.email} ({outcome.evidence})")
        elif outcome.verdict in ("hard", "soft"):
            print(f"{outcome.verdict} bounce: {outcome.email} ({outcome.evidence})")

    report = mailbox.fetch_bounces(context.uow, operator, settings, password,
                                   limit=args.limit, on_outcome=show)
    print(report.summary())
    return 0


def _suppression_list(context: AppContext, args: argparse.Namespace) -> int:
    operator = _sign_in(context, args.operator)
    if operator is None:
        return 2
    entries = suppression.list_suppressions(context.uow, operator, search=args.search,
                                            include_undone=args.include_undone)
    for entry in entries:
        state = "" if entry.active else f" [undone {entry.undone_at:%Y-%m-%d}]"
        print(f"{entry.address}\t{entry.reason_label}\t{entry.created_at:%Y-%m-%d}\t"
              f"{' '.join(entry.evidence.split())}{state}")
    print(f"{len(entries)} address{'' if len(entries) == 1 else 'es'}", file=sys.stderr)
    return 0


def _suppression_add(context: AppContext, args: argparse.Namespace) -> int:
    operator = _sign_in(context, args.operator)
    if operator is None:
        return 2
    entry = suppression.add_suppression(context.uow, operator, args.address, args.note)
    print(f"suppressed: {entry.address}")
    return 0


def _suppression_remove(context: AppContext, args: argparse.Namespace) -> int:
    operator = _sign_in(context, args.operator)
    if operator is None:
        return 2
    entry = suppression.undo_address(context.uow, operator, args.address)
    print(f"no longer suppressed: {entry.address} (was: {entry.reason_label})")
    return 0


def _reminders_send(context: AppContext, args: argparse.Namespace) -> int:
    operator = _sign_in(context, args.operator)
    if operator is None:
        return 2
    scope = sendable_scope(context.uow, operator, everything=args.send_all)
    mail = mail_settings.get_mail_settings(context.uow, operator.organization_id)
    if not mail.configured:
        print("SMTP is not configured: an admin sets it in Settings > Email.", file=sys.stderr)
        return 2
    from invite_desk.cli_send import SMTP_PASSWORD_ENV
    from invite_desk.services import settings as settings_service
    from invite_desk.services.smtp import oauth

    if settings_service.get_settings(context.uow,
                                     operator.organization_id).reminder_days_before <= 0:
        print("Reminders are off (Settings > Invitations: the reminder before a link expires "
              "is 0 days); nothing was sent.")
        return 0
    # OAuth2 settings: the access token from the refresh token in the keyring, as for `send`.
    tokens = oauth.for_settings(mail, context.credentials)
    password = None if tokens is not None else (
        os.environ.get(SMTP_PASSWORD_ENV) or context.credentials.get(mail.password_key()))
    report = reminders.send_reminders(
        context.uow, scope, SmtpTransport(mail.smtp_config(), password, access_token=tokens),
        actor_id=operator.member_id)
    for email in report.sent_to:
        print(f"reminded: {email}")
    for email, reason in report.failures:
        print(f"failed: {email}: {reason}")
    print(report.summary())
    if report.error:
        return 2
    return 1 if report.failed or report.uncertain else 0


def parse_when(text: str) -> datetime:
    """`--at`: an ISO 8601 time (2026-12-01T09:00, local time unless it names its zone, e.g.
    2026-12-01T09:00+01:00 or ...Z) or a delay from now (+30m, +2h, +1d)."""
    value = text.strip()
    delay = re.fullmatch(r"\+(\d{1,6})\s*([mhd])", value, re.IGNORECASE)
    if delay:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[delay.group(2).lower()]
        return datetime.now(UTC) + timedelta(**{unit: int(delay.group(1))})
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: use 2026-12-01T09:00 (local time), "
            "2026-12-01T09:00+01:00, or +2h") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time, as a person means it
    return moment.astimezone(UTC)


def schedule(context: AppContext, operator: Operator, batch_id: uuid.UUID,
             at: datetime) -> None:
    """`send --at`: schedule the batch and say when it will run."""
    result = scheduling.schedule_batch(context.uow, operator, batch_id, at)
    print(result.describe())


def report_scheduled(context: AppContext, scope: SendScope) -> int:
    """After a send run: the batches that wait for their time, and when; how many."""
    waiting = scheduling.scheduled_later(context.uow, scope)
    for batch in waiting:
        print(f"not yet: {batch.describe()}")
    return len(waiting)
