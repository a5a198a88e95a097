"""`invite-desk report referrals`: the referral leaderboard without a window, as CSV or JSON
lines, with the same rights as the Referrals page (the operator signs in)."""

from __future__ import annotations

import argparse
import os
import sys
import uuid

from invite_desk.app import AppContext
from invite_desk.services import auth, organization
from invite_desk.services import referral_program as rp
from invite_desk.services.errors import DomainError
from invite_desk.services.referral_program.export import write_csv, write_json_lines

OPERATOR_PASSWORD_ENV = "INVITE_DESK_OPERATOR_PASSWORD"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = sub.add_parser(
        "report", help="print a report (referrals: the referral leaderboard)",
        description=(
            "Signs in as --operator (password from the keyring entry 'operator:EMAIL' or "
            f"${OPERATOR_PASSWORD_ENV}), brings the points ledger up to date and prints the "
            "leaderboard the operator may see: the organization for organization HR and "
            "admins, their unit for local roles, their own row for members."),
    )
    report.add_argument("kind", choices=["referrals"])
    report.add_argument("--db", metavar="URL", default=argparse.SUPPRESS)
    report.add_argument("--operator", metavar="EMAIL", required=True)
    report.add_argument("--period", default="year",
                        help="month, quarter, year (default), all, or START..END "
                        "(YYYY-MM-DD..YYYY-MM-DD), in the organization's time zone")
    report.add_argument("--unit", metavar="UNIT", help="a unit's name or id")
    report.add_argument("--format", choices=["csv", "json"], default="csv",
                        help="csv (default) or json (one JSON object per line)")
    report.set_defaults(run=run_report)


def _unit(context: AppContext, organization_id: uuid.UUID, text: str | None) -> uuid.UUID | None:
    if not text:
        return None
    units = organization.list_units(context.uow, organization_id)
    for unit in units:
        if str(unit.id) == text.strip() or unit.name.casefold() == text.strip().casefold():
            return unit.id
    names = ", ".join(unit.name for unit in units) or "none"
    raise DomainError(f"There is no unit {text!r}; the units are: {names}.")


def run_report(context: AppContext, args: argparse.Namespace) -> int:
    """Exit 0 with the report on stdout; 2 with the reason on stderr."""
    try:
        period = rp.Period.parse(args.period)
    except ValueError as exc:
        print(f"invite-desk report: {exc}", file=sys.stderr)
        return 2
    email = args.operator.strip().lower()
    password = os.environ.get(OPERATOR_PASSWORD_ENV) or context.credentials.get(
        f"operator:{email}")
    if not password:
        print(f"No password for {args.operator}: store it in the keyring entry "
              f"'operator:{email}' or set {OPERATOR_PASSWORD_ENV}.", file=sys.stderr)
        return 2
    try:
        operator = auth.sign_in(context.uow, args.operator, password)
        unit_id = _unit(context, operator.organization_id, args.unit)
        rp.reconcile(context.uow, operator)
        board = rp.leaderboard(context.uow, operator, period, unit_id)
    except DomainError as exc:
        print(f"invite-desk report: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        write_json_lines(board, sys.stdout)
    else:
        write_csv(board, sys.stdout)
    sys.stdout.flush()
    return 0
