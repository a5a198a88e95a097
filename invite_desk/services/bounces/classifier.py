"""Classify one message from the bounce mailbox: a hard bounce, a soft bounce, an
auto-reply (vacation, out of office: never a bounce), or something else.

The DSN's own fields decide when the message has them (RFC 3464 message/delivery-status:
`Status: 5.x.x` is hard, `4.x.x` soft; `Action: failed` hard, `delayed` soft). Bounces in
older formats (qmail, Exchange's text notices, ...) are read with flufl.bounce's detectors,
plus the enhanced status code or SMTP reply the text quotes. Auto-replies are recognised by
their headers (Auto-Submitted, X-Autoreply, Precedence) and subjects, and only when the
message is not a delivery report.

Matching: the invitation id the outbox writes in `X-Invite-Desk-Invitation`, else the
original Message-ID, found anywhere in the returned message or headers (a message/rfc822
part, text/rfc822-headers, or the copy qmail pastes into its text).
"""

from __future__ import annotations

import email
import re
import uuid
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import Header, decode_header
from email.message import Message
from enum import StrEnum
from functools import partial

from flufl.bounce import all_failures

from invite_desk.services.invitations.rendering import INVITATION_HEADER


class BounceKind(StrEnum):
    HARD = "hard"
    SOFT = "soft"
    AUTO_REPLY = "auto_reply"
    OTHER = "other"  # not a bounce we understand: left alone


@dataclass(frozen=True)
class Verdict:
    kind: BounceKind
    recipients: tuple[str, ...] = ()  # the failed addresses the report names (lower-cased)
    status: str = ""  # enhanced status code, e.g. "5.1.1"
    diagnostic: str = ""  # the remote server's words, one line
    invitation_ids: tuple[uuid.UUID, ...] = ()
    message_ids: tuple[str, ...] = ()  # Message-IDs of our messages it quotes
    message_id: str = ""  # this bounce's own Message-ID
    subject: str = ""

    @property
    def evidence(self) -> str:
        """What to keep as the reason: the status and the server's diagnostic."""
        parts = [p for p in (self.status, self.diagnostic) if p]
        return " ".join(parts)[:1000] or self.subject[:200]


_AUTO_SUBJECT = re.compile(
    r"auto(?:matic|matische?)?[\s_-]*(?:reply|replied|response|responder|antwort)|"
    r"\bout of (?:the )?office\b|\bOOO\b|abwesenheit|\babwesend\b|\babsence\b|"
    r"\babsent\b|\bvacation\b|\bon (?:holiday|leave)\b|\baway from\b|"
    r"r[ée]ponse automatique|autosvar|automaattinen vastaus|respuesta autom[áa]tica|"
    r"risposta automatica|fuori sede|afwezig|automatisch antwoord|"
    r"\bi am (?:currently )?(?:out|away)\b",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery status|delivery (?:has )?fail|failure notice|returned mail|"
    r"mail delivery|could not be delivered|non[- ]?delivery|delivery notification",
    re.IGNORECASE,
)
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_INVITATION_RE = re.compile(re.escape(INVITATION_HEADER) + r":[ \t]*(?:\r?\n[ \t]+)?(" + _UUID + ")",
                            re.IGNORECASE)
_MESSAGE_ID_RE = re.compile(r"^Message-ID:[ \t]*(?:\r?\n[ \t]+)?(<[^<>\s]{1,250}>)",
                            re.IGNORECASE | re.MULTILINE)
_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_REPLY = re.compile(r"(?m)^[ \t>]*(?:[^:\n]{0,40}:\s*)?([45]\d\d)[ -]([^\n]{3,300})$")


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        charset = part.get_content_charset() or "utf-8"
        try:
            return payload.decode(charset, "replace")
        except LookupError:
            return payload.decode("utf-8", "replace")
    if isinstance(payload, str):
        return payload
    return ""


def _everything(message: Message) -> str:
    """Every part's text and every nested message's headers, for id matching."""
    chunks: list[str] = []
    for part in message.walk():
        if part is not message and part.get_content_type() in ("message/rfc822",
                                                               "message/global"):
            continue  # its sub-parts are walked next; its headers are below
        if part is not message:
            chunks.append("".join(f"{k}: {v}\n" for k, v in part.items()))
        if not part.is_multipart():
            chunks.append(_text(part))
    return "\n".join(chunks)


def _header_text(value: object) -> str:
    """A header as text: RFC 2047 encoded words decoded, raw 8-bit bytes as UTF-8 (else
    Latin-1)."""
    if value is None:
        return ""
    try:
        parts = decode_header(value if isinstance(value, Header) else str(value))
    except (HeaderParseError, ValueError):
        return _one_line(str(value))
    out: list[str] = []
    for chunk, charset in parts:
        if isinstance(chunk, str):
            out.append(chunk)
            continue
        for codec in (charset if charset and charset != "unknown-8bit" else "utf-8",
                      "latin-1"):
            try:
                out.append(chunk.decode(codec))
                break
            except (LookupError, UnicodeDecodeError):
                continue
    return _one_line("".join(out))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _is_auto_reply(message: Message) -> bool:
    auto = (message.get("Auto-Submitted") or "").strip().lower()
    if auto and auto != "no":
        return True
    if message.get("X-Autoreply") or message.get("X-Autorespond"):
        return True
    precedence = (message.get("Precedence") or "").strip().lower()
    if precedence in ("auto_reply", "bulk", "junk", "list"):
        return True
    return bool(_AUTO_SUBJECT.search(_header_text(message.get("Subject"))))


