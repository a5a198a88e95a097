"""`invite-desk screenshots DIR`: render every window and settings page to PNG, offscreen,
on the demo organization (on a fresh temporary database unless --db is given)."""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import shiboken6
from PySide6.QtCore import QSize, qInstallMessageHandler
from PySide6.QtWidgets import QApplication, QWidget

from invite_desk import app
from invite_desk.services import auth, settings
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.errors import DomainError
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.sync.journal import RejectedCommand
from invite_desk.services.sync.replica import RoundReport, SyncStatus
from invite_desk.ui.main import create_application, install_qt_message_filter
from invite_desk.ui.main_window import DEFAULT_SIZE, MainWindow, SettingsFactory
from invite_desk.ui.setup_dialog import SetupDialog
from invite_desk.ui.sign_in_dialog import SignInDialog
from invite_desk.ui.tasks import SynchronousRunner

SETUP_SIZE = QSize(940, 720)
SIGN_IN_WIDTH = 480
README_SIZE = QSize(1200, 780)
GAMIFICATION_SIZE = QSize(980, 760)
README_DIR = "readme"  # DIR/readme/: the pictures README.md shows (docs/screenshots/)

# The composer picture: a pasted list with every verdict the pre-flight check gives.
README_PASTE = "\n".join([
    "Zoë Martin <zoe@example.org>",
    "sam@example.org, Sam Weiß",
    "not-an-address",
    "ZOE@example.org",
    "grace@example",
    "Alan Turing <alan@example.org>",
    *(f"Member {n} <m{n}@example.org>" for n in range(40)),
])


class _Camera:
    """Shows a widget at a fixed size, renders it to DIR/<name>.png and prints the path."""

    def __init__(self, qapp: QApplication, directory: Path) -> None:
        self.qapp = qapp
        self.directory = directory
        self.written: list[Path] = []

    def shoot(self, widget: QWidget, name: str, size: QSize | None = None) -> Path:
        if size is not None:
            widget.resize(size)
        widget.show()
        for _ in range(3):  # layouts, polish and deferred resizes settle over a few passes
            self.qapp.processEvents()
        path = self.directory / f"{name}.png"
        if not widget.grab().save(str(path), "PNG"):
            raise OSError(f"Could not write {path}")
        print(path, flush=True)
        self.written.append(path)
        return path


def _prefer_offscreen() -> None:
    """Render offscreen unless the caller chose a platform: no windows flash up, and the
    pictures do not depend on the desktop's theme."""
    if not os.environ.get("QT_QPA_PLATFORM") and QApplication.instance() is None:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"


def _discard(widget: QWidget) -> None:
    widget.close()
    if shiboken6.isValid(widget):
        shiboken6.delete(widget)


def _shoot_setup(camera: _Camera, context: app.AppContext) -> None:
    runner = SynchronousRunner()
    dialog = SetupDialog(context.uow, runner=runner)
    dialog.organization_name_edit.setText("Harbour Rowing Club")
    dialog.description_edit.setPlainText(
        "A rowing club with chapters along the coast: regattas, learn-to-row courses and "
        "Sunday morning outings."
    )
    dialog.registration_url_edit.setText("https://join.harbour-rowing.example")
    dialog.first_name_edit.setText("Ada")
    dialog.last_name_edit.setText("Byron")
    dialog.email_edit.setText("ada@harbour-rowing.example")
    dialog.password_edit.setText("a long passphrase")
    dialog.confirm_edit.setText("a long passphrase")
    camera.shoot(dialog, "setup", SETUP_SIZE)
    # The same page after a submission the services reject: errors next to each field.
    # Validation fails before the database is touched, so nothing is created.
    dialog.organization_name_edit.clear()
    dialog.registration_url_edit.setText("join.harbour-rowing")
    dialog.email_edit.setText("ada@")
    dialog.password_edit.setText("short")
    dialog.confirm_edit.setText("short")
    dialog.submit()
    camera.shoot(dialog, "setup-errors", SETUP_SIZE)
    _discard(dialog)


