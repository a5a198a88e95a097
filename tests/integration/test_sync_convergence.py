"""Convergence of the offline replicas (issue 12), on real PostgreSQL and MariaDB servers.

One server database, three desktop replicas (an ADMIN_TENANT and an HR_TENANT who see the
whole organization, an HR_LOCAL who sees one chapter), each reaching the server through its
own TCP proxy, and the registration portal on the server directly. A seeded random sequence
of operations runs against them: invitations queued, sent (loopback SMTP, links taken from
the received emails), resent and revoked on any desktop, registrations through the portal by following those links,
applications approved, settings changed on a desktop and on the server, sync rounds
interleaved, the network cut in the middle of rounds and the server gone for a while.

At the end, after rounds until every command is answered and confirmed (and a whole pass
moves nothing): every replica and the server hold the same
rows for every synced table in the replica's scope (by id, version and every column);
every command was answered (applied, or rejected with a reason) and an applied one's rows
are on the server; no address holds two live invitations.

    INVITE_DESK_SYNC_SEED=1234 pytest tests/integration/test_sync_convergence.py   # replay
    INVITE_DESK_SYNC_STEPS=600 ...                                                  # longer

The seed is printed in every failure message. A replay repeats the operations and the
moments chosen for the cuts; where in a round a cut lands still depends on timing.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, Table, func, select, text
from sqlalchemy.engine import make_url

from invite_desk.services import adhesion, auth, db, mail_settings, organization, settings
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.errors import DomainError
from invite_desk.services.invitations.importing import parse_pasted
from invite_desk.services.invitations.preflight import run_preflight
from invite_desk.services.invitations.queueing import queue_invitations
from invite_desk.services.invitations.sending import OutboxSender
from invite_desk.services.invitations.tokens import hash_token
from invite_desk.services.models import (
    OPEN_INVITATION_STATES,
    AdhesionStatus,
    AuditLog,
    Base,
    Invitation,
    InvitationStatus,
    LocalChange,
    Member,
    MemberStatus,
    RetiredLink,
    SyncApplied,
    SyncCommand,
    SyncCommandState,
    SyncState,
    Unit,
    utcnow,
)
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.smtp.transport import SmtpTransport
from invite_desk.services.sync import journal
from invite_desk.services.sync.replica import Replica
from invite_desk.services.sync.tables import SYNCED_TABLES, redacted_columns, scope_condition
from invite_desk.services.tracking.actions import resend_invitations, revoke_invitations
from invite_desk.services.uow import UnitOfWork
from tests.portal_client import HttpClient, csrf_from, portal_app, running_portal
from tests.smtp_server import LoopbackSmtpServer
from tests.tcp_proxy import TcpProxy, proxied_url

SEED_ENV = "INVITE_DESK_SYNC_SEED"
STEPS_ENV = "INVITE_DESK_SYNC_STEPS"
DEFAULT_STEPS = 250
ADMIN_EMAIL = "ada.admin@example.org"
HR_EMAIL = "hugo.hr@example.org"
LOCAL_EMAIL = "lena.local@example.org"
PASSWORD = "correct horse battery"
MEMBER_PASSWORD = "a long enough password 1"
# Known gaps of the sync modules that this sequence meets now and then are tallied in
# `scenario.tally.gaps` and turn the test into an xfail naming them, never a pass (none today:
# the stale batch of a local operator, the last one, is fixed in pull's _former_parents).
_LINK = re.compile(r"https?://[^\s/]+/join/[A-Za-z0-9_-]+")


# -- the cast ------------------------------------------------------------------------------

@dataclass
class Desk:
    """One desktop: its replica, its operator and the proxy its server connections go through."""

    name: str
    operator: Operator
    replica: Replica
    proxy: TcpProxy
    rounds: int = 0
    failed_rounds: int = 0

    @property
    def uow(self) -> UnitOfWork:
        return self.replica.uow


@dataclass
class Tally:
    """What the sequence did, for the failure message and the final checks."""

    ops: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)  # a DomainError, as a person sees
    # invitation id -> (desk, the command that inserted it on that desk)
    inserted: dict[uuid.UUID, tuple[str, uuid.UUID]] = field(default_factory=dict)
    # (desk, command, effect, row): what an applied command must have left on the server
    effects: list[tuple[str, uuid.UUID, str, uuid.UUID]] = field(default_factory=list)
    touched: dict[str, set[tuple[uuid.UUID, uuid.UUID]]] = field(default_factory=dict)
    gaps: Counter[str] = field(default_factory=Counter)  # known gaps met (see GAP_*)
    registered: list[str] = field(default_factory=list)
    portal: Counter[str] = field(default_factory=Counter)  # what the server held -> answer
    log: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.log.append(text)


class Scenario:
    def __init__(self, seed: int, server: UnitOfWork, admin: Operator, desks: list[Desk],
                 smtp: LoopbackSmtpServer, portal_url: str) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.server = server
        self.admin = admin
        self.desks = desks
        self.smtp = smtp
        self.portal_url = portal_url
        self.tally = Tally()
        self.addresses: list[str] = []  # every address ever invited, in order
        self.down_steps = 0  # > 0: the server is unreachable for that many more steps
        self._next_address = 0

    def fail(self, message: str) -> str:
        tail = "\n  ".join(self.tally.log[-25:])
        return (f"{message}\n[seed {self.seed}: replay with {SEED_ENV}={self.seed}]\n"
                f"operations: {dict(self.tally.ops)}\n{self._states()}\n"
                f"last steps:\n  {tail}")

    def _states(self) -> str:
        """Each replica's cursor and commands by state (what a stuck replica looks like)."""
        lines = []
        for desk in self.desks:
            try:
                with desk.replica.engine.connect() as connection:
                    cursor = connection.execute(select(SyncState.cursor)).scalar()
                    states = dict(connection.execute(
                        select(SyncCommand.state, func.count()).group_by(SyncCommand.state)
                    ).all())
                    journaled = connection.execute(
                        select(func.count()).select_from(LocalChange)).scalar()
                    waiting = connection.execute(
                        select(SyncCommand.kind, SyncCommand.state, SyncCommand.checkpoint,
                               SyncCommand.reason)
                        .where(SyncCommand.state.in_(("applied", "pending")))
                        .order_by(SyncCommand.seq).limit(4)).all()
                lines.append(f"{desk.name}: cursor {cursor!r}, commands {states}, "
                             f"{journaled} journal entries; first unconfirmed: "
                             f"{[tuple(w) for w in waiting]}")
            except Exception as error:  # a broken replica must not hide the first failure
                lines.append(f"{desk.name}: cannot read its state ({error})")
        if self.server.backend == "postgresql":  # who holds the xmin back
            try:
                with self.server.engine.connect() as connection:
                    lines.append("server snapshot now: " + str(connection.execute(text(
                        "SELECT pg_current_snapshot()::text")).scalar()))
                    for row in connection.execute(text(
                            "SELECT datname, pid, state, backend_xid::text, "
                            "backend_xmin::text, client_port, now() - xact_start, "
                            "left(query, 80) FROM pg_stat_activity WHERE pid <> "
                            "pg_backend_pid() AND (datname = current_database() OR "
                            "backend_xid IS NOT NULL)")):
                        lines.append(f"server session {tuple(row)}")
            except Exception as error:
                lines.append(f"server: cannot list sessions ({error})")
        return "\n".join(lines)

    # -- the network ---------------------------------------------------------------------

    def server_down(self, steps: int) -> None:
        self.down_steps = steps
        for desk in self.desks:
            desk.proxy.cut()  # open connections reset, new ones refused
        self.tally.note(f"server down for {steps} steps")

    def server_up(self) -> None:
        self.down_steps = 0
        for desk in self.desks:
            desk.proxy.restore()
        self.tally.note("server back")

    def round(self, desk: Desk, *, cut_after: float | None = None) -> None:
        """One sync round; with `cut_after`, every connection of this desk drops that many
        seconds into it (wherever the round is then: pushing, pulling, committing)."""
        self._remember_journal(desk)
        timer = None
        if cut_after is not None:
            timer = threading.Timer(cut_after, _drop_connections, (desk.proxy,))
            timer.start()
        try:
            report = desk.replica.round()
        finally:
            if timer is not None:
                timer.cancel()
                timer.join()  # a cut already under way finishes before the next step
        desk.rounds += 1
        if not report.online or report.error:
            desk.failed_rounds += 1
        pulled = report.pulled.applied if report.pulled else 0
        pushed = (report.pushed.applied, report.pushed.rejected) if report.pushed else (0, 0)
        self.tally.note(f"{desk.name}: round online={report.online} pulled={pulled} "
                        f"pushed={pushed} error={report.error[:80]!r}"
                        + (f" (cut at {cut_after * 1000:.0f} ms)" if cut_after else ""))

    # -- operations on a desktop ---------------------------------------------------------

    def _remember_journal(self, desk: Desk) -> None:
        """(command, row) pairs of this desk's journal, for the history in a failure."""
        with desk.replica.engine.connect() as connection:
            pairs = connection.execute(select(LocalChange.command_id, LocalChange.row_id)
                                       .where(LocalChange.command_id.is_not(None))).all()
        self.tally.touched.setdefault(desk.name, set()).update(
            (command_id, row_id) for command_id, row_id in pairs)

    def _fresh_address(self) -> str:
        self._next_address += 1
        return f"person{self._next_address}.{self.seed % 1000}@conv.example"

    def invite(self, desk: Desk) -> None:
        """Queue 1-3 invitations; sometimes an address the other desk invited (maybe offline
        too: the duplicate the server must close), sometimes one this replica already has."""
        chosen: list[str] = []
        for _ in range(self.rng.randint(1, 3)):
            if self.addresses and self.rng.random() < 0.25:
                chosen.append(self.rng.choice(self.addresses[-12:]))
            else:
                chosen.append(self._fresh_address())
        pre = run_preflight(desk.uow, desk.operator.organization_id,
                            parse_pasted("\n".join(dict.fromkeys(chosen))).rows)
        if not pre.ready:
            self.tally.note(f"{desk.name}: invite {chosen}: nothing ready")
            return
        queued = queue_invitations(desk.uow, desk.operator, pre.ready, source="paste")
        emails = [row.email for row in pre.ready]
        self.addresses.extend(e for e in emails if e not in self.addresses)
        with desk.uow:
            ids = list(desk.uow.session.scalars(
                select(Invitation.id).where(Invitation.batch_id == queued.batch_id)))
            for row_id, command_id in desk.uow.session.execute(
                    select(LocalChange.row_id, LocalChange.command_id).where(
                        LocalChange.table_name == "invitation", LocalChange.op == "I",
                        LocalChange.row_id.in_(ids))):
                assert command_id is not None, self.fail(
                    f"{desk.name}: invitation {row_id} inserted without a command")
                self.tally.inserted[row_id] = (desk.name, command_id)
        self.tally.note(f"{desk.name}: queued {emails}")

    def send(self, desk: Desk) -> None:
        """The desk's outbox sends what it has queued, through SMTP, server reachable or not."""
        mail = mail_settings.get_mail_settings(desk.uow, desk.operator.organization_id)
        transport = SmtpTransport(mail.smtp_config(timeout=5), None)
        report = OutboxSender(desk.uow, transport,
                              organization_id=desk.operator.organization_id).run()
        self.tally.note(f"{desk.name}: sent {report.sent}")

    def _pick(self, desk: Desk, statuses: set[str]) -> list[uuid.UUID]:
        with desk.uow:
            ids = list(desk.uow.session.scalars(
                select(Invitation.id).where(Invitation.status.in_(statuses))
                .order_by(Invitation.id)))
        if not ids:
            return []
        return self.rng.sample(ids, min(len(ids), self.rng.randint(1, 2)))

    def resend(self, desk: Desk) -> None:
        ids = self._pick(desk, {"sent", "expired", "failed"})
        if ids:
            result = resend_invitations(desk.uow, desk.operator, ids)
            self.tally.note(f"{desk.name}: resend {len(result.done)} of {len(ids)}")

    def _expect(self, desk: Desk, effect: str, table_name: str, row_id: uuid.UUID) -> None:
        """Remember what the command just made for this row must have done on the server
        if the server applies it (an applied command whose effect is missing is lost too,
        and row-for-row equality alone would not see it: the pull brings the loss back)."""
        with desk.uow:
            command_id = desk.uow.session.scalars(
                select(LocalChange.command_id).where(
                    LocalChange.table_name == table_name, LocalChange.row_id == row_id,
                    LocalChange.command_id.is_not(None))
                .order_by(LocalChange.seq.desc()).limit(1)).first()
        assert command_id is not None, self.fail(
            f"{desk.name}: {effect} of {table_name} {row_id} recorded no command")
        self.tally.effects.append((desk.name, command_id, effect, row_id))

    def revoke(self, desk: Desk) -> None:
        ids = self._pick(desk, {"queued", "sent", "draft"})
        if ids:
            result = revoke_invitations(desk.uow, desk.operator, ids)
            for invitation_id in result.done:
                self._expect(desk, "revoked", "invitation", invitation_id)
            self.tally.note(f"{desk.name}: revoke {len(result.done)} of {len(ids)}")

    def approve(self, desk: Desk) -> None:
        waiting = adhesion.list_applications(desk.uow, desk.operator)
        open_ones = [a for a in waiting if a.status in (AdhesionStatus.NEW,
                                                         AdhesionStatus.PENDING)]
        if open_ones:
            chosen = self.rng.choice(open_ones)
            adhesion.approve(desk.uow, desk.operator, chosen.member_id)
            self._expect(desk, "approved", "member", chosen.member_id)
            self.tally.note(f"{desk.name}: approved {chosen.member_id}")

    def change_settings(self, uow: UnitOfWork, operator: Operator, where: str) -> None:
        change: dict[str, Any] = self.rng.choice([
            {"invitation_expiry_days": self.rng.randint(5, 60)},
            {"reminder_days_before": self.rng.randint(0, 4)},
            {"soft_bounces_to_suppress": self.rng.randint(1, 9)},
        ])
        settings.update_settings(uow, operator, change)
        self.tally.note(f"{where}: settings {change}")

    # -- the portal ----------------------------------------------------------------------

    def _links(self) -> dict[str, str]:
        """The newest link each address received (a resend kills the older one)."""
        newest: dict[str, str] = {}
        for received in self.smtp.messages:
            body = received.message.get_body(("plain",))
            found = _LINK.search(body.get_content()) if body is not None else None
            if found:
                for rcpt in received.rcpt_tos:
                    newest[rcpt.lower()] = found.group(0)
        return newest

    def _server_view(self, token: str, email: str) -> str:
        """What the server holds for this link: "live" (a sent, unexpired invitation whose
        address is not a member yet), "unknown" (no invitation has this hash) or "other"."""
        with self.server.engine.connect() as connection:
            row = connection.execute(select(Invitation.status, Invitation.expires_at).where(
                Invitation.token_hash == hash_token(token))).first()
            member = connection.execute(select(Member.id).where(
                Member.email_normalized == auth.normalize_email(email))).first()
        if row is None:
            return "unknown"
        live = (row.status == InvitationStatus.SENT.value and row.expires_at is not None
                and row.expires_at > utcnow() + timedelta(minutes=1))
        return "live" if live and member is None else "other"

    def register(self) -> None:
        """Someone follows the newest link they received. The portal, on the server, must show
        the form and register them when the server holds that link as sent and live (a link
        mailed offline works once its desktop synced), and never for a link it does not know."""
        links = self._links()
        if not links:
            return
        email = self.rng.choice(sorted(links))
        link = links[email]
        expected = self._server_view(link.rsplit("/", 1)[1], email)
        browser = HttpClient()
        page = browser.get(link)
        form = page.status == 200 and "csrf_token" in page.text
        self.tally.portal[f"{expected}->{page.status}{'+form' if form else ''}"] += 1
        if expected == "live":
            assert form, self.fail(f"portal: the live link of {email} answered {page.status}")
        if expected == "unknown":
            assert not form, self.fail(f"portal: a link the server does not know opened the "
                                       f"registration form for {email}")
        if not form:
            self.tally.note(f"portal: {email}: link answered {page.status} ({expected})")
            return
        fields = {"csrf_token": csrf_from(page.text), "first_name": "Reg",
                  "last_name": f"Istrant {len(self.tally.registered)}",
                  "password": MEMBER_PASSWORD, "password_confirmation": MEMBER_PASSWORD}
        done = browser.post(link, fields)
        welcomed = done.status == 200 and done.url.endswith("/welcome")
        if expected == "live":
            assert welcomed, self.fail(f"portal: registering {email} through a live link "
                                       f"answered {done.status}: {done.text[:300]}")
        assert done.status in (200, 409, 410), self.fail(
            f"portal: registering {email} answered {done.status}: {done.text[:300]}")
        if welcomed:
            self.tally.registered.append(email)
        self.tally.note(f"portal: {email} registered -> {done.status}")

    # -- the sequence --------------------------------------------------------------------

    def step(self) -> None:
        if self.down_steps > 0:
            self.down_steps -= 1
            if self.down_steps == 0:
                self.server_up()
        desk = self.rng.choice(self.desks)
        roll = self.rng.random()
        name = ("invite" if roll < 0.22 else "send" if roll < 0.34 else
                "resend" if roll < 0.40 else "revoke" if roll < 0.46 else
                "approve" if roll < 0.52 else "settings" if roll < 0.57 else
                "register" if roll < 0.69 else "round" if roll < 0.90 else
                "cut" if roll < 0.97 else "outage")
        self.tally.ops[name] += 1
        try:
            if name == "invite":
                self.invite(desk)
            elif name == "send":
                self.send(desk)
            elif name == "resend":
                self.resend(desk)
            elif name == "revoke":
                self.revoke(desk)
            elif name == "approve":
                self.approve(desk)
            elif name == "settings":
                if desk.operator.role is Role.ADMIN_TENANT and self.rng.random() < 0.7:
                    self.change_settings(desk.uow, desk.operator, desk.name)
                else:  # an admin online on the server, racing the offline edit
                    self.change_settings(self.server, self.admin, "server")
            elif name == "register":
                self.register()
            elif name == "round":
                self.round(desk)
            elif name == "cut":  # (while the server is down, the round just fails)
                cut_after = self.rng.uniform(0.0, 0.08)
                self.round(desk, cut_after=None if self.down_steps else cut_after)
            elif name == "outage" and self.down_steps == 0:
                self.server_down(self.rng.randint(3, 25))
        except DomainError as error:  # what a person would be told; the sequence goes on
            self.tally.refused[name] += 1
            self.tally.note(f"{desk.name}: {name} refused: {error}")

    def converge(self, patience: float = 60.0) -> int:
        """Network back, then rounds on every desk until one whole pass moves nothing and no
        command waits for an answer or for its confirmation. On PostgreSQL a confirmation
        waits for the server's xmin to pass the command's transaction, and the xmin is the
        whole cluster's: a long transaction in another database holds it back (so a pass
        without movement is not enough while a command is still unconfirmed)."""
        self.server_up()
        deadline = time.monotonic() + patience
        passes = 0
        while True:
            passes += 1
            moved = False
            for desk in self.desks:
                self._remember_journal(desk)
                report = desk.replica.round()
                assert report.online and not report.error, self.fail(
                    f"{desk.name}: a round with the server reachable failed: {report.error}")
                pulled, pushed = report.pulled, report.pushed
                if (pulled is not None and (pulled.applied or pulled.deleted or pulled.more)) \
                        or (pushed is not None and (pushed.applied or pushed.rejected
                                                    or pushed.more)):
                    moved = True
                if _unsettled(desk):
                    moved = True
            if not moved:
                return passes
            if time.monotonic() > deadline:
                raise AssertionError(self.fail(
                    f"not settled after {passes} passes ({patience:.0f} s)"))
            time.sleep(min(0.05 * passes, 0.5))


