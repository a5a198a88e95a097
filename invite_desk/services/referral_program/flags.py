"""Anti-gaming flags: raised by the reconciliation (`detect`), decided by an admin.

Nothing here acts on its own: a flag only holds the points it covers (an open flag on a
referral holds that referral's points; one on a referrer's behaviour holds all of their
unvested points) until an admin clears it (the points vest) or rejects it as fake (the points
and the badges they made are taken back, and the ledger says so). Each finding has a stable
key, so a flag once decided is not raised again for the same finding."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, and_, case, func, insert, select
from sqlalchemy.orm import Session, aliased

from invite_desk.services import audit
from invite_desk.services.concurrency import changed_meanwhile
from invite_desk.services.errors import Conflict, NotFound, PermissionDenied
from invite_desk.services.models import (
    Invitation,
    InvitationStatus,
    Member,
    MemberOrigin,
    MemberStatus,
    Referral,
    ReferralFlag,
    ReferralStatus,
    new_id,
    utcnow,
)
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.permissions import ScopeLevel, scope_of
from invite_desk.services.referral_program.sql import email_domain, hour_bucket
from invite_desk.services.referral_program.types import (
    FlagKind,
    FlagRow,
    FlagStatus,
    GamificationSettings,
)
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork

# Big shared mail providers: many invitations to them say nothing about one organization.
COMMON_PROVIDERS = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "yahoo.fr", "outlook.com", "hotmail.com",
    "hotmail.fr", "live.com", "msn.com", "icloud.com", "me.com", "aol.com", "gmx.de", "gmx.net",
    "web.de", "orange.fr", "free.fr", "laposte.net", "proton.me", "protonmail.com", "yandex.ru",
    "mail.ru", "qq.com", "163.com",
})

Referrer = aliased(Member, name="referrer")
Referee = aliased(Member, name="referee")
RefereeOrigin = aliased(MemberOrigin, name="referee_origin")
OtherOrigin = aliased(MemberOrigin, name="other_origin")
Other = aliased(Referral, name="other")
CHUNK = 500


@dataclass(frozen=True)
class _Finding:
    kind: FlagKind
    referrer_id: uuid.UUID
    referral_id: uuid.UUID | None
    key: str
    detail: str


def _referral_findings(session: Session, organization_id: uuid.UUID,
                       settings: GamificationSettings, now: datetime,
                       part: Sequence[uuid.UUID] | None = None) -> list[_Finding]:
    """Findings about single referrals (`part`: only these referrals, for the address checks;
    the device and never-active checks read small indexed sets and always run whole)."""
    found: list[_Finding] = []
    base = (Referral.organization_id == organization_id,
            Referral.status != ReferralStatus.DECLINED.value)
    only = (Referral.id.in_(part),) if part is not None else ()
    ReferrerOrigin = aliased(MemberOrigin, name="referrer_origin")
    # Self-referral: the referee's address is the referrer's own, decorated (+tag, dots).
    for rid, referrer in session.execute(
        select(Referral.id, Referral.referrer_id)
        .join(RefereeOrigin, RefereeOrigin.member_id == Referral.referee_id)
        .join(ReferrerOrigin, ReferrerOrigin.member_id == Referral.referrer_id)
        .where(*base, *only, RefereeOrigin.email_key == ReferrerOrigin.email_key)
    ):
        found.append(_Finding(FlagKind.SELF_REFERRAL, referrer, rid, f"self:{rid}",
                              "The referee's address is the referrer's own address."))
    # Disposable address.
    for rid, referrer in session.execute(
        select(Referral.id, Referral.referrer_id)
        .join(RefereeOrigin, RefereeOrigin.member_id == Referral.referee_id)
        .where(*base, *only, RefereeOrigin.disposable.is_(True))
    ):
        found.append(_Finding(FlagKind.DISPOSABLE_DOMAIN, referrer, rid, f"disposable:{rid}",
                              "The referee used a disposable (throw-away) email domain."))
    return found


def _whole_findings(session: Session, organization_id: uuid.UUID,
                    settings: GamificationSettings, now: datetime) -> list[_Finding]:
    """Device and never-active findings: small indexed sets (origins with hashes, referrals
    not completed), read whole on every pass."""
    found: list[_Finding] = []
    base = (Referral.organization_id == organization_id,
            Referral.status != ReferralStatus.DECLINED.value)
    ReferrerOrigin = aliased(MemberOrigin, name="referrer_origin")
    # Same IP address and browser as the referrer, or as another of the referrer's referees.
    # Both read from the (few) origins that have hashes, by the device index: never a join
    # of a referrer's referrals with each other.
    with_hashes = select(MemberOrigin.member_id).where(
        MemberOrigin.organization_id == organization_id, MemberOrigin.ip_hash.is_not(None),
        MemberOrigin.ua_hash.is_not(None))
    hashed = (RefereeOrigin.organization_id == organization_id,
              Referral.referee_id.in_(with_hashes))
    for rid, referrer in session.execute(
        select(Referral.id, Referral.referrer_id)
        .select_from(RefereeOrigin)
        .join(Referral, Referral.referee_id == RefereeOrigin.member_id)
        .join(ReferrerOrigin, ReferrerOrigin.member_id == Referral.referrer_id)
        .where(*hashed, *base, RefereeOrigin.ip_hash == ReferrerOrigin.ip_hash,
               RefereeOrigin.ua_hash == ReferrerOrigin.ua_hash)
    ):
        found.append(_Finding(FlagKind.SAME_DEVICE, referrer, rid, f"device-referrer:{rid}",
                              "The referee registered from the same IP address and browser as "
                              "the referrer."))
    for rid, referrer, twins in session.execute(
        select(Referral.id, Referral.referrer_id, func.count(Other.id))
        .select_from(RefereeOrigin)
        .join(Referral, Referral.referee_id == RefereeOrigin.member_id)
        .join(OtherOrigin, and_(OtherOrigin.organization_id == RefereeOrigin.organization_id,
                                OtherOrigin.ip_hash == RefereeOrigin.ip_hash,
                                OtherOrigin.ua_hash == RefereeOrigin.ua_hash,
                                OtherOrigin.member_id != RefereeOrigin.member_id))
        .join(Other, and_(Other.referee_id == OtherOrigin.member_id,
                          Other.referrer_id == Referral.referrer_id))
        .where(*hashed, *base)
        .group_by(Referral.id, Referral.referrer_id)
    ):
        found.append(_Finding(FlagKind.SAME_DEVICE, referrer, rid, f"device-twin:{rid}",
                              f"The referee registered from the same IP address and browser as "
                              f"{twins} other referee(s) of the same referrer."))
    # Never active: still not an active member long after the referral.
    cutoff = now - timedelta(days=settings.never_active_days)
    for rid, referrer in session.execute(
        select(Referral.id, Referral.referrer_id)
        .join(Referee, Referee.id == Referral.referee_id)
        .where(*base, Referral.referred_at <= cutoff, Referral.completed_at.is_(None),
               Referee.status != MemberStatus.ACTIVE.value)
    ):
        found.append(_Finding(FlagKind.NEVER_ACTIVE, referrer, rid, f"never-active:{rid}",
                              f"The referee has not become an active member "
                              f"{settings.never_active_days} days after the referral."))
    return found


def _inviter_findings(session: Session, organization_id: uuid.UUID,
                      settings: GamificationSettings,
                      part: Sequence[uuid.UUID] | None = None) -> list[_Finding]:
    """Findings about inviters' behaviour (`part`: only these inviters, all their
    invitations, by the inviter index)."""
    found: list[_Finding] = []
    sent = Invitation.sent_at.is_not(None)
    org: ColumnElement[bool] = Invitation.organization_id == organization_id
    if part is not None:
        org = and_(org, Invitation.inviter_id.in_(part))
    domain = email_domain(session, Invitation.email_normalized).label("domain")
    for inviter, dom, count in session.execute(
        select(Invitation.inviter_id, domain, func.count())
        .where(org, sent).group_by(Invitation.inviter_id, domain)
        .having(func.count() >= settings.domain_concentration)
    ):
        if dom in COMMON_PROVIDERS:
            continue
        found.append(_Finding(FlagKind.DOMAIN_CONCENTRATION, inviter, None,
                              f"domain:{inviter}:{dom}"[:200],
                              f"{count} invitations were sent to addresses at {dom}."))
    hour = hour_bucket(session, Invitation.created_at).label("hour")
    for inviter, at_hour, count in session.execute(
        select(Invitation.inviter_id, hour, func.count())
        .where(org, Invitation.status != InvitationStatus.DRAFT.value)
        .group_by(Invitation.inviter_id, hour)
        .having(func.count() > settings.burst_per_hour)
    ):
        found.append(_Finding(FlagKind.BURST, inviter, None, f"burst:{inviter}:{at_hour}",
                              f"{count} invitations in one hour ({at_hour}:00 UTC); the "
                              f"threshold is {settings.burst_per_hour}."))
    accepted = func.sum(case((Invitation.status == InvitationStatus.ACCEPTED.value, 1), else_=0))
    for inviter, count, ok in session.execute(
        select(Invitation.inviter_id, func.count(), accepted)
        .where(org, sent).group_by(Invitation.inviter_id)
        .having(func.count() >= settings.low_acceptance_volume)
    ):
        rate = (ok or 0) / count
        if rate <= settings.low_acceptance_rate:
            found.append(_Finding(FlagKind.LOW_ACCEPTANCE, inviter, None,
                                  f"low-acceptance:{inviter}",
                                  f"{ok or 0} of {count} invitations accepted ({rate:.0%})."))
    return found


def _parts(ids: Sequence[uuid.UUID]) -> list[Sequence[uuid.UUID]]:
    return [ids[start:start + CHUNK] for start in range(0, len(ids), CHUNK)]


def detect(session: Session, organization_id: uuid.UUID, settings: GamificationSettings,
           now: datetime, *, since: datetime | None = None) -> int:
    """Raise a flag for every finding not flagged before; returns how many were raised.
    With `since` (the reconciliation's watermark), the address checks read only referrals
    that changed since, and the inviter checks only inviters whose invitations did."""
    findings = _whole_findings(session, organization_id, settings, now)
    if since is None:
        findings += _referral_findings(session, organization_id, settings, now)
        findings += _inviter_findings(session, organization_id, settings)
    else:
        from invite_desk.services.referral_program.ledger import changed_referrals

        for part in _parts(changed_referrals(session, organization_id, since)):
            findings += _referral_findings(session, organization_id, settings, now, part)
        inviters = sorted({i for i in session.scalars(
            select(Invitation.inviter_id)
            .where(Invitation.organization_id == organization_id,
                   Invitation.updated_at > since)) if i is not None})
        for part in _parts(inviters):
            findings += _inviter_findings(session, organization_id, settings, part)
    if not findings:
        return 0
    keys = sorted({finding.key for finding in findings})
    known: set[str] = set()
    for start in range(0, len(keys), CHUNK):
        known.update(session.scalars(select(ReferralFlag.dedupe_key).where(
            ReferralFlag.organization_id == organization_id,
            ReferralFlag.dedupe_key.in_(keys[start:start + CHUNK]))))
    rows = []
    for finding in findings:
        if finding.key in known:
            continue
        known.add(finding.key)
        rows.append({
            "id": new_id(), "version": 1, "created_at": now, "updated_at": now,
            "organization_id": organization_id, "kind": finding.kind.value,
            "status": FlagStatus.OPEN.value, "referrer_id": finding.referrer_id,
            "referral_id": finding.referral_id, "dedupe_key": finding.key,
            "detail": finding.detail, "decided_at": None, "decided_by_id": None, "note": "",
        })
    if rows:
        session.execute(insert(ReferralFlag), rows)
        audit.record(session, organization_id=organization_id, actor_id=None,
                     action="referral_program.flags_raised", entity_type="referral_flag",
                     after={"count": len(rows),
                            "kinds": sorted({str(row["kind"]) for row in rows})})
    return len(rows)


def _require_admin(operator: Operator, what: str) -> None:
    if operator.role < Role.ADMIN_LOCAL:
        raise PermissionDenied(what, Role.ADMIN_LOCAL.name)


def _flag_query(operator: Operator) -> Select[ReferralFlag, Member, Member, Member]:
    decider = aliased(Member, name="decider")
    stmt = (
        select(ReferralFlag, Referrer, Referee, decider)
        .join(Referrer, Referrer.id == ReferralFlag.referrer_id)
        .outerjoin(Referral, Referral.id == ReferralFlag.referral_id)
        .outerjoin(Referee, Referee.id == Referral.referee_id)
        .outerjoin(decider, decider.id == ReferralFlag.decided_by_id)
        .where(ReferralFlag.organization_id == operator.organization_id)
    )
    if scope_of(operator).level is not ScopeLevel.ORGANIZATION:
        stmt = stmt.where(Referrer.unit_id == operator.unit_id)
    return stmt


def _row(flag: ReferralFlag, referrer: Member, referee: Member | None,
         decider: Member | None) -> FlagRow:
    return FlagRow(
        id=flag.id, kind=FlagKind(flag.kind), status=FlagStatus(flag.status),
        referrer_id=flag.referrer_id, referrer_name=referrer.display_name,
        referral_id=flag.referral_id, referee_name=referee.display_name if referee else "",
        detail=flag.detail, created_at=flag.created_at, decided_at=flag.decided_at,
        decided_by=decider.display_name if decider else "", note=flag.note,
        version=flag.version,
    )


def list_flags(uow: UnitOfWork, operator: Operator, status: FlagStatus | None = FlagStatus.OPEN,
               *, unit_id: uuid.UUID | None = None, limit: int = 500) -> list[FlagRow]:
    """Flags for review, newest first (ADMIN_LOCAL: their unit's referrers; tenant admins: all)."""
    with uow:
        operator = refreshed(uow.session, operator)
        _require_admin(operator, "review referral flags")
        stmt = _flag_query(operator)
        if status is not None:
            stmt = stmt.where(ReferralFlag.status == status.value)
        if unit_id is not None:
            stmt = stmt.where(Referrer.unit_id == unit_id)
        stmt = stmt.order_by(ReferralFlag.created_at.desc(), ReferralFlag.id.desc()).limit(limit)
        return [_row(*row) for row in uow.session.execute(stmt).all()]


def decide_flag(uow: UnitOfWork, operator: Operator, flag_id: uuid.UUID, decision: FlagStatus,
                note: str = "", *, expected_version: int | None = None,
                now: datetime | None = None) -> FlagRow:
    """Clear (legitimate: points vest) or reject (fake: points and badges taken back) a flag.
    Admins only; audited; Conflict when someone decided it meanwhile. The ledger follows at
    once (the referrer's referrals are reconciled in the same transaction)."""
    if decision not in (FlagStatus.CLEARED, FlagStatus.REJECTED):
        raise ValueError("a flag is decided by clearing or rejecting it")
    moment = now or utcnow()
    from invite_desk.services.referral_program.ledger import reconcile_session

    with uow, changed_meanwhile():
        session = uow.session
        operator = refreshed(session, operator)
        _require_admin(operator, "decide on referral flags")
        flag = session.get(ReferralFlag, flag_id)
        if flag is None or flag.organization_id != operator.organization_id:
            raise NotFound("That flag no longer exists.")
        referrer = session.get(Member, flag.referrer_id)
        if (scope_of(operator).level is not ScopeLevel.ORGANIZATION
                and (referrer is None or referrer.unit_id != operator.unit_id)):
            raise PermissionDenied("decide on this flag", Role.ADMIN_TENANT.name,
                                   detail="The referrer belongs to another unit.")
        if expected_version is not None and flag.version != expected_version:
            raise Conflict("Someone else decided this flag meanwhile. Reload to see it.")
        if flag.status != FlagStatus.OPEN.value:
            raise Conflict(f"This flag was already {flag.status}.")
        before = {"status": flag.status}
        flag.status = decision.value
        flag.decided_at = moment
        flag.decided_by_id = operator.member_id
        flag.note = note.strip()[:2000]
        session.flush()
        audit.record(session, organization_id=operator.organization_id,
                     actor_id=operator.member_id, action=f"referral_flag.{decision.value}",
                     entity_type="referral_flag", entity_id=flag.id, before=before,
                     after={"status": decision.value, "note": flag.note, "kind": flag.kind,
                            "referral": flag.referral_id, "referrer": flag.referrer_id})
        reconcile_session(session, operator.organization_id, moment,
                          referrer_id=flag.referrer_id)
        uow.commit()
        decider = session.get(Member, operator.member_id)
        referee = None
        if flag.referral_id is not None:
            referral = session.get(Referral, flag.referral_id)
            referee = session.get(Member, referral.referee_id) if referral else None
        assert referrer is not None
        return _row(flag, referrer, referee, decider)

