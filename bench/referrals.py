"""Referral reports at scale: 1,000,000 referrals over three years (SQLite, cached), and the
time to compute the leaderboard (top 100), the monthly trend and the conversion table (its
first page of 100 inviters, with the whole view's totals) for one calendar year,
organization-wide, beside a baseline: the same figures by the obvious joins over the raw
tables (referral x member, member x referral for the channel, invitation with a window
median), without the programme's summary tables and covering indexes.

Further lines: the same views over twelve months that are not a calendar year (sums of the
calendar periods covering them) and over a custom range of days (15 November to 14 October:
the whole months inside from the period summary, the partial edges from the raw rows), each
beside its baseline in the same run: the same call computed from the raw rows, as it was
before the summaries; a leaderboard page deep in the ranking, a unit's and a quarter's
leaderboard, the whole conversion table read page by page (the CSV export), and the
reconciliation with nothing to change.

    python -m bench referrals [--quick | --size N] [--postgres URL]

The database is built once (bulk inserts, ledger and reward rows written as the
reconciliation would) and cached under the bench cache dir; --postgres copies the same
shape into that (empty) database and times it there too."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select, text

from bench.bigdb import cache_dir
from bench.common import fresh_database, result
from invite_desk.services import auth, db
from invite_desk.services import referral_program as rp
from invite_desk.services.models import (
    Invitation,
    Member,
    Referral,
    Unit,
)
from invite_desk.services.operator import Operator
from invite_desk.services.referral_program import reports
from invite_desk.services.uow import UnitOfWork

SIZE = 1_000_000
QUICK_SIZE = 20_000
REFERRERS = 20_000
CHUNK = 20_000
RUNS = 5
# "now" for the bench: the data covers the three years before it.
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
PERIOD = rp.Period.custom(date(2025, 1, 1), date(2025, 12, 31))  # a calendar year
ROLLING = rp.Period.custom(date(2025, 11, 1), date(2026, 10, 31))  # twelve months
QUARTER = rp.Period.custom(date(2026, 4, 1), date(2026, 6, 30))
# a custom range that is not whole months: eleven whole months and two partial ones
CUSTOM = rp.Period.custom(date(2025, 11, 15), date(2026, 10, 14))
PAGE = 100
EXPORT_PAGE = 2_000


class _Sql:
    """The few expressions the generator needs, per backend."""

    def __init__(self, backend: str) -> None:
        self.pg = backend == "postgresql"

    def seq(self, n: int) -> str:
        if self.pg:
            return f"(SELECT generate_series(0, {n - 1}) AS i) seq"
        return (f"(WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s "
                f"WHERE i < {n - 1}) SELECT i FROM s) seq")

    @property
    def uuid(self) -> str:
        return "gen_random_uuid()" if self.pg else "lower(hex(randomblob(16)))"

    @property
    def rand(self) -> str:
        return "random()" if self.pg else "((abs(random()) % 1000000000) / 1000000000.0)"

    def ts(self, epoch: str) -> str:
        if self.pg:
            return f"(to_timestamp({epoch}) AT TIME ZONE 'UTC')"
        return f"(strftime('%Y-%m-%d %H:%M:%S', {epoch}, 'unixepoch') || '.000000')"

    def flag(self, value: str) -> str:
        return f"({value})" if self.pg else f"(CASE WHEN {value} THEN 1 ELSE 0 END)"

    def uid(self, value: uuid.UUID) -> str:
        return f"'{value}'::uuid" if self.pg else f"'{value.hex}'"

    def member_id(self, k: str) -> str:
        """A referrer's id made from its number, so that no join is needed to find it."""
        if self.pg:
            return f"('bbbbbbbb' || lpad(to_hex({k}), 24, '0'))::uuid"
        return f"('bbbbbbbb' || printf('%024x', {k}))"

    @property
    def true(self) -> str:
        return "true" if self.pg else "1"

    @property
    def false(self) -> str:
        return "false" if self.pg else "0"

    @property
    def integer(self) -> str:
        return "bigint" if self.pg else "INTEGER"


BIG_TABLES = ("member", "member_origin", "invitation", "referral", "referral_reward",
              "referral_ledger")


