"""The bounce mailbox on the real dovecot IMAP server that scripts/start-test-servers.sh
starts on loopback ($INVITE_DESK_TEST_IMAP_URL = imap://any:PASSWORD@127.0.0.1:PORT).

Every test gets a fresh user name, so an empty mailbox of its own. Without the variable the
test is skipped, or fails when INVITE_DESK_REQUIRE_SERVERS=1 (as in CI)."""

from __future__ import annotations

import imaplib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from invite_desk.services.bounces.mailbox import ImapSettings
from tests.db_servers import skip_or_fail

IMAP_ENV = "INVITE_DESK_TEST_IMAP_URL"
CORPUS = Path(__file__).parent / "data" / "bounces"


@dataclass(frozen=True)
class BounceMailbox:
    host: str
    port: int
    username: str
    password: str

    def settings(self, **overrides: object) -> ImapSettings:
        values: dict[str, object] = {"host": self.host, "port": self.port, "security": "none",
                                     "username": self.username, "timeout": 10.0}
        values.update(overrides)
        return ImapSettings(**values)  # type: ignore[arg-type]

    def connect(self) -> imaplib.IMAP4:
        imap = imaplib.IMAP4(self.host, self.port, timeout=10)
        imap.login(self.username, self.password)
        return imap

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        imap = self.connect()
        try:
            status, data = imap.append(folder, None, imaplib.Time2Internaldate(time.time()), raw)
            assert status == "OK", data
        finally:
            imap.logout()

    def count(self, folder: str, *criteria: str) -> int:
        """Messages in `folder` (matching the search criteria), 0 when it does not exist."""
        imap = self.connect()
        try:
            status, _ = imap.select(f'"{folder}"', readonly=True)
            if status != "OK":
                return 0
            status, data = imap.uid("SEARCH", *(criteria or ("ALL",)))
            return len(data[0].split()) if status == "OK" and data[0] else 0
        finally:
            imap.logout()


def corpus_message(name: str, *, recipient: str, invitation_id: object = "",
                   message_id: str = "", sender: str = "invitations@rowing.example") -> bytes:
    """A corpus file with the placeholders filled in, CRLF line ends."""
    text = (CORPUS / name).read_text(encoding="utf-8")
    text = (text.replace("{{RECIPIENT}}", recipient)
            .replace("{{INVITATION_ID}}", str(invitation_id or uuid.uuid4()))
            .replace("{{MESSAGE_ID}}", message_id or f"<{uuid.uuid4().hex}@rowing.example>")
            .replace("{{FROM}}", sender))
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


@pytest.fixture
def bounce_mailbox() -> BounceMailbox:
    raw = os.environ.get(IMAP_ENV, "").strip()
    if not raw:
        skip_or_fail(f"{IMAP_ENV} is not set: no IMAP server to test against "
                     "(eval \"$(bash scripts/start-test-servers.sh)\")")
    url = urlsplit(raw)
    assert url.hostname and url.port and url.password is not None, raw
    return BounceMailbox(url.hostname, url.port, f"bounces-{uuid.uuid4().hex[:12]}",
                       url.password)
