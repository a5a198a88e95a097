"""MIME invitation messages: text + HTML alternatives, an inline logo, safe headers."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8, EmailPolicy
from email.utils import formatdate, make_msgid
from functools import lru_cache

from email_validator import EmailNotValidError, ValidatedEmail, validate_email

from invite_desk.services.email.templates import DEFAULT_LOGO_CID, RenderedEmail
from invite_desk.services.errors import DomainError


class InvalidAddress(DomainError):
    """An email address that cannot be used; the reason says what is wrong with it."""

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"{address!r} is not a usable email address: {reason}")


def normalize_address(text: str) -> str:
    """The normalized form of an address (domain lower-cased, Unicode NFC); no DNS lookups."""
    return _validated(text).normalized


@dataclass(frozen=True, slots=True)
class WireAddress:
    """An address as it goes on the wire: the domain as punycode (A-label); `smtputf8` when the
    local part is not ASCII, so the message can only travel where the server offers SMTPUTF8."""

    local_part: str
    domain: str
    smtputf8: bool

    def __str__(self) -> str:
        return f"{self.local_part}@{self.domain}"


@lru_cache(maxsize=4096)
def wire_address(text: str) -> WireAddress:
    """Validate `text` (raises InvalidAddress) and give its wire form; no DNS lookups."""
    validated = _validated(text)
    local = validated.ascii_local_part or validated.local_part
    return WireAddress(local, validated.ascii_domain, not local.isascii())


def needs_smtputf8(*addresses: str) -> bool:
    """Whether any of the addresses has a non-ASCII local part (needs the SMTPUTF8 extension)."""
    return any(wire_address(address).smtputf8 for address in addresses)


def build_message(
    rendered: RenderedEmail,
    *,
    from_address: str,
    from_name: str,
    to_address: str,
    to_name: str,
    message_id_domain: str,
    logo: bytes | None = None,
    logo_mime: str | None = None,
    logo_cid: str = DEFAULT_LOGO_CID,
    extra_headers: Sequence[tuple[str, str]] = (),
) -> tuple[EmailMessage, str]:
    """Build the message and return it with its Message-ID (angle brackets included) to store.

    An address with a non-ASCII local part makes it an internationalized message (policy
    SMTPUTF8: UTF-8 headers), which only a server offering SMTPUTF8 accepts.
    """
    utf8 = needs_smtputf8(from_address, to_address)
    message = EmailMessage(policy=_UNFOLDING_UTF8 if utf8 else _UNFOLDING)
    sender = _address(from_name, from_address)
    message["From"] = sender
    message["To"] = _address(to_name, to_address)
    message["Subject"] = _one_line(rendered.subject)
    message["Date"] = formatdate(localtime=True)
    message_id = new_message_id(message_id_domain, from_address)
    message["Message-ID"] = message_id
    for name, value in extra_headers:
        message[name] = one_line_header_value(value)
    message.set_content(rendered.text, subtype="plain", cte=_transfer_encoding(rendered.text))
    message.add_alternative(rendered.html, subtype="html", cte=_transfer_encoding(rendered.html))
    if logo is not None:
        maintype, _, subtype = (logo_mime or "image/png").partition("/")
        if maintype != "image" or not subtype:
            raise ValueError(f"the logo must be an image type like image/png, not {logo_mime!r}")
        html_part = next(p for p in message.iter_parts() if p.get_content_type() == "text/html")
        html_part.add_related(
            logo,
            maintype=maintype,
            subtype=subtype,
            cid=f"<{logo_cid}>",
            disposition="inline",
            filename=f"logo.{subtype.split('+')[0]}",
        )
    return message, message_id


# Headers that must stay on one line, however long (RFC 8058 §3.1: receivers must not have
# to unfold List-Unsubscribe to find the URI; some never do).
UNFOLDED_HEADERS = frozenset({"list-unsubscribe", "list-unsubscribe-post",
                              "x-invite-desk-invitation"})


class _UnfoldingPolicy(EmailPolicy):
    """The SMTP policy, except that UNFOLDED_HEADERS are written on one line."""

    def fold(self, name: str, value: str) -> str:
        if name.lower() in UNFOLDED_HEADERS:
            return f"{name}: {one_line_header_value(str(value))}{self.linesep}"
        folded: str = super().fold(name, value)
        return folded

    def fold_binary(self, name: str, value: str) -> bytes:
        if name.lower() in UNFOLDED_HEADERS:
            line = f"{name}: {one_line_header_value(str(value))}{self.linesep}"
            return line.encode("utf-8" if self.utf8 else "ascii", "surrogateescape")
        return super().fold_binary(name, value)


_UNFOLDING = _UnfoldingPolicy() + SMTP
_UNFOLDING_UTF8 = _UnfoldingPolicy() + SMTPUTF8


def one_line_header_value(value: str) -> str:
    """A header value on one line: whitespace runs (CR and LF included) become one space;
    only printable ASCII (these headers carry URIs and ids)."""
    text = " ".join(value.split())
    if not (text.isascii() and text.isprintable()):
        raise ValueError(f"header value must be printable ASCII: {text!r}")
    return text


_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


def new_message_id(domain: str, from_address: str) -> str:
    """A fresh Message-ID on `domain` (punycode), or on the sender's domain when `domain` is
    not a usable host name. An explicit domain keeps make_msgid from asking DNS for ours."""
    candidate = "".join(domain.split())
    if candidate and not candidate.isascii():
        try:
            candidate = candidate.encode("idna").decode("ascii")
        except UnicodeError:
            candidate = ""
    if not _DOMAIN.fullmatch(candidate):
        candidate = wire_address(from_address).domain
    return make_msgid(domain=candidate)


def _address(name: str, address: str) -> Address:
    """A header address; the display name is collapsed to one line (no header injection)."""
    wire = wire_address(address)
    # username/domain, not addr_spec: Address refuses to parse a non-ASCII local part.
    return Address(display_name=_one_line(name), username=wire.local_part, domain=wire.domain)


def _transfer_encoding(body: str) -> str:
    """7bit when the body may go as it is (ASCII, lines within SMTP's 998), else quoted-printable.

    Both are safe on any server; 7bit avoids the email package's slow pure-Python encoder.
    """
    if body.isascii() and all(len(line) <= 998 for line in body.splitlines()):
        return "7bit"
    return "quoted-printable"


def _one_line(text: str) -> str:
    """Collapse every run of whitespace, CR and LF included, into one space."""
    return " ".join(text.split())


def _validated(text: str) -> ValidatedEmail:
    candidate = text.strip()
    if not candidate:
        raise InvalidAddress(text, "it is empty.")
    try:
        return validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidAddress(text, str(error)) from error
