"""`invite-desk` command line: the desktop app by default, plus demo, screenshots and portal."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from invite_desk import __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="invite-desk",
        description="Invitations and referrals for membership organizations.",
    )
    parser.add_argument("--version", action="version", version=f"invite-desk {__version__}")
    parser.add_argument(
        "--db",
        metavar="URL",
        help="database URL (default: the embedded SQLite file in your data folder), e.g. "
        "postgresql://user@host/dbname or mariadb://user@host/dbname; a password given "
        "here is moved to the system keyring",
    )
    parser.add_argument(
        "--create", action="store_true",
        help="create the SQLite file named by --db when it does not exist yet (without it, "
        "a path that does not exist is refused, so a typo never starts an empty database; "
        "the default database and `demo` create theirs anyway)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command")

    demo = sub.add_parser(
        "demo", help="create or top up a demo organization",
        description="Create or top up a demo organization; a SQLite file named by --db is "
        "created when it does not exist.")
    demo.add_argument("--db", metavar="URL", default=argparse.SUPPRESS)
    demo.add_argument("--members", type=int, default=300, help="members to reach (default 300)")

    shots = sub.add_parser("screenshots", help="render every window to PNG, offscreen")
    shots.add_argument("directory", type=Path)
    shots.add_argument("--db", metavar="URL", default=argparse.SUPPRESS)

    expire = sub.add_parser(
        "expire", help="record invitations whose link has expired (for a scheduled job)",
        description="Mark sent invitations past their expiry as expired, with an audit row "
        "each. They already show as expired everywhere; this writes the transition down.")
    expire.add_argument("--db", metavar="URL", default=argparse.SUPPRESS)

    from invite_desk.cli_send import add_parser as add_send_parser

    add_send_parser(sub)
    from invite_desk.cli_admin import add_parsers as add_admin_parsers

    add_admin_parsers(sub)  # members, units, events, audit, notify (issue 11)
    from invite_desk.cli_report import add_parser as add_report_parser

    add_report_parser(sub)
    from invite_desk.cli_deliverability import add_parsers as add_deliverability_parsers

    add_deliverability_parsers(sub)
    from invite_desk.cli_sync import add_parser as add_sync_parser

    add_sync_parser(sub)  # sync (issue 12): reaches the server itself, see main()

    portal = sub.add_parser("portal", help="serve the invitee registration pages")
    portal.add_argument("--db", metavar="URL", default=argparse.SUPPRESS)
    portal.add_argument("--host", default="127.0.0.1")
    portal.add_argument("--port", type=int, default=8080)
    portal.add_argument(
        "--proxy-hops", type=int, default=0, metavar="N",
        help="behind N reverse proxies (e.g. 1 behind the organization's HTTPS proxy): trust "
        "their X-Forwarded-For/-Proto headers for the client address and scheme",
    )
    portal.add_argument(
        "--threads", type=int, default=8, metavar="N",
        help="worker threads serving requests (default 8); run several portal processes on "
        "a shared PostgreSQL/MariaDB database for more",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from invite_desk import app

    if getattr(args, "standalone", None) is not None:  # sync: opens what it needs itself
        return int(args.standalone(args))
    try:
        if args.command == "screenshots":
            from invite_desk.ui.screenshots import run_screenshots

            return run_screenshots(args.db, args.directory)
        remote = args.db or (app.remembered_remote() if args.command is None else None)
        if args.command is None and app.is_remote(remote):  # the desktop on a server: replica
            from invite_desk.ui.main import run_gui_replica

            assert remote is not None
            return run_gui_replica(app.replica_launcher(remote, remember=True))
        # `demo` fills the database it names, so it creates a missing SQLite file by design.
        context = app.build(args.db, remember=args.db is not None and args.command is None,
                            create=args.create or args.command == "demo")
    except app.DatabaseUnavailable as exc:
        print(f"invite-desk: error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "demo":
            from invite_desk.services.demo import create_or_top_up
            from invite_desk.services.errors import DomainError

            try:
                result = create_or_top_up(context.uow, members=args.members)
            except DomainError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            print(result.summary(context.database_label))
            return 0
        if args.command == "expire":
            from invite_desk.services.tracking.expiry import expire_overdue

            count = expire_overdue(context.uow)
            print(f"{count} invitation{'' if count == 1 else 's'} marked as expired.")
            return 0
        if getattr(args, "handler", None) is not None:  # bounces, suppression, reminders
            from invite_desk.cli_deliverability import run as run_deliverability

            return run_deliverability(context, args)
        if args.command == "send":
            from invite_desk.cli_send import run_send

            return run_send(context, args)
        if args.command in ("members", "units", "events", "audit", "notify"):
            from invite_desk.cli_admin import run_admin

            return run_admin(context, args)
        if getattr(args, "run", None) is not None:  # sub-commands that bring their own runner
            return int(args.run(context, args))
        if args.command == "portal":
            import os

            from invite_desk.cli_send import SMTP_PASSWORD_ENV
            from invite_desk.portal.server import serve

            return serve(context, args.host, args.port, proxy_hops=args.proxy_hops,
                         threads=max(1, args.threads),
                         smtp_password=os.environ.get(SMTP_PASSWORD_ENV) or None)
        from invite_desk.ui.main import run_gui

        return run_gui(context)
    finally:
        context.dispose()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
