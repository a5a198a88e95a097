"""List-Unsubscribe, List-Unsubscribe-Post and X-Invite-Desk-Invitation go on ONE unfolded line
each (RFC 8058), in the raw batch writer and in the email-package path alike, however long."""

from __future__ import annotations

import re
from email import message_from_bytes, policy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invite_desk.services.email.message import build_message
from invite_desk.services.email.raw import build_raw_message
from invite_desk.services.email.templates import RenderedEmail

RENDERED = RenderedEmail("Ada invited you to join Club Zoë", "<p>Hello</p>", "Hello")


def _headers(url: str) -> tuple[tuple[str, str], ...]:
    return (("X-Invite-Desk-Invitation", "0193a4b2-0000-7000-8000-000000000001"),
            ("List-Unsubscribe", f"<{url}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))


def _lines(raw: bytes, name: str) -> list[bytes]:
    head = raw.split(b"\r\n\r\n", 1)[0]
    return re.findall(rb"(?m)^" + name.encode() + rb": [^\r\n]*\r\n(?![ \t])", head + b"\r\n")


def _both(url: str, to_address: str = "a@b.example") -> list[bytes]:
    args = dict(from_address="invitations@club.example", from_name="Club Zoë",
                to_address=to_address, to_name="Åsa", message_id_domain="club.example",
                extra_headers=_headers(url))
    reference, _ = build_message(RENDERED, **args)  # type: ignore[arg-type]
    raw, _ = build_raw_message(RENDERED, **args)  # type: ignore[arg-type]
    as_smtplib = reference.as_bytes(policy=reference.policy.clone(utf8=True))
    return [reference.as_bytes(), raw, as_smtplib]


@pytest.mark.parametrize("to_address", ["a@b.example", "zoë@b.example"])
@settings(max_examples=25, deadline=None)
@given(path=st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_",
                    min_size=1, max_size=600))
def test_each_header_is_one_line_in_every_writer(to_address: str, path: str) -> None:
    url = f"https://join.example.org/unsubscribe/{path}"
    for raw in _both(url, to_address):
        lines = _lines(raw, "List-Unsubscribe")
        assert lines == [f"List-Unsubscribe: <{url}>\r\n".encode()]
        assert _lines(raw, "List-Unsubscribe-Post") == [
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"]
        parsed = message_from_bytes(raw, policy=policy.default)
        assert parsed["List-Unsubscribe"] == f"<{url}>"
        assert parsed["X-Invite-Desk-Invitation"] == "0193a4b2-0000-7000-8000-000000000001"
        assert parsed.get_body(("plain",)) is not None


def test_header_values_cannot_inject_lines() -> None:
    for raw in _both("https://x.example/u/a\r\nBcc: evil@x.example"):
        parsed = message_from_bytes(raw, policy=policy.default)
        assert parsed["Bcc"] is None
        assert "\n" not in parsed["List-Unsubscribe"]
    with pytest.raises(ValueError):
        _both("https://x.example/ü")
