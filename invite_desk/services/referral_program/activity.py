"""One member's own referral activity: "My referrals" and the member page."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import aliased

from invite_desk.services.errors import NotFound
from invite_desk.services.models import (
    Invitation,
    InvitationStatus,
    Member,
    Referral,
    ReferralFlag,
    ReferralLedger,
    ReferralReward,
    ReferralStatus,
    utcnow,
)
from invite_desk.services.operator import Operator, refreshed
from invite_desk.services.permissions import Action, Target, require
from invite_desk.services.referral_program import ledger
from invite_desk.services.referral_program.reports import badges_for
from invite_desk.services.referral_program.settings import load as load_settings
from invite_desk.services.referral_program.types import (
    Badge,
    FlagStatus,
    LedgerEntry,
    LedgerKind,
    LedgerReason,
    RefereeRow,
    ReferralActivity,
)
from invite_desk.services.uow import UnitOfWork

LIMIT = 100
Referee = aliased(Member, name="referee")


def member_activity(uow: UnitOfWork, operator: Operator, member_id: uuid.UUID,
                    now: datetime | None = None) -> ReferralActivity:
    """Successful referrals, pending invitations, whom they referred, points, badges and the
    ledger. A USER may ask only for their own; local roles for their unit. The member's
    referrals are reconciled first, so points follow a lapse or an approval at once."""
    moment = now or utcnow()
    with uow:
        session = uow.session
        operator = refreshed(session, operator)
        member = session.get(Member, member_id)
        if member is None or member.organization_id != operator.organization_id:
            raise NotFound("That member no longer exists.")
        require(operator, Action.VIEW_MEMBER,
                target=Target(unit_id=member.unit_id, owner_ids=(member.id,)))
        org = operator.organization_id
    ledger.run(uow, org, moment, actor_id=operator.member_id, referrer_id=member_id)
    with uow:
        session = uow.session
        member = session.get(Member, member_id)
        assert member is not None
        settings = load_settings(session, org)
        completed, active, vested_count = session.execute(
            select(func.sum(case((ReferralReward.state != "fake", 1), else_=0)),
                   func.sum(case((ReferralReward.state.in_(("held", "vested")), 1), else_=0)),
                   func.sum(case((ReferralReward.state == "vested", 1), else_=0)))
            .where(ReferralReward.organization_id == org,
                   ReferralReward.referrer_id == member_id)).one()
        total, vested = session.execute(
            select(func.coalesce(func.sum(ReferralLedger.points), 0),
                   func.coalesce(func.sum(ReferralLedger.vested_points), 0))
            .where(ReferralLedger.organization_id == org,
                   ReferralLedger.member_id == member_id)).one()
        pending_referrals = int(session.scalar(
            select(func.count()).select_from(Referral)
            .where(Referral.referrer_id == member_id,
                   Referral.status == ReferralStatus.PENDING.value)) or 0)
        pending_invitations = int(session.scalar(
            select(func.count()).select_from(Invitation)
            .where(Invitation.organization_id == org, Invitation.inviter_id == member_id,
                   Invitation.status == InvitationStatus.SENT.value,
                   or_(Invitation.expires_at.is_(None), Invitation.expires_at > moment))) or 0)
        open_flag = (select(func.count()).select_from(ReferralFlag)
                     .where(ReferralFlag.referral_id == Referral.id,
                            ReferralFlag.status == FlagStatus.OPEN.value)
                     .correlate(Referral).scalar_subquery())
        referred = tuple(
            RefereeRow(mid, f"{first} {last}".strip() or email, email, status, member_status,
                       referred_at, completed_at, state or "", bool(flags))
            for mid, first, last, email, status, member_status, referred_at, completed_at,
            state, flags in session.execute(
                select(Referee.id, Referee.first_name, Referee.last_name, Referee.email,
                       Referral.status, Referee.status, Referral.referred_at,
                       Referral.completed_at, ReferralReward.state, open_flag)
                .join(Referee, Referee.id == Referral.referee_id)
                .outerjoin(ReferralReward, ReferralReward.referral_id == Referral.id)
                .where(Referral.referrer_id == member_id)
                .order_by(Referral.referred_at.desc(), Referral.id.desc()).limit(LIMIT))
        )
        entries = tuple(
            LedgerEntry(at, LedgerKind(kind), LedgerReason(reason), points, vested_points,
                        f"{first} {last}".strip() or email)
            for at, kind, reason, points, vested_points, first, last, email in session.execute(
                select(ReferralLedger.at, ReferralLedger.kind, ReferralLedger.reason,
                       ReferralLedger.points, ReferralLedger.vested_points, Referee.first_name,
                       Referee.last_name, Referee.email)
                .join(Referral, Referral.id == ReferralLedger.referral_id)
                .join(Referee, Referee.id == Referral.referee_id)
                .where(ReferralLedger.member_id == member_id)
                .order_by(ReferralLedger.at.desc(), ReferralLedger.created_at.desc(),
                          ReferralLedger.id.desc())
                .limit(LIMIT))
        )
        earned = int(vested_count or 0)
        badges = badges_for(earned, settings.badge_milestones)
        upcoming = [m for m in sorted(settings.badge_milestones) if m > earned]
        return ReferralActivity(
            member_id=member_id, name=member.display_name,
            successful_referrals=int(completed or 0), active_referees=int(active or 0),
            pending_referrals=pending_referrals, pending_invitations=pending_invitations,
            points=int(vested), held_points=int(total) - int(vested), badges=badges,
            next_badge=Badge(upcoming[0]) if upcoming else None, referred=referred,
            ledger=entries,
        )
