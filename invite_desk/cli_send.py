"""`invite-desk send`: the composer's services without a window, for scheduled jobs."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from invite_desk import cli_deliverability as deliverability
from invite_desk.app import AppContext
from invite_desk.services import auth, mail_settings, organization
from invite_desk.services.errors import DomainError, SettingsIncomplete
from invite_desk.services.invitations.importing import (
    ImportResult,
    decode_csv,
    parse_csv,
    parse_pasted,
)
from invite_desk.services.invitations.pacing import scope_estimate
from invite_desk.services.invitations.parallel import ParallelSender, smtp_lanes
from invite_desk.services.invitations.preflight import STATUS_LABELS, RowStatus, run_preflight
from invite_desk.services.invitations.queueing import queue_invitations
from invite_desk.services.invitations.rendering import require_registration_address
from invite_desk.services.invitations.send_scope import sendable_scope
from invite_desk.services.invitations.sending import (
    SendControl,
    SendProgress,
    describe,
    recover_interrupted,
)
from invite_desk.services.models import InvitationKind
from invite_desk.services.smtp import oauth
from invite_desk.services.smtp.presets import MAX_CONNECTIONS

OPERATOR_PASSWORD_ENV = "INVITE_DESK_OPERATOR_PASSWORD"
SMTP_PASSWORD_ENV = "INVITE_DESK_SMTP_PASSWORD"
GOOGLE_CLIENT_SECRET_ENV = "INVITE_DESK_GOOGLE_CLIENT_SECRET"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    send = sub.add_parser(
        "send",
        help="queue and send invitations from a CSV or a list, without a window",
        description=(
            "Signs in as --operator (password from the keyring entry 'operator:EMAIL' or "
            f"${OPERATOR_PASSWORD_ENV}), checks every row, queues the ready ones and sends "
            "them through the organization's SMTP server (password from the keyring, or "
            f"${SMTP_PASSWORD_ENV}). Without --csv/--list it sends what the operator queued "
            "earlier (how to resume a stopped batch). Sending follows the same policy as the "
            "window: invitations on, the role whoCanSendUserInvitation asks for, and the "
            "operator's scope."
        ),
    )
    send.add_argument("--db", metavar="URL", default=argparse.SUPPRESS)
    send.add_argument("--operator", metavar="EMAIL", required=True)
    source = send.add_mutually_exclusive_group()
    source.add_argument("--csv", type=Path, help="CSV with email, name, message columns")
    source.add_argument("--list", type=Path, help="text file, one address per line")
    which = send.add_mutually_exclusive_group()
    which.add_argument("--batch", metavar="ID", type=uuid.UUID,
                       help="send this queued batch (it must be within your scope)")
    which.add_argument("--all", action="store_true", dest="send_all",
                       help="send everything queued within your scope (HR and admins)")
    send.add_argument("--message", default="", help="personal message for every row without one")
    send.add_argument("--label", default="", help="a label for the batch")
    send.add_argument("--dry-run", action="store_true", help="check rows, queue and send nothing")
    send.add_argument("--no-send", action="store_true", help="queue only; send later")
    send.add_argument("--sign-in", action="store_true", dest="sign_in",
                      help="sign this computer in to the mailbox with OAuth2 (Microsoft 365: "
                           "a code to type at a web address; Google: the browser opens) and "
                           "keep the refresh token in the keyring; sends nothing")
    send.add_argument("--connections", metavar="K", type=_connections, default=None,
                      help="SMTP connections to send over in parallel (default: the mail "
                           "settings', else the provider preset's)")
    from invite_desk.cli_deliverability import parse_when

    send.add_argument("--at", metavar="TIME", type=parse_when,
                      help="schedule the batch (this CSV/list, or --batch ID) to start at TIME "
                      "(2026-12-01T09:00 local, ...+01:00, or +2h); it is not sent before: "
                      "a send run at or after TIME sends it (use a scheduled job)")


def _connections(text: str) -> int:
    number = int(text)
    if not 1 <= number <= MAX_CONNECTIONS:
        raise argparse.ArgumentTypeError(f"between 1 and {MAX_CONNECTIONS}")
    return number


def _secret(context: AppContext, key: str, env: str) -> str | None:
    return os.environ.get(env) or context.credentials.get(key)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl+C so that the sender settles the message in flight."""


class _Stopping:
    """Ctrl+C / SIGTERM while sending cancels the run at the next safe point: the message on the
    wire is finished and settled, then the loop stops. An exception raised at an arbitrary
    point (in a lock, in the database driver) could leave the process hanging; a second
    signal still raises, for a run that does not stop."""

    def __init__(self) -> None:
        self.control: SendControl | None = None
        self.signum: int | None = None

    def handle(self, signum: int, frame: object) -> None:
        if self.control is not None and self.signum is None:
            self.signum = signum
            self.control.cancel()
            return
        raise _Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