def _secondary_indexes(uow: UnitOfWork) -> list[tuple[str, str]]:
    """(name, CREATE statement) of the plain indexes of the tables filled in bulk."""
    tables = ", ".join(f"'{t}'" for t in BIG_TABLES)
    with uow.engine.connect() as conn:
        if uow.backend == "postgresql":
            rows = conn.exec_driver_sql(
                f"SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ({tables}) "
                "AND indexdef NOT LIKE 'CREATE UNIQUE%'").all()
        else:
            rows = conn.exec_driver_sql(
                f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN "
                f"({tables}) AND sql IS NOT NULL AND sql NOT LIKE 'CREATE UNIQUE%'").all()
    return [(str(name), str(ddl)) for name, ddl in rows]


def _fill(uow: UnitOfWork, admin: Operator, size: int) -> None:
    """Everything generated by the database itself (INSERT ... SELECT over a number series):
    a million rows a table in seconds, where row-by-row inserts take many minutes."""
    q = _Sql(uow.backend)
    org = q.uid(admin.organization_id)
    start = (NOW - timedelta(days=3 * 365)).timestamp()
    span = timedelta(days=3 * 365).total_seconds()
    old = q.ts(str(start - 30 * 86400))
    referrers = min(REFERRERS, max(10, size // 50))
    with uow:
        units = [Unit(organization_id=admin.organization_id, name=f"Chapter {i}")
                 for i in range(8)]
        uow.session.add_all(units)
        uow.commit()
        unit_ids = [u.id for u in units]
    unit_case = "CASE " + " ".join(f"WHEN {{k}} % 8 = {i} THEN {q.uid(u)}"
                                   for i, u in enumerate(unit_ids)) + " END"
    sent = q.ts(f"{start} + f.u_sent * {span}")
    accepted = q.ts(f"{start} + f.u_sent * {span} + f.u_delay * 4 * 86400")
    active = "f.u_active < 0.8"
    statements = [
        "DROP TABLE IF EXISTS b_referrer", "DROP TABLE IF EXISTS b_fact",
        "DROP TABLE IF EXISTS b_rank", "DROP TABLE IF EXISTS b_link",
        f"CREATE TEMP TABLE b_referrer AS SELECT i AS k, {q.member_id('i')} AS id, "
        f"{unit_case.format(k='i')} AS unit_id FROM {q.seq(referrers)}",
        f"""INSERT INTO member (id, version, created_at, updated_at, organization_id, email,
            email_normalized, first_name, last_name, role, unit_id, status, adhesion_reason,
            joined_at)
            SELECT id, 1, {old}, {old}, {org}, 'referrer' || k || '@bench.example',
            'referrer' || k || '@bench.example', 'Ref' || k, 'Errer' || (k % 997), 'USER',
            unit_id, 'active', '', {old} FROM b_referrer""",
        f"""INSERT INTO member_origin (member_id, organization_id, channel, joined_at,
            email_key, disposable, recorded_at) SELECT id, {org}, 'imported', {old},
            'referrer' || k || '@bench.example', {q.false}, {old} FROM b_referrer""",
        # the random draws are stored once, so every use of one sees the same value
        f"""CREATE TEMP TABLE b_fact AS SELECT i, {q.uuid} AS member_id,
            {q.uuid} AS invitation_id, {q.uuid} AS referral_id, {q.uuid} AS prospect_id,
            {q.uuid} AS award_id, {q.uuid} AS vest_id,
            {q.rand} AS u_ref, {q.rand} AS u_sent, {q.rand} AS u_delay, {q.rand} AS u_active,
            {q.rand} AS u_prospect FROM {q.seq(size)}""",
        "CREATE UNIQUE INDEX b_fact_i ON b_fact (i)",
        # referrers are not equally active: a cubic skew gives a realistic leaderboard
        f"""CREATE TEMP TABLE b_rank AS SELECT i,
            CAST(u_ref * u_ref * u_ref * {referrers} AS {q.integer}) AS k FROM b_fact""",
        f"""CREATE TEMP TABLE b_link AS SELECT i, {q.member_id('k')} AS referrer_id,
            {unit_case.format(k='k')} AS unit_id FROM b_rank""",
        "CREATE UNIQUE INDEX b_link_i ON b_link (i)",
        f"""INSERT INTO member (id, version, created_at, updated_at, organization_id, email,
            email_normalized, first_name, last_name, role, unit_id, status, adhesion_reason,
            referred_by_id, joined_at)
            SELECT f.member_id, 1, {accepted}, {accepted}, {org},
            'referee' || f.i || '@bench.example', 'referee' || f.i || '@bench.example',
            'Ree' || f.i, 'Bench', 'USER', l.unit_id,
            CASE WHEN {active} THEN 'active' ELSE 'deactivated' END, '', l.referrer_id,
            {accepted} FROM b_fact f JOIN b_link l ON l.i = f.i""",
        f"""INSERT INTO member_origin (member_id, organization_id, channel, joined_at,
            email_key, disposable, recorded_at) SELECT f.member_id, {org}, 'referral',
            {accepted}, 'referee' || f.i || '@bench.example', {q.false}, {accepted}
            FROM b_fact f""",
        f"""INSERT INTO invitation (id, version, created_at, updated_at, organization_id, email,
            email_normalized, name, kind, inviter_id, sender_id, unit_id, personal_message,
            status, queued_at, sent_at, expires_at, accepted_at, attempts, last_error,
            accepted_member_id, accepted_via)
            SELECT f.invitation_id, 1, {sent}, {sent}, {org},
            'referee' || f.i || '@bench.example', 'referee' || f.i || '@bench.example', '',
            'membership', l.referrer_id, l.referrer_id, l.unit_id, '', 'accepted', {sent},
            {sent}, {q.ts(f"{start} + f.u_sent * {span} + 14 * 86400")}, {accepted}, 1, '',
            f.member_id, 'link' FROM b_fact f JOIN b_link l ON l.i = f.i""",
        f"""INSERT INTO invitation (id, version, created_at, updated_at, organization_id, email,
            email_normalized, name, kind, inviter_id, sender_id, unit_id, personal_message,
            status, queued_at, sent_at, expires_at, attempts, last_error)
            SELECT f.prospect_id, 1, {sent}, {sent}, {org},
            'prospect' || f.i || '@bench.example', 'prospect' || f.i || '@bench.example', '',
            'membership', l.referrer_id, l.referrer_id, l.unit_id, '', 'expired', {sent},
            {sent}, {q.ts(f"{start} + f.u_sent * {span} + 14 * 86400")}, 1, ''
            FROM b_fact f JOIN b_link l ON l.i = f.i WHERE f.u_prospect < 0.5""",
        f"""INSERT INTO referral (id, version, created_at, updated_at, organization_id,
            referrer_id, referee_id, invitation_id, status, referred_at, completed_at)
            SELECT f.referral_id, 1, {accepted}, {accepted}, {org}, l.referrer_id,
            f.member_id, f.invitation_id, 'completed', {accepted}, {accepted}
            FROM b_fact f JOIN b_link l ON l.i = f.i""",
        # reward and ledger rows as the reconciliation writes them (hold 0: vested at once)
        f"""INSERT INTO referral_reward (referral_id, organization_id, referrer_id, cycle,
            state, points, completed_at, awarded_at, vest_after)
            SELECT f.referral_id, {org}, l.referrer_id,
            CASE WHEN {active} THEN 1 ELSE 0 END,
            CASE WHEN {active} THEN 'vested' ELSE 'inactive' END,
            CASE WHEN {active} THEN 10 ELSE 0 END, {accepted},
            CASE WHEN {active} THEN {accepted} END, CASE WHEN {active} THEN {accepted} END
            FROM b_fact f JOIN b_link l ON l.i = f.i""",
        *[f"""INSERT INTO referral_ledger (id, version, created_at, updated_at, organization_id,
            member_id, referral_id, kind, reason, cycle, points, vested_points, at)
            SELECT f.{column}, 1, {accepted}, {accepted}, {org}, l.referrer_id, f.referral_id,
            '{kind}', '{reason}', 1, {points}, {vested}, {accepted}
            FROM b_fact f JOIN b_link l ON l.i = f.i WHERE {active}"""
          for column, kind, reason, points, vested in (
              ("award_id", "award", "referee_active", 10, 0),
              ("vest_id", "vest", "hold_elapsed", 0, 10))],
        "DROP TABLE b_link", "DROP TABLE b_rank", "DROP TABLE b_fact", "DROP TABLE b_referrer",
    ]
    indexes = _secondary_indexes(uow)
    with uow.engine.begin() as conn:
        if not q.pg:  # a big page cache, no fsync: a throwaway file being built
            conn.exec_driver_sql("PRAGMA cache_size = -400000")
            conn.exec_driver_sql("PRAGMA synchronous = OFF")
        for name, _ in indexes:
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
        statements += [ddl for _, ddl in indexes]  # built once, sorted: much faster
        for statement in statements:
            began = time.perf_counter()
            conn.exec_driver_sql(statement)
            if os.environ.get("BENCH_VERBOSE"):
                print(f"{time.perf_counter() - began:8.2f}s {statement.split(chr(10))[0][:70]}",
                      file=sys.stderr)
    if uow.backend == "sqlite":
        with uow.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    elif uow.backend == "postgresql":
        with uow.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))


