"""The referral programme's public value types: periods, settings, and the rows every view gets.

Everything here is a frozen dataclass or an enum; the desktop pages (ui/referrals) and the
`invite-desk report referrals` command build on these and nothing else."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo


class PeriodKind(StrEnum):
    THIS_MONTH = "month"
    THIS_QUARTER = "quarter"
    THIS_YEAR = "year"
    ALL_TIME = "all"
    CUSTOM = "custom"

    @property
    def label(self) -> str:
        return {
            "month": "This month", "quarter": "This quarter", "year": "This year",
            "all": "All time", "custom": "Custom",
        }[self.value]


@dataclass(frozen=True)
class Period:
    """A span of local dates in the ORGANIZATION's time zone (not the operator's computer).

    `kind` picks the span relative to `today` (the organization's local date when the figures
    are computed); CUSTOM uses `start`..`end`, both inclusive local dates. ALL_TIME has no
    bounds. `bounds(tz)` gives the half-open UTC interval [start, end) the SQL filters on."""

    kind: PeriodKind = PeriodKind.THIS_YEAR
    start: date | None = None  # CUSTOM: first local day
    end: date | None = None  # CUSTOM: last local day (inclusive)

    @classmethod
    def custom(cls, start: date, end: date) -> Period:
        if end < start:
            raise ValueError("the period ends before it starts")
        return cls(PeriodKind.CUSTOM, start, end)

    @classmethod
    def parse(cls, text: str) -> Period:
        """'month', 'quarter', 'year', 'all', or 'YYYY-MM-DD..YYYY-MM-DD' (the CLI's --period)."""
        value = text.strip().lower()
        if ".." in value:
            first, _, last = value.partition("..")
            try:
                return cls.custom(date.fromisoformat(first.strip()), date.fromisoformat(last.strip()))
            except ValueError as exc:
                raise ValueError(f"period {text!r}: {exc}") from None
        aliases = {"this-month": "month", "this-quarter": "quarter", "this-year": "year",
                   "all-time": "all"}
        value = aliases.get(value, value)
        try:
            kind = PeriodKind(value)
        except ValueError:
            raise ValueError(
                f"period {text!r}: use month, quarter, year, all, or START..END dates"
            ) from None
        if kind is PeriodKind.CUSTOM:
            raise ValueError("a custom period needs START..END dates")
        return cls(kind)

    def local_dates(self, today: date) -> tuple[date | None, date | None]:
        """First and last local date (inclusive); (None, None) for all time."""
        if self.kind is PeriodKind.ALL_TIME:
            return None, None
        if self.kind is PeriodKind.CUSTOM:
            assert self.start is not None and self.end is not None
            return self.start, self.end
        if self.kind is PeriodKind.THIS_MONTH:
            first = today.replace(day=1)
            nxt = (first + timedelta(days=32)).replace(day=1)
        elif self.kind is PeriodKind.THIS_QUARTER:
            first = today.replace(month=3 * ((today.month - 1) // 3) + 1, day=1)
            nxt = (first + timedelta(days=95)).replace(day=1)
        else:
            first = today.replace(month=1, day=1)
            nxt = first.replace(year=first.year + 1)
        return first, nxt - timedelta(days=1)

    def bounds(self, tz: ZoneInfo, now: datetime) -> tuple[datetime | None, datetime | None]:
        """The UTC half-open interval [start, end) of the period, `now` deciding 'this ...'."""
        first, last = self.local_dates(now.astimezone(tz).date())
        if first is None or last is None:
            return None, None
        return (datetime.combine(first, time.min, tz),
                datetime.combine(last + timedelta(days=1), time.min, tz))

    @property
    def label(self) -> str:
        if self.kind is PeriodKind.CUSTOM:
            return f"{self.start:%d %b %Y} – {self.end:%d %b %Y}"
        return self.kind.label


class Granularity(StrEnum):
    WEEK = "week"  # weeks start on Monday, local time
    MONTH = "month"


class Channel(StrEnum):
    """How a new member came in (trends)."""

    REFERRAL = "referral"  # someone is credited with a referral for them
    PUBLIC = "public"  # the public registration page, no referral
    EVENT_GUEST = "event_guest"  # an event guest who later joined
    IMPORTED = "imported"  # added by an operator / import / before tracking

    @property
    def label(self) -> str:
        return {"referral": "Referral", "public": "Public registration",
                "event_guest": "Event guest who joined", "imported": "Imported"}[self.value]


class ConversionBy(StrEnum):
    INVITER = "inviter"
    UNIT = "unit"
    BATCH = "batch"
    EVENT = "event"


class ConversionOrder(StrEnum):
    """How the conversion table's rows are ordered (most first, then by label)."""

    SENT = "sent"
    ACCEPTED = "accepted"


class ConversionColumn(StrEnum):
    """The conversion table's columns a person may sort by (the service orders by them at
    the source; ties go to the label, then the group's id)."""

    SENT = "sent"
    ACCEPTED = "accepted"
    RATE = "rate"  # accepted / sent


@dataclass(frozen=True)
class ConversionSort:
    column: ConversionColumn = ConversionColumn.SENT
    descending: bool = True

    @classmethod
    def of(cls, order: ConversionOrder) -> ConversionSort:
        return cls(ConversionColumn(order.value))


class FlagKind(StrEnum):
    SELF_REFERRAL = "self_referral"
    SAME_DEVICE = "same_device"  # same IP + browser as another referee or as the referrer
    DISPOSABLE_DOMAIN = "disposable_domain"
    DOMAIN_CONCENTRATION = "domain_concentration"  # many invitations to one domain
    BURST = "burst"  # more than N invitations in one hour
    LOW_ACCEPTANCE = "low_acceptance"  # very low acceptance rate at volume
    NEVER_ACTIVE = "never_active"  # referee never became an active member

    @property
    def label(self) -> str:
        return {
            "self_referral": "Self-referral",
            "same_device": "Same address and browser",
            "disposable_domain": "Disposable email domain",
            "domain_concentration": "Many invitations to one domain",
            "burst": "Burst of invitations",
            "low_acceptance": "Very low acceptance rate",
            "never_active": "Referee never became active",
        }[self.value]


class FlagStatus(StrEnum):
    OPEN = "open"  # awaiting review: the referral's (or referrer's) points are on hold
    CLEARED = "cleared"  # reviewed, legitimate: points vest as usual
    REJECTED = "rejected"  # reviewed, fake: points and badges are taken back


class LedgerKind(StrEnum):
    AWARD = "award"  # points granted, held until they vest
    VEST = "vest"  # held points become the member's
    REVOKE = "revoke"  # points taken back, with the reason


class LedgerReason(StrEnum):
    REFEREE_ACTIVE = "referee_active"
    HOLD_ELAPSED = "hold_elapsed"
    REFEREE_LAPSED = "referee_lapsed"  # member status no longer active
    APPLICATION_REJECTED = "application_rejected"
    FLAGGED_FAKE = "flagged_fake"  # an admin rejected a flag on the referral


@dataclass(frozen=True)
class GamificationSettings:
    """The referral programme's settings (ADMIN_TENANT changes them)."""

    points_per_referral: int = 10
    badge_milestones: tuple[int, ...] = (1, 5, 10)  # active referees
    vesting_hold_days: int = 0  # 0: points vest as soon as the referee is active
    leaderboard_visible_to_members: bool = False
    time_zone: str = "UTC"  # the organization's time zone: period and bucket boundaries
    # anti-gaming thresholds
    burst_per_hour: int = 30
    domain_concentration: int = 25  # invitations from one inviter to one domain
    low_acceptance_volume: int = 20  # at least this many invitations sent ...
    low_acceptance_rate: float = 0.05  # ... and at most this share accepted
    never_active_days: int = 30  # a referee still not active this long after the referral

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


@dataclass(frozen=True)
class Badge:
    milestone: int  # active referees needed

    @property
    def label(self) -> str:
        return f"{self.milestone} active referee{'s' if self.milestone != 1 else ''}"


@dataclass(frozen=True)
class LeaderboardRow:
    rank: int
    referrer_id: uuid.UUID
    referrer_name: str
    referrer_email: str
    unit_name: str
    completed: int  # referrals completed in the period (the raw count)
    active: int  # of them, referees still active members
    pending: int  # pending_invitations + pending_referrals
    pending_invitations: int  # sent in the period, still open (not accepted, not expired)
    pending_referrals: int  # referees of the period whose adhesion application awaits approval
    invitations_sent: int
    invitations_accepted: int
    acceptance_rate: float | None  # accepted / sent in the period; None when nothing was sent
    points: int  # vested points earned by the period's referrals (all time: the balance)
    held_points: int  # awarded for the period's referrals but not vested (hold, open flag)
    badges: tuple[Badge, ...]  # from active referees (all time) whose points vested
    score: int  # quality-weighted: ACTIVE_WEIGHT * active + INACTIVE_WEIGHT * (completed - active)
    first_reached_at: datetime | None  # when the referrer's counted set was complete (tie-break)
    opted_out: bool  # the member opted out of the public leaderboard (only admins see them)
    open_flags: int


@dataclass(frozen=True)
class Leaderboard:
    period: Period
    start: datetime | None
    end: datetime | None
    rows: tuple[LeaderboardRow, ...]
    scope_label: str
    total: int = 0  # referrers on the whole board (rows may be one page of it)
    offset: int = 0  # ranks before the first row


@dataclass(frozen=True)
class TrendBucket:
    start: datetime  # local bucket start (aware, organization time zone)
    new_members: dict[Channel, int]
    invitations_sent: int
    invitations_accepted: int

    @property
    def total_new_members(self) -> int:
        return sum(self.new_members.values())


@dataclass(frozen=True)
class Trends:
    period: Period
    granularity: Granularity
    buckets: tuple[TrendBucket, ...]


@dataclass(frozen=True)
class ConversionRow:
    key: uuid.UUID | None  # inviter / unit / batch / event id (None: no unit / no event)
    label: str
    sent: int
    accepted: int
    rate: float | None
    median_seconds_to_accept: float | None


@dataclass(frozen=True)
class Conversion:
    period: Period
    by: ConversionBy
    rows: tuple[ConversionRow, ...]
    sent: int
    accepted: int
    members: int  # active members in scope at the end of the period
    invitations_per_member: float | None
    acceptance_rate: float | None
    k_factor: float | None  # invitations per member x acceptance rate
    total_rows: int = 0  # groups in the whole view (rows may be one page of them)
    offset: int = 0  # rows before the first one
    order: ConversionOrder = ConversionOrder.SENT
    sort: ConversionSort = ConversionSort()  # what the rows are ordered by


@dataclass(frozen=True)
class RetentionFigure:
    cohort: int  # members who joined at least N days ago
    retained: int  # of them, still active members now
    rate: float | None


@dataclass(frozen=True)
class RetentionRow:
    referrer_id: uuid.UUID
    referrer_name: str
    at_90: RetentionFigure
    at_365: RetentionFigure


@dataclass(frozen=True)
class Retention:
    referred_90: RetentionFigure
    referred_365: RetentionFigure
    non_referred_90: RetentionFigure
    non_referred_365: RetentionFigure
    per_referrer: tuple[RetentionRow, ...]


@dataclass(frozen=True)
class LedgerEntry:
    at: datetime
    kind: LedgerKind
    reason: LedgerReason
    points: int  # signed change of the member's total (held + vested)
    vested_points: int  # signed change of the vested points
    referee_name: str


@dataclass(frozen=True)
class RefereeRow:
    member_id: uuid.UUID
    name: str
    email: str
    referral_status: str  # pending / completed / declined
    member_status: str
    referred_at: datetime
    completed_at: datetime | None
    reward_state: str  # "", held, vested, revoked
    flagged: bool


@dataclass(frozen=True)
class ReferralActivity:
    """One member's own referral activity ("My referrals", the member page)."""

    member_id: uuid.UUID
    name: str
    successful_referrals: int
    active_referees: int
    pending_referrals: int
    pending_invitations: int
    points: int
    held_points: int
    badges: tuple[Badge, ...]
    next_badge: Badge | None
    referred: tuple[RefereeRow, ...]
    ledger: tuple[LedgerEntry, ...] = field(default=())


@dataclass(frozen=True)
class FlagRow:
    id: uuid.UUID
    kind: FlagKind
    status: FlagStatus
    referrer_id: uuid.UUID
    referrer_name: str
    referral_id: uuid.UUID | None  # None: a flag on the referrer's behaviour as a whole
    referee_name: str
    detail: str
    created_at: datetime
    decided_at: datetime | None
    decided_by: str
    note: str
    version: int


@dataclass(frozen=True)
class ReconcileResult:
    awarded: int = 0
    vested: int = 0
    revoked: int = 0
    flags_raised: int = 0