def _shoot_sign_in(camera: _Camera, context: app.AppContext, email: str) -> None:
    # As a person finds it: the last email remembered, the password being typed; no error.
    dialog = SignInDialog(context.uow, database_label=context.database_label, email=email,
                          runner=SynchronousRunner())
    dialog.password_edit.setText("a long passphrase")
    dialog.setFixedWidth(SIGN_IN_WIDTH)
    dialog.adjustSize()
    camera.shoot(dialog, "sign-in")
    _discard(dialog)


def _shoot_main(camera: _Camera, context: app.AppContext, operator: Operator,
                factory: SettingsFactory | None, prefix: str, *, every_page: bool) -> None:
    window = MainWindow(context, operator, factory, remember_geometry=False)
    window.resize(DEFAULT_SIZE)
    if every_page:
        panel = window.pages["settings"]
        page_names: Callable[[], list[str]] | None = getattr(panel, "page_names", None)
        for key in window.page_keys():
            if key == "settings" and page_names is not None:
                continue  # its first page is settings-<first page> below: not twice
            window.show_page(key)
            page = window.pages.get(key)
            _settle(camera.qapp, lambda p=page: getattr(p, "idle", True))  # its first figures
            camera.shoot(window, f"{prefix}-{key}")
        if page_names is not None:
            window.show_page("settings")
            for name in page_names():
                panel.show_page(name)  # type: ignore[attr-defined]
                camera.shoot(window, f"settings-{name}")
    else:
        camera.shoot(window, prefix)
        window.show_page("referrals")  # a member's own: "My referrals"
        page = window.pages.get("referrals")
        _settle(camera.qapp, lambda p=page: getattr(p, "idle", True))
        camera.shoot(window, f"{prefix}-referrals")
        window.show_page("settings")
        camera.shoot(window, f"{prefix}-settings")
    _discard(window)


