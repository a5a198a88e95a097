"""The referral programme (issue 10): leaderboard, growth reports, points and badges that
reward quality, and anti-gaming flags for admin review.

Public entry points (each takes (uow, operator, ...) and re-reads the operator):

- settings: `get_settings`, `save_settings`, `leaderboard_opt_out`, `set_leaderboard_opt_out`
- reports: `leaderboard`, `leaderboard_standing`, `trends`, `conversion`, `retention`
- activity: `member_activity` (a USER may ask only for their own)
- flags: `list_flags`, `decide_flag`
- ledger: `reconcile` (bring the points ledger and the flags up to date)

When ledger rows are written: `reconcile` compares, per referral, what the facts say the
referrer should hold (referral completed, referee an active member, no open or rejected flag,
hold elapsed) with the referral's reward state, and appends only the missing award / vest /
revoke rows. It is idempotent (a second run writes nothing) and safe to run concurrently (a
unique key on (referral, kind, cycle) turns a duplicate into a no-op). After its first run it
is incremental: a watermark (ledger.MARK_KEY) limits it to rows changed since the last run,
by the updated_at indexes of migration 0009 (see ledger.reconcile_session).

Who runs it: `member_activity` reconciles that member's referrals first (cheap: one
referrer's rows), `decide_flag` reconciles the referrer in the same transaction, the
`invite-desk report referrals` command reconciles the organization before reading, and the
Referrals page runs `reconcile` (through hub.mutate) when it opens and on Refresh. The reports
themselves only read: they aggregate `referral_reward` (one summary row per completed
referral, kept by the reconciliation) and indexed ranges of `invitation` and `member_origin`,
so a figure reflects member statuses as of the last reconciliation.
"""

from invite_desk.services.referral_program.activity import member_activity
from invite_desk.services.referral_program.flags import decide_flag, list_flags
from invite_desk.services.referral_program.ledger import reconcile
from invite_desk.services.referral_program.reports import (
    ACTIVE_WEIGHT,
    INACTIVE_WEIGHT,
    conversion,
    leaderboard,
    leaderboard_standing,
    retention,
    trends,
)
from invite_desk.services.referral_program.settings import (
    get_settings,
    leaderboard_opt_out,
    save_settings,
    set_leaderboard_opt_out,
)
from invite_desk.services.referral_program.types import (
    Badge,
    Channel,
    Conversion,
    ConversionBy,
    ConversionColumn,
    ConversionOrder,
    ConversionRow,
    ConversionSort,
    FlagKind,
    FlagRow,
    FlagStatus,
    GamificationSettings,
    Granularity,
    Leaderboard,
    LeaderboardRow,
    LedgerEntry,
    LedgerKind,
    LedgerReason,
    Period,
    PeriodKind,
    ReconcileResult,
    RefereeRow,
    ReferralActivity,
    Retention,
    RetentionFigure,
    RetentionRow,
    TrendBucket,
    Trends,
)

__all__ = [
    "ACTIVE_WEIGHT", "INACTIVE_WEIGHT", "Badge", "Channel", "Conversion", "ConversionBy", "ConversionColumn",
    "ConversionOrder", "ConversionRow", "ConversionSort", "FlagKind", "FlagRow", "FlagStatus", "GamificationSettings", "Granularity",
    "Leaderboard", "LeaderboardRow", "LedgerEntry", "LedgerKind", "LedgerReason", "Period",
    "PeriodKind", "ReconcileResult", "RefereeRow", "ReferralActivity", "Retention",
    "RetentionFigure", "RetentionRow", "TrendBucket", "Trends", "conversion", "decide_flag",
    "get_settings", "leaderboard", "leaderboard_opt_out", "leaderboard_standing", "list_flags", "member_activity", "reconcile", "retention",
    "save_settings", "set_leaderboard_opt_out", "trends",
]
