"""pytest fixtures for the loopback SMTP server; conftest loads them via pytest_plugins."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.smtp_server import LoopbackSmtpServer, Tls


@pytest.fixture
def smtp_server() -> Iterator[LoopbackSmtpServer]:
    """A plain loopback SMTP server without TLS or AUTH, stopped after the test."""
    with LoopbackSmtpServer() as server:
        yield server


@pytest.fixture
def make_smtp_server() -> Iterator[Callable[..., LoopbackSmtpServer]]:
    """Start servers with options, e.g. make_smtp_server(auth=("u", "p"), tls="starttls")."""
    started: list[LoopbackSmtpServer] = []

    def make(
        *, auth: tuple[str, str] | None = None, tls: Tls = None, smtputf8: bool = False,
        xoauth2: dict[str, str] | None = None, reply_delay: float = 0.0,
    ) -> LoopbackSmtpServer:
        server = LoopbackSmtpServer(auth=auth, tls=tls, smtputf8=smtputf8, xoauth2=xoauth2,
                                    reply_delay=reply_delay).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
