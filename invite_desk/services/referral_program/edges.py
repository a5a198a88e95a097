"""The partial months at the edges of a range of days (periods.split), read from the raw rows.

A range that is not whole months is its whole months (the period summary) plus at most two
partial months. `Edges` answers what the threshold ranking (periods.top_by_sum) and the
board's size need of those partial months, each as one SQL aggregate over the indexed ranges
(referral_reward by completion time, invitation by sent time), so that Python handles only
the rows it asks for: referrers in descending order of a figure, a page at a time; the figures
of given referrers; how many referrers of the edges have no row in the whole months; the
edges' totals."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, literal, or_, select
from sqlalchemy.orm import Session

from invite_desk.services.models import Invitation, InvitationStatus, ReferralPeriodStats
from invite_desk.services.models import ReferralReward as W
from invite_desk.services.referral_program.running import ACTIVE_WEIGHT, INACTIVE_WEIGHT

P = ReferralPeriodStats
CHUNK = 500
REWARD_FIGURES = ("score", "completed", "active", "vested_points", "held_points")
INVITATION_FIGURES = ("sent", "accepted")


def _chunks(ids: Sequence[uuid.UUID]) -> Iterable[Sequence[uuid.UUID]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]


class Edges:
    """The edges [(start, end), ...] of a range, for the referrers `person(column)` allows,
    less `hidden` (opted-out members the reader may not see)."""

    def __init__(self, session: Session, org: uuid.UUID,
                 edges: Sequence[tuple[datetime, datetime]],
                 person: Callable[[Any], list[ColumnElement[bool]]],
                 hidden: Iterable[uuid.UUID] = ()) -> None:
        self.session = session
        self.org = org
        self.edges = list(edges)
        self.person = person
        self.hidden = sorted(hidden)

    # -- the statements ---------------------------------------------------------------------
    def _where(self, time: Any, who: Any) -> list[ColumnElement[bool]]:
        # The scope is checked on each row of the time range (coalesce: not by a referrer
        # index, whose rows span every month of a unit's referrers).
        return [or_(*[and_(time >= low, time < high) for low, high in self.edges]),
                *self.person(func.coalesce(who, who)),
                *([who.not_in(self.hidden)] if self.hidden else [])]

    def _rewards(self) -> Any:
        not_fake = W.state != "fake"
        earning = W.state.in_(("held", "vested"))
        return (select(W.referrer_id.label("k"),
                       func.sum(case((earning, ACTIVE_WEIGHT), (not_fake, INACTIVE_WEIGHT),
                                     else_=0)).label("score"),
                       func.sum(case((not_fake, 1), else_=0)).label("completed"),
                       func.sum(case((earning, 1), else_=0)).label("active"),
                       func.sum(case((W.state == "vested", W.points), else_=0))
                       .label("vested_points"),
                       func.sum(case((W.state == "held", W.points), else_=0))
                       .label("held_points"),
                       func.max(case((not_fake, W.completed_at), else_=None)).label("reached"))
                .where(W.organization_id == self.org,
                       *self._where(W.completed_at, W.referrer_id))
                .group_by(W.referrer_id))

    def _invitations(self) -> Any:
        accepted = Invitation.status == InvitationStatus.ACCEPTED.value
        return (select(Invitation.inviter_id.label("k"), func.count().label("sent"),
                       func.sum(case((accepted, 1), else_=0)).label("accepted"))
                .where(Invitation.organization_id == self.org,
                       Invitation.sent_at.is_not(None),
                       *self._where(Invitation.sent_at, Invitation.inviter_id))
                .group_by(Invitation.inviter_id))

    def _grouped(self, column: str) -> Any:
        return self._rewards() if column in REWARD_FIGURES else self._invitations()

    # -- what the ranking and the totals ask ------------------------------------------------
    def ranked(self, column: str, offset: int, limit: int) -> list[tuple[uuid.UUID, int]]:
        """Referrers with a positive `column` over the edges, most first: one page."""
        q = self._grouped(column).subquery()
        value = getattr(q.c, column)
        return [(k, int(v)) for k, v in self.session.execute(
            select(q.c.k, value).where(value > 0).order_by(value.desc(), q.c.k)
            .offset(offset).limit(limit))]

    def figures(self, referrers: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
        """The edges' figures of these referrers (named as the period summary's columns)."""
        found: dict[uuid.UUID, dict[str, Any]] = {}

        def blank(k: uuid.UUID) -> dict[str, Any]:
            return found.setdefault(k, {"reached": None, "vested": 0,
                                        **dict.fromkeys((*REWARD_FIGURES,
                                                         *INVITATION_FIGURES), 0)})

        for part in _chunks(referrers):
            # by the time range, not by a referrer index (all of a referrer's rows)
            rewards = self._rewards().where(func.coalesce(W.referrer_id, W.referrer_id).in_(part))
            for k, score, completed, active, vested, held, reached in self.session.execute(
                    rewards):
                blank(k).update(score=int(score or 0), completed=int(completed or 0),
                                active=int(active or 0), vested_points=int(vested or 0),
                                held_points=int(held or 0), reached=reached)
            sent = self._invitations().where(
                func.coalesce(Invitation.inviter_id, Invitation.inviter_id).in_(part))
            for k, count, accepted in self.session.execute(sent):
                blank(k).update(sent=int(count), accepted=int(accepted or 0))
        return found

    def present(self, referrers: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these referrers have a reward or an invitation in the edges."""
        return set(self.figures(referrers))

    def outside(self, keys: Sequence[str], *, sent_only: bool = False,
                key_conditions: Sequence[ColumnElement[bool]] = ()) -> int:
        """Referrers of the edges without a row of the whole months `keys` (those with
        invitations sent only, and rows with sent > 0 only, for the conversion table)."""
        invited: Any = self._invitations().with_only_columns(
            Invitation.inviter_id.label("k"))
        rewarded: Any = self._rewards().with_only_columns(W.referrer_id.label("k"))
        ids: Any = (invited if sent_only else invited.union(rewarded)).subquery()
        # The whole months' referrers once (an index range per period), joined: a
        # correlated NOT EXISTS lets the planner walk a period's range per edge referrer.
        inside = (select(P.referrer_id.label("r"))
                  .where(P.organization_id == self.org, P.period.in_(keys), *key_conditions)
                  .distinct().subquery())
        return int(self.session.scalar(
            select(func.count()).select_from(ids.outerjoin(inside, inside.c.r == ids.c.k))
            .where(inside.c.r.is_(None))) or 0)

    def totals(self) -> tuple[int, int]:
        """Invitations sent and accepted over the edges."""
        accepted = Invitation.status == InvitationStatus.ACCEPTED.value
        sent, ok = self.session.execute(
            select(func.count(), func.coalesce(func.sum(case((accepted, 1), else_=0)), 0))
            .where(Invitation.organization_id == self.org, Invitation.sent_at.is_not(None),
                   *self._where(Invitation.sent_at, Invitation.inviter_id))).one()
        return int(sent), int(ok)

    def without_inviter(self) -> bool:
        """An invitation of the edges has no inviter (the summary has no row for it)."""
        return bool(self.session.scalar(select(literal(1)).where(exists().where(
            Invitation.organization_id == self.org, Invitation.inviter_id.is_(None),
            Invitation.sent_at.is_not(None),
            *self._where(Invitation.sent_at, Invitation.inviter_id)[:1]))))
