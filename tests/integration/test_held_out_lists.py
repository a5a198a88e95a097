"""Held-out address lists (issue 8 review): pasted lists and CSV exports as mail programs
make them go through import, pre-flight, queueing and the real sender to a loopback SMTP
server. Every address is accounted for once, nobody gets another person's name, nobody is
mailed twice, and every message carries the right To."""

from __future__ import annotations

import email.utils
import random

import pytest

from invite_desk.services.invitations.importing import ImportResult, parse_csv, parse_pasted
from invite_desk.services.invitations.preflight import RowStatus, run_preflight
from invite_desk.services.invitations.queueing import queue_invitations
from invite_desk.services.operator import Operator
from invite_desk.services.uow import UnitOfWork
from tests.integration.test_sending import configure, sender, statuses
from tests.smtp_server import LoopbackSmtpServer

PEOPLE = [
    ("ann.lee@example.org", "Lee, Ann"),
    ("bo@example.net", "Bo \"The Boss\" Smith"),
    ("cy@exämple.org", "Çy Dürr"),
    ("dee+club@example.org", "Dee; Dawn"),
    ("ed@example.org", ""),
    ("fay@sub.example.co.uk", "Fay O'Neil"),
    ("gus@example.org", "Gus <Admin>"),
    ("hé@example.org", "Hélène"),
    ("ida@example.org", "\u674e\u5a1c"),
    ("jo@example.org", "Jo, Jr."),
]


def _pasted(people: list[tuple[str, str]], style: str) -> str:
    def one(address: str, name: str) -> str:
        if not name:
            return address
        quoted = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{quoted} <{address}>"

    if style == "outlook":
        return "; ".join(one(a, n) for a, n in people) + ";"
    if style == "gmail":
        return ", ".join(one(a, n) for a, n in people)
    if style == "lines":
        return "\r\n".join(one(a, n) for a, n in people) + "\r\n"
    if style == "mailto":
        return "\n".join(f"mailto:{a}" for a, _ in people)
    raise AssertionError(style)


def _csv(people: list[tuple[str, str]], style: str) -> bytes:
    def q(cell: str) -> str:
        return '"' + cell.replace('"', '""') + '"'

    if style == "excel-semicolon":
        body = "ID;E-mail;Name;Phone\r\n" + "".join(
            f"{i};{a};{q(n)};555\r\n" for i, (a, n) in enumerate(people))
        return ("\ufeff" + body).encode("utf-8")
    if style == "gmail":
        body = "Name,Given Name,E-mail 1 - Type,E-mail 1 - Value\n" + "".join(
            f"{q(n)},,* Home,{a}\n" for a, n in people)
        return body.encode("utf-8")
    if style == "excel-unicode-text":  # Excel's "Unicode Text": UTF-16 LE with a BOM, tabs
        body = "E-mail\tName\r\n" + "".join(f"{a}\t{q(n)}\r\n" for a, n in people)
        return body.encode("utf-16")
    if style == "excel-sep-german":  # Excel's sep= line, German titles with a colon
        body = "sep=;\r\nNr.;E-Mail-Adresse:;Name:\r\n" + "".join(
            f"{i};{a};{q(n)}\r\n" for i, (a, n) in enumerate(people))
        return ("\ufeff" + body).encode("utf-8")
    if style == "no-header-tab":
        return "".join(f"{n}\t{a}\n" if n else f"{a}\n" for a, n in people).encode("utf-8")
    raise AssertionError(style)


def _run(uow: UnitOfWork, admin: Operator, server: LoopbackSmtpServer,
         imported: ImportResult, expected: list[tuple[str, str]]) -> None:
    pre = run_preflight(uow, admin.organization_id, imported.rows, inviter_id=admin.member_id)
    keys = [r.email.lower() for r in pre.rows]
    assert sorted(keys) == sorted(a.lower() for a, _ in expected), pre.rows  # once each
    names = {r.email.lower(): r.name for r in pre.rows}
    for address, name in expected:
        assert names[address.lower()] == name
    assert {r.status for r in pre.rows} <= {RowStatus.READY, RowStatus.NEEDS_SMTPUTF8}
    queue_invitations(uow, admin, pre.ready, source="paste")
    report = sender(uow, admin, server).run()
    smtputf8 = server.smtputf8
    international = {a for a, _ in expected if not a.split("@")[0].isascii()}
    assert report.failed == (0 if smtputf8 else len(international))
    counts = server.recipient_counts()
    assert max(counts.values()) == 1
    for received in server.messages:
        (name, to), = email.utils.getaddresses([str(received.message["To"])])
        want = next(n for a, n in expected if a.lower() == received.rcpt_tos[0].lower()
                    or a.split("@")[0] == received.rcpt_tos[0].split("@")[0])
        assert name == want
        assert to.split("@")[0] == received.rcpt_tos[0].split("@")[0]
    sent = {a for a, s in statuses(uow).items() if s == "sent"}
    assert len(sent) == len(expected) - (0 if smtputf8 else len(international))


@pytest.mark.parametrize("smtputf8", [False, True])
@pytest.mark.parametrize("style", ["outlook", "gmail", "lines", "mailto"])
def test_pasted_lists_reach_each_person_once_by_name(
    uow: UnitOfWork, admin: Operator, make_smtp_server: object, style: str, smtputf8: bool,
) -> None:
    server = make_smtp_server(smtputf8=smtputf8)  # type: ignore[operator]
    configure(uow, admin, server)
    people = random.Random(style).sample(PEOPLE, len(PEOPLE))
    expected = [(a, "" if style == "mailto" else n) for a, n in people]
    _run(uow, admin, server, parse_pasted(_pasted(people, style)), expected)


@pytest.mark.parametrize("smtputf8", [False, True])
@pytest.mark.parametrize("style", ["excel-semicolon", "gmail", "no-header-tab",
                                   "excel-unicode-text", "excel-sep-german"])
def test_csv_exports_reach_each_person_once_by_name(
    uow: UnitOfWork, admin: Operator, make_smtp_server: object, style: str, smtputf8: bool,
) -> None:
    server = make_smtp_server(smtputf8=smtputf8)  # type: ignore[operator]
    configure(uow, admin, server)
    people = [(a, n) for a, n in PEOPLE if "\t" not in n]
    _run(uow, admin, server, parse_csv(_csv(people, style)), people)