def _drop_connections(proxy: TcpProxy) -> None:
    """Every open connection drops; the next connect goes through again (a flaky link)."""
    proxy.cut()
    proxy.restore()


def _unsettled(desk: Desk) -> int:
    """Commands of this desk still pending or applied-not-confirmed."""
    with desk.replica.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(SyncCommand).where(
            SyncCommand.state.in_((SyncCommandState.PENDING.value,
                                   SyncCommandState.APPLIED.value)))).scalar() or 0) \
            + journal.pending_count(desk.replica.engine)


# -- comparing ---------------------------------------------------------------------------

def _rows(engine: Engine, table: Table, where: Any = None) -> dict[Any, dict[str, Any]]:
    """Every row of `table` (within `where`), by primary key."""
    keys = [c.name for c in table.primary_key.columns]
    query = select(table)
    if where is not None:
        query = query.where(where)
    with engine.connect() as connection:
        return {tuple(row[k] for k in keys): dict(row)
                for row in connection.execute(query).mappings()}


def _differences(scenario: Scenario, server: Engine, desk: Desk) -> list[str]:
    problems: list[str] = []
    for name in SYNCED_TABLES:
        table = Base.metadata.tables[name]
        hidden = redacted_columns(name)
        theirs = _rows(server, table, scope_condition(table, desk.operator))
        ours = _rows(desk.replica.engine, table)
        missing = theirs.keys() - ours.keys()
        extra = ours.keys() - theirs.keys()
        if missing:
            problems.append(f"{name}: {len(missing)} server rows missing on {desk.name}, "
                            f"e.g. {theirs[next(iter(missing))]}")
        if extra:
            problems.append(f"{name}: {len(extra)} rows on {desk.name} the server does not "
                            f"have in its scope, e.g. {ours[next(iter(extra))]}")
        for row_id in theirs.keys() & ours.keys():
            own = name == "member" and row_id == (desk.operator.member_id,)
            columns = [c.name for c in table.columns if own or c.name not in hidden]
            differ = {c: (theirs[row_id][c], ours[row_id][c]) for c in columns
                      if theirs[row_id][c] != ours[row_id][c]}
            if differ:
                problems.append(f"{name} {row_id} differs on {desk.name} (server, replica): "
                                f"{differ}")
                if len(problems) > 20:
                    return problems
    return problems