def _database(size: int) -> tuple[UnitOfWork, Operator, float]:
    started = time.perf_counter()
    path = cache_dir() / f"referrals-{size}.sqlite3"
    url = f"sqlite:///{path}"
    if not path.exists():
        tmp = path.with_suffix(".building")
        for leftover in tmp.parent.glob(tmp.name + "*"):
            leftover.unlink()
        uow, admin = fresh_database(f"sqlite:///{tmp}")
        _fill(uow, admin, size)
        uow.engine.dispose()
        tmp.rename(path)
    engine = db.make_engine(url)
    db.upgrade_to_head(engine)
    uow = UnitOfWork(engine)
    return uow, auth.sign_in(uow, "bench@example.org", "bench-password-1"), \
        time.perf_counter() - started


# -- baselines: the obvious joins over the raw tables ------------------------------------------

def _baseline_leaderboard(uow: UnitOfWork, org: uuid.UUID, start: datetime,
                          end: datetime) -> int:
    referee = Member.__table__.alias("referee")
    with uow:
        rows = uow.session.execute(
            select(Referral.referrer_id, func.count(),
                   func.sum(case((referee.c.status == "active", 1), else_=0)),
                   func.max(Referral.completed_at))
            .join(referee, referee.c.id == Referral.referee_id)
            .where(Referral.organization_id == org, Referral.status == "completed",
                   Referral.referred_at >= start, Referral.referred_at < end)
            .group_by(Referral.referrer_id)).all()
        sent = uow.session.execute(
            select(Invitation.inviter_id, func.count(),
                   func.sum(case((Invitation.status == "accepted", 1), else_=0)))
            .where(Invitation.organization_id == org, Invitation.created_at >= start,
                   Invitation.created_at < end)
            .group_by(Invitation.inviter_id)).all()
        return len(rows) + len(sent)