@contextmanager
def _terminate_like_interrupt(stopping: _Stopping) -> Iterator[None]:
    try:
        previous = {sig: signal.signal(sig, stopping.handle)
                    for sig in (signal.SIGTERM, signal.SIGINT)}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stopped(how: str, sent: int) -> None:
    print(f"stopped ({how}) after {sent} sent in this run. Run the same command again "
          "to send the rest: what was sent or is uncertain is not sent again.",
          file=sys.stderr, flush=True)


def _cannot_send(context: AppContext, organization_id: uuid.UUID) -> str:
    """Why nothing can be sent yet (no SMTP server, no registration web address), or ""."""
    if not mail_settings.get_mail_settings(context.uow, organization_id).configured:
        return "SMTP is not configured: an admin sets it in Settings > Email."
    try:
        require_registration_address(organization.get_organization(context.uow, organization_id))
    except SettingsIncomplete as exc:
        return str(exc)
    return ""


def run_send(context: AppContext, args: argparse.Namespace) -> int:
    """Exit 0 when every invitation went out, 1 when some failed or are uncertain, 2 on error,
    130 (Ctrl+C) or 143 (SIGTERM) when stopped: running the same command again resumes."""
    sent: list[int] = [0]
    stopping = _Stopping()
    try:
        with _terminate_like_interrupt(stopping):
            code = _run_send(context, args, sent, stopping)
        if stopping.signum is None:
            return code
        terminated = stopping.signum == signal.SIGTERM  # cancelled cleanly at a safe point
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, _Terminated)
    _stopped("SIGTERM" if terminated else "Ctrl+C", sent[0])
    return 143 if terminated else 130