def _check(scenario: Scenario, server: Engine) -> dict[str, int]:
    # Every replica holds exactly the server's rows in its scope, column for column.
    for desk in scenario.desks:
        problems = _differences(scenario, server, desk)
        assert not problems, scenario.fail("replica and server differ:\n  "
                                           + "\n  ".join(problems[:20]))
    # Every command was answered, the same way on both sides; none is still waiting.
    with server.connect() as connection:
        answers = {row.command_id: row for row in connection.execute(select(SyncApplied))}
    outcomes: Counter[str] = Counter()
    for desk in scenario.desks:
        with desk.replica.engine.connect() as connection:
            commands = list(connection.execute(select(SyncCommand)))
        for command in commands:
            outcomes[command.state] += 1
            assert command.state in (SyncCommandState.CONFIRMED.value,
                                     SyncCommandState.REJECTED.value), scenario.fail(
                f"{desk.name}: command {command.kind} {command.id} is still {command.state}")
            answer = answers.get(command.id)
            assert answer is not None, scenario.fail(
                f"{desk.name}: command {command.kind} {command.id} has no answer on the server")
            expected = "applied" if command.state == SyncCommandState.CONFIRMED.value else "rejected"
            assert answer.outcome == expected, scenario.fail(
                f"{desk.name}: command {command.id}: replica says {command.state}, "
                f"server says {answer.outcome}")
            if expected == "rejected":
                assert command.reason.strip() and answer.reason.strip(), scenario.fail(
                    f"{desk.name}: command {command.kind} {command.id} rejected without a reason")
    # Nothing lost: an invitation queued on a desk is on the server exactly when the command
    # that inserted it was applied.
    with server.connect() as connection:
        on_server = set(connection.execute(select(Invitation.id)).scalars())
        invitations = list(connection.execute(
            select(Invitation.email_normalized, Invitation.kind, Invitation.event_id,
                   Invitation.status, Invitation.accepted_via)))
        members = list(connection.execute(select(Member.email_normalized, Member.status)))
    for invitation_id, (desk_name, command_id) in scenario.tally.inserted.items():
        answer = answers.get(command_id)
        applied = answer is not None and answer.outcome == "applied"
        assert (invitation_id in on_server) == applied, scenario.fail(
            f"invitation {invitation_id} queued on {desk_name}: command "
            f"{'applied' if applied else 'rejected'} but the row is "
            f"{'missing from' if applied else 'present on'} the server")
    # Nothing lost either in what applied commands did: a revoke left the invitation revoked
    # (nothing reopens a revoked invitation), an approval left the member approved.
    with server.connect() as connection:
        revoked = dict(connection.execute(select(Invitation.id, Invitation.status)).all())
        approved = dict(connection.execute(select(Member.id, Member.adhesion_status)).all())
    for desk_name, command_id, effect, row_id in scenario.tally.effects:
        answer = answers.get(command_id)
        if answer is None or answer.outcome != "applied":
            continue
        outcomes[f"{effect} checked"] += 1
        now = revoked.get(row_id) if effect == "revoked" else approved.get(row_id)
        wanted = (InvitationStatus.REVOKED.value if effect == "revoked"
                  else AdhesionStatus.APPROVED.value)
        assert now == wanted, scenario.fail(
            f"{desk_name}: command {command_id} ({effect}) was applied, but the server's row "
            f"{row_id} is {now}; its history there:\n  " + "\n  ".join(
                _history(server, scenario, row_id)))
    # Nothing duplicated: one live invitation per address and kind, one member per address.
    live = Counter((e, k, ev) for e, k, ev, status, _ in invitations
                   if status in {s.value for s in OPEN_INVITATION_STATES}
                   | {InvitationStatus.UNCERTAIN.value})
    doubled = [key for key, count in live.items() if count > 1]
    assert not doubled, scenario.fail(f"addresses with two live invitations: {doubled}")
    by_link = Counter(e for e, _, _, status, via in invitations
                      if status == InvitationStatus.ACCEPTED.value and via == "link")
    assert not [e for e, n in by_link.items() if n > 1], scenario.fail(
        "an address accepted two invitations through their links")
    emails = Counter(e for e, _ in members)
    assert not [e for e, n in emails.items() if n > 1], scenario.fail("a member twice")
    # Everyone who registered through the portal is a member (approved or still applying).
    registered = {e for e, status in members
                  if status in (MemberStatus.ACTIVE.value, MemberStatus.APPLICANT.value)}
    lost = [e for e in scenario.tally.registered if auth.normalize_email(e) not in registered]
    assert not lost, scenario.fail(f"registered through the portal but not members: {lost}")
    return dict(outcomes)


