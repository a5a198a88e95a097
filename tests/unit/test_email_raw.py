"""The fast batch writer produces the same message as the `email` package builder."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest
from hypothesis import Phase, assume, given, settings
from hypothesis import strategies as st

from invite_desk.services.email.message import InvalidAddress, build_message, wire_address
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


# -- the two builders agree on every input class (issue 8: names, addresses, subjects, bodies) --

_LOCAL_ASCII = st.text("abcxyzABC0129.-_+'!#", min_size=1, max_size=20)
_LOCAL_UNICODE = st.text("abcжзийкäöüéñ名字δοκιμή", min_size=1, max_size=20)
_LABEL = st.one_of(st.text("abcdz0129-", min_size=1, max_size=12),
                   st.text("abcbücherπαράδειγμα例え", min_size=1, max_size=12))
_DOMAIN = st.builds(lambda labels, tld: ".".join([*labels, tld]),
                    st.lists(_LABEL, min_size=1, max_size=3), st.sampled_from(["org", "example", "de"]))
_ADDRESS = st.builds(lambda local, domain: f"{local}@{domain}",
                     st.one_of(_LOCAL_ASCII, _LOCAL_UNICODE), _DOMAIN)
_NAME = st.one_of(
    st.text(max_size=80),
    st.text(st.sampled_from(list('ab "\\,;:<>@()[].=?\r\nZoë')), max_size=60),
    st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=4), st.integers(15, 60)),
)
_BODY = st.one_of(
    st.text(max_size=1500),
    st.text(st.sampled_from(list("ab \r\n.ä€😀\t=")), max_size=1500),
    st.builds(lambda c, n: c * n, st.sampled_from(["x", "ä", "x ", "=", "."]), st.integers(900, 2100)),
)


def _usable(address: str) -> bool:
    try:
        wire_address(address)
    except InvalidAddress:
        return False
    return True


def _unescape(text: str) -> str:
    """Raw UTF-8 in a parsed header comes back as surrogate escapes; read it as UTF-8."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _lines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")


def _raw_header(raw: bytes, key: str) -> str:
    """A header's value as written (folding undone), before any decoding."""
    value = BytesParser(policy=policy.compat32).parsebytes(raw, headersonly=True)[key]
    return "".join(str(value).split("\r\n"))


def _parsed(raw: bytes) -> dict[str, object]:
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    assert not [d for d in msg.defects], msg.defects
    text, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert text is not None and html is not None
    return {
        "from": tuple((_unescape(a.display_name), _unescape(a.addr_spec))
                      for a in msg["From"].addresses),
        "to": tuple((_unescape(a.display_name), _unescape(a.addr_spec))
                    for a in msg["To"].addresses),
        "subject": str(msg["Subject"]),
        "structure": [p.get_content_type() for p in msg.walk()],
        "charsets": [p.get_content_charset() for p in msg.walk() if p.get_content_maintype() == "text"],
        "text": _lines(text.get_content()),
        "html": _lines(html.get_content()),
        "images": [(p.get_content(), p["Content-ID"], p.get_content_disposition())
                   for p in msg.walk() if p.get_content_maintype() == "image"],
    }


@settings(max_examples=100, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(from_name=_NAME, from_address=_ADDRESS, to_name=_NAME, to_address=_ADDRESS,
       subject=st.one_of(st.text(min_size=1, max_size=300), _NAME), body=_BODY,
       with_logo=st.booleans())
def test_raw_writer_is_equivalent_to_the_email_package(
    from_name: str, from_address: str, to_name: str, to_address: str, subject: str, body: str,
    with_logo: bool,
) -> None:
    assume(_usable(from_address) and _usable(to_address))
    rendered = RenderedEmail(" ".join(subject.split()) or "x", f"<p>{body}</p>", body)
    args: dict[str, Any] = dict(
        from_address=from_address, from_name=from_name, to_address=to_address, to_name=to_name,
        message_id_domain=from_address.rpartition("@")[2],
        logo=LOGO if with_logo else None, logo_mime="image/png" if with_logo else None,
    )
    reference, _ = build_message(rendered, **args)
    raw, message_id = build_raw_message(rendered, **args)

    fast, ref = _parsed(raw), _parsed(reference.as_bytes())
    # Names and subjects are compared with the input, not with the email package: its folder
    # drops a space next to some C1 controls, loses a long display name ending in a special
    # character, and under policy SMTPUTF8 writes a long name with commas unquoted, so it
    # parses as several addresses (CPython bugs, all found by this test); its parser keeps the
    # space between two encoded words of a display name, which RFC 2047 says to ignore.
    assert str(fast["subject"]).replace(" ", "") == str(ref["subject"]).replace(" ", "")
    same = ("structure", "charsets", "text", "html", "images")
    assert {k: fast[k] for k in same} == {k: ref[k] for k in same}
    assert fast["subject"] == rendered.subject
    sender, recipient = wire_address(from_address), wire_address(to_address)
    for key, name, wire in (("from", from_name, sender), ("to", to_name, recipient)):
        expected_name = " ".join(name.split())
        [(parsed_name, parsed_address)] = fast[key]  # type: ignore[misc]
        assert parsed_address == str(wire)
        assert parsed_name.replace(" ", "") == expected_name.replace(" ", "")
        if _raw_header(raw, key).startswith("=?"):  # encoded words: read as RFC 2047 says
            phrase = _raw_header(raw, key).rpartition(" <")[0]
            assert str(make_header(decode_header(phrase))) == expected_name
        else:
            assert parsed_name == expected_name
    assert fast["text"] == _lines(body)
    # Safe on the wire: CRLF only, short lines, ASCII unless an address needs SMTPUTF8.
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    assert raw.isascii() or sender.smtputf8 or recipient.smtputf8
    assert BytesParser(policy=policy.default).parsebytes(raw)["Message-ID"] == message_id
    assert message_id.isascii()