def _settle(qapp: QApplication, done: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Process events until `done()` (background reads delivered) or the time is up (the
    referrals page's first figures take over 10 s on a busy two-core machine)."""
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        qapp.processEvents()
        time.sleep(0.01)
    for _ in range(3):
        qapp.processEvents()
    if not done():
        print(f"screenshots: a page was still loading after {timeout_s:.0f} s; its picture "
              "may show 'Loading…'", file=sys.stderr, flush=True)


def _shoot_readme(camera: _Camera, context: app.AppContext, admin: Operator) -> None:
    """The pages README.md shows, each alone at README_SIZE, in a state worth showing."""
    from invite_desk.ui.applications import ApplicationsPage
    from invite_desk.ui.compose.window import ComposeWindow, InputMode
    from invite_desk.ui.invitations import InvitationsWindow
    from invite_desk.ui.members.window import MembersWindow

    qapp = camera.qapp
    compose = ComposeWindow(context, admin, runner=SynchronousRunner())
    compose.set_input_mode(InputMode.PASTE)
    compose.paste_edit.setPlainText(README_PASTE)
    compose.message_edit.setPlainText(
        "We ride every Tuesday and Saturday morning — come and try a session with us!")
    compose.check()
    for banner in (compose.recovery_banner, compose.message_banner):
        banner.clear_message()  # the demo's interrupted and unsent batches: not the subject
    compose.resize(README_SIZE)
    camera.shoot(compose, "compose-preflight")
    _discard(compose)

    invitations = InvitationsWindow(context, admin, runner=SynchronousRunner(),
                                    sweep_interval_ms=0)
    invitations.resize(README_SIZE)
    invitations.show()
    _settle(qapp, lambda: invitations.model.row_at(1) is not None)
    invitations.select_rows([1])
    _settle(qapp, lambda: invitations.detail.detail is not None)
    camera.shoot(invitations, "invitations")
    invitations.stop(10_000)
    _discard(invitations)

    members = MembersWindow(context, admin, runner=SynchronousRunner())
    members.resize(README_SIZE)
    members.show()
    _settle(qapp, lambda: members.model.rowCount() > 0)
    members.select_row(0)
    _settle(qapp, lambda: members.page.activity is not None)
    camera.shoot(members, "members")
    _discard(members)

    applications = ApplicationsPage(context, admin, runner=SynchronousRunner())
    applications.resize(README_SIZE)
    applications.show()
    _settle(qapp, lambda: applications.loaded)
    rows = applications.visible_rows()
    if rows:
        applications.select_members([rows[0].member_id])
        _settle(qapp, lambda: "Loading" not in applications.detail.history_label.text())
    camera.shoot(applications, "applications")
    _discard(applications)


def _shoot_admin(camera: _Camera, context: app.AppContext, admin: Operator, *,
                 add_examples: bool) -> None:
    """member-edit.png, units.png, events.png and audit-log.png (issue 11)."""
    from datetime import datetime, timedelta

    from invite_desk.services.admin import events as event_service
    from invite_desk.services.admin import people
    from invite_desk.ui.admin import AuditLogWindow, UnitsEventsPage
    from invite_desk.ui.hub import OperationsHub
    from invite_desk.ui.members.edit_dialog import MemberEditDialog

    qapp, uow = camera.qapp, context.uow
    persons = [p for p in people.list_people(uow, admin, limit=50)
               if p.id != admin.member_id and p.role < Role.ADMIN_LOCAL]
    if add_examples and persons:  # a change worth showing in the audit log
        people.update_person(uow, admin, persons[0].id, role=Role.HR_LOCAL)
        if not event_service.list_events(uow, admin):
            start = (datetime.now() + timedelta(days=24)).replace(hour=18, minute=30,
                                                                  second=0, microsecond=0)
            event_service.create_event(uow, admin, event_service.EventDraft(
                name="Autumn open day", starts_at_local=start, time_zone="Europe/London",
                location="Harbour boathouse", description="Try rowing with a coach.",
                capacity=60))
    hub = OperationsHub(runner=SynchronousRunner())

    if persons:
        dialog = MemberEditDialog(hub, admin, persons[0].id, uow=uow)
        _settle(qapp, lambda: dialog.person is not None)
        camera.shoot(dialog, "member-edit", QSize(560, 420))
        _discard(dialog)

    page = UnitsEventsPage(hub, admin, uow=uow)
    page.resize(README_SIZE)
    page.show()
    _settle(qapp, lambda: bool(page.units.units))
    page.units.table.selectRow(0)
    camera.shoot(page, "units")
    page.tabs.setCurrentWidget(page.events)
    _settle(qapp, lambda: bool(page.events.events))
    if page.events.events:
        busiest = max(range(len(page.events.events)),
                      key=lambda i: page.events.events[i].guests)
        page.events.select_row(busiest)
    camera.shoot(page, "events")
    _discard(page)

    audit = AuditLogWindow(hub, admin, uow=uow)
    audit.resize(README_SIZE)
    audit.show()
    _settle(qapp, lambda: audit.model.has_opened)
    rows = audit.visible_rows()
    chosen = next((i for i, row in enumerate(rows) if row.changed_fields and row.before), 0)
    if rows:
        audit.select_row(chosen)
    camera.shoot(audit, "audit-log")
    _discard(audit)
    hub.shutdown(10_000)


def _shoot_referrals(camera: _Camera, context: app.AppContext, admin: Operator) -> None:
    """referrals-leaderboard.png and referrals-trends.png (also in README): all time, so the
    demo's twelve months of referrals show whatever today's date."""
    from invite_desk.services.referral_program import Period, PeriodKind
    from invite_desk.ui.hub import OperationsHub
    from invite_desk.ui.referrals import ReferralSource, ReferralsPage

    hub = OperationsHub()
    page = ReferralsPage(hub, admin, source=ReferralSource(context.uow))
    page.resize(README_SIZE)
    page.show()
    _settle(camera.qapp, lambda: page.idle and page.leaderboard is not None)
    page.set_period(Period(PeriodKind.ALL_TIME))
    _settle(camera.qapp, lambda: page.idle)
    page.tabs.setCurrentIndex(0)
    camera.shoot(page, "referrals-leaderboard")
    page.set_period(Period(PeriodKind.THIS_YEAR))  # the demo's last twelve months
    _settle(camera.qapp, lambda: page.idle)
    page.tabs.setCurrentIndex(1)
    camera.shoot(page, "referrals-trends")
    hub.shutdown(30_000)
    _discard(page)
    hub.deleteLater()


def _shoot_gamification(camera: _Camera, context: app.AppContext, admin: Operator) -> None:
    """gamification.png: the Settings panel alone on its Gamification page."""
    from invite_desk.ui.settings.window import SettingsWindow

    panel = SettingsWindow(context.uow, admin)
    panel.show_page("gamification")
    camera.shoot(panel, "gamification", GAMIFICATION_SIZE)
    _discard(panel)


def _restrict_sending_for_demo(context: app.AppContext, admin: Operator) -> None:
    """On the throwaway database, let only HR_LOCAL and above send, so that the member's
    window shows Compose disabled, as the permission policy mirrors it."""
    policy = settings.get_settings(context.uow, admin.organization_id)
    if policy.who_can_send_user_invitation <= Role.USER:
        settings.update_settings(context.uow, admin,
                                 {"who_can_send_user_invitation": Role.HR_LOCAL})


def _suppress_for_demo(context: app.AppContext, admin: Operator) -> None:
    """On the throwaway database, a few suppressed addresses (a bounce, an opt-out, an
    admin's), so the Suppression page shows what it is for."""
    from invite_desk.services import suppression
    from invite_desk.services.models import SuppressionReason

    with context.uow:
        session = context.uow.session
        suppression.suppress(
            session, admin.organization_id, "jo.martin@example-mail.org",
            SuppressionReason.HARD_BOUNCE, source="imap bounces@harbour-rowing.example",
            evidence="5.1.1 550 5.1.1 <jo.martin@example-mail.org>: Recipient address "
                     "rejected: User unknown in virtual mailbox table")
        suppression.suppress(
            session, admin.organization_id, "sam.lee@example.net",
            SuppressionReason.UNSUBSCRIBED, source="portal",
            evidence="One-click unsubscribe from the invitation email.")
        context.uow.commit()
    suppression.add_suppression(context.uow, admin, "old.address@example.com",
                                "Moved abroad; asked us by phone to stop writing.")


class _ShowcaseReplica:
    """A replica that has been offline since a quarter of an hour ago, with three changes
    waiting and two the server refused: what the sync status and its dialog look like."""

    def __init__(self, created: datetime) -> None:
        self.since = created
        self.commands = [
            RejectedCommand(uuid.uuid4(), "invitation.revoke", "Revoke 1 invitation",
                            "Ana Lima accepted on 12 March before your revoke reached the "
                            "server; the invitation stays accepted.", created, created),
            RejectedCommand(uuid.uuid4(), "member.edit", "Change Bea Baker's role",
                            "Bea Baker's row was changed by Ada Admin on 12 March after you "
                            "read it; the server's version stays. Make the change again.",
                            created, created),
        ]

    def round(self) -> RoundReport:
        return RoundReport(None, None, online=False,
                           error="Cannot reach the server: connection refused")

    def status(self) -> SyncStatus:
        return SyncStatus(online=False, last_sync=self.since, waiting=3,
                          rejected=len(self.commands), offline_since=self.since,
                          error="Cannot reach the server: connection refused")

    def rejected(self) -> list[RejectedCommand]:
        return list(self.commands)

    def dismiss(self, command_id: uuid.UUID) -> None:
        pass


def _shoot_sync(camera: _Camera, context: app.AppContext, admin: Operator) -> None:
    """Replica mode's status bar (offline, changes waiting, rejected) and its dialog."""
    showcase = _ShowcaseReplica(datetime.now(UTC) - timedelta(minutes=15))
    replica_context = replace(context, replica=showcase,  # type: ignore[arg-type]
                              database_label=f"{context.database_label} (replica)")
    window = MainWindow(replica_context, admin, remember_geometry=False)
    window.resize(DEFAULT_SIZE)
    window.show_page("invitations")
    status = window.sync_status
    assert status is not None
    # The window is rendered, never shown: isVisible() stays False, so ask isHidden().
    _settle(camera.qapp, lambda: not status.rejected_button.isHidden())
    camera.shoot(window, "sync-status")
    status.show_rejected()
    dialog = status.dialog
    assert dialog is not None
    _settle(camera.qapp, lambda: len(dialog.commands) == 2)
    camera.shoot(dialog, "sync-rejected")
    dialog.close()
    if window.sync is not None:
        window.sync.stop()
    _discard(window)


def run_screenshots(db_url: str | None, directory: Path) -> int:
    """Render the windows to `directory`; returns the exit code."""
    _prefer_offscreen()
    directory.mkdir(parents=True, exist_ok=True)
    from invite_desk.services.demo import create_or_top_up
    from invite_desk.ui.main_window import default_settings_factory

    with ExitStack() as stack:
        if db_url is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix="invite-desk-screenshots-")))
            context = app.build(f"sqlite:///{folder / 'screenshots.sqlite3'}",
                                credentials=MemoryCredentialStore(), create=True)
        else:
            context = app.build(db_url, create=True)  # filled with the demo, like `demo`
        stack.callback(context.dispose)
        previous = install_qt_message_filter()
        stack.callback(qInstallMessageHandler, previous)
        qapp = create_application()
        camera = _Camera(qapp, directory)

        try:
            demo = create_or_top_up(context.uow, members=300)
            admin = auth.sign_in(context.uow, demo.admin_email, demo.password)
            member_email = demo.operators.get(Role.USER.name)
            member = (auth.sign_in(context.uow, member_email, demo.password)
                      if member_email else None)
            if db_url is None and member is not None:
                _restrict_sending_for_demo(context, admin)
            if db_url is None:
                _suppress_for_demo(context, admin)
        except DomainError as exc:
            print(f"invite-desk screenshots: {exc}", file=sys.stderr)
            return 1

        factory = default_settings_factory()
        _shoot_admin(camera, context, admin, add_examples=db_url is None)
        _shoot_setup(camera, context)
        _shoot_sign_in(camera, context, demo.admin_email)
        _shoot_main(camera, context, admin, factory, "main", every_page=True)
        if member is not None:
            _shoot_main(camera, context, member, factory, "main-as-member", every_page=False)
        if factory is None:
            print("invite-desk screenshots: the settings panel is not available; "
                  "its pages were skipped.", file=sys.stderr)
        readme = _Camera(qapp, directory / README_DIR)
        readme.directory.mkdir(exist_ok=True)
        _shoot_readme(readme, context, admin)
        settings_shot = directory / "settings-referrals.png"
        if settings_shot.exists():  # README shows this one as it is
            (readme.directory / settings_shot.name).write_bytes(settings_shot.read_bytes())
            print(readme.directory / settings_shot.name, flush=True)
        if factory is not None:
            _shoot_gamification(camera, context, admin)
        _shoot_referrals(camera, context, admin)
        _shoot_sync(camera, context, admin)
        for name in ("referrals-leaderboard.png", "referrals-trends.png"):
            (readme.directory / name).write_bytes((directory / name).read_bytes())
            print(readme.directory / name, flush=True)
    return 0
