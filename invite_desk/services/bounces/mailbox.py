"""Read the bounce mailbox over IMAP and process every message in it, once.

The mailbox's settings (host, port, security, user, folders) are organization settings; the
password lives only in the keyring (`imap:HOST:PORT:USER`, like the SMTP password) or is
given for one run. Messages are processed, committed, then moved to the processed folder
(created when missing) with IMAP MOVE, or copied there and flagged `$InviteDeskProcessed` in
the inbox when the server lacks MOVE: never deleted. A crash between the commit and the move
is harmless: the next run finds the message recorded and only moves it.

OAuth2 (XOAUTH2) sign-in: pass `authenticate`, a function that signs the connection in
(e.g. `imap.authenticate("XOAUTH2", ...)` with a token from the provider's sign-in); without
it the password is used.
"""

from __future__ import annotations

import contextlib
import imaplib
import json
import ssl
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from sqlalchemy import select

from invite_desk.services import audit
from invite_desk.services.bounces.classifier import BounceKind
from invite_desk.services.bounces.processing import BounceOutcome, process_bounce
from invite_desk.services.credentials import CredentialStore
from invite_desk.services.errors import DomainError, SettingsIncomplete, ValidationFailed
from invite_desk.services.models import Setting
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.permissions import Action, require
from invite_desk.services.uow import UnitOfWork

SETTING_KEY = "bounces.imap"
PROCESSED_FLAG = "$InviteDeskProcessed"
SECURITIES = ("ssl", "starttls", "none")


class MailboxError(DomainError):
    """The bounce mailbox could not be read; the message says why and what to check."""


@dataclass(frozen=True)
class ImapSettings:
    host: str = ""
    port: int = 993
    security: str = "ssl"  # ssl, starttls, none
    username: str = ""
    folder: str = "INBOX"
    processed_folder: str = "Processed"
    timeout: float = 30.0

    @property
    def configured(self) -> bool:
        return bool(self.host and self.username)

    def password_key(self) -> str:
        return f"imap:{self.host}:{self.port}:{self.username}"


def validate_imap_settings(values: Mapping[str, Any]) -> ImapSettings:
    errors: dict[str, str] = {}
    host = str(values.get("host", "")).strip()
    username = str(values.get("username", "")).strip()
    security = str(values.get("security", "ssl")).strip().lower()
    folder = str(values.get("folder", "INBOX")).strip() or "INBOX"
    processed = str(values.get("processed_folder", "Processed")).strip() or "Processed"
    try:
        port = int(values.get("port", 993 if security == "ssl" else 143))
    except (TypeError, ValueError):
        port = 0
    if not host or any(c.isspace() for c in host):
        errors["host"] = "Enter the IMAP server's host name, e.g. imap.example.org."
    if not 0 < port < 65536:
        errors["port"] = "The port is a number from 1 to 65535 (993 for SSL, 143 otherwise)."
    if security not in SECURITIES:
        errors["security"] = "Choose ssl, starttls or none."
    if not username:
        errors["username"] = "Enter the user name of the bounce mailbox."
    for name, value in (("folder", folder), ("processed_folder", processed)):
        if any(c in value for c in '\r\n"\\') or len(value) > 200:
            errors[name] = "A folder name cannot contain quotes, backslashes or line breaks."
    if folder == processed:
        errors["processed_folder"] = "Processed mail must go to another folder than the inbox."
    if errors:
        raise ValidationFailed(errors)
    return ImapSettings(host, port, security, username, folder, processed)


def load_imap_settings(uow: UnitOfWork, organization_id: uuid.UUID) -> ImapSettings:
    with uow:
        row = uow.session.scalars(select(Setting).where(
            Setting.organization_id == organization_id, Setting.key == SETTING_KEY)).first()
        if row is None:
            return ImapSettings()
        try:
            stored = json.loads(row.value_json)
            return replace(ImapSettings(), **{k: v for k, v in stored.items()
                                             if k in ImapSettings.__dataclass_fields__})
        except (ValueError, TypeError):
            return ImapSettings()


