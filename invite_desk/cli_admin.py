"""`invite-desk members|units|events|audit|notify`: scripted administration (issue 11).

Each command signs in as --operator like `invite-desk send` does (password from the keyring
entry 'operator:EMAIL' or $INVITE_DESK_OPERATOR_PASSWORD) and goes through the same services
as the windows, so it is refused exactly when the window would refuse. Errors are one line on
stderr. Exit codes: 0 done, 1 partly done (some rows refused, some emails not sent), 2 refused
or failed (bad arguments, sign-in, permission, not found).
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import TextIO

from invite_desk.app import AppContext
from invite_desk.services import auth, mail_settings
from invite_desk.services.admin import audit_log, events, notifications, people, units
from invite_desk.services.admin.people import KEEP, Unset
from invite_desk.services.errors import DomainError, NotFound, ValidationFailed
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.smtp import oauth
from invite_desk.services.smtp.transport import SmtpTransport

COMMANDS = ("members", "units", "events", "audit", "notify")

Sub = argparse._SubParsersAction  # noqa: SLF001 - argparse exposes no public name for it


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="URL", default=argparse.SUPPRESS)
    parser.add_argument("--operator", metavar="EMAIL", required=True,
                        help="who runs the command (their rights apply)")


def add_parsers(sub: Sub[argparse.ArgumentParser]) -> None:
    members = sub.add_parser("members", help="list members, change a role, unit or status")
    m = members.add_subparsers(dest="admin_action", required=True)
    p = m.add_parser("list", help="members within your scope")
    _common(p)
    p.add_argument("--unit", help="only this unit (name)")
    p.add_argument("--search", default="", help="name or email contains this")
    p = m.add_parser("set-role", help="change a member's role (and unit)")
    _common(p)
    p.add_argument("email")
    p.add_argument("role", help="USER, HR_LOCAL, HR_TENANT, ADMIN_LOCAL or ADMIN_TENANT")
    p.add_argument("--unit", help="also move them to this unit ('none' for no unit)")
    p = m.add_parser("set-status", help="active, lapsed or resigned (never deleted)")
    _common(p)
    p.add_argument("email")
    p.add_argument("status", choices=people.EDITABLE_STATUSES)
    p = m.add_parser("sign-in", help="give a desktop sign-in: emailed link or one-time password")
    _common(p)
    p.add_argument("email")
    p.add_argument("--one-time-password", action="store_true",
                   help="print a one-time password instead of emailing a link")
    p = m.add_parser("revoke-sign-in", help="end a member's desktop sign-in")
    _common(p)
    p.add_argument("email")

    unit_parser = sub.add_parser("units", help="list, create, rename, merge or archive units")
    u = unit_parser.add_subparsers(dest="admin_action", required=True)
    p = u.add_parser("list")
    _common(p)
    p.add_argument("--all", action="store_true", help="include archived units")
    p = u.add_parser("create")
    _common(p)
    p.add_argument("name")
    p = u.add_parser("rename")
    _common(p)
    p.add_argument("name")
    p.add_argument("new_name")
    p = u.add_parser("merge", help="move everything from SOURCE to TARGET, archive SOURCE")
    _common(p)
    p.add_argument("source")
    p.add_argument("target")
    p = u.add_parser("archive")
    _common(p)
    p.add_argument("name")
    p.add_argument("--move-members-to", metavar="UNIT")

    event_parser = sub.add_parser("events", help="list, create or archive events")
    e = event_parser.add_subparsers(dest="admin_action", required=True)
    p = e.add_parser("list")
    _common(p)
    p.add_argument("--all", action="store_true", help="include archived events")
    p = e.add_parser("create")
    _common(p)
    p.add_argument("name")
    p.add_argument("--start", metavar="'YYYY-MM-DD HH:MM'", help="local start time")
    p.add_argument("--tz", default="UTC", help="IANA time zone, e.g. Europe/Paris")
    p.add_argument("--place", default="")
    p.add_argument("--description", default="")
    p.add_argument("--capacity", type=int)
    p.add_argument("--no-guests", action="store_true", help="guests may not be invited")
    p.add_argument("--unit", help="the unit it belongs to (name)")
    p = e.add_parser("archive")
    _common(p)
    p.add_argument("event", help="event name or id")

    audit = sub.add_parser("audit", help="the audit log: filter, search, export as CSV")
    _common(audit)
    audit.add_argument("--since", type=_date, help="from this date (YYYY-MM-DD, UTC)")
    audit.add_argument("--until", type=_date, help="before this date (YYYY-MM-DD, UTC)")
    audit.add_argument("--action", default="", help="e.g. member.update, or a prefix: member.")
    audit.add_argument("--actor", metavar="EMAIL", help="only what this person did")
    audit.add_argument("--object", metavar="TYPE[:ID]", help="e.g. member:<uuid> or settings")
    audit.add_argument("--search", default="", help="free text in actions and values")
    audit.add_argument("--format", choices=("text", "csv"), default="text")
    audit.add_argument("--limit", type=int, default=0, help="at most N rows (text: 100)")

    notify = sub.add_parser("notify", help="send the queued notification emails")
    _common(notify)


def _date(text: str) -> datetime:
    try:
        return datetime.combine(date.fromisoformat(text.strip()), time(), tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-30") from None


def _operator(context: AppContext, email: str) -> Operator:
    from invite_desk.cli_send import OPERATOR_PASSWORD_ENV, _secret

    password = _secret(context, f"operator:{email.lower()}", OPERATOR_PASSWORD_ENV)
    if not password:
        raise _Refused(f"No password for {email}: store it in the keyring entry "
                       f"'operator:{email.lower()}' or set {OPERATOR_PASSWORD_ENV}.")
    return auth.sign_in(context.uow, email, password)


class _Refused(Exception):
    pass


def run_admin(context: AppContext, args: argparse.Namespace) -> int:
    try:
        operator = _operator(context, args.operator)
        handler = _HANDLERS[(args.command, getattr(args, "admin_action", None))]
        return handler(context, operator, args, sys.stdout)
    except (_Refused, DomainError, OSError, ValueError) as exc:
        print(f"invite-desk {args.command}: error: {exc}", file=sys.stderr)
        return 2


# -- lookups ---------------------------------------------------------------------------------


def _person(context: AppContext, operator: Operator, email: str) -> people.PersonView:
    wanted = auth.normalize_email(email)
    for person in people.list_people(context.uow, operator, search=wanted, limit=50):
        if person.email.lower() == wanted:
            return person
    raise NotFound(f"No member {email} within your scope.")


def _unit(context: AppContext, operator: Operator, name: str, *,
          archived: bool = False) -> units.UnitView:
    wanted = " ".join(name.split()).lower()
    for unit in units.list_units(context.uow, operator, include_archived=archived):
        if unit.name.lower() == wanted or str(unit.id) == wanted:
            return unit
    raise NotFound(f"No unit named {name!r}.")


def _unit_choice(context: AppContext, operator: Operator,
                 name: str | None) -> uuid.UUID | None | Unset:
    if name is None:
        return KEEP
    if name.strip().lower() in ("none", "-", ""):
        return None
    return _unit(context, operator, name).id


# -- members ---------------------------------------------------------------------------------


def _members_list(context: AppContext, operator: Operator, args: argparse.Namespace,
                  out: TextIO) -> int:
    unit_id = _unit(context, operator, args.unit).id if args.unit else None
    for p in people.list_people(context.uow, operator, search=args.search, unit_id=unit_id,
                                limit=100_000):
        out.write(f"{p.email}\t{p.name}\t{p.role.name}\t{p.unit_name or '-'}\t{p.status}\t"
                  f"sign-in: {p.sign_in.value}\n")
    return 0


def _members_set_role(context: AppContext, operator: Operator, args: argparse.Namespace,
                      out: TextIO) -> int:
    role = Role.parse(args.role)
    person = _person(context, operator, args.email)
    view = people.update_person(context.uow, operator, person.id, role=role,
                                unit_id=_unit_choice(context, operator, args.unit))
    out.write(f"{view.email}: {view.role.name}, unit {view.unit_name or '-'}\n")
    return 0


def _members_set_status(context: AppContext, operator: Operator, args: argparse.Namespace,
                        out: TextIO) -> int:
    person = _person(context, operator, args.email)
    view = people.update_person(context.uow, operator, person.id, status=args.status)
    out.write(f"{view.email}: {view.status}\n")
    return 0


def _members_sign_in(context: AppContext, operator: Operator, args: argparse.Namespace,
                     out: TextIO) -> int:
    person = _person(context, operator, args.email)
    if args.one_time_password:
        otp = people.issue_one_time_password(context.uow, operator, person.id)
        out.write(f"one-time password for {otp.email} (shown once; they choose their own at "
                  f"first sign-in): {otp.password}\n")
        return 0
    issued = people.issue_sign_in_link(context.uow, operator, person.id)
    out.write(f"sign-in link for {issued.email} queued (valid until "
              f"{issued.expires_at:%Y-%m-%d %H:%M} UTC); `invite-desk notify` sends it.\n")
    return 0


def _members_revoke(context: AppContext, operator: Operator, args: argparse.Namespace,
                    out: TextIO) -> int:
    person = _person(context, operator, args.email)
    people.revoke_sign_in(context.uow, operator, person.id)
    out.write(f"{person.email}: sign-in revoked\n")
    return 0


# -- units -----------------------------------------------------------------------------------


def _units_list(context: AppContext, operator: Operator, args: argparse.Namespace,
                out: TextIO) -> int:
    for u in units.list_units(context.uow, operator, include_archived=args.all):
        state = " (archived)" if u.archived else ""
        out.write(f"{u.name}{state}\t{u.active_members} active of {u.members} members\t"
                  f"{u.events} events\n")
    return 0


def _units_create(context: AppContext, operator: Operator, args: argparse.Namespace,
                  out: TextIO) -> int:
    out.write(f"created unit {units.create_unit(context.uow, operator, args.name).name}\n")
    return 0


def _units_rename(context: AppContext, operator: Operator, args: argparse.Namespace,
                  out: TextIO) -> int:
    unit = _unit(context, operator, args.name)
    view = units.rename_unit(context.uow, operator, unit.id, args.new_name)
    out.write(f"renamed {unit.name} to {view.name}\n")
    return 0


def _units_merge(context: AppContext, operator: Operator, args: argparse.Namespace,
                 out: TextIO) -> int:
    source, target = _unit(context, operator, args.source), _unit(context, operator, args.target)
    merged = units.merge_units(context.uow, operator, source.id, target.id)
    out.write(f"merged {source.name} into {target.name}: {merged.moved_members} members, "
              f"{merged.moved_invitations} invitations, {merged.moved_events} events moved; "
              f"{source.name} is archived\n")
    return 0


def _units_archive(context: AppContext, operator: Operator, args: argparse.Namespace,
                   out: TextIO) -> int:
    unit = _unit(context, operator, args.name)
    move_to = _unit(context, operator, args.move_members_to).id if args.move_members_to else None
    units.archive_unit(context.uow, operator, unit.id, move_members_to=move_to)
    out.write(f"archived {unit.name}\n")
    return 0


# -- events ----------------------------------------------------------------------------------


def _events_list(context: AppContext, operator: Operator, args: argparse.Namespace,
                 out: TextIO) -> int:
    for ev in events.list_events(context.uow, operator, include_archived=args.all):
        when = (f"{ev.starts_at_local:%Y-%m-%d %H:%M} {ev.time_zone}"
                if ev.starts_at_local else "no date")
        state = " (archived)" if ev.archived else ""
        places = ("no guests may be invited" if not ev.guests_allowed
                  else f"{ev.capacity:,} places" if ev.capacity is not None else "no limit")
        out.write(f"{ev.name}{state}\t{when}\t{ev.location or '-'}\t{ev.guests} guests, "
                  f"{ev.joined} joined ({places})\t{ev.id}\n")
    return 0


def _events_create(context: AppContext, operator: Operator, args: argparse.Namespace,
                   out: TextIO) -> int:
    start = None
    if args.start:
        try:
            start = datetime.fromisoformat(args.start.strip())
        except ValueError:
            raise ValidationFailed({"start": f"{args.start!r} is not a time like "
                                             "'2026-12-01 19:00'"}) from None
    unit_id = _unit(context, operator, args.unit).id if args.unit else None
    view = events.create_event(context.uow, operator, events.EventDraft(
        name=args.name, starts_at_local=start, time_zone=args.tz, location=args.place,
        description=args.description, capacity=args.capacity,
        guests_allowed=not args.no_guests, unit_id=unit_id))
    out.write(f"created event {view.name} ({view.id})\n")
    return 0


def _events_archive(context: AppContext, operator: Operator, args: argparse.Namespace,
                    out: TextIO) -> int:
    wanted = args.event.strip()
    found = [ev for ev in events.list_events(context.uow, operator)
             if str(ev.id) == wanted or ev.name.lower() == wanted.lower()]
    if not found:
        raise NotFound(f"No open event {wanted!r}.")
    if len(found) > 1:
        raise ValidationFailed({"event": f"{len(found)} events are named {wanted!r}; give "
                                         "the id (see `invite-desk events list`)."})
    view = events.archive_event(context.uow, operator, found[0].id)
    out.write(f"archived event {view.name}\n")
    return 0


# -- audit and notify ------------------------------------------------------------------------


def _audit(context: AppContext, operator: Operator, args: argparse.Namespace,
           out: TextIO) -> int:
    actor_id = _person(context, operator, args.actor).id if args.actor else None
    entity_type, entity_id = "", None
    if args.object:
        entity_type, _, raw_id = args.object.partition(":")
        if raw_id:
            try:
                entity_id = uuid.UUID(raw_id)
            except ValueError:
                raise ValidationFailed({"object": f"{raw_id!r} is not an id"}) from None
    query = audit_log.AuditQuery(actor_id=actor_id, action=args.action, entity_type=entity_type,
                                 entity_id=entity_id, since=args.since, until=args.until,
                                 text=args.search)
    if args.format == "csv" and not args.limit:
        audit_log.export_audit_csv(context.uow, operator, query, out)
        return 0
    limit = args.limit or 100
    page = audit_log.fetch_audit_page(context.uow, operator, query, limit=limit)
    if args.format == "csv":
        import csv

        writer = csv.writer(out)
        writer.writerow(audit_log.CSV_HEADER)  # the same columns as the full export
        writer.writerows(audit_log.csv_row(row) for row in page.rows)
        return 0
    for row in page.rows:
        changes = ", ".join(f"{k}: {row.before.get(k, '')!s} -> {row.after.get(k, '')!s}"
                            for k in row.changed_fields)
        out.write(f"{row.at:%Y-%m-%d %H:%M:%S}\t{row.actor}\t{row.action}\t{row.entity_type}"
                  f"{':' + str(row.entity_id) if row.entity_id else ''}\t{changes}\n")
    if page.next_cursor is not None:
        out.write("(more rows: raise --limit, or use --format csv for all)\n")
    return 0


def _notify(context: AppContext, operator: Operator, args: argparse.Namespace,
            out: TextIO) -> int:
    from invite_desk.cli_send import SMTP_PASSWORD_ENV, _secret

    notifications.pending_counts(context.uow, operator)  # HR_LOCAL and above
    if not notifications.has_pending(context.uow):
        out.write("no notification emails to send\n")
        return 0
    mail = mail_settings.get_mail_settings(context.uow, operator.organization_id)
    if not mail.configured:
        raise _Refused("SMTP is not configured: an admin sets it in Settings > Email.")
    # OAuth2 settings: the access token from the refresh token in the keyring, as for `send`.
    tokens = oauth.for_settings(mail, context.credentials)
    password = None if tokens is not None else _secret(
        context, mail.password_key(), SMTP_PASSWORD_ENV)
    with SmtpTransport(mail.smtp_config(), password, access_token=tokens) as transport:
        run = notifications.send_pending_notifications(context.uow, transport)
    out.write(f"{run.sent} sent, {run.failed} failed, {run.uncertain} uncertain, "
              f"{run.remaining} waiting to retry\n")
    return 1 if run.failed or run.uncertain or run.remaining else 0


Handler = Callable[[AppContext, Operator, argparse.Namespace, TextIO], int]
_HANDLERS: dict[tuple[str, str | None], Handler] = {
    ("members", "list"): _members_list,
    ("members", "set-role"): _members_set_role,
    ("members", "set-status"): _members_set_status,
    ("members", "sign-in"): _members_sign_in,
    ("members", "revoke-sign-in"): _members_revoke,
    ("units", "list"): _units_list,
    ("units", "create"): _units_create,
    ("units", "rename"): _units_rename,
    ("units", "merge"): _units_merge,
    ("units", "archive"): _units_archive,
    ("events", "list"): _events_list,
    ("events", "create"): _events_create,
    ("events", "archive"): _events_archive,
    ("audit", None): _audit,
    ("notify", None): _notify,
}