def _history(server: Engine, scenario: Scenario, row_id: uuid.UUID) -> list[str]:
    """The server's audit trail of one row, and which desk's commands touched it."""
    names = {d.operator.member_id: d.name for d in scenario.desks}
    with server.connect() as connection:
        lines = [f"{at:%H:%M:%S.%f} {names.get(actor, actor)} {action} {before} -> {after}"
                 for at, actor, action, before, after in connection.execute(
                     select(AuditLog.at, AuditLog.actor_id, AuditLog.action,
                            AuditLog.before_json, AuditLog.after_json)
                     .where(AuditLog.entity_id == row_id).order_by(AuditLog.at))]
        for command_id, kind, outcome, at in connection.execute(
                select(SyncApplied.command_id, SyncApplied.kind, SyncApplied.outcome,
                       SyncApplied.applied_at).order_by(SyncApplied.applied_at)):
            for desk, touched in scenario.tally.touched.items():
                if (command_id, row_id) in touched:
                    lines.append(f"{at:%H:%M:%S.%f} {desk} command {kind} {outcome}")
    return lines


def _reasons(scenario: Scenario) -> Counter[str]:
    """Why commands were rejected or noted, by their first words (for the summary line)."""
    found: Counter[str] = Counter()
    for desk in scenario.desks:
        with desk.replica.engine.connect() as connection:
            for kind, reason in connection.execute(select(
                    SyncCommand.kind, SyncCommand.reason).where(SyncCommand.reason != "")):
                found[f"{desk.name} {kind}: {' '.join(reason.split()[:6])}"] += 1
    return found