def _baseline_trend(uow: UnitOfWork, org: uuid.UUID, start: datetime, end: datetime) -> int:
    month = func.strftime("%Y-%m", Member.joined_at) if uow.backend == "sqlite" else \
        func.to_char(Member.joined_at, "YYYY-MM")
    referred = select(Referral.id).where(Referral.referee_id == Member.id).exists()
    with uow:
        return len(uow.session.execute(
            select(month, referred, func.count())
            .where(Member.organization_id == org, Member.joined_at >= start,
                   Member.joined_at < end)
            .group_by(month, referred)).all())


def _baseline_conversion(uow: UnitOfWork, org: uuid.UUID, start: datetime,
                         end: datetime) -> int:
    with uow:
        rows = uow.session.execute(
            select(Invitation.inviter_id, Invitation.sent_at, Invitation.accepted_at)
            .where(Invitation.organization_id == org, Invitation.created_at >= start,
                   Invitation.created_at < end)).all()
    # the obvious way: fetch the rows and compute in Python
    per: dict[uuid.UUID, list[float]] = {}
    for inviter, sent, accepted in rows:
        values = per.setdefault(inviter, [])
        if accepted is not None and sent is not None:
            values.append((accepted - sent).total_seconds())
    return len({k: statistics.median(v) if v else None for k, v in per.items()})


