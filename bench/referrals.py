"""Referral reports at scale: 1,000,000 referrals over three years (SQLite, cached), and the
time to compute the leaderboard, the monthly trend and the conversion table for one year,
organization-wide, beside a baseline: the same figures by the obvious joins over the raw
tables (referral x member, member x referral for the channel, invitation with a window
median), without the programme's summary table and covering indexes.

    python -m bench referrals [--quick] [--postgres URL]

The database is built once (bulk inserts, ledger and reward rows written as the
reconciliation would) and cached under the bench cache dir; --postgres copies the same
shape into that (empty) database and times it there too."""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, insert, select, text

from bench.bigdb import cache_dir
from bench.common import fresh_database, result
from invite_desk.services import auth, db
from invite_desk.services import referral_program as rp
from invite_desk.services.models import (
    Invitation,
    Member,
    MemberOrigin,
    Referral,
    ReferralLedger,
    ReferralReward,
    Unit,
    new_id,
)
from invite_desk.services.operator import Operator
from invite_desk.services.uow import UnitOfWork

SIZE = 1_000_000
QUICK_SIZE = 20_000
REFERRERS = 20_000
CHUNK = 20_000
RUNS = 5
# "now" for the bench: the year measured is the 12 months before it.
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
PERIOD = rp.Period.custom(date(2025, 11, 1), date(2026, 10, 31))


