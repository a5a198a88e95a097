"""MIME structure, headers, inline logo and header-injection safety of invitation messages."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from typing import Any

import pytest

from invite_desk.services.email import (
    InvalidAddress,
    RenderedEmail,
    build_message,
    normalize_address,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
RENDERED = RenderedEmail(
    subject="Ada invited you to join Harbour Rowing Club",
    html='<p>Hello</p><img src="cid:logo@club.test">',
    text="Hello\n",
)


def build(**changes: Any) -> tuple[EmailMessage, str]:
    arguments: dict[str, Any] = {
        "from_address": "invitations@club.example.org",
        "from_name": "Harbour Rowing Club",
        "to_address": "grace@example.org",
        "to_name": "Grace Hopper",
        "message_id_domain": "club.example.org",
        "logo": None,
        "logo_mime": None,
        "logo_cid": "logo@club.test",
    }
    arguments.update(changes)
    rendered = arguments.pop("rendered", RENDERED)
    return build_message(rendered, **arguments)


def reparse(message: EmailMessage) -> tuple[bytes, EmailMessage]:
    """What a receiving server would see: the bytes on the wire, parsed back."""
    raw = message.as_bytes()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return raw, parsed


def test_headers_are_present_and_the_message_id_is_returned() -> None:
    message, message_id = build()
    _, parsed = reparse(message)
    assert parsed["From"] == "Harbour Rowing Club <invitations@club.example.org>"
    assert parsed["To"] == "Grace Hopper <grace@example.org>"
    assert parsed["Subject"] == "Ada invited you to join Harbour Rowing Club"
    assert parsed["Date"].datetime is not None
    assert parsed["Message-ID"] == message_id
    assert message_id.startswith("<") and message_id.endswith("@club.example.org>")
    assert build()[1] != message_id


def test_text_and_html_are_alternatives_without_a_logo() -> None:
    _, parsed = reparse(build()[0])
    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    plain, html = (p.get_content() for p in parts)
    assert plain.splitlines() == ["Hello"]
    assert html.startswith("<p>Hello</p>")


def test_logo_is_an_inline_related_part_with_its_content_id() -> None:
    _, parsed = reparse(build(logo=PNG, logo_mime="image/png")[0])
    text, related = parsed.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html, image = related.iter_parts()
    assert html.get_content_type() == "text/html"
    assert 'src="cid:logo@club.test"' in html.get_content()
    assert image.get_content_type() == "image/png"
    assert image["Content-ID"] == "<logo@club.test>"
    assert image.get_content_disposition() == "inline"
    assert image.get_content() == PNG


def test_logo_must_be_an_image() -> None:
    with pytest.raises(ValueError, match="image type"):
        build(logo=b"%PDF", logo_mime="application/pdf")


def test_non_ascii_names_and_subject_are_encoded_for_the_wire() -> None:
    rendered = RenderedEmail("Zoë t'invite à rejoindre Club Émeraude", "<p>é</p>", "é\n")
    message, _ = build(rendered=rendered, from_name="Club Émeraude", to_name="Zoë Ørsted")
    raw, parsed = reparse(message)
    headers = raw.split(b"\r\n\r\n", 1)[0]
    headers.decode("ascii")  # every header byte is ASCII (RFC 2047 encoded words)
    assert b"=?utf-8?" in headers
    assert parsed["From"].addresses[0].display_name == "Club Émeraude"
    assert parsed["To"].addresses[0].display_name == "Zoë Ørsted"
    assert parsed["Subject"] == "Zoë t'invite à rejoindre Club Émeraude"


def test_lines_end_in_crlf_and_stay_short_for_smtp() -> None:
    long_html = "<p>" + "x" * 5000 + "</p>"
    raw, _ = reparse(build(rendered=RenderedEmail("s", long_html, "t\n"))[0])
    lines = raw.split(b"\r\n")
    assert b"\n" not in b"".join(lines)
    assert max(len(line) for line in lines) <= 998


@pytest.mark.parametrize("field", ["to_name", "from_name"])
def test_crlf_in_a_name_cannot_inject_a_header(field: str) -> None:
    message, _ = build(**{field: "Eve\r\nBcc: spy@evil.example\r\n\r\nbody"})
    raw, parsed = reparse(message)
    assert parsed.get_all("Bcc") is None
    assert not any(line.lower().startswith(b"bcc:") for line in raw.split(b"\r\n"))
    header = "To" if field == "to_name" else "From"
    assert parsed[header].addresses[0].display_name == "Eve Bcc: spy@evil.example body"
    assert len(parsed.get_all(header) or []) == 1


def test_crlf_in_a_subject_cannot_inject_a_header() -> None:
    rendered = RenderedEmail("Hello\r\nBcc: spy@evil.example", "<p>x</p>", "x\n")
    raw, parsed = reparse(build(rendered=rendered)[0])
    assert parsed["Subject"] == "Hello Bcc: spy@evil.example"
    assert parsed.get_all("Bcc") is None
    assert b"\r\nBcc:" not in raw


def test_addresses_are_validated_before_building() -> None:
    with pytest.raises(InvalidAddress) as caught:
        build(to_address="grace.example.org")
    assert caught.value.address == "grace.example.org"
    assert "@" in caught.value.reason
    with pytest.raises(InvalidAddress):
        build(from_address="invitations@")
    with pytest.raises(InvalidAddress, match="Bcc"):
        build(to_address="grace@example.org\r\nBcc: spy@evil.example")


def test_international_domains_go_on_the_wire_as_ascii() -> None:
    _, parsed = reparse(build(to_address="zoe@bücher.example")[0])
    assert parsed["To"].addresses[0].addr_spec == "zoe@xn--bcher-kva.example"


def test_normalize_address() -> None:
    assert normalize_address("  Grace.Hopper@Example.ORG ") == "Grace.Hopper@example.org"
    assert normalize_address("zoe@BÜCHER.example") == "zoe@bücher.example"
    with pytest.raises(InvalidAddress, match="it is empty"):
        normalize_address("   ")
    with pytest.raises(InvalidAddress) as caught:
        normalize_address("grace@@example.org")
    assert str(caught.value).startswith("'grace@@example.org' is not a usable email address: ")
    with pytest.raises(InvalidAddress, match="period"):
        normalize_address("grace..hopper@example.org")
