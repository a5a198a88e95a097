"""Pacing a batch to the provider's caps: the rolling daily budget, and how long a batch takes.

The per-minute cap is kept by one sliding-window RateLimiter shared by every connection of a
send run (in memory, under a lock). The daily cap is counted in the database (invitations with
`sent_at` in the last 24 hours), so it carries over across runs, restarts and desktops.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, select

from invite_desk.services.invitations.send_scope import SendScope
from invite_desk.services.invitations.sending import scheduled_later_sql
from invite_desk.services.mail_settings import MailSettings, get_mail_settings
from invite_desk.services.models import Invitation, InvitationStatus, utcnow
from invite_desk.services.smtp.presets import preset
from invite_desk.services.uow import UnitOfWork

DAY = timedelta(hours=24)
# Seconds one message takes on one connection to a provider across the internet: four
# round trips (MAIL, RCPT, DATA, end of data) of ~25 ms plus the upload (bench relay).
SECONDS_PER_MESSAGE = 0.11


def daily_limit(mail: MailSettings) -> int:
    """Messages per rolling 24 hours (0: none): the setting, else the preset's cap."""
    return mail.per_day or preset(mail.preset).per_day


def per_minute_limit(mail: MailSettings) -> int:
    """Messages per minute (0: none): the setting; a preset's cap is never exceeded."""
    cap = preset(mail.preset).per_minute
    if cap and mail.rate_per_minute:
        return min(cap, mail.rate_per_minute)
    return mail.rate_per_minute or cap


def sent_since(conn: Connection, organization_id: uuid.UUID, since: datetime) -> list[datetime]:
    """When the organization's invitations sent after `since` went out, oldest first."""
    rows = conn.execute(
        select(Invitation.sent_at).where(
            Invitation.organization_id == organization_id, Invitation.sent_at >= since,
        ).order_by(Invitation.sent_at)
    ).scalars()
    return [at for at in rows if at is not None]


def count_sent_since(conn: Connection, organization_id: uuid.UUID, since: datetime) -> int:
    return int(conn.execute(
        select(func.count()).select_from(Invitation).where(
            Invitation.organization_id == organization_id, Invitation.sent_at >= since)
    ).scalar() or 0)


@dataclass(frozen=True)
class Estimate:
    """How long sending `count` invitations takes with these settings."""

    count: int
    seconds: float  # until the last one that fits today's budget is sent
    today: int  # how many go out before the daily cap stops the run
    later: int  # how many wait for the next days
    days: int  # extra days the daily cap adds (0: all today)
    connections: int
    per_minute: int
    per_day: int
    text: str


def estimate_duration(count: int, settings: MailSettings, *, sent_last_24h: int = 0,
                      seconds_per_message: float = SECONDS_PER_MESSAGE) -> Estimate:
    """How long `count` invitations take: K connections in parallel, paced to the per-minute
    cap, and what the rolling daily cap (minus what went out in the last 24 hours) defers."""
    count = max(0, count)
    connections = settings.connection_count
    per_minute, per_day = per_minute_limit(settings), daily_limit(settings)
    budget = count if not per_day else max(0, per_day - sent_last_24h)
    today = min(count, budget)
    later = count - today
    days = math.ceil(later / per_day) if per_day and later else 0
    wire = connections / seconds_per_message  # messages a second over K connections
    # The first minute's worth goes out at wire speed; the rest at the per-minute pace.
    burst = min(today, per_minute) if per_minute else today
    seconds = burst / wire
    if today > burst:
        seconds += (today - burst) / min(wire, per_minute / 60.0)
    took = _duration(seconds)
    text = (f"{count:,} invitation{'s' if count != 1 else ''}: "
            f"{took if took.startswith('a ') else 'about ' + took}")
    if per_minute:
        text += f" at {per_minute} a minute"
    text += f" over {connections} connection{'s' if connections != 1 else ''}"
    if later:
        text += (f". The daily limit of {per_day:,} allows {today:,} now; {later:,} stay queued "
                 f"and go out over the next {days} day{'s' if days != 1 else ''}")
    return Estimate(count, seconds, today, later, days, connections, per_minute, per_day,
                    text + ".")


def batch_estimate(uow: UnitOfWork, organization_id: uuid.UUID, count: int, *,
                   now: datetime | None = None) -> Estimate:
    """estimate_duration with the organization's settings and its last 24 hours of sending."""
    mail = get_mail_settings(uow, organization_id)
    with uow.engine.connect() as conn:
        sent = count_sent_since(conn, organization_id, (now or utcnow()) - DAY)
    return estimate_duration(count, mail, sent_last_24h=sent)


def scope_estimate(uow: UnitOfWork, scope: SendScope, *, connections: int | None = None,
                   now: datetime | None = None) -> Estimate:
    """The estimate for what is queued in a send scope (the CLI says it before sending)."""
    conditions = [Invitation.organization_id == scope.organization_id,
                  Invitation.status == InvitationStatus.QUEUED.value]
    if scope.batch_id is not None:
        conditions.append(Invitation.batch_id == scope.batch_id)
    if scope.sender_id is not None:
        conditions.append(Invitation.sender_id == scope.sender_id)
    if scope.unit_id is not None:
        conditions.append(Invitation.unit_id == scope.unit_id)
    # Batches scheduled to start later are not sent by this run: not in its estimate.
    conditions.append(~scheduled_later_sql(Invitation.batch_id, now or utcnow()))
    mail = get_mail_settings(uow, scope.organization_id)
    if connections:
        mail = replace(mail, connections=connections)
    with uow.engine.connect() as conn:
        count = int(conn.execute(
            select(func.count()).select_from(Invitation).where(*conditions)).scalar() or 0)
        sent = count_sent_since(conn, scope.organization_id, (now or utcnow()) - DAY)
    return estimate_duration(count, mail, sent_last_24h=sent)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return "a minute or less" if seconds > 5 else "a few seconds"
    minutes = max(1, round(seconds / 60))
    if minutes < 60:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours, rest = divmod(minutes, 60)
    text = f"{hours} hour{'s' if hours != 1 else ''}"
    return text + (f" {rest} minute{'s' if rest != 1 else ''}" if rest else "")
