"""The partial months at the edges of a range of days (periods.split), read from the raw rows.

A range that is not whole months is its whole months (the period summary) plus at most two
partial months. `Edges` answers what the threshold ranking (periods.top_by_sum) and the
board's size need of those partial months: referrers in descending order of a figure, a page
at a time; the figures of given referrers; how many referrers the whole months and the edges
have together; the edges' totals. Each edge is aggregated per referrer once per call (one
SQL aggregate per edge and table, over its indexed range: referral_reward by completion
time, invitation by sent time) and every question is answered from those few thousand
per-referrer rows: the ranking, the board's size and the page asked the raw rows again
each time (1.2 s for a custom range at 1,000,000 referrals)"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    type_coerce,
    union,
)
from sqlalchemy.orm import Session

from invite_desk.services.models import Invitation, InvitationStatus, ReferralPeriodStats
from invite_desk.services.models import ReferralReward as W
from invite_desk.services.referral_program.running import ACTIVE_WEIGHT, INACTIVE_WEIGHT

P = ReferralPeriodStats
REWARD_FIGURES = ("score", "completed", "active", "vested_points", "held_points")
INVITATION_FIGURES = ("sent", "accepted")


def _raws(values: Iterable[Any]) -> Iterable[Any]:
    """`_raw` of each, skipped when the driver gives lower-case hex text (SQLite)."""
    values = list(values)
    first = next((v for v in values if v is not None), None)
    if first is None or isinstance(first, str) and len(first) == 32 and first == first.lower():
        return values
    return [_raw(v) for v in values]


def _raw(value: Any) -> Any:
    """A member id as hex text, however the driver returns it (text, with or without
    dashes, or a UUID); None stays None."""
    if value is None:
        return None
    if isinstance(value, str) and len(value) == 32:
        return value.lower()
    if isinstance(value, uuid.UUID):
        return value.hex
    return uuid.UUID(str(value)).hex


class Edges:
    """The edges [(start, end), ...] of a range, for the referrers `person(column)` allows,
    less `hidden` (opted-out members the reader may not see). Each edge's figures are
    aggregated once, at the first question, and kept: one Edges serves one call."""

    def __init__(self, session: Session, org: uuid.UUID,
                 edges: Sequence[tuple[datetime, datetime]],
                 person: Callable[[Any], list[ColumnElement[bool]]],
                 hidden: Iterable[uuid.UUID] = (), *, invitations_only: bool = False
                 ) -> None:
        self.session = session
        # the conversion table asks only invitations: the rewards are neither read nor
        # given (their figures are 0)
        self.invitations_only = invitations_only
        self.org = org
        self.edges = list(edges)
        self.person = person
        self.hidden = sorted(hidden)
        self._rewarded: dict[str | None, list[Any]] | None = None
        self._invited: dict[str | None, list[int]] | None = None
        self._ranked: dict[str, list[tuple[str, int]]] = {}

    # -- the statements ---------------------------------------------------------------------
    def _where(self, time: Any, who: Any,
               edges: Sequence[tuple[datetime, datetime]] | None = None
               ) -> list[ColumnElement[bool]]:
        # The scope is checked on each row of the time range (coalesce: not by a referrer
        # index, whose rows span every month of a unit's referrers).
        return [or_(*[and_(time >= low, time < high)
                      for low, high in (self.edges if edges is None else edges)]),
                *self.person(func.coalesce(who, who)),
                *([who.not_in(self.hidden)] if self.hidden else [])]

    def _rewards(self, edges: Sequence[tuple[datetime, datetime]] | None = None) -> Any:
        not_fake = W.state != "fake"
        earning = W.state.in_(("held", "vested"))
        return (select(type_coerce(W.referrer_id, String).label("k"),
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
                       *self._where(W.completed_at, W.referrer_id, edges))
                .group_by(W.referrer_id))

    def _invitations(self, edges: Sequence[tuple[datetime, datetime]] | None = None
                     ) -> Any:
        accepted = Invitation.status == InvitationStatus.ACCEPTED.value
        return (select(type_coerce(Invitation.inviter_id, String).label("k"),
                       func.count().label("sent"),
                       func.sum(case((accepted, 1), else_=0)).label("accepted"))
                .where(Invitation.organization_id == self.org,
                       Invitation.sent_at.is_not(None),
                       *self._where(Invitation.sent_at, Invitation.inviter_id, edges))
                .group_by(Invitation.inviter_id))

    # -- each edge figure once per call ---------------------------------------------------
    # Per referrer, keyed by the id as the database spells it (hex): turning tens of
    # thousands of ids into UUIDs cost more than the aggregate; only those asked are turned.
    def _reward_rows(self) -> dict[str | None, list[Any]]:
        """Per referrer: [score, completed, active, vested_points, held_points, reached]
        over the edges, read at the first question and kept for the call (the ranking, the
        board's size and the page ask again and again). One aggregate per edge: each an
        index range (an OR of ranges makes SQLite fetch the rows)."""
        if self._rewarded is None:
            found: dict[str | None, list[Any]] = {}
            for edge in [] if self.invitations_only else self.edges:
                for k, *values, reached in self._core(self._rewards([edge])):
                    row = found.setdefault(_raw(k), [0, 0, 0, 0, 0, None])
                    for i, value in enumerate(values):
                        row[i] += int(value or 0)
                    if reached is not None and (row[5] is None or reached > row[5]):
                        row[5] = reached
            self._rewarded = found
        return self._rewarded

    def _invitation_rows(self) -> dict[str | None, list[int]]:
        """Per inviter (None: invitations without one): [sent, accepted], as above."""
        if self._invited is None:
            found: dict[str | None, list[int]] = {}
            for edge in self.edges:
                for k, sent, accepted in self._core(self._invitations([edge])):
                    row = found.setdefault(_raw(k), [0, 0])
                    row[0] += int(sent)
                    row[1] += int(accepted or 0)
            self._invited = found
        return self._invited

    def _core(self, statement: Any) -> Any:
        # Core rows: the ORM's per-row work is most of the cost of thousands of rows.
        return self.session.connection().execute(statement)

    # -- what the ranking and the totals ask ------------------------------------------------
    def ranked(self, column: str, offset: int, limit: int) -> list[tuple[uuid.UUID, int]]:
        """Referrers with a positive `column` over the edges, most first: one page."""
        order = self._ranked.get(column)
        if order is None:
            rows: dict[str | None, Sequence[Any]]
            if column in REWARD_FIGURES:
                index, rows = REWARD_FIGURES.index(column), dict(self._reward_rows())
            else:
                index, rows = INVITATION_FIGURES.index(column), dict(self._invitation_rows())
            order = sorted(((k, int(row[index])) for k, row in rows.items()
                            if k is not None and row[index] > 0),
                           key=lambda item: (-item[1], item[0]))
            self._ranked[column] = order
        return [(uuid.UUID(k), v) for k, v in order[offset:offset + limit]]

    def figures(self, referrers: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
        """The edges' figures of these referrers (named as the period summary's columns)."""
        rewarded, invited = self._reward_rows(), self._invitation_rows()
        found: dict[uuid.UUID, dict[str, Any]] = {}
        for k in referrers:
            reward, invitation = rewarded.get(k.hex), invited.get(k.hex)
            if reward is None and invitation is None:
                continue
            score, completed, active, vested, held, reached = reward or (0,) * 5 + (None,)
            sent, accepted = invitation or (0, 0)
            found[k] = {"reached": reached, "vested": 0, "score": score,
                        "completed": completed, "active": active, "vested_points": vested,
                        "held_points": held, "sent": sent, "accepted": accepted}
        return found

    def present(self, referrers: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these referrers have a reward or an invitation in the edges."""
        rewarded, invited = self._reward_rows(), self._invitation_rows()
        return {k for k in referrers if k.hex in rewarded or k.hex in invited}

    def board(self, keys: Sequence[str], *, sent_only: bool = False,
              key_conditions: Sequence[ColumnElement[bool]] = ()) -> int:
        """How many referrers the whole months `keys` (their rows that `key_conditions`
        allow) and the edges have together (those with invitations sent only, for the
        conversion table). The months' referrers are read once, by the period index (a
        DISTINCT would walk the organization's every period by the primary key)."""
        ids = set(self._invitation_rows())
        if not sent_only:
            ids.update(self._reward_rows())
        ids.discard(None)  # invitations without an inviter are nobody's row
        # One index range per period, deduplicated by the database (a DISTINCT or GROUP BY
        # over `period IN (...)` walks the organization's every period by the primary key).
        inside = union(*[select(type_coerce(P.referrer_id, String).label("k"))
                         .where(P.organization_id == self.org, P.period == key,
                                *key_conditions) for key in keys])
        ids.update(_raws(self._core(inside).scalars()))
        return len(ids)

    def totals(self) -> tuple[int, int]:
        """Invitations sent and accepted over the edges."""
        rows = self._invitation_rows().values()
        return sum(row[0] for row in rows), sum(row[1] for row in rows)

    def without_inviter(self) -> bool:
        """An invitation of the edges has no inviter (the summary has no row for it)."""
        return bool(self.session.scalar(select(literal(1)).where(exists().where(
            Invitation.organization_id == self.org, Invitation.inviter_id.is_(None),
            Invitation.sent_at.is_not(None),
            *self._where(Invitation.sent_at, Invitation.inviter_id)[:1]))))
