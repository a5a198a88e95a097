"""The SMTP transport against a real SMTP server on loopback, reading what the server received."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from email.message import EmailMessage

import pytest

from invite_desk.services.email import EmailContext, build_message, default_templates, render
from invite_desk.services.smtp import (
    PermanentFailure,
    Sent,
    SmtpAuthError,
    SmtpConfig,
    SmtpConnectError,
    SmtpTransport,
    TemporaryFailure,
    Uncertain,
)
from invite_desk.services.smtp import test_connection as check_connection
from tests.smtp_server import LoopbackSmtpServer

MakeServer = Callable[..., LoopbackSmtpServer]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
USER, PASSWORD = "sender@club.example.org", "s3cret-app-password"


def config_for(server: LoopbackSmtpServer, **changes: object) -> SmtpConfig:
    config = SmtpConfig(
        host=server.host,
        port=server.port,
        security="none",
        username=None,
        from_address="invitations@club.example.org",
        from_name="Harbour Rowing Club",
        rate_per_minute=0,
        timeout=5.0,
    )
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


def invitation(to: str, *, message: str = "See you Tuesday!") -> tuple[EmailMessage, str]:
    context = EmailContext(
        organization_name="Harbour Rowing Club",
        organization_description="Rowing along the coast since 1921.",
        accent_color="#0F766E",
        has_logo=True,
        logo_cid="logo@club.example.org",
        inviter_name="Ada Lovelace",
        invitee_name="Grace Hopper",
        personal_message=message,
        registration_link="https://join.example.org/join/tok-" + to.split("@")[0],
        expires_at="31 December 2030",
    )
    return build_message(
        render(default_templates(), context),
        from_address="invitations@club.example.org",
        from_name="Harbour Rowing Club",
        to_address=to,
        to_name="Grace Hopper",
        message_id_domain="club.example.org",
        logo=PNG,
        logo_mime="image/png",
        logo_cid="logo@club.example.org",
    )


def send(transport: SmtpTransport, to: str) -> object:
    return transport.send(invitation(to)[0], to)


def test_the_server_receives_a_complete_branded_invitation(smtp_server: LoopbackSmtpServer) -> None:
    message, message_id = invitation("grace@example.org", message="<b>Hi</b> & {{ 7*7 }}\nBye")
    with SmtpTransport(config_for(smtp_server), None) as transport:
        result = transport.send(message, "grace@example.org")
    assert isinstance(result, Sent) and result.reply.startswith("250 ")
    [received] = smtp_server.messages
    assert received.mail_from == "invitations@club.example.org"
    assert received.rcpt_tos == ("grace@example.org",)
    got = received.message
    assert got["From"] == "Harbour Rowing Club <invitations@club.example.org>"
    assert got["To"] == "Grace Hopper <grace@example.org>"
    assert got["Subject"] == "Ada Lovelace invited you to join Harbour Rowing Club"
    assert got["Message-ID"] == message_id
    assert got["Date"].datetime is not None
    text_part = got.get_body(("plain",))
    html_part = got.get_body(("html",))
    assert text_part is not None and html_part is not None
    text, html = text_part.get_content(), html_part.get_content()
    assert "https://join.example.org/join/tok-grace" in text
    assert 'href="https://join.example.org/join/tok-grace"' in html
    assert "Ada Lovelace" in text and "<strong>Ada Lovelace</strong>" in html
    assert "&lt;b&gt;Hi&lt;/b&gt; &amp; {{ 7*7 }}<br>" in html and "49" not in html
    assert "> <b>Hi</b> & {{ 7*7 }}" in text
    assert 'bgcolor="#0F766E"' in html and "Harbour Rowing Club</td>" in html
    assert 'src="cid:logo@club.example.org"' in html
    [logo] = [part for part in got.walk() if part.get_content_type() == "image/png"]
    assert logo["Content-ID"] == "<logo@club.example.org>"
    assert logo.get_content() == PNG


def test_one_connection_carries_the_whole_batch(smtp_server: LoopbackSmtpServer) -> None:
    addresses = [f"member{i}@example.org" for i in range(20)]
    with SmtpTransport(config_for(smtp_server), None) as transport:
        results = [send(transport, address) for address in addresses]
    assert all(isinstance(result, Sent) for result in results)
    assert transport.connections_opened == 1 and smtp_server.connections == 1
    assert smtp_server.recipient_counts() == {address: 1 for address in addresses}


@pytest.mark.parametrize(
    ("command", "code"),
    [("RCPT", 450), ("DATA", 451), ("MAIL", 421), ("RCPT", 421), ("DATA", 421)],
)
def test_temporary_failures_are_classified_and_the_next_attempt_succeeds(
    smtp_server: LoopbackSmtpServer, command: str, code: int
) -> None:
    smtp_server.fail_next(command, code)  # type: ignore[arg-type]
    with SmtpTransport(config_for(smtp_server), None) as transport:
        first = send(transport, "busy@example.org")
        assert isinstance(first, TemporaryFailure) and first.code == code
        assert smtp_server.count_for("busy@example.org") == 0
        assert isinstance(send(transport, "busy@example.org"), Sent)
    assert smtp_server.count_for("busy@example.org") == 1
    # 421 means "closing the channel": the transport opens a new connection for the retry.
    assert transport.connections_opened == (2 if code == 421 else 1)


def test_repeated_450_stays_temporary_until_the_server_accepts(
    smtp_server: LoopbackSmtpServer,
) -> None:
    smtp_server.fail_recipient(
        "grey@example.org", 450, times=3, text="4.7.1 Greylisted, retry later"
    )
    with SmtpTransport(config_for(smtp_server), None) as transport:
        results = [send(transport, "grey@example.org") for _ in range(4)]
    assert results[:3] == [TemporaryFailure(450, "4.7.1 Greylisted, retry later")] * 3
    assert isinstance(results[3], Sent)
    assert smtp_server.count_for("grey@example.org") == 1


def test_550_is_permanent_keeps_the_reply_and_the_batch_goes_on(
    smtp_server: LoopbackSmtpServer,
) -> None:
    smtp_server.fail_recipient(
        "gone@example.org", 550, text="5.1.1 <gone@example.org>: no such user"
    )
    with SmtpTransport(config_for(smtp_server), None) as transport:
        results = [
            send(transport, a) for a in ("a@example.org", "gone@example.org", "b@example.org")
        ]
    assert results[1] == PermanentFailure(550, "5.1.1 <gone@example.org>: no such user")
    assert isinstance(results[0], Sent) and isinstance(results[2], Sent)
    assert smtp_server.recipient_counts() == {"a@example.org": 1, "b@example.org": 1}


def test_rejected_content_is_permanent(smtp_server: LoopbackSmtpServer) -> None:
    smtp_server.fail_next("DATA", 554)
    with SmtpTransport(config_for(smtp_server), None) as transport:
        result = send(transport, "a@example.org")
        assert result == PermanentFailure(554, "5.7.1 Message rejected as spam")
        assert isinstance(send(transport, "b@example.org"), Sent)
    assert smtp_server.recipient_counts() == {"b@example.org": 1}


def test_a_dropped_connection_mid_batch_is_reopened_and_every_message_arrives_once(
    smtp_server: LoopbackSmtpServer,
) -> None:
    addresses = [f"member{i}@example.org" for i in range(12)]
    smtp_server.drop_connection_after(4)
    with SmtpTransport(config_for(smtp_server), None) as transport:
        results = [send(transport, address) for address in addresses[:8]]
        smtp_server.drop_connection_after(2)
        results += [send(transport, address) for address in addresses[8:]]
    assert all(isinstance(result, Sent) for result in results)
    assert smtp_server.recipient_counts() == {address: 1 for address in addresses}
    assert transport.connections_opened == 3 and smtp_server.connections == 3
    by_connection = [m.connection for m in smtp_server.messages]
    assert by_connection == [1] * 4 + [2] * 6 + [3] * 2


def test_a_connection_lost_after_the_data_is_uncertain_and_never_resent(
    smtp_server: LoopbackSmtpServer,
) -> None:
    smtp_server.drop_during_data()
    with SmtpTransport(config_for(smtp_server), None) as transport:
        first = send(transport, "maybe@example.org")
        second = send(transport, "next@example.org")
    assert isinstance(first, Uncertain)
    assert "after the message was sent" in first.reason
    assert isinstance(second, Sent)
    # The server did get it: resending automatically would have delivered it twice.
    assert smtp_server.recipient_counts() == {"maybe@example.org": 1, "next@example.org": 1}


def test_starttls_and_auth(make_smtp_server: MakeServer) -> None:
    server = make_smtp_server(auth=(USER, PASSWORD), tls="starttls")
    config = config_for(server, security="starttls", username=USER)
    with SmtpTransport(config, PASSWORD, ssl_context=server.client_ssl_context()) as transport:
        assert isinstance(send(transport, "grace@example.org"), Sent)
    assert server.count_for("grace@example.org") == 1
    assert server.auth_failures == 0


def test_implicit_tls_and_auth(make_smtp_server: MakeServer) -> None:
    server = make_smtp_server(auth=(USER, PASSWORD), tls="ssl")
    config = config_for(server, security="ssl", username=USER)
    with SmtpTransport(config, PASSWORD, ssl_context=server.client_ssl_context()) as transport:
        assert isinstance(send(transport, "grace@example.org"), Sent)
    assert server.count_for("grace@example.org") == 1


def test_a_wrong_password_gives_a_clear_message(make_smtp_server: MakeServer) -> None:
    server = make_smtp_server(auth=(USER, PASSWORD), tls="starttls")
    config = config_for(server, security="starttls", username=USER)
    transport = SmtpTransport(config, "wrong-password", ssl_context=server.client_ssl_context())
    with transport, pytest.raises(SmtpAuthError) as caught:
        send(transport, "grace@example.org")
    message = str(caught.value)
    assert message.startswith(
        f"{server.host}:{server.port} refused the user name or password for {USER}"
    )
    assert "535" in message and "Check the password" in message
    assert "wrong-password" not in message and PASSWORD not in message
    assert server.auth_failures == 1 and server.messages == []


def test_sending_without_signing_in_to_a_server_that_requires_it(
    make_smtp_server: MakeServer,
) -> None:
    server = make_smtp_server(auth=(USER, PASSWORD))
    with (
        SmtpTransport(config_for(server), None) as transport,
        pytest.raises(SmtpAuthError) as caught,
    ):
        send(transport, "grace@example.org")
    assert "requires sign-in" in str(caught.value)
    assert server.messages == []


def test_an_untrusted_certificate_is_refused(make_smtp_server: MakeServer) -> None:
    server = make_smtp_server(tls="starttls")
    transport = SmtpTransport(config_for(server, security="starttls"), None)  # system CAs only
    with (
        transport,
        pytest.raises(SmtpConnectError, match="certificate of 127.0.0.1 could not be verified"),
    ):
        send(transport, "grace@example.org")
    assert server.messages == []


def test_starttls_configured_but_not_offered(smtp_server: LoopbackSmtpServer) -> None:
    with pytest.raises(SmtpConnectError, match="does not offer STARTTLS"):
        check_connection(config_for(smtp_server, security="starttls"), None)
    assert smtp_server.messages == [] and smtp_server.connections == 1


def test_an_unreachable_server_is_reported_in_plain_words() -> None:
    with LoopbackSmtpServer() as server:
        config = config_for(server)
    # The server is stopped: nothing listens on that port any more.
    with pytest.raises(SmtpConnectError) as caught:
        check_connection(config, None)
    assert str(caught.value) == f"Could not reach 127.0.0.1:{config.port}: connection refused."
    assert server.messages == []


def test_test_connection_reports_success_and_sends_nothing(make_smtp_server: MakeServer) -> None:
    server = make_smtp_server(auth=(USER, PASSWORD), tls="starttls")
    config = config_for(server, security="starttls", username=USER)
    result = check_connection(config, PASSWORD, ssl_context=server.client_ssl_context())
    assert result == (
        f"Connected to 127.0.0.1:{server.port} with STARTTLS and signed in as {USER}. "
        "Sending should work."
    )
    assert server.messages == [] and server.connections == 1 and server.auth_failures == 0


def test_the_rate_limit_is_applied_between_sends(smtp_server: LoopbackSmtpServer) -> None:
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    config = config_for(smtp_server, rate_per_minute=2)
    with SmtpTransport(config, None, clock=lambda: now[0], sleep=sleep) as transport:
        results = [send(transport, f"m{i}@example.org") for i in range(5)]
    assert all(isinstance(result, Sent) for result in results)
    assert sleeps == [60.0, 60.0]  # 2 at t=0, 2 at t=60, 1 at t=120
    assert len(smtp_server.messages) == 5


def test_the_password_is_never_shown(make_smtp_server: MakeServer) -> None:
    server = make_smtp_server(auth=(USER, PASSWORD))
    config = config_for(server, username=USER)
    with SmtpTransport(config, PASSWORD) as transport:
        assert isinstance(send(transport, "grace@example.org"), Sent)
        shown = repr(transport) + repr(config) + str(config)
    assert re.fullmatch(r"SmtpTransport\(127\.0\.0\.1:\d+, security='none'\)", repr(transport))
    assert PASSWORD not in shown
    [received] = server.messages
    assert PASSWORD.encode() not in received.raw
