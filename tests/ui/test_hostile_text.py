"""Data typed by other people is shown literally in every window, pane, dialog and tooltip.

The demo organization is filled with HTML in every person, organization, unit, event, batch,
message, application and error field; then every window is opened and walked: labels, item
views (display and tooltip roles), tooltips, titles, tabs, combo boxes and buttons. A value such
as `<b>Zorg</b>` must read `<b>Zorg</b>`, never a bold `Zorg`; `<img src="/dev/zero">` must read
as typed (a rich-text label would read /dev/zero until the app runs out of memory: the test
caps the process's memory so that such a regression fails fast instead of swapping).
"""

from __future__ import annotations

import re
import resource
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6 import QtGui
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QComboBox,
    QGroupBox,
    QLabel,
    QTabBar,
    QWidget,
)
from pytestqt.qtbot import QtBot
from sqlalchemy import Engine, literal, select, update

from invite_desk.app import AppContext
from invite_desk.services import auth
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.demo import create_or_top_up
from invite_desk.services.errors import DomainError
from invite_desk.services.models import (
    Batch,
    Event,
    EventGuest,
    Invitation,
    Member,
    Organization,
    Unit,
)
from invite_desk.services.operator import Operator
from invite_desk.services.uow import UnitOfWork
from invite_desk.ui import widgets
from invite_desk.ui.main_window import MainWindow, default_settings_factory
from invite_desk.ui.setup_dialog import SetupDialog
from invite_desk.ui.sign_in_dialog import SignInDialog
from invite_desk.ui.tasks import SynchronousRunner

IMG = '<img src="/dev/zero">'
# Each marker word is wrapped in a tag: if the word shows without its tag, Qt rendered HTML.
FIRST = f"{IMG}<b>Zfirst</b>"
LAST = "<script>Zlast</script>"
ORG = f"<b>Zorg</b> {IMG}"
DESCRIPTION = "<i>Zdesc</i><script>alert(1)</script>"
UNIT = "<u>Zunit</u>"
EVENT = "<s>Zevent</s>"
LOCATION = "<em>Zplace</em>"
BATCH = "<b>Zbatch</b>"
MESSAGE = f"<h1>Zmsg</h1>{IMG}"
REASON = f"<b>Zreason</b>{IMG}"
ERROR = "<b>Zerror</b>"
GUEST = "<tt>Zguest</tt>"
HOSTILE = (FIRST, LAST, ORG, DESCRIPTION, UNIT, EVENT, LOCATION, BATCH, MESSAGE, REASON, ERROR,
           GUEST)
MARKER = re.compile(r"Z(first|last|org|desc|unit|event|place|batch|msg|reason|error|guest)\b")
MARKUP = re.compile(r"</?(span|p|b|i|br|div|ul|li|h\d)\b[^>]*>")
OPENING = {f"Z{m.group(1)}": v[:m.start()] for v in HOSTILE if (m := MARKER.search(v))}