_MAIL_SYSTEM = re.compile(r"mailer-daemon|postmaster|mail delivery|mail administrator",
                          re.IGNORECASE)


def _from_mail_system(message: Message, subject: str) -> bool:
    """Whether a message without a delivery report still comes from a mail system (bounces
    carry Auto-Submitted too, like auto-replies do)."""
    return bool(message.get("X-Failed-Recipients")
                or _MAIL_SYSTEM.search(str(message.get("From") or ""))
                or _BOUNCE_SUBJECT.search(subject))


@dataclass
class _Report:
    recipients: list[str]
    actions: list[str]
    statuses: list[str]
    diagnostics: list[str]


def _delivery_status(message: Message) -> _Report | None:
    """The per-recipient fields of an RFC 3464 report, or None when there is none."""
    found: _Report | None = None
    for part in message.walk():
        if part.get_content_type() not in ("message/delivery-status",
                                           "message/global-delivery-status"):
            continue
        found = found or _Report([], [], [], [])
        blocks: list[Message] = []
        payload = part.get_payload()
        if isinstance(payload, list):
            blocks = [p for p in payload if isinstance(p, Message)]
        else:
            text = _text(part)
            blocks = [email.message_from_string(b.strip() + "\n")
                      for b in re.split(r"\r?\n\s*\r?\n", text) if b.strip()]
        for block in blocks:
            recipient = block.get("Final-Recipient") or block.get("Original-Recipient")
            if recipient:
                found.recipients.append(_one_line(str(recipient)).rpartition(";")[2].strip())
            if block.get("Action"):
                found.actions.append(str(block.get("Action")).strip().lower())
            if block.get("Status"):
                code = _ENHANCED.search(str(block.get("Status")))
                if code:
                    found.statuses.append(code.group(0))
            if block.get("Diagnostic-Code"):
                found.diagnostics.append(
                    _one_line(str(block.get("Diagnostic-Code"))).removeprefix("smtp;").strip())
    return found


def _diagnostic_from_text(text: str) -> tuple[str, str]:
    """(enhanced status, one diagnostic line) quoted in a non-DSN bounce's text."""
    status = ""
    code = _ENHANCED.search(text)
    if code:
        status = code.group(0)
    reply = _REPLY.search(text)
    diagnostic = _one_line(f"{reply.group(1)} {reply.group(2)}") if reply else ""
    if not diagnostic and code:
        line_start = text.rfind("\n", 0, code.start()) + 1
        line_end = text.find("\n", code.end())
        diagnostic = _one_line(text[line_start:line_end if line_end != -1 else None])
    return status, diagnostic[:500]


def _addresses(values: frozenset[bytes] | frozenset[str]) -> list[str]:
    out = []
    for value in values:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        out.append(text.strip().strip("<>").lower())
    return sorted(a for a in out if "@" in a)


def classify(raw: bytes) -> Verdict:
    """What one message from the bounce mailbox is."""
    message = email.message_from_bytes(raw)
    everything = _everything(message)
    own_id = _one_line(str(message.get("Message-ID") or ""))
    invitation_ids = tuple(dict.fromkeys(
        uuid.UUID(m.group(1)) for m in _INVITATION_RE.finditer(everything)))
    message_ids = tuple(dict.fromkeys(
        m.group(1) for m in _MESSAGE_ID_RE.finditer(everything) if m.group(1) != own_id))
    subject = _header_text(message.get("Subject"))
    make = partial(Verdict, invitation_ids=invitation_ids, message_ids=message_ids,
                   message_id=own_id, subject=subject)

    report = _delivery_status(message)
    if report is not None and (report.statuses or report.actions):
        statuses = report.statuses
        hard = any(s.startswith("5") for s in statuses) or (
            not statuses and "failed" in report.actions)
        soft = any(s.startswith("4") for s in statuses) or "delayed" in report.actions
        if not hard and not soft:  # delivered, relayed, expanded: a success notice
            return make(BounceKind.OTHER)
        status = next((s for s in statuses if s[0] == ("5" if hard else "4")), "")
        diagnostic = report.diagnostics[0] if report.diagnostics else ""
        return make(BounceKind.HARD if hard else BounceKind.SOFT,
                    recipients=tuple(sorted({r.lower() for r in report.recipients})),
                    status=status, diagnostic=diagnostic[:500])

    if _is_auto_reply(message) and not _from_mail_system(message, subject):
        return make(BounceKind.AUTO_REPLY)

    temporary, permanent = all_failures(message)
    if not permanent and not temporary:
        failed = _one_line(str(message.get("X-Failed-Recipients") or ""))
        if not failed:
            return make(BounceKind.OTHER)
        # A mail system named the failed address but no detector knew the format.
        permanent = frozenset(a.strip().encode("utf-8") for a in failed.split(",") if a.strip())
    status, diagnostic = _diagnostic_from_text(everything)
    hard = bool(permanent) and not status.startswith("4")
    if status.startswith("5"):
        hard = True
    recipients = _addresses(permanent if hard and permanent else temporary or permanent)
    return make(BounceKind.HARD if hard else BounceKind.SOFT, recipients=tuple(recipients),
                status=status, diagnostic=diagnostic)