# -- the test ------------------------------------------------------------------------------

def _seed() -> int:
    raw = os.environ.get(SEED_ENV, "").strip()
    return int(raw) if raw else random.SystemRandom().randrange(1, 1_000_000)


@contextmanager
def _desks(server_url: str, operators: list[tuple[str, Operator]]) -> Iterator[list[Desk]]:
    url = make_url(server_url)
    desks: list[Desk] = []
    try:
        for name, operator in operators:
            proxy = TcpProxy(url.host or "127.0.0.1", url.port or 0).start()
            remote = proxied_url(url, proxy)
            credentials = MemoryCredentialStore()
            replica = Replica.open(remote, operator.email, credentials, password=PASSWORD)
            desks.append(Desk(name, operator, replica, proxy))
        yield desks
    finally:
        for desk in desks:
            desk.replica.close()
            desk.proxy.stop()


@pytest.mark.slow
def test_three_replicas_and_the_portal_converge_through_network_faults(
    server_db_url: str, smtp_server: LoopbackSmtpServer,
) -> None:
    seed = _seed()
    steps = int(os.environ.get(STEPS_ENV, DEFAULT_STEPS))
    engine = db.make_engine(server_db_url)
    try:
        db.upgrade_to_head(engine)
        server = UnitOfWork(engine)
        admin = auth.setup_organization(
            server, organization_name="Harbour Rowing Club", admin_email=ADMIN_EMAIL,
            admin_first_name="Ada", admin_last_name="Admin", password=PASSWORD,
            registration_base_url="https://join.example.org")
        hr = _operator(server, admin, HR_EMAIL, "Hugo", Role.HR_TENANT)
        # A third desk sees only its chapter: its replica is compared in its own scope.
        local = _operator(server, admin, LOCAL_EMAIL, "Lena", Role.HR_LOCAL, unit="North")
        # Every invitee is 127.0.0.1 here: the per-client limits would count them as one.
        app = portal_app(engine, server, bad_token_limit=100_000, registration_limit=100_000)
        with running_portal(app) as portal_url:
            organization.update_organization(server, admin, {"registration_base_url": portal_url})
            mail_settings.update_mail_settings(server, admin, {
                "host": smtp_server.host, "port": smtp_server.port, "security": "none",
                "from_address": "invitations@rowing.example", "from_name": "Harbour Rowing Club",
                "rate_per_minute": 0})
            settings.update_settings(server, admin, {
                "adhesion_required": True, "daily_limit_per_inviter": 0,
                "notify_application_decision": False, "notify_invitee_joined": False})
            with _desks(server_db_url, [("ada", admin), ("hugo", hr), ("lena", local)]
                        ) as desks:
                scenario = Scenario(seed, server, admin, desks, smtp_server, portal_url)
                started = time.monotonic()
                for desk in desks:
                    scenario.round(desk)
                try:
                    for _ in range(steps):
                        scenario.step()
                    passes = scenario.converge()
                except AssertionError:
                    raise
                except Exception as error:
                    raise AssertionError(scenario.fail(
                        f"{type(error).__name__}: {error}\n{traceback.format_exc()}")) from error
                outcomes = _check(scenario, engine)
                elapsed = time.monotonic() - started
                print(f"seed {seed}: {steps} steps {dict(scenario.tally.ops)}, refused "
                      f"{dict(scenario.tally.refused)}, commands {outcomes}, "
                      f"{len(scenario.tally.registered)} registered, portal "
                      f"{dict(scenario.tally.portal)}, converged in {passes} "
                      f"passes, {elapsed:.1f} s; rounds "
                      f"{[(d.name, d.rounds, d.failed_rounds) for d in desks]}; reasons "
                      f"{dict(_reasons(scenario))}")
                # The sequence must have exercised what it claims to.
                assert scenario.tally.inserted and smtp_server.messages, scenario.fail(
                    "nothing was queued or sent")
                assert sum(d.failed_rounds for d in desks) > 0, scenario.fail(
                    "no round ever met a network fault")
                if scenario.tally.gaps:
                    pytest.xfail(f"seed {seed}: known gaps met: {dict(scenario.tally.gaps)}")
    finally:
        engine.dispose()