def _fill(uow: UnitOfWork, admin: Operator, size: int) -> None:
    rng = random.Random(10)
    org = admin.organization_id
    span = timedelta(days=3 * 365).total_seconds()
    start = NOW - timedelta(days=3 * 365)
    with uow:
        units = [Unit(organization_id=org, name=f"Chapter {i}") for i in range(8)]
        uow.session.add_all(units)
        uow.commit()
        unit_ids = [u.id for u in units]
    referrers = min(REFERRERS, max(10, size // 50))
    referrer_ids = [uuid.uuid4() for _ in range(referrers)]
    referrer_units = {mid: rng.choice(unit_ids) for mid in referrer_ids}
    old = start - timedelta(days=30)
    with uow.engine.begin() as conn:
        rows = [{
            "id": mid, "version": 1, "created_at": old, "updated_at": old,
            "organization_id": org, "email": f"referrer{i}@bench.example",
            "email_normalized": f"referrer{i}@bench.example", "first_name": f"Ref{i}",
            "last_name": f"Errer{i % 997}", "role": "USER", "unit_id": referrer_units[mid],
            "status": "active", "adhesion_reason": "", "joined_at": old,
        } for i, mid in enumerate(referrer_ids)]
        conn.execute(insert(Member), rows)
        conn.execute(insert(MemberOrigin), [{
            "member_id": mid, "organization_id": org, "channel": "imported", "joined_at": old,
            "email_key": f"referrer{i}@bench.example", "disposable": False,
            "ip_hash": None, "ua_hash": None} for i, mid in enumerate(referrer_ids)])
        # Referrers are not equally active: a skewed choice gives a realistic leaderboard.
        weights = [1 / (1 + i) ** 0.6 for i in range(referrers)]
        for first in range(0, size, CHUNK):
            members, origins, invitations, referrals, rewards, ledger = [], [], [], [], [], []
            count = min(size, first + CHUNK) - first
            chosen = rng.choices(referrer_ids, weights, k=count)
            for n in range(count):
                i = first + n
                referrer = chosen[n]
                unit = referrer_units[referrer]
                sent = start + timedelta(seconds=rng.random() * span)
                accepted = sent + timedelta(seconds=rng.expovariate(1 / (2 * 86400)))
                active = rng.random() < 0.8
                member_id, invitation_id, referral_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
                email = f"referee{i}@bench.example"
                members.append({
                    "id": member_id, "version": 1, "created_at": accepted,
                    "updated_at": accepted, "organization_id": org, "email": email,
                    "email_normalized": email, "first_name": f"Ree{i}", "last_name": "Bench",
                    "role": "USER", "unit_id": unit,
                    "status": "active" if active else "deactivated", "adhesion_reason": "",
                    "referred_by_id": referrer, "joined_at": accepted})
                origins.append({
                    "member_id": member_id, "organization_id": org, "channel": "referral",
                    "joined_at": accepted, "email_key": email, "disposable": False,
                    "ip_hash": None, "ua_hash": None})
                invitations.append({
                    "id": invitation_id, "version": 1, "created_at": sent, "updated_at": sent,
                    "organization_id": org, "email": email, "email_normalized": email,
                    "name": "", "kind": "membership", "inviter_id": referrer,
                    "sender_id": referrer, "unit_id": unit, "personal_message": "",
                    "status": "accepted", "queued_at": sent, "sent_at": sent,
                    "expires_at": sent + timedelta(days=14), "accepted_at": accepted,
                    "attempts": 1, "last_error": "", "accepted_member_id": member_id,
                    "accepted_via": "link"})
                if rng.random() < 0.5:  # and an invitation that was never accepted
                    other = f"prospect{i}@bench.example"
                    invitations.append({
                        "id": uuid.uuid4(), "version": 1, "created_at": sent,
                        "updated_at": sent, "organization_id": org, "email": other,
                        "email_normalized": other, "name": "", "kind": "membership",
                        "inviter_id": referrer, "sender_id": referrer, "unit_id": unit,
                        "personal_message": "", "status": "expired", "queued_at": sent,
                        "sent_at": sent, "expires_at": sent + timedelta(days=14),
                        "accepted_at": None, "attempts": 1, "last_error": "",
                        "accepted_member_id": None, "accepted_via": None})
                referrals.append({
                    "id": referral_id, "version": 1, "created_at": accepted,
                    "updated_at": accepted, "organization_id": org, "referrer_id": referrer,
                    "referee_id": member_id, "invitation_id": invitation_id,
                    "status": "completed", "referred_at": accepted, "completed_at": accepted})
                rewards.append({
                    "referral_id": referral_id, "organization_id": org,
                    "referrer_id": referrer, "cycle": 1 if active else 0,
                    "state": "vested" if active else "inactive", "points": 10 if active else 0,
                    "completed_at": accepted, "awarded_at": accepted if active else None,
                    "vest_after": accepted if active else None})
                if active:
                    for kind, points, vested in (("award", 10, 0), ("vest", 0, 10)):
                        ledger.append({
                            "id": new_id(), "version": 1, "created_at": accepted,
                            "updated_at": accepted, "organization_id": org,
                            "member_id": referrer, "referral_id": referral_id, "kind": kind,
                            "reason": "referee_active" if kind == "award" else "hold_elapsed",
                            "cycle": 1, "points": points, "vested_points": vested,
                            "at": accepted})
            conn.execute(insert(Member), members)
            conn.execute(insert(MemberOrigin), origins)
            conn.execute(insert(Invitation), invitations)
            conn.execute(insert(Referral), referrals)
            conn.execute(insert(ReferralReward), rewards)
            conn.execute(insert(ReferralLedger), ledger)
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


def measure(uow: UnitOfWork, admin: Operator, size: int, backend: str,
            ready_s: float) -> list[dict[str, Any]]:
    settings = rp.get_settings(uow, admin)
    start, end = PERIOD.bounds(settings.zone, NOW)
    assert start is not None and end is not None
    org = admin.organization_id
    views: dict[str, tuple[Callable[[], object], Callable[[], object], dict[str, Any]]] = {
        "leaderboard": (
            lambda: rp.leaderboard(uow, admin, PERIOD, limit=100, now=NOW),
            lambda: _baseline_leaderboard(uow, org, start, end), {"limit": 100}),
        "trend": (
            lambda: rp.trends(uow, admin, PERIOD, rp.Granularity.MONTH, now=NOW),
            lambda: _baseline_trend(uow, org, start, end), {"granularity": "month"}),
        "conversion": (
            lambda: rp.conversion(uow, admin, PERIOD, rp.ConversionBy.INVITER, now=NOW),
            lambda: _baseline_conversion(uow, org, start, end), {"by": "inviter"}),
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
    full, _ = _timed(lambda: rp.leaderboard(uow, admin, PERIOD, now=NOW), runs=3)
    rows.append(result("leaderboard_all_rows", full, "ms", None, backend=backend,
                       referrals=size, note="every referrer of the year, not only the top 100"))
    steady, _ = _timed(lambda: rp.reconcile(uow, admin, now=NOW), runs=1)
    rows.append(result("reconcile_steady_state", steady, "ms", None, backend=backend,
                       referrals=size, note="nothing to change: what a Refresh costs"))
    return rows


def run(quick: bool = False, postgres: str | None = None) -> list[dict[str, Any]]:
    size = QUICK_SIZE if quick else SIZE
    uow, admin, ready_s = _database(size)
    rows = measure(uow, admin, size, "sqlite", ready_s)
    uow.engine.dispose()
    if postgres:
        started = time.perf_counter()
        pg_uow, pg_admin = fresh_database(postgres)
        _fill(pg_uow, pg_admin, size)
        rows += measure(pg_uow, pg_admin, size, "postgresql", time.perf_counter() - started)
        pg_uow.engine.dispose()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.referrals")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--postgres", metavar="URL", help="also time an empty PostgreSQL "
                        "database (filled with the same shape)")
    args = parser.parse_args(argv)
    for row in run(quick=args.quick, postgres=args.postgres):
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
