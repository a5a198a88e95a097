"""Which tables travel between the server and a replica, in which order, and which of their
rows and columns a given operator's replica holds (docs/architecture.md, "Scope").

Every synced table has one UUID key: `id` for the SyncedMixin tables, and the member or
referral id for the three one-row-per-member/referral tables (referral_reward, member_origin,
leaderboard_opt_out), so the change log's `row_id` names any of their rows. The summaries the
referral reports read (referral_month_stats, growth_day_stats, referral_running_stats) have
composite keys and do not travel: a replica rebuilds them from the rows that did.

Never synced: portal_secret, rate_limit_counter, processed_bounce, retired_link (the portal's
and the bounce fetcher's business, on the server only), and the sync tables themselves.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, Table, and_, false, or_, select, true, union

from invite_desk.services.models import Base
from invite_desk.services.operator import Operator
from invite_desk.services.permissions import ScopeLevel, scope_of

# Foreign-key order: every table comes after the tables it references (member's reference
# to itself, referred_by_id, is the one cycle: a replica applies pulled rows with its
# foreign-key checks off, see pull.py).
SYNCED_TABLES: tuple[str, ...] = (
    "organization",
    "unit",
    "member",
    "setting",
    "event",
    "batch",
    "invitation",
    "event_guest",
    "referral",
    "audit_log",
    "pending_registration",
    "suppression",
    "sign_in_link",
    "outgoing_mail",
    "referral_ledger",
    "referral_reward",
    "referral_flag",
    "member_origin",
    "leaderboard_opt_out",
)

_KEYS: dict[str, str] = {
    "referral_reward": "referral_id",
    "member_origin": "member_id",
    "leaderboard_opt_out": "member_id",
}

# Secrets and server-only evidence: pulled as NULL (or a per-row placeholder where the
# column may not be NULL), except the operator's own member row (signing in offline).
_REDACTED: dict[str, frozenset[str]] = {
    "member": frozenset({"password_hash"}),
    "pending_registration": frozenset({"password_hash", "token_hash"}),
    "sign_in_link": frozenset({"token_hash"}),
    "member_origin": frozenset({"ip_hash", "ua_hash"}),
}

_KINDS: dict[str, frozenset[str]] = {
    "organization": frozenset({"settings"}),
    "unit": frozenset({"settings", "members"}),
    "member": frozenset({"members", "applications", "invitations"}),
    "setting": frozenset({"settings"}),
    "event": frozenset({"invitations"}),
    "batch": frozenset({"invitations"}),
    "invitation": frozenset({"invitations"}),
    "event_guest": frozenset({"invitations"}),
    "referral": frozenset({"referrals"}),
    "audit_log": frozenset({"members"}),
    "pending_registration": frozenset({"applications"}),
    "suppression": frozenset({"suppression"}),
    "sign_in_link": frozenset({"members"}),
    "outgoing_mail": frozenset({"members"}),
    "referral_ledger": frozenset({"referrals"}),
    "referral_reward": frozenset({"referrals"}),
    "referral_flag": frozenset({"referrals"}),
    "member_origin": frozenset({"referrals"}),
    "leaderboard_opt_out": frozenset({"referrals"}),
}


def table(name: str) -> Table:
    """The metadata Table of a synced table."""
    if name not in SYNCED_TABLES:
        raise KeyError(f"{name!r} is not a synced table")
    return Base.metadata.tables[name]


def key_column(table_name: str) -> str:
    """The name of the table's UUID key (`id`, or the member/referral id it is keyed by)."""
    return _KEYS.get(table_name, "id")


def redacted_columns(table_name: str) -> frozenset[str]:
    return _REDACTED.get(table_name, frozenset())


def kinds_for(table_names: Iterable[str]) -> frozenset[str]:
    """The hub's change kinds (ui/hub.py KINDS) that rows of these tables feed."""
    out: set[str] = set()
    for name in table_names:
        out |= _KINDS.get(name, frozenset())
    return frozenset(out)


# -- scope ----------------------------------------------------------------------------------


def _invitation_scope(operator: Operator) -> ColumnElement[bool]:
    """tracking.read.scope_condition's rule (its own invitations, plus its unit's for a local
    role), on the invitation Table."""
    inv = Base.metadata.tables["invitation"]
    scope = scope_of(operator)
    if scope.level is ScopeLevel.ORGANIZATION:
        return true()
    own = or_(inv.c.inviter_id == operator.member_id, inv.c.sender_id == operator.member_id)
    if scope.level is ScopeLevel.UNIT and scope.unit_id is not None:
        return or_(inv.c.unit_id == scope.unit_id, own)
    return own