def save_imap_settings(uow: UnitOfWork, operator: Operator, values: Mapping[str, Any], *,
                       credentials: CredentialStore | None = None,
                       password: str | None = None) -> ImapSettings:
    """Save the bounce mailbox's settings (ADMIN_TENANT; audited). A password given here
    goes to the keyring only."""
    settings = validate_imap_settings(values)
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        require(operator, Action.CHANGE_SETTINGS)
        stored = {k: v for k, v in asdict(settings).items() if k != "timeout"}
        row = session.scalars(select(Setting).where(
            Setting.organization_id == operator.organization_id,
            Setting.key == SETTING_KEY)).first()
        before = json.loads(row.value_json) if row is not None else {}
        if row is None:
            row = Setting(organization_id=operator.organization_id, key=SETTING_KEY,
                          value_json="{}")
            session.add(row)
        row.value_json = json.dumps(stored, sort_keys=True)
        audit.record(session, organization_id=operator.organization_id,
                     actor_id=operator.member_id, action="settings.bounce_mailbox",
                     entity_type="setting", entity_id=row.id, before=before, after=stored)
        uow.commit()
    if password and credentials is not None:
        credentials.set(settings.password_key(), password)
    return settings


@dataclass
class FetchReport:
    seen: int = 0  # messages read from the mailbox
    hard: int = 0
    soft: int = 0
    auto_replies: int = 0
    other: int = 0
    unmatched: int = 0  # bounces about no invitation of ours
    already_processed: int = 0
    suppressed: list[str] = field(default_factory=list)  # addresses suppressed in this run
    moved: int = 0

    def summary(self) -> str:
        parts = [f"{self.seen} message{'' if self.seen == 1 else 's'} read",
                 f"{self.hard} hard bounce{'' if self.hard == 1 else 's'}",
                 f"{self.soft} soft", f"{self.auto_replies} auto-repl"
                 f"{'y' if self.auto_replies == 1 else 'ies'} ignored"]
        if self.unmatched:
            parts.append(f"{self.unmatched} not about an invitation")
        if self.other:
            parts.append(f"{self.other} other")
        if self.already_processed:
            parts.append(f"{self.already_processed} already processed")
        parts.append(f"{len(self.suppressed)} address"
                     f"{'' if len(self.suppressed) == 1 else 'es'} suppressed")
        return ", ".join(parts) + "."

    def add(self, outcome: BounceOutcome) -> None:
        if outcome.already_processed:
            self.already_processed += 1
        elif outcome.verdict == "unmatched":
            self.unmatched += 1
        elif outcome.kind is BounceKind.HARD:
            self.hard += 1
        elif outcome.kind is BounceKind.SOFT:
            self.soft += 1
        elif outcome.kind is BounceKind.AUTO_REPLY:
            self.auto_replies += 1
        else:
            self.other += 1
        if outcome.suppressed:
            self.suppressed.append(outcome.email)


def _quote(folder: str) -> str:
    return '"' + folder + '"'


def _check(result: tuple[str, list[Any]], what: str) -> list[Any]:
    status, data = result
    if status != "OK":
        detail = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
        raise MailboxError(f"The IMAP server refused to {what}: {detail or status}")
    return data


def _connect(settings: ImapSettings) -> imaplib.IMAP4:
    try:
        if settings.security == "ssl":
            return imaplib.IMAP4_SSL(settings.host, settings.port,
                                     ssl_context=ssl.create_default_context(),
                                     timeout=settings.timeout)
        imap = imaplib.IMAP4(settings.host, settings.port, timeout=settings.timeout)
        if settings.security == "starttls":
            imap.starttls(ssl.create_default_context())
        return imap
    except (OSError, imaplib.IMAP4.error) as exc:
        raise MailboxError(
            f"Could not connect to the IMAP server {settings.host}:{settings.port} "
            f"({settings.security}): {exc}. Check the host, port and security.") from exc