def _run_send(context: AppContext, args: argparse.Namespace, sent: list[int],
              stopping: _Stopping) -> int:
    out = sys.stdout
    invalid = 0  # rows of the file that could not be read as an address: never queued
    try:
        password = _secret(context, f"operator:{args.operator.lower()}", OPERATOR_PASSWORD_ENV)
        if not password:
            print(f"No password for {args.operator}: store it in the keyring entry "
                  f"'operator:{args.operator.lower()}' or set {OPERATOR_PASSWORD_ENV}.",
                  file=sys.stderr)
            return 2
        operator = auth.sign_in(context.uow, args.operator, password)
        if getattr(args, "sign_in", False):
            print(mail_settings.sign_in_smtp(
                context.uow, operator, context.credentials,
                show=lambda text: print(text, file=out, flush=True),
                client_secret=os.environ.get(GOOGLE_CLIENT_SECRET_ENV, "")), file=out)
            return 0
        chosen = getattr(args, "batch", None)
        everything = bool(getattr(args, "send_all", False))
        # Refuse before anything is checked or queued when the operator may not send. By
        # default: what this operator queued, this command's batch included, so re-running
        # the same command after a crash resumes the first run's batch (pre-flight counts its
        # rows as already invited and queues nothing new).
        scope = sendable_scope(context.uow, operator, batch_id=chosen, everything=everything)
        uncertain = recover_interrupted(context.uow, operator.organization_id)
        for email in uncertain:
            print(f"uncertain: {email} (the last run stopped while sending it; not resent)", file=out)
        if (args.csv or args.list) and not (args.no_send or args.dry_run):
            # Say what is missing before anything is queued: otherwise the file's rows would
            # wait in the outbox for a send that cannot happen yet.
            missing = _cannot_send(context, operator.organization_id)
            if missing:
                print(f"{missing} Nothing was queued.", file=sys.stderr)
                return 2
        if args.csv or args.list:
            path = args.csv or args.list
            try:
                data = path.read_bytes()
            except OSError as exc:
                print(f"error: cannot read {path}: {exc.strerror or exc}. Nothing was queued.",
                      file=sys.stderr)
                return 2
            if args.csv:
                imported = parse_csv(data)
            else:  # as a CSV file is read: UTF-8, UTF-16, else Windows-1252
                text, notes = decode_csv(data)
                imported = parse_pasted(text)
                imported = ImportResult(imported.rows, (*notes, *imported.notes))
            for note in imported.notes:
                print(f"note: {note}", file=out)
            # Credited to the operator: with invite-only N >= 2 another member's invitation
            # to the same address does not block this one ("sponsor 2 of 2").
            pre = run_preflight(context.uow, operator.organization_id, imported.rows,
                                inviter_id=operator.member_id)
            for row in pre.rows:
                if row.status is not RowStatus.READY:
                    print(f"row {row.row}: {row.email or '(empty)'}: {STATUS_LABELS[row.status]}"
                          f"{' - ' + row.reason if row.reason else ''}", file=out)
            print(f"checked {len(pre.rows)} rows: {pre.summary()}", file=out)
            invalid = sum(row.status is RowStatus.INVALID for row in pre.rows)
            if invalid:
                # Said last too, and the exit status is 1: a script must not read "all sent"
                # when people of the file were never invited.
                print(f"{invalid} invalid row{'s' if invalid != 1 else ''} not queued: "
                      "correct them and run the same command again", file=sys.stderr)
            # Uncertain rows of this file stay unresolved until someone checks them: every
            # re-run of the same command names them and does not report success.
            for row in pre.rows:
                if row.status is RowStatus.UNCERTAIN and row.key not in {
                        e.lower() for e in uncertain}:
                    print(f"uncertain: {row.email} (an earlier run stopped while sending it; "
                          "not resent)", file=out)
                    uncertain.append(row.email)
            if args.dry_run:
                return 1 if invalid else 0
            if not pre.ready:  # a re-run after everything was queued: no empty batch
                print("queued 0 invitations: every row of this file was already handled "
                      "(see above)", file=out)
            else:
                batch = queue_invitations(
                    context.uow, operator, pre.ready, personal_message=args.message,
                    kind=InvitationKind.MEMBERSHIP, source="cli", label=args.label or path.name,
                )
                resumed = (f", resuming a stopped run: {batch.total} in all" if batch.resumed
                           else "")
                print(f"queued {batch.queued} invitations (batch {batch.batch_id}{resumed})",
                      file=out)
                if getattr(args, "at", None) is not None:
                    deliverability.schedule(context, operator, batch.batch_id, args.at)
        elif getattr(args, "at", None) is not None and chosen is not None:
            deliverability.schedule(context, operator, chosen, args.at)
        if args.no_send or args.dry_run:
            return 1 if invalid else 0
        mail = mail_settings.get_mail_settings(context.uow, operator.organization_id)
        if not mail.configured:
            print("SMTP is not configured: an admin sets it in Settings > Email.", file=sys.stderr)
            return 2
        smtp_password = None if mail.uses_oauth else _secret(
            context, mail.password_key(), SMTP_PASSWORD_ENV)
        # OAuth2: the refresh token from the keyring, checked before anything is claimed.
        tokens = oauth.for_settings(mail, context.credentials)
        if tokens is not None:
            tokens()
        make_transport = smtp_lanes(mail, smtp_password, access_token=tokens)

        def progress(p: SendProgress) -> None:
            sent[0] = p.sent
            if p.last_email:
                print(f"{p.last_outcome}: {p.last_email}", file=out, flush=True)

        print(f"sending {scope.description}", file=out, flush=True)
        estimate = scope_estimate(context.uow, scope, connections=args.connections)
        if estimate.count:
            print(f"estimate: {estimate.text}", file=out, flush=True)
        control = SendControl()
        stopping.control = control  # from here a signal cancels between two messages
        sender = ParallelSender(context.uow, make_transport,
                                organization_id=operator.organization_id, scope=scope,
                                control=control, on_progress=progress,
                                connections=args.connections)
        report = sender.run()
        print(describe(report), file=out)
        for email, reason in report.failures:
            print(f"failed: {email}: {reason}", file=out)
        deliverability.report_scheduled(context, scope)
        if report.error:
            return 2
        notified = deliver_notifications(context, mail, smtp_password, tokens, out)
        if invalid:
            print(f"not queued: {invalid} invalid row{'s' if invalid != 1 else ''} "
                  "(listed above)", file=out)
        return 1 if report.failed or report.uncertain or uncertain or notified or invalid else 0
    except (DomainError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def deliver_notifications(context: AppContext, mail: mail_settings.MailSettings,
                          password: str | None, tokens: oauth.TokenSource | None,
                          out: TextIO) -> bool:
    """At the end of a send run, deliver the queued notification emails (approvals,
    rejections, "your invitee joined", sign-in links) on the same connection settings, so a
    scheduled `send --all` also delivers them. True when some failed or wait for a retry."""
    from invite_desk.services.admin import notifications
    from invite_desk.services.smtp.transport import SmtpTransport

    if not notifications.has_pending(context.uow):
        return False
    with SmtpTransport(mail.smtp_config(), password, access_token=tokens) as transport:
        run = notifications.send_pending_notifications(context.uow, transport)
    print(f"notification emails: {run.sent} sent, {run.failed} failed, {run.uncertain} "
          f"uncertain, {run.remaining} waiting to retry", file=out)
    return bool(run.failed or run.uncertain or run.remaining)