def _operator(server: UnitOfWork, admin: Operator, email: str, first: str, role: Role,
              unit: str | None = None) -> Operator:
    """A member with `role` (in a new unit named `unit`) and a password, on the server."""
    with server:
        unit_id = None
        if unit is not None:
            made = Unit(organization_id=admin.organization_id, name=unit)
            server.session.add(made)
            server.session.flush()
            unit_id = made.id
        member = Member(
            organization_id=admin.organization_id, email=email,
            email_normalized=auth.normalize_email(email), first_name=first,
            last_name="Tester", role=role.name, unit_id=unit_id,
            status=MemberStatus.ACTIVE.value, password_hash=auth.hash_password(PASSWORD))
        server.session.add(member)
        server.session.flush()
        operator = auth.operator_for(server.session, member)
        server.commit()
    return operator


def test_a_link_retired_again_after_a_rejected_resend_came_back_from_the_server(
    uow: UnitOfWork, admin: Operator,
) -> None:
    """Found by the sequence above: a resend on a replica retires the link's hash locally;
    the server rejects it and the pull brings its row, and that hash, back; resending it
    again must not fail on the retired-link table's key."""
    pre = run_preflight(uow, admin.organization_id, parse_pasted("zoe@example.org").rows)
    queue_invitations(uow, admin, pre.ready, source="paste")
    with uow:
        invitation_id = uow.session.scalars(select(Invitation.id)).one()
    old_hash = "ab" * 32

    def as_sent() -> None:  # what a pull writes: the server's row, as it is there
        with uow.engine.begin() as connection:
            connection.execute(Invitation.__table__.update().values(
                status="sent", token_hash=old_hash, sent_at=utcnow()))

    as_sent()
    assert resend_invitations(uow, admin, [invitation_id]).done == (invitation_id,)
    as_sent()
    assert resend_invitations(uow, admin, [invitation_id]).done == (invitation_id,)
    with uow:
        retired = uow.session.scalars(select(RetiredLink)).all()
        assert [(r.token_hash, r.invitation_id, r.reason) for r in retired] == [
            (old_hash, invitation_id, "superseded")]


