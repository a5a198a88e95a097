"""`invite-desk sync`: one sync round of an operator's replica with the server, headless.

It reaches the server itself (with a short connect timeout) instead of through the start-up
that every other command shares, so a server that does not answer is one line and exit
status 2 within seconds, and the replica's waiting changes are still counted."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, TextIO

from invite_desk.services import local_config
from invite_desk.services.errors import DomainError
from invite_desk.services.sync.replica import (
    DEFAULT_PRUNE_DAYS,
    Replica,
    RoundReport,
    prune_change_log,
)

OPERATOR_PASSWORD_ENV = "INVITE_DESK_OPERATOR_PASSWORD"  # as `invite-desk send`

EXIT_OK = 0
EXIT_REJECTED = 1  # the round ran; the server refused some commands (reasons printed)
EXIT_UNAVAILABLE = 2  # the server could not be reached, or nothing could be done


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sync = sub.add_parser(
        "sync", help="one sync round of your replica with the server (push, then pull)",
        description=(
            "Runs one sync round of --operator's replica of the server named by --db (the "
            "same file the desktop uses in replica mode): pushes the changes made on this "
            "computer, then pulls what changed on the server, and prints both. The first "
            "round on a computer makes the replica (a snapshot of what the operator may "
            "see). The operator's password comes from the keyring entry 'operator:EMAIL' or "
            f"${OPERATOR_PASSWORD_ENV}. Exit codes: 0 done, 1 the server rejected some "
            "changes (the reasons are printed), 2 the server cannot be reached or the "
            "sign-in failed."))
    sync.add_argument("--db", metavar="URL", default=argparse.SUPPRESS,
                      help="the organization's server, postgresql://USER@HOST/DB or "
                      "mariadb://USER@HOST/DB (default: the server the desktop remembers)")
    sync.add_argument("--operator", metavar="EMAIL", required=True)
    sync.add_argument("--format", choices=("text", "json"), default="text")
    sync.add_argument("--prune", metavar="DAYS", type=int, nargs="?", const=DEFAULT_PRUNE_DAYS,
                      help="first delete the server's change-log entries older than DAYS "
                      f"(default {DEFAULT_PRUNE_DAYS}; organization admins); replicas further "
                      "behind start over with a fresh copy")
    sync.set_defaults(standalone=run_sync)


def _fail(message: str, args: argparse.Namespace, out: TextIO, **extra: Any) -> int:
    if args.format == "json":
        print(json.dumps({"ok": False, "error": message, **extra}), file=out)
    print(f"invite-desk sync: {message}", file=sys.stderr)
    return EXIT_UNAVAILABLE


def run_sync(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from invite_desk import app

    out = out or sys.stdout
    url = getattr(args, "db", None) or local_config.read_config().get("database_url")
    if not url or str(url).startswith("sqlite"):
        return _fail("name the organization's server with --db postgresql://USER@HOST/DB or "
                     "mariadb://USER@HOST/DB: a replica mirrors a server.", args, out)
    credentials = app.default_credentials()
    email = args.operator.strip()
    key = f"operator:{email.lower()}"
    password = os.environ.get(OPERATOR_PASSWORD_ENV) or credentials.get(key)
    if not password:
        return _fail(f"no password for {email}: store it in the keyring entry '{key}' or "
                     f"set {OPERATOR_PASSWORD_ENV}.", args, out)
    try:
        parsed = app.parsed_url(url)
        replica = Replica.open(parsed, email, credentials, password=password)
    except (DomainError, app.DatabaseUnavailable) as exc:
        return _fail(str(exc), args, out)
    try:
        try:
            operator = replica.check_password(password)
        except DomainError as exc:
            return _fail(str(exc), args, out)
        pruned: int | None = None
        if args.prune is not None:
            try:
                pruned = prune_change_log(replica.remote_uow(), operator, args.prune).deleted
            except DomainError as exc:
                return _fail(str(exc), args, out)
            except Exception as exc:  # the server went away: the round below says so
                from invite_desk.services.sync.replica import is_offline_error

                if not is_offline_error(exc):
                    raise
        report = replica.round()
        status = replica.status()
        if not report.online:
            return _fail(f"{report.error} ({status.waiting} change"
                         f"{'' if status.waiting == 1 else 's'} waiting to be pushed).",
                         args, out, server=replica.remote_label, waiting=status.waiting)
        if report.error:
            return _fail(report.error, args, out, server=replica.remote_label)
        if args.format == "json":
            print(json.dumps(_as_json(replica, report, status.waiting, pruned)), file=out)
        else:
            _print_text(replica, report, status.waiting, pruned, out)
        return EXIT_REJECTED if report.pushed and report.pushed.rejected else EXIT_OK
    finally:
        replica.close()


def _as_json(replica: Replica, report: RoundReport, waiting: int, pruned: int | None
             ) -> dict[str, Any]:
    pushed, pulled = report.pushed, report.pulled
    first = replica.first_snapshot
    return {
        "ok": True,
        "server": replica.remote_label,
        "pushed": {"applied": pushed.applied if pushed else 0,
                   "rejected": pushed.rejected if pushed else 0,
                   "reasons": list(pushed.reasons) if pushed else []},
        "pulled": {"applied": pulled.applied if pulled else 0,
                   "deleted": pulled.deleted if pulled else 0,
                   "tables": dict(sorted(pulled.tables.items())) if pulled else {},
                   "snapshot": bool(pulled and pulled.snapshot)},
        **({"snapshot": {"applied": first.applied, "tables": dict(sorted(first.tables.items()))}}
           if first is not None else {}),
        "waiting": waiting,
        "more": report.more,
        **({"pruned": pruned} if pruned is not None else {}),
    }


def _rows(count: int) -> str:
    return f"{count} row{'' if count == 1 else 's'}"


def _print_text(replica: Replica, report: RoundReport, waiting: int, pruned: int | None,
                out: TextIO) -> None:
    pushed, pulled = report.pushed, report.pulled
    said = False
    first = replica.first_snapshot
    if first is not None:
        print(f"snapshot: {_rows(first.applied)} copied from {replica.remote_label}", file=out)
        for name, count in sorted(first.tables.items()):
            print(f"  {name}: {count}", file=out)
        said = True
    if pruned is not None:
        print(f"pruned: {pruned} change-log entr{'y' if pruned == 1 else 'ies'}", file=out)
    if pushed and (pushed.applied or pushed.rejected):
        print(f"pushed: {pushed.applied} applied, {pushed.rejected} rejected", file=out)
        for reason in pushed.reasons:
            print(f"  {reason}", file=out)
        said = True
    if pulled and pulled.tables:
        what = "pulled (a fresh snapshot)" if pulled.snapshot else "pulled"
        print(f"{what}: {_rows(pulled.applied)} written, {pulled.deleted} removed", file=out)
        for name, count in sorted(pulled.tables.items()):
            print(f"  {name}: {count}", file=out)
        said = True
    if not said:
        print(f"Up to date with {replica.remote_label}: nothing to push or pull.", file=out)
    if waiting:
        print(f"{waiting} change{'' if waiting == 1 else 's'} still waiting "
              "(run sync again).", file=out)
    if report.more:
        print("More is waiting on the server: run sync again.", file=out)
