"""A new user's journey with the commands only (issue 8 review): `invite-desk demo` on a fresh
data folder, `send --csv` (first without SMTP: it says so and queues nothing), `expire`, and
the registration through the link in the email the loopback server received."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from invite_desk import app, cli
from invite_desk.services import auth, db, mail_settings
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.organization import update_organization
from invite_desk.services.uow import UnitOfWork
from tests.portal_client import HttpClient, csrf_from, portal_app, running_portal
from tests.registration_fixtures import PASSWORD, member_by_email
from tests.smtp_server import LoopbackSmtpServer

ADMIN = "admin@northbridge.example"
DEMO_PASSWORD = "northbridge-demo"


def test_demo_send_expire_and_register_by_the_emailed_link(
    tmp_path: Path, smtp_server: LoopbackSmtpServer, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(app, "default_credentials", MemoryCredentialStore)
    monkeypatch.setenv("INVITE_DESK_OPERATOR_PASSWORD", DEMO_PASSWORD)
    url = f"sqlite:///{tmp_path / 'fresh' / 'demo.sqlite3'}"
    assert cli.main(["--db", url, "demo"]) == 0
    csv = tmp_path / "new.csv"
    csv.write_text('email,name\nnew.one@example.org,New One\n"Lee, Ann <ann@example.org>",\n',
                   encoding="utf-8")
    capsys.readouterr()

    # Nothing to send after the demo; without SMTP, a CSV is refused before it is queued.
    assert cli.main(["--db", url, "send", "--operator", ADMIN]) == 2
    assert "SMTP is not configured" in capsys.readouterr().err
    assert cli.main(["--db", url, "send", "--operator", ADMIN, "--csv", str(csv)]) == 2
    assert "Nothing was queued" in capsys.readouterr().err
    assert smtp_server.messages == []

    engine = db.make_engine(url)
    uow = UnitOfWork(engine)
    admin = auth.sign_in(uow, ADMIN, DEMO_PASSWORD)
    mail_settings.update_mail_settings(uow, admin, {
        "host": smtp_server.host, "port": smtp_server.port, "security": "none",
        "from_address": "office@northbridge.example", "from_name": "Northbridge",
        "rate_per_minute": 0})
    portal = portal_app(engine, uow)
    with running_portal(portal) as base:
        update_organization(uow, admin, {"registration_base_url": base})
        assert cli.main(["--db", url, "send", "--operator", ADMIN, "--csv", str(csv)]) == 0
        assert sorted(smtp_server.recipient_counts()) == ["ann@example.org",
                                                          "new.one@example.org"]
        assert cli.main(["--db", url, "send", "--operator", ADMIN, "--csv", str(csv)]) == 0
        assert "already handled" in capsys.readouterr().out
        assert len(smtp_server.messages) == 2
        assert cli.main(["--db", url, "expire"]) == 0

        mail = next(m for m in smtp_server.messages if m.rcpt_tos == ("ann@example.org",))
        assert str(mail.message["To"]) == '"Lee, Ann" <ann@example.org>'
        body = mail.message.get_body(("plain",))
        assert body is not None
        link = re.search(re.escape(base) + r"/join/[A-Za-z0-9_-]+", body.get_content())
        assert link, body.get_content()
        client = HttpClient()
        shown = client.get(link.group(0))
        assert shown.status == 200
        joined = client.post(link.group(0), {
            "csrf_token": csrf_from(shown.text), "first_name": "Ann", "last_name": "Lee",
            "password": PASSWORD, "password_confirmation": PASSWORD})
        assert joined.status == 200 and joined.url.endswith("/welcome")
    member = member_by_email(uow, "ann@example.org")
    assert member is not None and member.referred_by_id == admin.member_id
    engine.dispose()