@pytest.mark.slow
def test_a_resend_queued_behind_a_delivery_does_not_undo_a_revoke_from_another_desk(
    server_db_url: str, smtp_server: LoopbackSmtpServer,
) -> None:
    """Seen in the sequence above (seed 72, three desks), made deterministic: Ada revokes a
    queued invitation and syncs; Hugo, not yet synced, sends it from his outbox (a delivery,
    which the server never rejects) and then resends it. The revoke happened between Hugo's
    base version and his resend, so the resend must be rejected and the invitation stay
    revoked, even though the delivery before it was applied (and the replica's versions
    rebased to the server's)."""
    engine = db.make_engine(server_db_url)
    try:
        db.upgrade_to_head(engine)
        server = UnitOfWork(engine)
        admin = auth.setup_organization(
            server, organization_name="Harbour Rowing Club", admin_email=ADMIN_EMAIL,
            admin_first_name="Ada", admin_last_name="Admin", password=PASSWORD,
            registration_base_url="https://join.example.org")
        hr = _operator(server, admin, HR_EMAIL, "Hugo", Role.HR_TENANT)
        mail_settings.update_mail_settings(server, admin, {
            "host": smtp_server.host, "port": smtp_server.port, "security": "none",
            "from_address": "invitations@rowing.example", "from_name": "Harbour Rowing Club",
            "rate_per_minute": 0})
        pre = run_preflight(server, admin.organization_id, parse_pasted("zoe@example.org").rows)
        queue_invitations(server, admin, pre.ready, source="paste")
        with server:
            invitation_id = server.session.scalars(select(Invitation.id)).one()
        with _desks(server_db_url, [("ada", admin), ("hugo", hr)]) as (ada, hugo):
            revoke_invitations(ada.uow, ada.operator, [invitation_id])
            report = ada.replica.round()
            assert report.pushed is not None and report.pushed.applied >= 1, report
            mail = mail_settings.get_mail_settings(hugo.uow, admin.organization_id)
            sent = OutboxSender(hugo.uow, SmtpTransport(mail.smtp_config(timeout=5), None),
                                organization_id=admin.organization_id).run()
            assert sent.sent == 1
            resent = resend_invitations(hugo.uow, hugo.operator, [invitation_id])
            assert resent.done == (invitation_id,)
            for _ in range(3):
                hugo.replica.round()
            with engine.connect() as connection:
                status = connection.execute(select(Invitation.status).where(
                    Invitation.id == invitation_id)).scalar()
                answers = dict(connection.execute(
                    select(SyncApplied.kind, SyncApplied.outcome)
                    .where(SyncApplied.kind == "invitation.resend")).all())
            assert status == InvitationStatus.REVOKED.value, (
                f"Ada's revoke was undone by Hugo's resend (commands: {answers})")
            assert answers == {"invitation.resend": "rejected"}
    finally:
        engine.dispose()