def _member_scope(operator: Operator, member: Table) -> ColumnElement[bool]:
    """members_view.member_scope_condition's rule (the unit's members for a local role, only
    oneself for a USER) on a Table."""
    scope = scope_of(operator)
    if scope.level is ScopeLevel.ORGANIZATION:
        return true()
    if scope.level is ScopeLevel.UNIT and scope.unit_id is not None:
        return or_(member.c.unit_id == scope.unit_id, member.c.id == operator.member_id)
    return member.c.id == operator.member_id


def _members_in_scope(operator: Operator) -> ColumnElement[bool]:
    """A SELECT of the ids of the members `operator` sees (for IN)."""
    member = Base.metadata.tables["member"]
    return select(member.c.id).where(member.c.organization_id == operator.organization_id,
                                     _member_scope(operator, member)).scalar_subquery()


def scope_condition(tbl: Table, operator: Operator) -> ColumnElement[bool]:
    """The rows of `tbl` the operator's replica holds: their organization's, narrowed by the
    rules the services use online (tenant roles everything, local roles their unit, a USER
    their own invitations and referrals)."""
    name = tbl.name
    org = operator.organization_id
    level = scope_of(operator).level
    whole = level is ScopeLevel.ORGANIZATION
    c = tbl.c
    if name == "organization":
        return c.id == org
    in_org = c.organization_id == org
    inv = Base.metadata.tables["invitation"]
    if name in ("unit", "setting", "suppression", "leaderboard_opt_out"):
        # Structure, policy, and the addresses nobody may be sent to: the outbox needs the
        # whole suppression list whatever the sender's unit.
        return in_org
    if whole:
        return in_org
    me = operator.member_id
    unit = operator.unit_id if level is ScopeLevel.UNIT else None
    visible_inv = select(inv.c.id).where(inv.c.organization_id == org,
                                         _invitation_scope(operator))
    if name == "member":
        # The members the operator sees, and the people named on their invitations
        # (inviter, sender, who accepted), whom the invitations page shows by name.
        mine = and_(inv.c.organization_id == org, _invitation_scope(operator))
        refs = union(select(inv.c.inviter_id).where(mine),
                     select(inv.c.sender_id).where(mine),
                     select(inv.c.accepted_member_id).where(
                         mine, inv.c.accepted_member_id.is_not(None)))
        return and_(in_org, or_(_member_scope(operator, tbl), c.id.in_(refs)))
    if name == "event":
        return and_(in_org, or_(c.unit_id.is_(None), c.unit_id == unit) if unit is not None
                    else c.unit_id.is_(None))
    if name == "batch":
        return and_(in_org, or_(c.created_by_id == me, c.inviter_id == me,
                                c.id.in_(select(inv.c.batch_id).where(
                                    inv.c.organization_id == org,
                                    inv.c.batch_id.is_not(None),
                                    _invitation_scope(operator)))))
    if name == "invitation":
        return and_(in_org, _invitation_scope(operator))
    if name == "event_guest":
        return and_(in_org, or_(c.member_id == me, c.invitation_id.in_(visible_inv)))
    if name in ("referral", "referral_reward"):
        referrer, referee = c.referrer_id, (c.referee_id if name == "referral" else None)
        own = referrer == me if referee is None else or_(referrer == me, referee == me)
        if unit is None:
            return and_(in_org, own)
        return and_(in_org, or_(own, referrer.in_(_members_in_scope(operator))))
    if name == "referral_ledger":
        if unit is None:
            return and_(in_org, c.member_id == me)
        return and_(in_org, c.member_id.in_(_members_in_scope(operator)))
    if name == "referral_flag":
        # Anti-gaming findings are for reviewers: a local admin's unit, never a USER.
        if unit is None:
            return false()
        return and_(in_org, c.referrer_id.in_(_members_in_scope(operator)))
    if name == "member_origin":
        return and_(in_org, c.member_id.in_(_members_in_scope(operator)))
    if name == "audit_log":
        # One's own actions, and every settings change (a sync.conflict on a setting is
        # shown to both operators).
        return and_(in_org, or_(c.actor_id == me, c.entity_type == "setting"))
    if name == "sign_in_link":
        return and_(in_org, c.member_id == me)
    if name in ("pending_registration", "outgoing_mail"):
        return false()  # the organization's reviewers and its notifier only
    raise KeyError(f"{name!r} is not a synced table")