def fetch_bounces(
    uow: UnitOfWork,
    operator: Operator,
    settings: ImapSettings,
    password: str | None,
    *,
    authenticate: Callable[[imaplib.IMAP4], None] | None = None,
    limit: int | None = None,
    on_outcome: Callable[[BounceOutcome], None] | None = None,
    prefer_move: bool = True,
) -> FetchReport:
    """Process every not yet processed message of the bounce mailbox (ADMIN_TENANT)."""
    with uow:
        operator = refreshed(uow.session, operator)
        require(operator, Action.MANAGE_SUPPRESSION)
    if not settings.configured:
        raise SettingsIncomplete("Set up the bounce mailbox first (invite-desk bounces "
                                 "configure).", settings_page="email")
    if authenticate is None and not password:
        raise SettingsIncomplete(
            f"No password for the bounce mailbox {settings.username}@{settings.host}: store "
            f"it in the keyring entry {settings.password_key()!r} or give it for this run.",
            settings_page="email")
    report = FetchReport()
    imap = _connect(settings)
    try:
        try:
            if authenticate is not None:
                authenticate(imap)
            else:
                assert password is not None
                imap.login(settings.username, password)
        except imaplib.IMAP4.error as exc:
            raise MailboxError(f"The IMAP server refused the sign-in of {settings.username}: "
                               f"{exc}. Check the user name and password.") from exc
        _ensure_folder(imap, settings.processed_folder)
        _check(imap.select(_quote(settings.folder)), f"open the folder {settings.folder}")
        can_move = prefer_move and "MOVE" in _capabilities(imap)
        data = _check(imap.uid("SEARCH", "NOT", "KEYWORD", PROCESSED_FLAG), "search the inbox")
        uids = data[0].decode("ascii").split() if data and data[0] else []
        for uid in uids[:limit] if limit else uids:
            fetched = _check(imap.uid("FETCH", uid, "(BODY.PEEK[])"), "read a message")
            raw = next((part[1] for part in fetched
                        if isinstance(part, tuple) and len(part) == 2), None)
            if raw is None:
                continue
            report.seen += 1
            outcome = process_bounce(uow, operator.organization_id, raw,
                                     source=f"imap {settings.username}@{settings.host}")
            report.add(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
            _move(imap, uid, settings.processed_folder, can_move)
            report.moved += 1
        if not can_move and uids:
            imap.close()  # no EXPUNGE: flagged messages stay in the inbox
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            imap.logout()
    return report


def _capabilities(imap: imaplib.IMAP4) -> set[str]:
    """The capabilities after sign-in (servers announce more than before it, MOVE among
    them; imaplib keeps the ones from before)."""
    status, data = imap.capability()
    words: set[str] = set(imap.capabilities)
    if status == "OK":
        for line in data:
            if isinstance(line, bytes):
                words.update(line.decode("ascii", "replace").upper().split())
    return words


def _ensure_folder(imap: imaplib.IMAP4, folder: str) -> None:
    status, data = imap.list('""', _quote(folder))
    if status == "OK" and any(d for d in data if d):
        return
    status, data = imap.create(_quote(folder))
    if status != "OK":
        text = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
        if "ALREADYEXISTS" not in text.upper():
            raise MailboxError(f"Could not create the folder {folder!r} for processed mail: "
                               f"{text}")


def _move(imap: imaplib.IMAP4, uid: str, folder: str, can_move: bool) -> None:
    if can_move:
        _check(imap.uid("MOVE", uid, _quote(folder)), f"move a message to {folder}")
        return
    _check(imap.uid("COPY", uid, _quote(folder)), f"copy a message to {folder}")
    _check(imap.uid("STORE", uid, "+FLAGS", f"({PROCESSED_FLAG} \\Seen)"),
           "flag a processed message")