@pytest.mark.slow
def test_a_batch_that_left_a_local_operators_scope_leaves_their_replica(
    server_db_url: str,
) -> None:
    """Seen in the sequence above (seeds 101, 103), made deterministic: Hugo (HR_TENANT)
    resends an invitation of Lena's chapter together with one of Ada's (a batch credited to
    him), so Lena's replica holds that batch; he resends Lena's again, into a new batch: the
    first one holds only Ada's now, and is no longer in Lena's scope."""
    engine = db.make_engine(server_db_url)
    try:
        db.upgrade_to_head(engine)
        server = UnitOfWork(engine)
        admin = auth.setup_organization(
            server, organization_name="Harbour Rowing Club", admin_email=ADMIN_EMAIL,
            admin_first_name="Ada", admin_last_name="Admin", password=PASSWORD,
            registration_base_url="https://join.example.org")
        hr = _operator(server, admin, HR_EMAIL, "Hugo", Role.HR_TENANT)
        lena = _operator(server, admin, LOCAL_EMAIL, "Lena", Role.HR_LOCAL, unit="North")
        for who, address in ((lena, "zoe@example.org"), (admin, "max@example.org")):
            pre = run_preflight(server, admin.organization_id, parse_pasted(address).rows)
            queue_invitations(server, who, pre.ready, source="paste")

        def as_sent() -> None:
            with engine.begin() as connection:
                connection.execute(Invitation.__table__.update().values(
                    status="sent", sent_at=utcnow(), expires_at=utcnow() + timedelta(days=9)))

        as_sent()
        with server:
            ids = dict(server.session.execute(select(Invitation.email, Invitation.id)).all())
        invitation_id = ids["zoe@example.org"]
        first = resend_invitations(server, hr, list(ids.values())).batch_id
        as_sent()
        with _desks(server_db_url, [("lena", lena)]) as (desk,):
            desk.replica.round()
            table = Base.metadata.tables["batch"]
            assert (first,) in _rows(desk.replica.engine, table)
            second = resend_invitations(server, hr, [invitation_id]).batch_id
            deadline = time.monotonic() + 30  # PostgreSQL: another database may hold xmin
            while (second,) not in _rows(desk.replica.engine, table) \
                    and time.monotonic() < deadline:
                desk.replica.round()
                time.sleep(0.1)
            desk.replica.round()
            in_scope = set(_rows(engine, table, scope_condition(table, lena)))
            held = set(_rows(desk.replica.engine, table))
            assert (second,) in in_scope and (first,) not in in_scope
            assert held == in_scope
    finally:
        engine.dispose()
