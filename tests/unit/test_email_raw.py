"""The fast batch writer produces the same message as the `email` package builder."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invite_desk.services.email.message import build_message
from invite_desk.services.email.raw import build_raw_message
from invite_desk.services.email.templates import RenderedEmail

LOGO = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3


def _parts(msg: EmailMessage) -> dict[str, object]:
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    images = [p for p in msg.walk() if p.get_content_maintype() == "image"]
    assert text is not None and html is not None
    return {
        "from": str(msg["From"]),
        "to": str(msg["To"]),
        "subject": str(msg["Subject"]),
        "structure": [p.get_content_type() for p in msg.walk()],
        "text": text.get_content().replace("\r\n", "\n").rstrip("\n"),
        "html": html.get_content().replace("\r\n", "\n").rstrip("\n"),
        "images": [(p.get_content(), p["Content-ID"]) for p in images],
    }


def _both(rendered: RenderedEmail, **kw: object) -> tuple[dict[str, object], dict[str, object], bytes]:
    args = dict(from_address="invitations@club.example", from_name="Club Zoë", to_address="a@b.example",
                to_name="Åsa Ödegaard", message_id_domain="club.example")
    args.update(kw)
    reference, ref_id = build_message(rendered, **args)  # type: ignore[arg-type]
    raw, raw_id = build_raw_message(rendered, **args)  # type: ignore[arg-type]
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Message-ID"] == raw_id and parsed["Date"]
    reparsed = message_from_bytes(reference.as_bytes(), policy=policy.default)
    assert isinstance(reparsed, EmailMessage)
    return _parts(reparsed), _parts(parsed), raw


@pytest.mark.parametrize("logo", [None, LOGO])
def test_same_message_as_the_email_package(logo: bytes | None) -> None:
    rendered = RenderedEmail("Ada invited you to join Club Zoë",
                             "<p>Hello <b>Åsa</b></p>\n<p>line two</p>", "Hello Åsa\n\n.leading dot\nbye")
    ref, fast, raw = _both(rendered, logo=logo, logo_mime="image/png" if logo else None)
    assert ref == fast
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"")


def test_header_injection_in_names_and_subject_is_neutralised() -> None:
    rendered = RenderedEmail("Hi\r\nBcc: evil@x.example", "<p>x</p>", "x")
    ref, fast, raw = _both(rendered, to_name="Eve\r\nBcc: evil@x.example")
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Bcc"] is None
    assert fast["subject"] == "Hi Bcc: evil@x.example"


@settings(max_examples=40, deadline=None)
@given(st.text(min_size=1, max_size=300), st.text(max_size=2000), st.text(max_size=80))
def test_any_text_round_trips(subject: str, body: str, name: str) -> None:
    rendered = RenderedEmail(subject, f"<p>{body}</p>", body or "x")
    ref, fast, raw = _both(rendered, to_name=name)
    assert fast["text"] == ref["text"]
    assert fast["html"] == ref["html"]
    assert fast["subject"] == ref["subject"]
    # Compared with the input, not the reference: the email package's folder can insert a
    # space into long encoded names (seen with C1 controls plus astral characters).
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["To"].addresses[0].display_name == " ".join(name.split())
