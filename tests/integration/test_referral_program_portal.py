"""Issue 10 through the real portal: registration records only salted hashes of the browser's
IP address and user agent, and referees registering from one browser get flagged for review."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import Engine, select

from invite_desk.services import referral_program as rp
from invite_desk.services.models import AuditLog, MemberOrigin
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from tests.conftest import MakeOperator
from tests.portal_client import csrf_from, portal_app
from tests.registration_fixtures import PASSWORD, invite, member_by_email

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0 referral-test"
OTHER_BROWSER = "Mozilla/5.0 (Macintosh) Safari/17.1 referral-test"


@pytest.fixture
def app(engine: Engine, uow: UnitOfWork, admin: Operator) -> Flask:
    return portal_app(engine, uow)


def register(app: Flask, token: str, first: str, ip: str, agent: str) -> None:
    client = app.test_client()
    environ = {"REMOTE_ADDR": ip}
    headers = {"User-Agent": agent}
    page = client.get(f"/join/{token}", environ_base=environ, headers=headers)
    response = client.post(f"/join/{token}", environ_base=environ, headers=headers, data={
        "csrf_token": csrf_from(page.get_data(as_text=True)), "first_name": first,
        "last_name": "Tester", "password": PASSWORD, "password_confirmation": PASSWORD})
    assert response.status_code == 303, response.get_data(as_text=True)[:500]


def test_registration_stores_hashes_never_the_address_or_browser(
        app: Flask, uow: UnitOfWork, admin: Operator, make_operator: MakeOperator) -> None:
    rita = make_operator(Role.USER)
    zoe, yan, xav = (invite(uow, rita, f"{n}@example.org") for n in ("zoe", "yan", "xav"))
    register(app, zoe.token, "Zoë", "203.0.113.7", BROWSER)
    register(app, yan.token, "Yan", "203.0.113.7", BROWSER)
    register(app, xav.token, "Xav", "198.51.100.20", OTHER_BROWSER)
    with uow:
        origins = {row.member_id: row for row in uow.session.execute(
            select(MemberOrigin.member_id, MemberOrigin.channel, MemberOrigin.email_key,
                   MemberOrigin.ip_hash, MemberOrigin.ua_hash))}
        audit = " ".join(uow.session.scalars(select(AuditLog.after_json)))
    members = {n: member_by_email(uow, f"{n}@example.org") for n in ("zoe", "yan", "xav")}
    zoe_o, yan_o, xav_o = (origins[m.id] for m in members.values() if m is not None)
    assert zoe_o.channel == "referral" and zoe_o.email_key == "zoe@example.org"
    assert len(zoe_o.ip_hash or "") == 64 and len(zoe_o.ua_hash or "") == 64
    assert (zoe_o.ip_hash, zoe_o.ua_hash) == (yan_o.ip_hash, yan_o.ua_hash)
    assert zoe_o.ip_hash != xav_o.ip_hash and zoe_o.ua_hash != xav_o.ua_hash
    stored = " ".join(f"{o.ip_hash} {o.ua_hash} {o.email_key}" for o in origins.values())
    for raw in ("203.0.113.7", "198.51.100.20", "Firefox", "Safari"):
        assert raw not in stored and raw not in audit
    # the hash is salted: not the plain SHA-256 of the address
    import hashlib
    assert zoe_o.ip_hash != hashlib.sha256(b"203.0.113.7").hexdigest()

    rp.reconcile(uow, admin)
    flags = rp.list_flags(uow, admin)
    same = {f.referee_name for f in flags if f.kind is rp.FlagKind.SAME_DEVICE}
    assert same == {"Zoë Tester", "Yan Tester"}
    # the twins' points wait for a decision; Xav's vest
    board = rp.leaderboard(uow, admin, rp.Period(rp.PeriodKind.ALL_TIME))
    row = next(r for r in board.rows if r.referrer_id == rita.member_id)
    assert (row.completed, row.points, row.held_points, row.open_flags) == (3, 10, 20, 2)
