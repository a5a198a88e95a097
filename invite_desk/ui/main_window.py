"""The main window: organization header, left navigation, one page per part of the app, and a
status bar saying who is signed in, with which role and unit, on which database."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, QModelIndex, QSettings, QSize, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QKeySequence,
    QPainter,
    QPaintEvent,
    QPalette,
    QStandardItem,
    QStandardItemModel,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListView,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from invite_desk import __version__
from invite_desk.services import local_config, organization, permissions, settings
from invite_desk.services.operator import Operator
from invite_desk.services.organization import OrganizationInfo
from invite_desk.services.permissions import Action, Decision
from invite_desk.services.roles import Role
from invite_desk.services.settings_schema import PolicySettings
from invite_desk.services.uow import UnitOfWork
from invite_desk.ui import theme
from invite_desk.ui.hub import (
    REFERRALS,
    SETTINGS,
    Changes,
    OperationsHub,
)
from invite_desk.ui.outbox import REQUESTER_NAMES, Outbox, keyring_password
from invite_desk.ui.placeholder import PlaceholderPage
from invite_desk.ui.sync_controller import SyncController, SyncSource
from invite_desk.ui.sync_status import SyncStatusWidget
from invite_desk.ui.widgets import PlainLabel, escaped, plain_tooltip, rich_label, tooltip_text

if TYPE_CHECKING:
    from invite_desk.app import AppContext

SettingsFactory = Callable[[UnitOfWork, Operator, QWidget | None], QWidget]

PAGE_KEY_ROLE = Qt.ItemDataRole.UserRole + 1
# Pages wider or taller than a small screen scroll inside the window instead of widening it.
FRAMED_PAGES = frozenset({"compose", "invitations", "referrals", "members", "applications",
                          "admin", "audit", "suppression"})
DEFAULT_SIZE = QSize(1200, 780)
# How long quitting waits for the send thread and the background work to end.
QUIT_WAIT_MS = 60_000

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PageSpec:
    key: str
    title: str  # in the navigation
    icon: str  # resources/icons/<icon>.svg
    heading: str  # on the placeholder while the page is not built
    summary: str
    plans: tuple[str, ...] = ()


PAGES: tuple[PageSpec, ...] = (
    PageSpec(
        "compose", "Compose", "compose", "Compose and send invitations",
        "Invite one person or thousands at once, with a personal message, sent from your "
        "organization's mail server.",
        ("Paste a list of addresses or import a CSV file; duplicates and existing members are "
         "flagged before anything is sent.",
         "Preview the branded email with your personal message.",
         "Send in the background with progress, pause and cancel, within your mail "
         "provider's rate limit."),
    ),
    PageSpec(
        "invitations", "Invitations", "invitations", "Track invitations",
        "Every invitation in your scope and where it stands, also while offline.",
        ("Pending, accepted, expired, revoked and failed invitations, with filters and search.",
         "Resend (with a fresh link), revoke or extend an invitation.",
         "See who invited whom and when each link expires."),
    ),
    PageSpec(
        "referrals", "Referrals", "referrals", "Referrals and leaderboard",
        "Who brought in whom over the last twelve months, and who your top recruiters are.",
        ("Referrals completed and pending, per member and per unit.",
         "A leaderboard to recognize or reward successful referrers.",
         "Progress toward numberOfReferralsNeededForSignup when registration is invite-only."),
    ),
    PageSpec(
        "members", "Members", "members", "Members",
        "Your organization's members, by unit and role.",
        ("Search and filter members; see who referred them.",
         "Change roles within your scope and give operators a password.",
         "Deactivate members (nothing is ever deleted)."),
    ),
    PageSpec(
        "applications", "Applications", "applications", "Membership applications",
        "When adhesion is required, new members wait here until HR or an admin approves them.",
        ("Review pending applications in your unit or across the organization.",
         "Approve or reject with a reason; the referral is completed on approval."),
    ),
    PageSpec(
        "settings", "Settings", "settings", "Organization settings",
        "Invitations, referrals, and your organization's name and branding.",
        ("Turn invitations on or off and choose who may send them.",
         "Referral tracking and invite-only registration.",
         "Name, description, logo, accent colour and registration web address."),
    ),
    PageSpec(
        "admin", "Units & events", "units", "Units and events",
        "Local chapters, and the events members invite guests to.",
    ),
    PageSpec(
        "audit", "Audit log", "audit", "Audit log",
        "Who did what, when, with the values before and after.",
    ),
    PageSpec(
        "suppression", "Suppression", "lock", "Suppression list",
        "Addresses no invitation may reach: bounced, unsubscribed, or added by an admin.",
        ("See why each address is suppressed (the bounce's status, the unsubscribe).",
         "Undo a suppression, or suppress an address by hand."),
    ),
)
# Administration pages: the lowest role that may open each (the services decide the rest).
PAGE_ROLES: dict[str, tuple[Role, str]] = {
    "admin": (Role.HR_LOCAL, "Units and events"),
    "audit": (Role.ADMIN_TENANT, "The audit log"),
    # Addresses of every unit: HR_TENANT and above, as VIEW_SUPPRESSION decides.
    "suppression": (Role.HR_TENANT, "The suppression list"),
}


def default_settings_factory() -> SettingsFactory | None:
    """The settings panel, or None while invite_desk.ui.settings is not installed."""
    try:
        from invite_desk.ui.settings.window import SettingsWindow
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.startswith("invite_desk.ui.settings"):
            return None
        raise
    return SettingsWindow


PageFactory = Callable[["AppContext", Operator], QWidget]


def default_page_factories() -> dict[str, PageFactory]:
    """The pages built so far; the others show their placeholder."""
    from invite_desk.ui.admin import audit_log_page, units_events_page
    from invite_desk.ui.applications import ApplicationsPage
    from invite_desk.ui.compose.window import ComposeWindow
    from invite_desk.ui.invitations import InvitationsWindow
    from invite_desk.ui.members.window import MembersWindow
    from invite_desk.ui.referrals import referrals_page

    return {
        "compose": ComposeWindow,
        "invitations": InvitationsWindow,
        "members": MembersWindow,
        "applications": ApplicationsPage,
        "admin": units_events_page,
        "audit": audit_log_page,
        "suppression": _suppression_page,
        "referrals": referrals_page,
    }


def _suppression_page(context: AppContext, operator: Operator, hub: OperationsHub) -> QWidget:
    from invite_desk.ui.settings.suppression_page import SuppressionPage

    return SuppressionPage(hub, operator, context=context)


def window_state_store() -> QSettings:
    """Window geometry, kept beside config.json (so INVITE_DESK_CONFIG_DIR moves it too)."""
    path = local_config.config_path().with_name("window-state.ini")
    return QSettings(str(path), QSettings.Format.IniFormat)


class ElidedLabel(PlainLabel):
    """A one-line label that shrinks with its window and elides its text (full text in the
    tooltip), so that a long database URL or description never widens the window."""

    def __init__(self, text: str = "", mode: Qt.TextElideMode = Qt.TextElideMode.ElideRight,
                 parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self._mode = mode
        self.setToolTip(plain_tooltip(text))
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt override)
        super().setText(text)
        self.setToolTip(plain_tooltip(text))

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        hint = super().minimumSizeHint()
        return QSize(min(hint.width(), 80), hint.height())

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        painter = QPainter(self)
        rect = self.contentsRect()
        text = self.fontMetrics().elidedText(self.text(), self._mode, rect.width())
        self.style().drawItemText(painter, rect, int(self.alignment()), self.palette(),
                                  self.isEnabled(), text, self.foregroundRole())


def role_text(role: Role) -> str:
    return f"{role.label} ({role.name})"


def unit_text(operator: Operator) -> str:
    if operator.role.is_tenant_wide:
        return "whole organization"
    return operator.unit_name or "no unit"


def denial_text(operator: Operator, decision: Decision, what: str) -> str:
    """Why `operator` may not do `what`, mirroring the PermissionDenied the service would raise."""
    parts: list[str] = []
    if operator.role < decision.needed:
        parts.append(
            f"{what} needs the {decision.needed.name} role ({decision.needed.label}) or higher; "
            f"you are signed in as {role_text(operator.role)}."
        )
    if decision.reason:
        parts.append(decision.reason)
    return " ".join(parts) or f"{what} is not available to you."


class MainWindow(QMainWindow):
    signed_out = Signal()  # the operator chose Sign out; the window closes right after
    closed = Signal()

    def __init__(
        self,
        context: AppContext,
        operator: Operator,
        settings_widget_factory: SettingsFactory | None = None,
        *,
        page_factories: dict[str, PageFactory] | None = None,
        remember_geometry: bool = True,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._context = context
        self.operator = operator
        self._remember_geometry = remember_geometry
        self._leaving_confirmed = False
        self.was_signed_out = False
        # One owner for the app's background work, and one for sending, shared by every page.
        self.hub = OperationsHub(self)
        replica = getattr(context, "replica", None)
        self.outbox = Outbox(context.engine, operator.organization_id, self.hub, self,
                             credentials=context.credentials,
                             password_source=keyring_password(context.credentials),
                             # replica mode: notification emails only on the server
                             notify_target=getattr(replica, "notification_engine", None),
                             # replica mode: invitations claimed on the server (exactly once)
                             send_link=getattr(replica, "send_link", None))
        self.hub.changed.connect(self._hub_changed)
        uow = context.uow
        self.policy: PolicySettings = settings.get_settings(uow, operator.organization_id)
        self.organization: OrganizationInfo = organization.get_organization(
            uow, operator.organization_id
        )
        self.setWindowIcon(theme.app_icon())
        screen = self.screen()
        self.resize(DEFAULT_SIZE.boundedTo(screen.availableSize()) if screen else DEFAULT_SIZE)

        central = QWidget()
        central.setObjectName("Central")
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self._build_header())
        accent_bar = QFrame()
        accent_bar.setObjectName("AccentBar")
        accent_bar.setFixedHeight(3)
        column.addWidget(accent_bar)
        body = QHBoxLayout()
        body.setContentsMargins(0, 0, 0, 0)
        body.setSpacing(0)
        body.addWidget(self._build_navigation())
        self.stack = QStackedWidget()
        self.stack.setObjectName("Pages")
        body.addWidget(self.stack, 1)
        column.addLayout(body, 1)
        self.setCentralWidget(central)

        factory = settings_widget_factory or default_settings_factory()
        self._page_factories = (
            default_page_factories() if page_factories is None else page_factories
        )
        self.pages: dict[str, QWidget] = {}
        self._frames: dict[str, QWidget] = {}
        for spec in PAGES:
            page = self._build_page(spec, factory)
            self.pages[spec.key] = page
            self.stack.addWidget(self._framed(spec.key, page))

        self._build_menus()
        self._build_status_bar()
        # Replica mode (issue 12): rounds with the server, their status, Sync now.
        self.sync: SyncController | None = None
        self.sync_status: SyncStatusWidget | None = None
        if replica is not None:
            self._build_sync(replica)
        self._show_organization()
        self._apply_permissions()
        self.nav_view.selectionModel().currentRowChanged.connect(self._on_nav_changed)
        self._select_first_enabled()
        self.nav_view.setFocus()
        if remember_geometry:
            self._restore_geometry()

    # -- building -------------------------------------------------------------------------

    def _build_header(self) -> QWidget:
        header = QFrame()
        header.setObjectName("AppHeader")
        row = QHBoxLayout(header)
        row.setContentsMargins(20, 12, 20, 12)
        row.setSpacing(14)
        self.logo_label = PlainLabel()
        self.logo_label.setObjectName("OrganizationLogo")
        row.addWidget(self.logo_label)
        titles = QVBoxLayout()
        titles.setSpacing(0)
        self.organization_label = PlainLabel()
        self.organization_label.setObjectName("OrganizationName")
        self.description_label = ElidedLabel()
        theme.set_variant(self.description_label, "muted")
        titles.addWidget(self.organization_label)
        titles.addWidget(self.description_label)
        row.addLayout(titles, 1)

        who = QVBoxLayout()
        who.setSpacing(0)
        name = PlainLabel(self.operator.name)
        name.setObjectName("HeaderOperator")
        name.setAlignment(Qt.AlignmentFlag.AlignRight)
        name.setStyleSheet("font-weight: 600;")
        detail = PlainLabel(f"{self.operator.role.label} · {unit_text(self.operator)}")
        detail.setAlignment(Qt.AlignmentFlag.AlignRight)
        theme.set_variant(detail, "small")
        who.addWidget(name)
        who.addWidget(detail)
        row.addLayout(who)
        self.sign_out_button = QPushButton(theme.icon("sign-out"), "Sign out")
        self.sign_out_button.setToolTip("Sign out and return to the sign-in window")
        self.sign_out_button.clicked.connect(self.sign_out)
        row.addWidget(self.sign_out_button)
        return header

    def _build_navigation(self) -> QWidget:
        panel = QFrame()
        panel.setObjectName("NavPanel")
        panel.setFixedWidth(216)
        layout = QVBoxLayout(panel)
        layout.setContentsMargins(10, 14, 10, 12)
        layout.setSpacing(8)
        self.nav_model = QStandardItemModel(self)
        self._items: dict[str, QStandardItem] = {}
        for number, spec in enumerate(PAGES, start=1):
            item = QStandardItem(theme.icon(spec.icon), spec.title)
            item.setData(spec.key, PAGE_KEY_ROLE)
            item.setEditable(False)
            item.setToolTip(f"{spec.heading} (Ctrl+{number})")
            self.nav_model.appendRow(item)
            self._items[spec.key] = item
        self.nav_view = QListView()
        self.nav_view.setObjectName("Nav")
        self.nav_view.setAccessibleName("Navigation")
        self.nav_view.setModel(self.nav_model)
        self.nav_view.setIconSize(QSize(20, 20))
        self.nav_view.setUniformItemSizes(True)
        self.nav_view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.nav_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.nav_view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.nav_view.setFrameShape(QFrame.Shape.NoFrame)
        layout.addWidget(self.nav_view, 1)
        self.compose_note = rich_label()
        self.compose_note.setObjectName("ComposeNote")
        self.compose_note.setWordWrap(True)
        theme.set_variant(self.compose_note, "small")
        self.compose_note.hide()
        layout.addWidget(self.compose_note)
        version = PlainLabel(f"Invite Desk {__version__}")
        theme.set_variant(version, "small")
        layout.addWidget(version)
        return panel

    def _framed(self, key: str, page: QWidget) -> QWidget:
        """Big pages scroll inside the window instead of forcing it wider than the screen."""
        if key not in FRAMED_PAGES:
            return page
        frame = QScrollArea()
        frame.setObjectName(f"{key}Frame")
        frame.setWidgetResizable(True)
        frame.setFrameShape(QFrame.Shape.NoFrame)
        frame.setWidget(page)
        self._frames[key] = frame
        return frame

    def _build_page(self, spec: PageSpec, factory: SettingsFactory | None) -> QWidget:
        if spec.key == "settings" and factory is not None:
            parameters = inspect.signature(factory).parameters
            if "credentials" in parameters:
                # Its reads and saves run on the app's hub; a save broadcasts {settings, referrals}.
                widget = factory(self._context.uow, self.operator, None,  # type: ignore[call-arg]
                                 credentials=self._context.credentials, hub=self.hub)
            else:  # e.g. a test stub: say so for it when it saved
                widget = factory(self._context.uow, self.operator, None)
                saved = getattr(widget, "settings_saved", None)
                if saved is not None:  # who may send, or the branding, may have changed
                    saved.connect(lambda: self.hub.broadcast({SETTINGS, REFERRALS}, widget))
            self._connect_history(widget)
            return widget
        page_factory = self._page_factories.get(spec.key)
        if page_factory is not None:
            page = page_factory(self._context, self.operator, **self._shared_for(page_factory))
            wants_settings = getattr(page, "email_settings_requested", None)
            if wants_settings is not None:
                wants_settings.connect(self._open_email_settings)
            wants_page = getattr(page, "settings_requested", None)
            if wants_page is not None:
                wants_page.connect(self.open_settings_page)
            self._connect_history(page)
            return page
        return PlaceholderPage(spec.heading, spec.summary, spec.plans,
                               icon=theme.icon(spec.icon))

    def _shared_for(self, factory: PageFactory) -> dict[str, object]:
        """The hub and the outbox, for the pages that take them (a test stub may not)."""
        try:
            parameters = inspect.signature(factory).parameters
        except (TypeError, ValueError):
            return {}
        shared: dict[str, object] = {"hub": self.hub, "outbox": self.outbox}
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            return shared  # a page taking SendingOptions (**options)
        return {name: value for name, value in shared.items() if name in parameters}

    def _connect_history(self, page: QWidget) -> None:
        """"History" links (a member, an invitation's detail pane, the settings) open the
        audit log filtered to that object."""
        for owner in (page, getattr(page, "detail", None)):
            wants = getattr(owner, "history_requested", None)
            if wants is not None:
                wants.connect(self.show_history)

    def show_history(self, entity_type: str, entity_id: object, title: str) -> bool:
        """The audit log, filtered to one object; False (and why) when it is not open to
        the operator."""
        if not self.show_page("audit"):
            return False
        show = getattr(self.pages.get("audit"), "show_history", None)
        if show is not None:
            show(entity_type, entity_id, title)
        return True

    def _hub_changed(self, changes: Changes) -> None:
        if changes.touches(SETTINGS):  # who may send, or the branding, may have changed
            self.refresh()

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = self.file_menu = bar.addMenu("&File")
        self.sign_out_action = QAction(theme.icon("sign-out"), "Sign &out", self)
        self.sign_out_action.triggered.connect(self.sign_out)
        file_menu.addAction(self.sign_out_action)
        file_menu.addSeparator()
        self.quit_action = QAction("&Quit", self)
        self.quit_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Quit))
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        self.quit_action.triggered.connect(self.close)
        file_menu.addAction(self.quit_action)

        go_menu = bar.addMenu("&Go")
        go_menu.setToolTipsVisible(True)
        self.page_actions: dict[str, QAction] = {}
        for number, spec in enumerate(PAGES, start=1):
            action = QAction(theme.icon(spec.icon), spec.title, self)
            action.setShortcut(QKeySequence(f"Ctrl+{number}"))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.triggered.connect(lambda _checked=False, key=spec.key: self.show_page(key))
            go_menu.addAction(action)
            self.page_actions[spec.key] = action

        help_menu = bar.addMenu("&Help")
        about = QAction("&About Invite Desk", self)
        about.triggered.connect(self._about)
        help_menu.addAction(about)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        bar.setSizeGripEnabled(False)
        self.status_labels: dict[str, QLabel] = {}
        self._status_lines: dict[str, QFrame] = {}
        entries = (
            ("operator", f"Signed in as {self.operator.name}"),
            ("role", role_text(self.operator.role)),
            ("unit", f"Unit: {unit_text(self.operator)}"),
            ("database", f"Database: {self._context.database_label}"),
        )
        for index, (key, text) in enumerate(entries):
            if index:
                line = QFrame()
                line.setFrameShape(QFrame.Shape.VLine)
                line.setStyleSheet("color: #C9CED6;")
                bar.addPermanentWidget(line)
                self._status_lines[key] = line
            # Every part elides (full text in its tooltip): the status bar never makes the
            # window wider than a small screen.
            label = ElidedLabel(text, Qt.TextElideMode.ElideMiddle if key == "database"
                                else Qt.TextElideMode.ElideRight)
            label.setObjectName(f"status_{key}")
            bar.addPermanentWidget(label)
            self.status_labels[key] = label

    def _build_sync(self, replica: SyncSource) -> None:
        self.sync = SyncController(replica, self.hub, self)
        self.sync.round_finished.connect(self.outbox.sync_round)  # queued emails, via the server
        self.sync_status = SyncStatusWidget(self.sync, self)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.VLine)
        line.setStyleSheet("color: #C9CED6;")
        bar = self.statusBar()
        bar.insertPermanentWidget(0, line)
        bar.insertPermanentWidget(0, self.sync_status)
        # Room for the sync state: who is signed in, their role and unit are in the header
        # already, so their status bar parts (elided to a few letters otherwise) go.
        for key in ("operator", "role", "unit"):
            self.status_labels[key].hide()
            if key in self._status_lines:
                self._status_lines[key].hide()
        self._status_lines["database"].hide()
        self.sync_action = QAction("S&ync now", self)
        self.sync_action.setShortcut(QKeySequence("Ctrl+Shift+Y"))
        self.sync_action.setToolTip("Send the changes made here and fetch the server's now")
        self.sync_action.triggered.connect(self.sync.sync_now)
        self.file_menu.insertAction(self.sign_out_action, self.sync_action)
        self.sync.start()

    # -- state ----------------------------------------------------------------------------

    def _show_organization(self) -> None:
        org = self.organization
        self.setWindowTitle(f"{org.name} · Invite Desk")
        self.organization_label.setText(org.name)
        description = " ".join(org.description.split())
        self.description_label.setText(description)
        self.description_label.setVisible(bool(description))
        self.logo_label.setPixmap(
            theme.logo_pixmap(org.logo, org.name, org.accent_color, 44)
        )
        self.setStyleSheet(theme.accent_stylesheet(org.accent_color))
        palette = self.palette()
        palette.setColor(QPalette.ColorRole.Highlight, theme.accent_colour(org.accent_color))
        self.setPalette(palette)

    def _apply_permissions(self) -> None:
        """Mirror the services' policy: Compose is disabled, with the reason, when sending isn't allowed."""
        decision = permissions.decide(self.operator, Action.SEND_INVITATIONS, settings=self.policy)
        item = self._items["compose"]
        action = self.page_actions["compose"]
        item.setEnabled(decision.allowed)
        action.setEnabled(decision.allowed)
        if decision.allowed:
            item.setToolTip("Compose and send invitations (Ctrl+1)")
            action.setToolTip("Compose and send invitations")
            self.compose_note.hide()
        else:
            reason = denial_text(self.operator, decision, "Sending invitations")
            item.setToolTip(plain_tooltip(reason))
            action.setToolTip(plain_tooltip(reason))
            self.compose_note.setText(f"<b>Compose is unavailable.</b> {escaped(reason)}")
            self.compose_note.show()
            if self.current_page_key() == "compose":
                self._select_first_enabled()
        for key, (needed, what) in PAGE_ROLES.items():
            if key not in self._items:
                continue
            allowed = self.operator.role >= needed
            self._items[key].setEnabled(allowed)
            self.page_actions[key].setEnabled(allowed)
            if not allowed:
                reason = denial_text(self.operator, Decision(False, needed), what)
                self._items[key].setToolTip(plain_tooltip(reason))
                self.page_actions[key].setToolTip(plain_tooltip(reason))

    def refresh(self) -> None:
        """Reload the organization and its policy (after settings were saved elsewhere), in
        the background; the header and the permissions follow when they are in."""
        uow = self._context.uow
        org_id = self.operator.organization_id

        def read() -> tuple[PolicySettings, OrganizationInfo]:
            return settings.get_settings(uow, org_id), organization.get_organization(uow, org_id)

        self.hub.query(self, read, self._refreshed,
                       lambda exc: log.warning("could not re-read the settings: %s", exc),
                       key="organization")

    def _refreshed(self, read: tuple[PolicySettings, OrganizationInfo]) -> None:
        self.policy, self.organization = read
        self._show_organization()
        self._apply_permissions()

    # -- navigation -----------------------------------------------------------------------

    def page_keys(self) -> list[str]:
        return [spec.key for spec in PAGES]

    def is_page_enabled(self, key: str) -> bool:
        return self._items[key].isEnabled()

    def page_tooltip(self, key: str) -> str:
        return self._items[key].toolTip()

    def current_page(self) -> QWidget | None:
        """The page shown now (not the scroll frame some pages sit in)."""
        key = self.current_page_key()
        return self.pages.get(key) if key is not None else None

    def current_page_key(self) -> str | None:
        index = self.nav_view.currentIndex()
        return index.data(PAGE_KEY_ROLE) if index.isValid() else None

    def show_page(self, key: str) -> bool:
        """Switch to page `key`; False (and the reason in the status bar) when it is disabled."""
        item = self._items[key]
        if not item.isEnabled():
            self.statusBar().showMessage(tooltip_text(item.toolTip()), 8000)
            return False
        self.nav_view.setCurrentIndex(item.index())
        return True

    def _select_first_enabled(self) -> None:
        for spec in PAGES:
            if self._items[spec.key].isEnabled():
                self.show_page(spec.key)
                return

    def _on_nav_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        key = current.data(PAGE_KEY_ROLE) if current.isValid() else None
        if key in self.pages:
            self.stack.setCurrentWidget(self._frames.get(key, self.pages[key]))

    # -- session --------------------------------------------------------------------------

    def sign_out(self) -> None:
        if not self._may_leave():
            return
        self._leaving_confirmed = True
        self.was_signed_out = True
        self.signed_out.emit()
        self.close()

    def open_settings_page(self, name: str) -> None:
        """Show Settings at page `name` as the services name it (SettingsIncomplete's
        settings_page: "organization", "email", "template", ...)."""
        self.show_page("settings")
        panel = self.pages.get("settings")
        show = getattr(panel, "show_page", None)
        names = getattr(panel, "page_names", None)
        if show is None or names is None:
            return
        available = names()
        wanted = name.lower()
        match = next((n for n in available if n == wanted), None) or next(
            (n for n in available if n.startswith(wanted) or wanted in n), None)
        if match is None and wanted == "email":
            match = next((n for n in available if "smtp" in n), None)
        if match is not None:
            show(match)

    def _open_email_settings(self) -> None:
        self.show_page("settings")
        panel = self.pages.get("settings")
        show = getattr(panel, "show_page", None)
        names = getattr(panel, "page_names", None)
        if show is not None and names is not None:
            email_pages = [n for n in names() if "smtp" in n.lower() or "email" in n.lower()]
            if email_pages:
                show(email_pages[0])

    def _may_leave(self) -> bool:
        """True unless invitations are sending, work is in flight, or settings are unsaved, and
        the operator says stay. Once they say go, waits for the send thread and the work."""
        current = self.outbox.current
        if current is not None:
            page = current.requester if current.requester in self.pages else None
            if page is not None:
                self.show_page(page)
            where = REQUESTER_NAMES.get(current.requester, current.requester)
            answer = QMessageBox.question(
                self,
                "Invitations are being sent",
                f"Invitations are still being sent (started from {where}). Stop after the "
                "current message and quit? The rest stays queued and can be sent later.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                QMessageBox.StandardButton.Cancel,
            )
            if answer != QMessageBox.StandardButton.Yes:
                return False
        elif self.hub.writes_in_flight:  # (reads in flight are simply waited for)
            answer = QMessageBox.question(
                self,
                "Changes are being saved",
                "Invite Desk is still saving a change in the background. Wait for it to "
                "finish and quit?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                QMessageBox.StandardButton.Cancel,
            )
            if answer != QMessageBox.StandardButton.Yes:
                return False
        panel = self.pages.get("settings")
        unsaved = getattr(panel, "has_unsaved_changes", None)
        if unsaved is None or not unsaved():
            return True
        self.show_page("settings")
        answer = QMessageBox.question(
            self,
            "Unsaved settings",
            "Your changes to the settings are not saved yet. Discard them?",
            QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Discard

    def finish_background_work(self, wait_ms: int = QUIT_WAIT_MS) -> bool:
        """Stop the send after its current message and wait for the send thread and the
        background work to end; True when nothing is left running."""
        if self.sync is not None:
            self.sync.stop()
        stopped = self.outbox.stop(wait_ms)
        finished = self.hub.shutdown(wait_ms)
        return stopped and finished

    def _about(self) -> None:
        QMessageBox.about(
            self,
            "About Invite Desk",
            f"<b>Invite Desk {__version__}</b><p>Invitations and referrals for membership "
            "organizations.</p>",
        )

    def _restore_geometry(self) -> None:
        saved = window_state_store().value("MainWindow/geometry")
        if isinstance(saved, QByteArray) and not saved.isEmpty():
            self.restoreGeometry(saved)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        if not self._leaving_confirmed and not self._may_leave():
            event.ignore()
            return
        self._leaving_confirmed = True
        self.finish_background_work()
        if self._remember_geometry:
            store = window_state_store()
            store.setValue("MainWindow/geometry", self.saveGeometry())
            store.sync()
        super().closeEvent(event)
        self.closed.emit()