@pytest.fixture(autouse=True)
def _memory_cap() -> Iterator[None]:
    """A rendered <img src=/dev/zero> fails the test (std::bad_alloc) instead of the machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    in_use = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    cap = in_use + 3 * 1024**3
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.fixture
def hostile(engine: Engine, uow: UnitOfWork) -> tuple[AppContext, Operator]:
    demo = create_or_top_up(uow, members=40)
    with uow:
        s = uow.session
        s.execute(update(Organization).values(name=ORG, description=DESCRIPTION))
        s.execute(update(Member).values(first_name=FIRST, last_name=LAST, adhesion_reason=REASON))
        s.execute(update(Unit).values(name=literal(UNIT + " ").concat(Unit.name)))
        s.execute(update(Event).values(name=literal(EVENT + " ").concat(Event.name),
                                       location=LOCATION))
        s.execute(update(Batch).values(label=BATCH, personal_message=MESSAGE))
        s.execute(update(Invitation).values(name=f"{FIRST} {LAST}", personal_message=MESSAGE))
        s.execute(update(Invitation).where(Invitation.last_error != "").values(last_error=ERROR))
        s.execute(update(EventGuest).values(first_name=GUEST, last_name=LAST))
        uow.commit()
    context = AppContext(engine=engine, uow=uow, credentials=MemoryCredentialStore(),
                         database_label=f"sqlite://{ORG}")
    return context, auth.sign_in(uow, demo.admin_email, demo.password)


# ------------------------------------------------------------------------- what is shown
def _document_text(html: str) -> str:
    doc = QtGui.QTextDocument()
    doc.setHtml(html)
    return doc.toPlainText()


def label_text(label: QLabel) -> str:
    """What `label` shows a person, as Qt decides it."""
    text = label.text()
    fmt = label.textFormat()
    if fmt == Qt.TextFormat.RichText or (
            fmt == Qt.TextFormat.AutoText and QtGui.Qt.mightBeRichText(text)):
        return _document_text(text)
    return text


def _model_texts(view: QAbstractItemView) -> Iterator[tuple[str, str]]:
    model = view.model()
    if model is None:
        return
    for row in range(min(model.rowCount(QModelIndex()), 60)):
        for column in range(model.columnCount(QModelIndex())):
            index = model.index(row, column)
            shown = index.data(Qt.ItemDataRole.DisplayRole)
            if isinstance(shown, str):
                yield f"{type(view).__name__} cell", shown
            tip = index.data(Qt.ItemDataRole.ToolTipRole)
            if isinstance(tip, str):
                yield f"{type(view).__name__} tooltip", widgets.tooltip_text(tip)


def shown_texts(root: QWidget) -> list[tuple[str, str]]:
    """(where, text) for everything `root` and its children show or would show on hover."""
    texts: list[tuple[str, str]] = [("window title", root.windowTitle())]
    for widget in [root, *root.findChildren(QWidget)]:
        name = f"{type(widget).__name__} {widget.objectName()}".strip()
        if widget.toolTip():
            texts.append((f"{name} tooltip", widgets.tooltip_text(widget.toolTip())))
        if isinstance(widget, QLabel):
            texts.append((name, label_text(widget)))
        elif isinstance(widget, QAbstractButton):
            texts.append((name, widget.text()))
        elif isinstance(widget, QGroupBox):
            texts.append((name, widget.title()))
        elif isinstance(widget, QComboBox):
            texts.extend((name, widget.itemText(i)) for i in range(widget.count()))
        elif isinstance(widget, QTabBar):
            for i in range(widget.count()):
                texts.append((name, widget.tabText(i)))
                texts.append((f"{name} tooltip", widgets.tooltip_text(widget.tabToolTip(i))))
        elif isinstance(widget, QAbstractItemView):
            texts.extend(_model_texts(widget))
    for action in root.findChildren(QAction):
        texts.append(("action", action.text()))
        texts.append(("action tooltip", widgets.tooltip_text(action.toolTip())))
    return texts


def assert_literal(root: QWidget, *expected: str) -> str:
    """Every hostile value `root` shows reads as typed; `expected` values are among them."""
    texts = shown_texts(root)
    for label in [*([root] if isinstance(root, QLabel) else []), *root.findChildren(QLabel)]:
        raw = label.text()
        if label.textFormat() != Qt.TextFormat.PlainText:
            # Rich text is only for HTML the code composed, with the data escaped in it.
            assert not any(value in raw for value in HOSTILE), (label.objectName(), raw)
            assert "<img" not in raw, raw
        else:
            # A plain label must not show the code's own markup either.
            rest = raw
            for value in HOSTILE:
                rest = rest.replace(value, "")
            assert not MARKUP.search(rest), f"{label.objectName()} shows markup: {raw!r}"
    for where, text in texts:
        for match in MARKER.finditer(text):
            word = match.group(0)
            opening = OPENING[word]
            assert text[:match.start()].endswith(opening), (
                f"{where} renders {opening}{word} as HTML: {text!r}")
    everything = "\n".join(text for _, text in texts)
    for value in expected:
        assert value in everything, f"{value!r} is not shown literally in {root!r}"
    return everything


def wait_idle(qtbot: QtBot) -> None:
    from PySide6.QtCore import QThreadPool

    qtbot.waitUntil(lambda: QThreadPool.globalInstance().activeThreadCount() == 0,
                    timeout=20_000)
    qtbot.wait(20)


# ----------------------------------------------------------------------------------- tests
def test_every_page_of_the_main_window_shows_hostile_values_literally(
    qtbot: QtBot, hostile: tuple[AppContext, Operator]
) -> None:
    context, admin = hostile
    window = MainWindow(context, admin, default_settings_factory(), remember_geometry=False)
    qtbot.addWidget(window)
    window.resize(1600, 1000)
    window.show()
    wait_idle(qtbot)
    assert window.windowTitle() == f"{ORG} · Invite Desk"
    assert_literal(window, ORG)

    for key in window.page_keys():
        if window.show_page(key):
            wait_idle(qtbot)
            assert_literal(window, ORG)

    # Invitations: the table, the detail pane and its history.
    window.show_page("invitations")
    invitations = window.pages["invitations"]
    from invite_desk.services.tracking import Tab

    invitations.set_tab(Tab.ALL)  # type: ignore[attr-defined]
    wait_idle(qtbot)
    def detail_shown() -> bool:
        if invitations.model.row_at(0) is None:  # type: ignore[attr-defined]
            return False
        if not invitations.selected_rows():  # type: ignore[attr-defined]
            invitations.select_rows([0])  # type: ignore[attr-defined]
        return invitations.detail.detail is not None  # type: ignore[attr-defined]

    qtbot.waitUntil(detail_shown, timeout=10_000)
    assert_literal(invitations, f"{FIRST} {LAST}", MESSAGE)
    assert_literal(invitations.detail, FIRST)  # type: ignore[attr-defined]

    # The history from the audit log: the actor's name, the entry's details.
    from invite_desk.services.models import utcnow
    from invite_desk.services.tracking import invitation_detail, revoke_invitations

    with context.uow:
        pending = context.uow.session.scalars(
            select(Invitation.id).where(Invitation.status == "sent")).first()
    assert pending is not None
    revoke_invitations(context.uow, admin, [pending], now=utcnow())
    detail = invitation_detail(context.uow, admin, pending, utcnow())
    assert detail.from_audit
    invitations.detail.show_detail(detail)  # type: ignore[attr-defined]
    assert_literal(invitations.detail, FIRST, BATCH)  # type: ignore[attr-defined]
    assert f"{FIRST} {LAST}" in invitations.detail.history_text()  # type: ignore[attr-defined]

    # Members: the table and one member's page.
    window.show_page("members")
    members = window.pages["members"]
    wait_idle(qtbot)
    qtbot.waitUntil(lambda: members.model.rowCount() > 0)  # type: ignore[attr-defined]
    members.select_row(0)  # type: ignore[attr-defined]
    qtbot.waitUntil(lambda: members.page.activity is not None)  # type: ignore[attr-defined]
    assert_literal(members, FIRST, LAST, UNIT)

    # Applications: the table and one application's details.
    window.show_page("applications")
    applications = window.pages["applications"]
    wait_idle(qtbot)
    rows = applications.visible_rows()  # type: ignore[attr-defined]
    assert rows, "the demo has applications"
    applications.select_members([rows[0].member_id])  # type: ignore[attr-defined]
    detail = applications.detail  # type: ignore[attr-defined]
    qtbot.waitUntil(lambda: "Loading" not in detail.history_label.text())
    assert_literal(applications, FIRST, LAST)

    # Settings: every page.
    window.show_page("settings")
    panel = window.pages["settings"]
    for name in panel.page_names():  # type: ignore[attr-defined]
        panel.show_page(name)  # type: ignore[attr-defined]
        wait_idle(qtbot)
        assert_literal(window, ORG)


def test_compose_preflight_and_preview_show_an_invitee_name_literally(
    qtbot: QtBot, hostile: tuple[AppContext, Operator]
) -> None:
    context, admin = hostile
    window = MainWindow(context, admin, default_settings_factory(), remember_geometry=False)
    qtbot.addWidget(window)
    window.show()
    window.show_page("compose")
    compose = window.pages["compose"]
    compose.email_edit.setText("zed@example.net")  # type: ignore[attr-defined]
    compose.name_edit.setText(FIRST)  # type: ignore[attr-defined]
    compose.check()  # type: ignore[attr-defined]
    qtbot.waitUntil(lambda: compose.model.rowCount() == 1, timeout=20_000)  # type: ignore[attr-defined]
    wait_idle(qtbot)
    assert_literal(compose, FIRST, EVENT)
    compose.show_preview()  # type: ignore[attr-defined]
    wait_idle(qtbot)
    preview = compose.preview_dialog  # type: ignore[attr-defined]
    assert preview is not None
    assert_literal(preview, f"{FIRST} <zed@example.net>", ORG)


def test_a_member_sees_the_compose_note_and_their_unit_literally(
    qtbot: QtBot, hostile: tuple[AppContext, Operator]
) -> None:
    from invite_desk.services import settings
    from invite_desk.services.demo import DEMO_PASSWORD
    from invite_desk.services.roles import Role

    context, admin = hostile
    settings.update_settings(context.uow, admin, {"who_can_send_user_invitation": Role.HR_LOCAL})
    with context.uow:
        email = context.uow.session.scalars(
            select(Member.email).where(Member.role == Role.USER.name,
                                       Member.password_hash.is_not(None))).first()
    assert email is not None
    member = auth.sign_in(context.uow, email, DEMO_PASSWORD)
    window = MainWindow(context, member, default_settings_factory(), remember_geometry=False)
    qtbot.addWidget(window)
    window.show()
    wait_idle(qtbot)
    assert not window.compose_note.isHidden()
    assert_literal(window, ORG, FIRST, UNIT)


def test_sign_in_and_setup_dialogs_show_typed_values_literally(
    qtbot: QtBot, hostile: tuple[AppContext, Operator]
) -> None:
    context, _admin = hostile
    dialog = SignInDialog(context.uow, database_label=context.database_label,
                          email=f"{IMG}@example.org", runner=SynchronousRunner())
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.password_edit.setText("wrong")
    dialog.submit()
    assert_literal(dialog, f"sqlite://{ORG}")

    setup = SetupDialog(context.uow, runner=SynchronousRunner())
    qtbot.addWidget(setup)
    setup.show()
    setup.organization_name_edit.setText(ORG)
    setup.email_edit.setText(f"{IMG}")
    setup.registration_url_edit.setText(f"{IMG}")
    setup.password_edit.setText("short")
    setup.confirm_edit.setText("short")
    setup.submit()
    assert_literal(setup)


def test_a_failure_message_box_is_plain_text(qtbot: QtBot) -> None:
    box = widgets.message_box(None, widgets.QMessageBox.Icon.Warning, "Invite Desk",
                              str(DomainError(f"{FIRST} could not be reached")),
                              informative=ORG)
    qtbot.addWidget(box)
    box.show()
    assert box.textFormat() == Qt.TextFormat.PlainText
    assert_literal(box, FIRST, ORG)


UI = Path(__file__).resolve().parents[2] / "invite_desk" / "ui"


def test_no_label_in_the_desktop_guesses_rich_text() -> None:
    """Static guard: labels are PlainLabel, or built by rich_label with escaped data; message
    boxes go through widgets.message_box (QMessageBox's static helpers guess rich text)."""
    offenders = []
    for path in sorted(UI.rglob("*.py")):
        if path.name == "widgets.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"(?<![\w.])QLabel\(", code) or re.search(
                    r"QMessageBox\.(warning|information|critical)\(", code):
                offenders.append(f"{path.relative_to(UI)}:{number}: {line.strip()}")
    assert offenders == []