def _timed(action: Callable[[], object], runs: int = RUNS) -> tuple[float, list[float]]:
    action()  # warm the caches, as a window that opened once has
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), times


def _export_conversion(uow: UnitOfWork, admin: Operator, period: rp.Period) -> int:
    """The whole conversion table by inviter, page by page (what the CSV export reads)."""
    rows = 0
    while True:
        page = rp.conversion(uow, admin, period, rp.ConversionBy.INVITER, now=NOW,
                             limit=EXPORT_PAGE, offset=rows)
        rows += len(page.rows)
        if not page.rows or rows >= page.total_rows:
            return rows


def measure(uow: UnitOfWork, admin: Operator, size: int, backend: str,
            ready_s: float) -> list[dict[str, Any]]:
    settings = rp.get_settings(uow, admin)
    start, end = PERIOD.bounds(settings.zone, NOW)
    assert start is not None and end is not None
    org = admin.organization_id
    views: dict[str, tuple[Callable[[], object], Callable[[], object], dict[str, Any]]] = {
        "leaderboard": (
            lambda: rp.leaderboard(uow, admin, PERIOD, limit=PAGE, now=NOW),
            lambda: _baseline_leaderboard(uow, org, start, end), {"limit": PAGE}),
        "trend": (
            lambda: rp.trends(uow, admin, PERIOD, rp.Granularity.MONTH, now=NOW),
            lambda: _baseline_trend(uow, org, start, end), {"granularity": "month"}),
        "conversion": (
            lambda: rp.conversion(uow, admin, PERIOD, rp.ConversionBy.INVITER, now=NOW,
                                  limit=PAGE),
            lambda: _baseline_conversion(uow, org, start, end),
            {"by": "inviter", "limit": PAGE}),
    }
    rows = []
    for name, (view, baseline, extra) in views.items():
        value, times = _timed(view)
        base, _ = _timed(baseline, runs=3)
        rows.append(result(name, value, "ms", base, target="< 100 ms", backend=backend,
                           referrals=size, period="one year, organization-wide",
                           min=round(min(times), 1), max=round(max(times), 1),
                           baseline_name="obvious joins over the raw tables",
                           database_ready_s=round(ready_s, 1), **extra))
    unit = _first_unit(uow, org)
    ranges: dict[str, tuple[Callable[[], object], str]] = {}
    for label, period, what in (
            ("rolling_year", ROLLING, "twelve months that are not a calendar year"),
            ("custom_range", CUSTOM, "15 Nov 2025 - 14 Oct 2026 (whole months and two "
                                     "partial ones)")):
        ranges[f"leaderboard_{label}"] = (
            lambda p=period: rp.leaderboard(uow, admin, p, limit=PAGE, now=NOW),
            f"top 100 of {what}")
        ranges[f"conversion_{label}"] = (
            lambda p=period: rp.conversion(uow, admin, p, rp.ConversionBy.INVITER, now=NOW,
                                           limit=PAGE),
            f"first page of 100 inviters of {what}")
        ranges[f"trend_{label}"] = (
            lambda p=period: rp.trends(uow, admin, p, rp.Granularity.MONTH, now=NOW),
            f"new members and invitations per month of {what}")
    for name, (view, note) in ranges.items():
        value, times = _timed(view, runs=3)
        with _raw_rows():
            base, _ = _timed(view, runs=1)
        rows.append(result(name, value, "ms", base, target="< 100 ms", backend=backend,
                           referrals=size, min=round(min(times), 1), max=round(max(times), 1),
                           baseline_name="the same call from the raw rows (no summaries)",
                           note=note))
    more: dict[str, tuple[Callable[[], object], str]] = {
        "leaderboard_deep_page": (
            lambda: rp.leaderboard(uow, admin, PERIOD, limit=PAGE, offset=10_000, now=NOW),
            "ranks 10,001-10,100 of the calendar year"),
        "leaderboard_unit": (
            lambda: rp.leaderboard(uow, admin, PERIOD, unit, limit=PAGE, now=NOW),
            "top 100 of one unit (of 8) for the calendar year"),
        "leaderboard_quarter": (
            lambda: rp.leaderboard(uow, admin, QUARTER, limit=PAGE, now=NOW),
            "top 100 of a calendar quarter"),
        "conversion_by_accepted": (
            lambda: rp.conversion(uow, admin, PERIOD, rp.ConversionBy.INVITER, now=NOW,
                                  limit=PAGE, offset=1_000,
                                  order=rp.ConversionOrder.ACCEPTED),
            "rows 1,001-1,100 by invitations accepted, calendar year"),
    }
    for name, (view, note) in more.items():
        value, times = _timed(view, runs=3)
        rows.append(result(name, value, "ms", None, target="< 100 ms", backend=backend,
                           referrals=size, min=round(min(times), 1), max=round(max(times), 1),
                           note=note))
    exported, _ = _timed(lambda: _export_conversion(uow, admin, PERIOD), runs=1)
    rows.append(result("conversion_export_all_rows", exported, "ms", None, backend=backend,
                       referrals=size, page=EXPORT_PAGE,
                       note="every inviter of the calendar year, page by page (CSV export)"))
    full, _ = _timed(lambda: rp.leaderboard(uow, admin, PERIOD, now=NOW), runs=1)
    rows.append(result("leaderboard_all_rows", full, "ms", None, backend=backend,
                       referrals=size, note="every referrer of the year in one call, not paged"))
    steady, _ = _timed(lambda: rp.reconcile(uow, admin, now=NOW), runs=1)
    rows.append(result("reconcile_steady_state", steady, "ms", None, backend=backend,
                       referrals=size, note="nothing to change: what a Refresh costs"))
    return rows


