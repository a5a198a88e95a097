"""The append-only points ledger and its reconciliation.

Per referral, the facts say what its referrer should hold:
- nothing, until the referral is completed and the referee is an active member;
- then the points, held (award row) until the vesting hold since the award has passed and no
  open flag covers the referral or its referrer, when they vest (vest row);
- nothing again once the referee lapses (member status no longer active), the application
  was rejected, or an admin rejected a flag as fake (revoke row with that reason); a referee
  who becomes active again starts a new cycle (never after a fake).

`reconcile` finds, with one SQL query per transition, the referrals whose `referral_reward`
state disagrees with the facts and appends the missing rows; nothing else is touched, so a
second run writes nothing. Two runs at once: the unique (referral, kind, cycle) key makes the
later insert fail, and that run is rolled back and its caller sees the other's result.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Exists, and_, exists, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from invite_desk.services import audit
from invite_desk.services.models import (
    Member,
    MemberOrigin,
    MemberStatus,
    Referral,
    ReferralFlag,
    ReferralLedger,
    ReferralReward,
    ReferralStatus,
    Setting,
    new_id,
    utcnow,
)
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.referral_program import flags as flag_detection
from invite_desk.services.referral_program import origin, stats
from invite_desk.services.referral_program.settings import load as load_settings
from invite_desk.services.referral_program.types import (
    FlagStatus,
    GamificationSettings,
    LedgerKind,
    LedgerReason,
    ReconcileResult,
)
from invite_desk.services.sync import journal
from invite_desk.services.uow import UnitOfWork

INACTIVE, HELD, VESTED, REVOKED, FAKE = "inactive", "held", "vested", "revoked", "fake"

Referee = aliased(Member, name="referee")
MARK_KEY = "referralProgram._reconcileWatermark"
MARGIN = stats.MARGIN
CHUNK = 500


@dataclass
class _Counts:
    awarded: int = 0
    vested: int = 0
    revoked: int = 0


def _rejected_flag() -> Exists:
    return exists().where(ReferralFlag.referral_id == Referral.id,
                          ReferralFlag.status == FlagStatus.REJECTED.value)


def _open_flag_on_reward() -> ColumnElement[bool]:
    return or_(
        exists().where(ReferralFlag.referral_id == ReferralReward.referral_id,
                       ReferralFlag.status == FlagStatus.OPEN.value),
        exists().where(ReferralFlag.referrer_id == ReferralReward.referrer_id,
                       ReferralFlag.referral_id.is_(None),
                       ReferralFlag.status == FlagStatus.OPEN.value),
    )


def _ledger_row(reward: ReferralReward | dict[str, object], *, kind: LedgerKind,
                reason: LedgerReason, points: int, vested: int, at: datetime,
                organization_id: uuid.UUID) -> dict[str, object]:
    get = reward.get if isinstance(reward, dict) else (lambda key: getattr(reward, key))
    return {
        "id": new_id(), "version": 1, "created_at": at, "updated_at": at,
        "organization_id": organization_id, "member_id": get("referrer_id"),
        "referral_id": get("referral_id"), "kind": kind.value, "reason": reason.value,
        "cycle": get("cycle"), "points": points, "vested_points": vested, "at": at,
    }


def _track(session: Session, organization_id: uuid.UUID,
           referrer_id: uuid.UUID | None, touched: set[uuid.UUID],
           part: Sequence[uuid.UUID] | None = None) -> int:
    """Give every completed referral its reward row (state `inactive` until awarded)."""
    stmt = (
        select(Referral.id, Referral.referrer_id, Referral.completed_at, Referral.referred_at)
        .where(Referral.organization_id == organization_id,
               Referral.status == ReferralStatus.COMPLETED.value,
               ~exists().where(ReferralReward.referral_id == Referral.id))
    )
    if referrer_id is not None:
        stmt = stmt.where(Referral.referrer_id == referrer_id)
    if part is not None:
        stmt = stmt.where(Referral.id.in_(part))
    rows = [
        {"referral_id": rid, "organization_id": organization_id, "referrer_id": referrer,
         "cycle": 0, "state": INACTIVE, "points": 0, "completed_at": completed or referred,
         "awarded_at": None, "vest_after": None}
        for rid, referrer, completed, referred in session.execute(stmt)
    ]
    touched.update(row["referrer_id"] for row in rows)  # type: ignore[misc]
    for start in range(0, len(rows), 5000):
        session.execute(insert(ReferralReward), rows[start:start + 5000])
    return len(rows)


def _revoke(session: Session, organization_id: uuid.UUID, now: datetime,
            referrer_id: uuid.UUID | None, touched: set[uuid.UUID],
            part: Sequence[uuid.UUID] | None = None) -> int:
    """Rewards whose referral no longer earns points: lapsed, rejected, or fake."""
    stmt = (
        select(ReferralReward, Referral.status, Referee.status, _rejected_flag())
        .join(Referral, Referral.id == ReferralReward.referral_id)
        .join(Referee, Referee.id == Referral.referee_id)
        .where(
            ReferralReward.organization_id == organization_id,
            or_(
                and_(ReferralReward.state.in_((HELD, VESTED)),
                     or_(Referee.status != MemberStatus.ACTIVE.value,
                         Referral.status != ReferralStatus.COMPLETED.value,
                         _rejected_flag())),
                and_(ReferralReward.state.in_((INACTIVE, REVOKED)),
                     _rejected_flag()),
            ),
        )
    )
    if referrer_id is not None:
        stmt = stmt.where(ReferralReward.referrer_id == referrer_id)
    if part is not None:
        stmt = stmt.where(ReferralReward.referral_id.in_(part))
    rows = []
    for reward, referral_status, member_status, fake in session.execute(stmt):
        touched.add(reward.referrer_id)
        if reward.state in (INACTIVE, REVOKED):  # nothing held: just never award it
            reward.state = FAKE
            continue
        if fake:
            reason = LedgerReason.FLAGGED_FAKE
        elif (referral_status == ReferralStatus.DECLINED.value
              or member_status == MemberStatus.REJECTED.value):
            reason = LedgerReason.APPLICATION_REJECTED
        else:
            reason = LedgerReason.REFEREE_LAPSED
        vested = reward.points if reward.state == VESTED else 0
        rows.append(_ledger_row(reward, kind=LedgerKind.REVOKE, reason=reason,
                                points=-reward.points, vested=-vested, at=now,
                                organization_id=organization_id))
        reward.state = FAKE if fake else REVOKED
        reward.points = 0
    if rows:
        session.execute(insert(ReferralLedger), rows)
    return len(rows)


def _award(session: Session, organization_id: uuid.UUID, settings: GamificationSettings,
           now: datetime, referrer_id: uuid.UUID | None, touched: set[uuid.UUID],
           part: Sequence[uuid.UUID] | None = None) -> int:
    """Completed referrals of active referees that earn nothing yet (first time, or back
    after a lapse)."""
    stmt = (
        select(ReferralReward)
        .join(Referral, Referral.id == ReferralReward.referral_id)
        .join(Referee, Referee.id == Referral.referee_id)
        .where(
            ReferralReward.organization_id == organization_id,
            ReferralReward.state.in_((INACTIVE, REVOKED)),
            Referral.status == ReferralStatus.COMPLETED.value,
            Referee.status == MemberStatus.ACTIVE.value,
            ~_rejected_flag(),
        )
    )
    if referrer_id is not None:
        stmt = stmt.where(ReferralReward.referrer_id == referrer_id)
    if part is not None:
        stmt = stmt.where(ReferralReward.referral_id.in_(part))
    hold = timedelta(days=settings.vesting_hold_days)
    points = settings.points_per_referral
    rows: list[dict[str, object]] = []
    for reward in session.scalars(stmt):
        touched.add(reward.referrer_id)
        # The first award dates from when the referee became active; a comeback from now.
        at = min(reward.completed_at, now) if reward.cycle == 0 else now
        reward.cycle += 1
        reward.state = HELD
        reward.points = points
        reward.awarded_at = at
        reward.vest_after = at + hold
        rows.append(_ledger_row(reward, kind=LedgerKind.AWARD,
                                reason=LedgerReason.REFEREE_ACTIVE, points=points,
                                vested=0, at=at, organization_id=organization_id))
    if rows:
        session.execute(insert(ReferralLedger), rows)
    return len(rows)


def _vest(session: Session, organization_id: uuid.UUID, now: datetime,
          referrer_id: uuid.UUID | None, touched: set[uuid.UUID]) -> int:
    """Held rewards whose hold has passed and that no open flag covers."""
    stmt = select(ReferralReward).where(
        ReferralReward.organization_id == organization_id,
        ReferralReward.state == HELD,
        ReferralReward.vest_after <= now,
        ~_open_flag_on_reward(),
    )
    if referrer_id is not None:
        stmt = stmt.where(ReferralReward.referrer_id == referrer_id)
    rows = []
    ids = []
    for reward in session.scalars(stmt):
        touched.add(reward.referrer_id)
        rows.append(_ledger_row(reward, kind=LedgerKind.VEST, reason=LedgerReason.HOLD_ELAPSED,
                                points=0, vested=reward.points, at=now,
                                organization_id=organization_id))
        ids.append(reward.referral_id)
    if rows:
        session.execute(insert(ReferralLedger), rows)
        for start in range(0, len(ids), 500):
            session.execute(
                update(ReferralReward).where(ReferralReward.referral_id.in_(ids[start:start + 500]))
                .values(state=VESTED).execution_options(synchronize_session=False))
    return len(rows)


def _parts(ids: Sequence[uuid.UUID]) -> Iterable[Sequence[uuid.UUID]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]


def _settings_key(settings: GamificationSettings) -> str:
    return json.dumps(dataclasses.asdict(settings), sort_keys=True, default=str)


def _mark(session: Session, organization_id: uuid.UUID) -> tuple[Setting | None, Any]:
    row = session.scalar(select(Setting).where(Setting.organization_id == organization_id,
                                               Setting.key == MARK_KEY))
    return row, (json.loads(row.value_json) if row is not None else None)


def changed_referrals(session: Session, organization_id: uuid.UUID,
                      since: datetime) -> list[uuid.UUID]:
    """Referrals whose facts may have changed since `since`: the referral itself, its referee
    (status), a flag on it, or the origin of its referee or referrer (self-referral,
    disposable address). Each is an indexed range of rows changed since the watermark."""
    org = organization_id
    members = select(Member.id).where(Member.organization_id == org, Member.updated_at > since)
    origins = select(MemberOrigin.member_id).where(MemberOrigin.organization_id == org,
                                                   MemberOrigin.recorded_at > since)
    ids: set[uuid.UUID] = set(session.scalars(select(Referral.id).where(
        Referral.organization_id == org, Referral.updated_at > since)))
    ids.update(session.scalars(select(Referral.id).where(Referral.referee_id.in_(members))))
    ids.update(session.scalars(select(Referral.id).where(Referral.referee_id.in_(origins))))
    ids.update(session.scalars(select(Referral.id).where(Referral.referrer_id.in_(origins))))
    ids.update(i for i in session.scalars(select(ReferralFlag.referral_id).where(
        ReferralFlag.organization_id == org, ReferralFlag.updated_at > since)) if i is not None)
    return sorted(ids)


def reconcile_session(session: Session, organization_id: uuid.UUID, now: datetime, *,
                      referrer_id: uuid.UUID | None = None,
                      settings: GamificationSettings | None = None) -> ReconcileResult:
    """One pass in the caller's transaction (the caller commits). With `referrer_id`, only
    that referrer's referrals (cheap; what one member's page needs) and no new flags.

    Organization-wide, a pass after the first looks only at what changed since the last one
    (the watermark: the wall clock when it began, less a margin for clock skew), by the
    `updated_at` / `recorded_at` indexes: referrals, their referees, flags and origins changed
    since, inviters whose invitations changed since. What depends on the clock alone is
    always checked, over small indexed sets: held rewards due to vest, pending referrals
    that never became active. A change of settings (thresholds) makes the pass whole again."""
    settings = settings or load_settings(session, organization_id)
    wall = utcnow()
    raised = 0
    since: datetime | None = None
    mark_row, mark = (None, None)
    if referrer_id is None:
        mark_row, mark = _mark(session, organization_id)
        if isinstance(mark, dict) and mark.get("settings") == _settings_key(settings):
            since = datetime.fromisoformat(str(mark["at"]))
        origin.backfill(session, organization_id, since=since)
        raised = flag_detection.detect(session, organization_id, settings, now, since=since)
    touched: set[uuid.UUID] = set()
    parts: list[Sequence[uuid.UUID] | None] = [None]
    if since is not None:
        parts = list(_parts(changed_referrals(session, organization_id, since)))
    revoked = awarded = 0
    for part in parts:
        _track(session, organization_id, referrer_id, touched, part)
        session.flush()
        revoked += _revoke(session, organization_id, now, referrer_id, touched, part)
        session.flush()
        awarded += _award(session, organization_id, settings, now, referrer_id, touched, part)
        session.flush()
    vested = _vest(session, organization_id, now, referrer_id, touched)
    session.flush()
    # the leaderboard's monthly summary follows (see stats.py)
    stats.refresh(session, organization_id, settings.time_zone, utcnow(), touched,
                  follow_invitations=referrer_id is None)
    if referrer_id is None:
        value = json.dumps({"at": (wall - MARGIN).isoformat(),
                            "settings": _settings_key(settings)})
        if mark_row is None:
            session.add(Setting(organization_id=organization_id, key=MARK_KEY,
                                value_json=value))
        else:
            mark_row.value_json = value
    session.flush()
    return ReconcileResult(awarded=awarded, vested=vested, revoked=revoked, flags_raised=raised)


def run(uow: UnitOfWork, organization_id: uuid.UUID, now: datetime, *,
        actor_id: uuid.UUID | None = None, referrer_id: uuid.UUID | None = None
        ) -> ReconcileResult:
    """Reconcile in a transaction of its own; a concurrent run that got there first wins."""
    try:
        with uow:
            result = reconcile_session(uow.session, organization_id, now,
                                       referrer_id=referrer_id)
            if result != ReconcileResult():
                audit.record(uow.session, organization_id=organization_id, actor_id=actor_id,
                             action="referral_program.reconciled", entity_type="referral_ledger",
                             after={"awarded": result.awarded, "vested": result.vested,
                                    "revoked": result.revoked,
                                    "flags_raised": result.flags_raised,
                                    "referrer": referrer_id})
            # The summaries' watermark moves even when no points changed. On a replica this
            # is derived state of its own: nothing to push (the server reconciles too).
            with journal.command(journal.LOCAL_ONLY):
                uow.commit()
            return result
    except IntegrityError:
        return ReconcileResult()  # another run wrote the same rows first


def reconcile(uow: UnitOfWork, operator: Operator,
              now: datetime | None = None) -> ReconcileResult:
    """Bring the ledger, reward states and anti-gaming flags up to date for the organization.
    Any signed-in member may trigger it: it only writes what the facts already decide."""
    with uow:
        operator = refreshed(uow.session, operator)
    return run(uow, operator.organization_id, now or utcnow(), actor_id=operator.member_id)