@contextmanager
def _raw_rows() -> Iterator[None]:
    """The reports as if no summary had been built: every figure from the raw rows."""
    saved = (reports.stats.usable, reports.running.built, reports.periods.built)
    reports.stats.usable = reports.running.built = reports.periods.built = (  # type: ignore[assignment]
        lambda *_args: False)
    try:
        yield
    finally:
        (reports.stats.usable, reports.running.built,  # type: ignore[assignment]
         reports.periods.built) = saved


def _first_unit(uow: UnitOfWork, org: uuid.UUID) -> uuid.UUID:
    with uow:
        unit = uow.session.scalar(select(Unit.id).where(Unit.organization_id == org)
                                  .order_by(Unit.name).limit(1))
    assert unit is not None
    return unit


def run(quick: bool = False, postgres: str | None = None,
        size: int | None = None) -> list[dict[str, Any]]:
    size = size or (QUICK_SIZE if quick else SIZE)
    uow, admin, ready_s = _database(size)
    started = time.perf_counter()
    rp.reconcile(uow, admin, now=NOW)  # the first Refresh builds the summaries
    first = (time.perf_counter() - started) * 1000
    rows = [result("reconcile", first, "ms", None, backend="sqlite", referrals=size,
                   note="the Refresh before the views; the first one builds the summaries")]
    rows += measure(uow, admin, size, "sqlite", ready_s)
    uow.engine.dispose()
    if postgres:
        started = time.perf_counter()
        pg_uow, pg_admin = fresh_database(postgres)
        _fill(pg_uow, pg_admin, size)
        rp.reconcile(pg_uow, pg_admin, now=NOW)
        rows += measure(pg_uow, pg_admin, size, "postgresql", time.perf_counter() - started)
        pg_uow.engine.dispose()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.referrals")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--postgres", metavar="URL", help="also time an empty PostgreSQL "
                        "database (filled with the same shape)")
    parser.add_argument("--size", type=int, help="referrals (default 1,000,000; --quick: "
                        f"{QUICK_SIZE:,}); each size is cached on its own")
    args = parser.parse_args(argv)
    for row in run(quick=args.quick, postgres=args.postgres, size=args.size):
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
