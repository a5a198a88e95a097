"""The Invite composer: paste, import, pre-flight, preview, send with progress, cancel, permissions.

Most background work runs synchronously (SynchronousRunner); the CSV import uses the real
thread pool and every send uses the real QThread worker against a loopback SMTP server.
Each test asserts what the operator sees and what the database or the server holds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QTimer, QUrl
from PySide6.QtGui import QColor, QImage, QTextDocument
from PySide6.QtWidgets import QApplication
from sqlalchemy import select
from sqlalchemy.engine import Engine

from invite_desk.app import AppContext
from invite_desk.services import mail_settings, organization
from invite_desk.services import settings as settings_service
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.email.templates import DEFAULT_LOGO_CID
from invite_desk.services.errors import SettingsIncomplete
from invite_desk.services.invitations.importing import parse_pasted
from invite_desk.services.invitations.preflight import RowStatus, run_preflight
from invite_desk.services.invitations.queueing import queue_invitations
from invite_desk.services.invitations.sending import SendProgress
from invite_desk.services.mail_settings import MailSettings
from invite_desk.services.members_lookup import search_members
from invite_desk.services.models import Batch, Event, Invitation
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from invite_desk.ui.compose import ComposeWindow
from invite_desk.ui.compose.preflight_model import Column
from invite_desk.ui.compose.window import InputMode
from invite_desk.ui.outbox import SendStart
from invite_desk.ui.password_prompt import (
    PasswordAnswer,
    PasswordPrompt,
    ask_smtp_password,
    remember_password,
)
from invite_desk.ui.tasks import SynchronousRunner
from tests.conftest import MakeOperator
from tests.smtp_server import LoopbackSmtpServer
from tests.ui.conftest import Confirmations

SEND_TIMEOUT_MS = 20_000


# -------------------------------------------------------------------------------- fixtures
@pytest.fixture
def context(engine: Engine, uow: UnitOfWork, credentials: MemoryCredentialStore) -> AppContext:
    return AppContext(engine=engine, uow=uow, credentials=credentials, database_label="test")


MakeWindow = Callable[..., ComposeWindow]


@pytest.fixture
def make_window(qtbot: Any, context: AppContext, admin: Operator) -> Iterator[MakeWindow]:
    windows: list[ComposeWindow] = []

    def make(operator: Operator | None = None, *, threaded: bool = False, **kw: Any) -> ComposeWindow:
        if not threaded:
            kw.setdefault("runner", SynchronousRunner())
        window = ComposeWindow(context, operator or admin, **kw)
        qtbot.addWidget(window)
        window.resize(1200, 780)
        windows.append(window)
        return window

    yield make
    for window in windows:  # never leave a sending thread behind
        assert window.stop_sending(30_000)


def configure_smtp(uow: UnitOfWork, admin: Operator, server: LoopbackSmtpServer, **extra: Any) -> None:
    values = {"host": server.host, "port": server.port, "security": "none",
              "from_address": "invitations@rowing.example", "from_name": "Harbour Rowing Club",
              "rate_per_minute": 0}
    values.update(extra)
    mail_settings.update_mail_settings(uow, admin, values)


def paste_and_check(window: ComposeWindow, text: str) -> None:
    window.set_input_mode(InputMode.PASTE)
    window.paste_edit.setPlainText(text)
    assert window.check_button.isEnabled()
    window.check_button.click()


def statuses(uow: UnitOfWork) -> dict[str, str]:
    with uow:
        return {i.email: i.status for i in uow.session.scalars(select(Invitation))}


def shown_statuses(window: ComposeWindow) -> list[tuple[str, str]]:
    proxy = window.proxy
    return [(proxy.index(r, Column.EMAIL).data(), proxy.index(r, Column.STATUS).data())
            for r in range(proxy.rowCount())]


def png_logo(colour: str = "#F5B700") -> bytes:
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice

    image = QImage(8, 8, QImage.Format.Format_RGB32)
    image.fill(QColor(colour))
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    buffer.close()
    return bytes(data.data())


# -------------------------------------------------------------------------------- pre-flight
def test_pasted_list_shows_each_status_and_the_counts(
    make_window: MakeWindow, uow: UnitOfWork, admin: Operator
) -> None:
    already = run_preflight(uow, admin.organization_id, parse_pasted("pending@example.org").rows)
    queue_invitations(uow, admin, already.ready)
    window = make_window()
    assert not window.send_button.isEnabled()
    assert window.placeholder is window.table_stack.currentWidget()

    paste_and_check(window, "\n".join([
        "zoe@example.org",
        "Grace Hopper <grace@example.org>",
        "not-an-address",
        "ZOE@example.org",
        "ada.admin@example.org",
        "pending@example.org",
    ]))

    assert shown_statuses(window) == [
        ("zoe@example.org", "Ready"),
        ("grace@example.org", "Ready"),
        ("not-an-address", "Invalid"),
        ("ZOE@example.org", "Duplicate in batch"),
        ("ada.admin@example.org", "Already a member"),
        ("pending@example.org", "Already queued"),  # queued, not yet sent (issue 8, item 3)
    ]
    assert window.counts_label.text() == (
        "2 ready, 1 invalid, 1 duplicate, 1 already a member, 1 already queued")
    invalid_reason = window.proxy.index(2, Column.REASON).data()
    assert "@" in invalid_reason  # email-validator's reason, e.g. "must have an @-sign"
    assert window.proxy.index(3, Column.REASON).data() == "Same address as row 1."
    assert window.proxy.index(1, Column.NAME).data() == "Grace Hopper"
    assert window.send_button.isEnabled() and window.send_button.text() == "Send 2 invitations"
    assert window.table_stack.currentWidget() is window.table

    window.problems_check.setChecked(True)
    assert [email for email, _ in shown_statuses(window)] == [
        "not-an-address", "ZOE@example.org", "ada.admin@example.org", "pending@example.org"]
    window.problems_check.setChecked(False)
    assert window.proxy.rowCount() == 6
    # Checking saves nothing.
    assert set(statuses(uow)) == {"pending@example.org"}


def test_editing_after_the_check_requires_a_new_check(make_window: MakeWindow) -> None:
    window = make_window()
    paste_and_check(window, "a@example.org\nb@example.org")
    assert window.send_button.isEnabled()
    window.paste_edit.appendPlainText("c@example.org")
    assert not window.send_button.isEnabled()
    assert not window.stale_label.isHidden() and "Check addresses again" in window.stale_label.text()
    window.check_button.click()
    assert window.send_button.text() == "Send 3 invitations" and window.stale_label.isHidden()


def test_one_invitee_with_a_name(make_window: MakeWindow) -> None:
    window = make_window()
    assert window.input_mode is InputMode.ONE and not window.check_button.isEnabled()
    window.email_edit.setText("  new.person@Example.ORG ")
    window.name_edit.setText("New\r\nPerson")  # CR/LF never survive into a name
    window.check_button.click()
    assert shown_statuses(window) == [("new.person@example.org", "Ready")]
    assert window.proxy.index(0, Column.NAME).data() == "New Person"


@pytest.mark.parametrize(("typed", "name", "shown"), [
    ("Ann Lee <ann.lee@example.org>", "", ("ann.lee@example.org", "Ann Lee")),  # from Outlook
    ('"Lee, Ann" <ann.lee@example.org>', "Ann", ("ann.lee@example.org", "Ann")),  # typed wins
    ("mailto:ann.lee@example.org", "", ("ann.lee@example.org", "")),
    ("ann.lee@example.org;", "", ("ann.lee@example.org", "")),
])
def test_one_invitee_pasted_the_way_mail_programs_copy_an_address(
    make_window: MakeWindow, typed: str, name: str, shown: tuple[str, str],
) -> None:
    window = make_window()
    window.email_edit.setText(typed)
    window.name_edit.setText(name)
    window.check_button.click()
    assert shown_statuses(window) == [(shown[0], "Ready")]
    assert window.proxy.index(0, Column.NAME).data() == shown[1]


def test_two_addresses_in_the_one_invitee_field_are_both_shown_as_problems(
    make_window: MakeWindow,
) -> None:
    window = make_window()
    window.email_edit.setText("ann@example.org, bo@example.org")
    window.check_button.click()
    assert [e for e, _ in shown_statuses(window)] == ["ann@example.org", "bo@example.org"]
    assert {s for _, s in shown_statuses(window)} == {"Invalid"}
    assert not window.send_button.isEnabled()


@pytest.mark.parametrize("mode", ["paste", "csv"])
def test_a_long_pre_flight_summary_wraps_instead_of_widening_the_window(
    make_window: MakeWindow, tmp_path: Path, mode: str,
) -> None:
    """Four kinds of rows made the counts line ~110 characters: the window's minimum width
    went past 1200 px and the right edge (Show only problems, Send) was cut off."""
    window = make_window()
    window.show()
    rows = "ann@example.org\nANN@example.org\nmüller@example.org\nnot-an-address\nzoë@example.org\n"
    if mode == "paste":
        paste_and_check(window, rows)
    else:
        path = tmp_path / "list.csv"
        path.write_text("email\n" + rows, encoding="utf-8")
        window.import_csv(path)
    counts = window.counts_label
    assert "international" in counts.text()
    # The app's theme (bigger font) made the line alone need 514 px: it must be able to wrap.
    full = counts.fontMetrics().horizontalAdvance(counts.text())
    assert counts.minimumSizeHint().width() < full / 2
    assert window.minimumSizeHint().width() <= 1200
    assert window.send_button.geometry().right() <= window.width()
    right = window.problems_check.mapTo(window, window.problems_check.rect().topRight())
    assert right.x() <= window.width()


# -------------------------------------------------------------------------------- CSV import
def test_csv_files_in_utf8_with_bom_and_in_latin1_are_imported(
    make_window: MakeWindow, qtbot: Any, tmp_path: Path
) -> None:
    window = make_window(threaded=True)  # the real thread pool
    utf8 = tmp_path / "members.csv"
    utf8.write_bytes("\ufeffEmail;Name;Message\n"
                     "zoe@example.org;Zoë Martin;Bienvenue !\n"
                     "bad@@example.org;Broken;\n"
                     "sam@example.org;Sam Weiß;\n".encode())
    window.import_csv(utf8)
    qtbot.waitUntil(lambda: window.preflight is not None and not window._busy, timeout=10_000)
    assert shown_statuses(window) == [("zoe@example.org", "Ready"),
                                      ("bad@@example.org", "Invalid"),
                                      ("sam@example.org", "Ready")]
    assert window.proxy.index(0, Column.NAME).data() == "Zoë Martin"
    assert window.proxy.index(2, Column.NAME).data() == "Sam Weiß"
    assert window.preflight is not None and window.preflight.rows[0].message == "Bienvenue !"
    assert window.csv_file_label.text() == "members.csv: 3 rows"
    assert window.csv_notes.isHidden()  # nothing to report about a clean UTF-8 file
    assert window.counts_label.text() == "2 ready, 1 invalid"

    latin1 = tmp_path / "export.csv"
    latin1.write_bytes("email,name\njose@example.org,José Núñez\nrene@example.org,René\n"
                       .encode("latin-1"))
    window.import_csv(latin1)
    qtbot.waitUntil(lambda: window.csv_file_label.text().startswith("export.csv")
                    and not window._busy, timeout=10_000)
    qtbot.waitUntil(lambda: window.proxy.rowCount() == 2, timeout=10_000)
    assert [window.proxy.index(r, Column.NAME).data() for r in range(2)] == ["José Núñez", "René"]
    assert not window.csv_notes.isHidden()
    assert "read as Latin-1" in window.csv_notes.text()
    assert window.send_button.text() == "Send 2 invitations"


def test_a_csv_without_an_email_column_is_refused_clearly(
    make_window: MakeWindow, tmp_path: Path
) -> None:
    window = make_window()
    path = tmp_path / "phones.csv"
    path.write_text("name;phone\nZoë;0601020304\n", encoding="utf-8")
    window.import_csv(path)
    assert window.csv_error.kind == "error"
    assert "No email column" in window.csv_error.text and "name, phone" in window.csv_error.text
    assert window.preflight is None and not window.send_button.isEnabled()

    workbook = tmp_path / "members.xlsx"
    workbook.write_bytes(b"PK\x03\x04\x14\x00\x06\x00" + bytes(64))
    window.import_csv(workbook)
    assert "Excel workbook" in window.csv_error.text and "CSV UTF-8" in window.csv_error.text

    unicode_text = tmp_path / "utf16.txt"  # Excel's "Unicode Text": read like any CSV
    unicode_text.write_bytes("email\tname\nzoe@example.org\tZoë\n".encode("utf-16"))
    window.import_csv(unicode_text)
    assert window.csv_error.text == ""
    assert window.preflight is not None
    assert [(r.email, r.name) for r in window.preflight.rows] == [("zoe@example.org", "Zoë")]


# -------------------------------------------------------------------------------- preview
def test_preview_shows_the_org_the_inviter_and_the_escaped_message(
    make_window: MakeWindow, uow: UnitOfWork, admin: Operator
) -> None:
    logo = png_logo()
    organization.update_organization(uow, admin, {"logo": logo, "logo_mime": "image/png",
                                                  "accent_color": "#0B7A75"})
    window = make_window()
    window.message_edit.setPlainText("Come row with us! <b>{{ 7*7 }}</b> & bring a friend")
    paste_and_check(window, "Zoë Martin <zoe@example.org>\nsam@example.org")
    window.preview_button.click()
    dialog = window.preview_dialog
    assert dialog is not None and dialog.isVisible()
    pane = dialog.pane

    assert pane.subject == "Ada Admin invited you to join Harbour Rowing Club"
    assert pane.to_label.text() == "Zoë Martin <zoe@example.org>"
    shown = pane.html_text
    assert "Harbour Rowing Club" in shown and "Ada Admin" in shown and "Hello Zoë Martin" in shown
    # Escaped: the markup and the Jinja syntax are shown as typed, never executed.
    assert "<b>{{ 7*7 }}</b> & bring a friend" in shown and "49" not in shown
    html = pane.html_view.toHtml()
    assert "&lt;b&gt;{{ 7*7 }}&lt;/b&gt;" in html
    assert "https://join.example.org/join/PREVIEW-TOKEN" in shown
    assert "{{ 7*7 }}" in pane.text_view.toPlainText()
    # The logo the email carries as a CID part is shown from memory.
    image = pane.html_view.loadResource(QTextDocument.ResourceType.ImageResource,
                                        QUrl(f"cid:{DEFAULT_LOGO_CID}"))
    assert isinstance(image, QImage) and not image.isNull()
    assert pane.html_view.loadResource(QTextDocument.ResourceType.ImageResource,
                                       QUrl("https://tracker.example/pixel.gif")) is None

    # The preview follows the selected row and the message.
    window.table.selectRow(1)
    assert pane.to_label.text() == "sam@example.org"
    assert "Hello," in pane.html_text
    window.message_edit.setPlainText("See you Tuesday")
    assert "See you Tuesday" in pane.html_text


def test_guest_invitations_name_the_event(
    make_window: MakeWindow, uow: UnitOfWork, admin: Operator
) -> None:
    with uow:
        uow.session.add(Event(organization_id=admin.organization_id, name="Summer Regatta",
                              location="Harbour"))
        uow.commit()
    window = make_window()
    assert window.event_combo.currentText() == "Summer Regatta — Harbour"
    window.guest_radio.setChecked(True)
    assert window.event_combo.isEnabled()
    paste_and_check(window, "guest@example.org")
    window.show_preview()
    assert window.preview_dialog is not None
    assert "Summer Regatta" in window.preview_dialog.pane.subject


def test_guest_rows_beyond_the_events_places_are_refused_with_the_reason(
    make_window: MakeWindow, uow: UnitOfWork, admin: Operator
) -> None:
    with uow:
        uow.session.add(Event(organization_id=admin.organization_id, name="Boat trip",
                              location="Pier", capacity=2))
        uow.commit()
    window = make_window()
    window.guest_radio.setChecked(True)
    paste_and_check(window, "a@example.org\nb@example.org\nc@example.org")
    assert shown_statuses(window) == [("a@example.org", "Ready"), ("b@example.org", "Ready"),
                                      ("c@example.org", "Event full")]
    assert window.proxy.index(2, Column.REASON).data().startswith(
        'The event "Boat trip" is full: 2 places')
    assert window.send_button.text() == "Send 2 invitations"


# -------------------------------------------------------------------------------- sending
def test_send_delivers_each_ready_address_once_and_shows_the_counts(
    make_window: MakeWindow, qtbot: Any, uow: UnitOfWork, admin: Operator,
    smtp_server: LoopbackSmtpServer,
) -> None:
    configure_smtp(uow, admin, smtp_server)
    window = make_window()
    window.message_edit.setPlainText("Hope to see you at the club!")
    paste_and_check(window, "a@example.org\nb@example.org\nnope\nA@example.org\nc@example.org")
    assert window.send_button.text() == "Send 3 invitations"

    with qtbot.waitSignal(window.sending_finished, timeout=SEND_TIMEOUT_MS) as finished:
        window.send_button.click()
        assert window.sending and not window.progress_panel.isHidden()
        assert not window.send_button.isEnabled() and not window.check_button.isEnabled()
    report = finished.args[0]

    assert report.sent == 3 and report.failed == 0 and not report.cancelled
    assert smtp_server.recipient_counts() == {"a@example.org": 1, "b@example.org": 1,
                                              "c@example.org": 1}
    assert statuses(uow) == {"a@example.org": "sent", "b@example.org": "sent",
                             "c@example.org": "sent"}
    assert window.progress_title.text() == "Sending finished: 3 sent"
    assert window.progress_bar.value() == 3 and window.progress_bar.maximum() == 3
    assert window.message_banner.kind == "success"
    assert window.failures_view.isHidden() and window.resume_batch_button.isHidden()
    assert not window.sending
    # The batch cannot be sent twice: the pre-flight is used up.
    assert not window.send_button.isEnabled()
    assert "queued" in window.stale_label.text()
    body = smtp_server.messages[0].message.get_body(("plain",)).get_content()
    assert "Hope to see you at the club!" in body
    with uow:
        batch = uow.session.scalars(select(Batch)).one()
        assert (batch.source, batch.total, batch.status) == ("paste", 3, "done")


def test_failures_are_listed_with_the_server_reply(
    make_window: MakeWindow, qtbot: Any, uow: UnitOfWork, admin: Operator,
    smtp_server: LoopbackSmtpServer,
) -> None:
    configure_smtp(uow, admin, smtp_server)
    smtp_server.fail_recipient("gone@example.org", 550)
    window = make_window()
    paste_and_check(window, "ok@example.org\ngone@example.org")
    with qtbot.waitSignal(window.sending_finished, timeout=SEND_TIMEOUT_MS):
        window.send_button.click()
    assert window.progress_title.text() == "Sending finished: 1 sent, 1 failed"
    assert not window.failures_view.isHidden()
    listed = window.failures_view.toPlainText()
    assert listed.startswith("gone@example.org — 550") and "no such user" in listed
    assert "not retried" in window.summary_label.text()
    assert window.message_banner.kind == "error"
    assert statuses(uow) == {"ok@example.org": "sent", "gone@example.org": "failed"}


def test_cancel_mid_batch_keeps_the_rest_queued_and_send_the_rest_finishes(
    make_window: MakeWindow, qtbot: Any, uow: UnitOfWork, admin: Operator,
    smtp_server: LoopbackSmtpServer,
) -> None:
    # 3 a minute: three go at once, then the worker waits for the rate limit; Cancel must
    # wake it at once, with nothing claimed.
    configure_smtp(uow, admin, smtp_server, rate_per_minute=3)
    addresses = [f"c{i}@example.org" for i in range(8)]
    window = make_window()
    paste_and_check(window, "\n".join(addresses))
    window.send_button.click()
    qtbot.waitUntil(lambda: "3 sent" in window.progress_counts.text(), timeout=SEND_TIMEOUT_MS)
    assert "5 remaining" in window.progress_counts.text() and "left" in window.progress_counts.text()
    assert window.sending  # waiting for the rate limit, still responsive

    with qtbot.waitSignal(window.sending_finished, timeout=5_000) as finished:
        window.cancel_button.click()
        assert window.cancel_button.text() == "Cancelling…"
    assert finished.args[0].cancelled

    assert len(smtp_server.messages) == 3
    states = statuses(uow)
    assert sorted(states.values()) == ["queued"] * 5 + ["sent"] * 3  # none lost
    assert {m.rcpt_tos[0] for m in smtp_server.messages} == {
        e for e, s in states.items() if s == "sent"}
    assert window.progress_title.text() == "Sending cancelled: 3 sent, 5 not sent yet"
    assert "still queued and nothing was lost" in window.summary_label.text()
    assert not window.resume_batch_button.isHidden()
    assert window.resume_batch_button.text() == "Send the rest (5)"

    configure_smtp(uow, admin, smtp_server, rate_per_minute=0)
    with qtbot.waitSignal(window.sending_finished, timeout=SEND_TIMEOUT_MS):
        window.resume_batch_button.click()
    assert smtp_server.recipient_counts() == {a: 1 for a in addresses}
    assert set(statuses(uow).values()) == {"sent"}
    assert window.resume_batch_button.isHidden()
    # The summary covers the whole batch, both runs.
    assert window.progress_title.text() == "Sending finished: 8 sent"
    assert window.progress_bar.value() == window.progress_bar.maximum() == 8


def test_pause_stops_sending_until_resumed(
    make_window: MakeWindow, qtbot: Any, uow: UnitOfWork, admin: Operator,
    smtp_server: LoopbackSmtpServer,
) -> None:
    configure_smtp(uow, admin, smtp_server)
    addresses = [f"p{i}@example.org" for i in range(25)]
    window = make_window()
    paste_and_check(window, "\n".join(addresses))
    window.sending_started.connect(lambda _batch: window.pause_button.click())
    window.send_button.click()
    assert window.pause_button.text() == "Resume"
    qtbot.wait(300)
    held = len(smtp_server.messages)
    qtbot.wait(400)
    assert len(smtp_server.messages) == held < len(addresses)  # nothing goes out while paused
    assert window.sending
    qtbot.waitUntil(lambda: "paused" in window.progress_counts.text(), timeout=5_000)
    with qtbot.waitSignal(window.sending_finished, timeout=SEND_TIMEOUT_MS):
        window.pause_button.click()
    assert smtp_server.recipient_counts() == {a: 1 for a in addresses}


def test_smtp_not_configured_points_to_the_email_settings(
    make_window: MakeWindow, qtbot: Any, uow: UnitOfWork
) -> None:
    window = make_window()
    paste_and_check(window, "a@example.org")
    window.send_button.click()
    assert window.message_banner.kind == "error"
    assert "Settings › Email" in window.message_banner.text
    with qtbot.waitSignal(window.email_settings_requested, timeout=1_000):
        window.message_banner.button.click()
    assert statuses(uow) == {}  # nothing queued


def test_the_daily_limit_is_shown_and_nothing_is_queued(
    make_window: MakeWindow, uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer
) -> None:
    configure_smtp(uow, admin, smtp_server)
    settings_service.update_settings(uow, admin, {"daily_limit_per_inviter": 1})
    window = make_window()
    paste_and_check(window, "a@example.org\nb@example.org")
    window.send_button.click()
    assert window.message_banner.kind == "error"
    assert "daily limit 1" in window.message_banner.text
    assert statuses(uow) == {} and smtp_server.messages == []
    assert window.send_button.isEnabled()  # nothing was used up: fewer rows can be sent


def test_password_is_asked_once_and_kept_in_the_keyring(
    make_window: MakeWindow, qtbot: Any, uow: UnitOfWork, admin: Operator,
    credentials: MemoryCredentialStore, make_smtp_server: Callable[..., LoopbackSmtpServer],
) -> None:
    server = make_smtp_server(auth=("sender", "s3cret"))
    configure_smtp(uow, admin, server, username="sender")
    asked: list[MailSettings] = []

    def ask(parent: Any, mail: MailSettings, store: Any) -> PasswordAnswer:
        asked.append(mail)
        return remember_password(mail, store, "s3cret")

    window = make_window(ask_password=ask)
    paste_and_check(window, "first@example.org")
    with qtbot.waitSignal(window.sending_finished, timeout=SEND_TIMEOUT_MS):
        window.send_button.click()
    key = mail_settings.get_mail_settings(uow, admin.organization_id).password_key()
    assert credentials.get(key) == "s3cret" and len(asked) == 1
    paste_and_check(window, "second@example.org")
    with qtbot.waitSignal(window.sending_finished, timeout=SEND_TIMEOUT_MS):
        window.send_button.click()
    assert len(asked) == 1  # the keyring had it the second time
    assert server.recipient_counts() == {"first@example.org": 1, "second@example.org": 1}


def test_cancelling_the_password_prompt_sends_nothing(
    make_window: MakeWindow, uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer
) -> None:
    configure_smtp(uow, admin, smtp_server, username="sender")
    window = make_window(ask_password=lambda *_: None)
    paste_and_check(window, "a@example.org")
    window.send_button.click()
    assert "password is needed" in window.message_banner.text
    assert statuses(uow) == {} and smtp_server.messages == []


def test_the_password_prompt_stores_what_is_typed(qtbot: Any, credentials: MemoryCredentialStore) -> None:
    mail = MailSettings(host="smtp.example.org", port=587, username="ada",
                        from_address="ada@example.org")
    prompt = PasswordPrompt(mail)
    qtbot.addWidget(prompt)
    assert not prompt._ok.isEnabled()
    qtbot.keyClicks(prompt.password_edit, "pw")
    assert prompt._ok.isEnabled() and prompt.password() == "pw"

    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, PasswordPrompt)
        dialog.password_edit.setText("typed-secret")
        dialog.accept()

    QTimer.singleShot(0, answer)
    result = ask_smtp_password(None, mail, credentials)
    assert result == PasswordAnswer("typed-secret", True)
    assert credentials.get(mail.password_key()) == "typed-secret"


def test_send_a_test_to_myself_is_not_an_invitation(
    make_window: MakeWindow, qtbot: Any, uow: UnitOfWork, admin: Operator,
    smtp_server: LoopbackSmtpServer,
) -> None:
    configure_smtp(uow, admin, smtp_server)
    window = make_window()
    paste_and_check(window, "Zoë Martin <zoe@example.org>")
    window.test_button.click()
    assert window.message_banner.kind == "success" and admin.email in window.message_banner.text
    (received,) = smtp_server.messages
    assert received.rcpt_tos == (admin.email,)
    assert received.message["Subject"] == "[Test] Ada Admin invited you to join Harbour Rowing Club"
    assert "Hello Zoë Martin" in received.message.get_body(("plain",)).get_content()
    assert statuses(uow) == {}
    assert window.send_button.isEnabled()  # the batch itself is still to be sent


# -------------------------------------------------------------------------------- permissions
def test_the_composer_is_disabled_for_a_member_when_hr_local_is_required(
    make_window: MakeWindow, uow: UnitOfWork, admin: Operator, make_operator: MakeOperator
) -> None:
    settings_service.update_settings(uow, admin, {"who_can_send_user_invitation": "HR_LOCAL"})
    member = make_operator(Role.USER)
    window = make_window(member)
    assert not window.content.isEnabled()
    assert not window.check_button.isEnabled() and not window.paste_edit.isEnabled()
    assert window.permission_banner.kind == "warning"
    text = window.permission_banner.text
    assert "HR_LOCAL" in text and "whoCanSendUserInvitation" in text and "USER" in text
    window.paste_edit.setPlainText("a@example.org")
    window.check()  # even called directly, nothing runs
    assert window.preflight is None

    hr = make_operator(Role.HR_LOCAL)
    assert make_window(hr).content.isEnabled()


def test_turned_off_invitations_disable_the_composer_with_the_reason(
    make_window: MakeWindow, uow: UnitOfWork, admin: Operator
) -> None:
    settings_service.update_settings(uow, admin, {"has_user_invitation": False})
    window = make_window()
    assert not window.content.isEnabled()
    assert "turned off" in window.permission_banner.text


def test_send_on_behalf_credits_the_member_and_keeps_the_sender(
    make_window: MakeWindow, qtbot: Any, uow: UnitOfWork, admin: Operator,
    make_operator: MakeOperator, smtp_server: LoopbackSmtpServer,
) -> None:
    configure_smtp(uow, admin, smtp_server)
    bea = make_operator(Role.USER, email="bea.member@example.org")
    window = make_window()
    assert window.behalf_check.isEnabled()
    (choice,) = search_members(uow, admin, "bea.m")
    window.choose_inviter(choice)
    assert window.member_edit.text() == choice.label
    assert "Credited to User Tester" in window.behalf_hint.text()
    paste_and_check(window, "friend@example.org")
    window.show_preview()
    assert window.preview_dialog is not None
    assert window.preview_dialog.pane.subject.startswith("User Tester invited you")
    with qtbot.waitSignal(window.sending_finished, timeout=SEND_TIMEOUT_MS):
        window.send_button.click()
    with uow:
        invitation = uow.session.scalars(select(Invitation)).one()
        assert invitation.inviter_id == bea.member_id and invitation.sender_id == admin.member_id


def test_a_member_cannot_send_on_behalf_of_others(
    make_window: MakeWindow, make_operator: MakeOperator
) -> None:
    window = make_window(make_operator(Role.USER))
    assert window.content.isEnabled()
    assert not window.behalf_check.isEnabled() and not window.member_edit.isEnabled()
    assert "Local HR" in window.behalf_hint.text()


# -------------------------------------------------------------------------------- recovery
def test_opening_the_composer_marks_interrupted_sends_uncertain_and_says_so(
    make_window: MakeWindow, uow: UnitOfWork, admin: Operator
) -> None:
    pre = run_preflight(uow, admin.organization_id, parse_pasted("inflight@example.org").rows)
    queue_invitations(uow, admin, pre.ready)
    with uow:  # what a killed program leaves behind
        invitation = uow.session.scalars(select(Invitation)).one()
        invitation.status = "sending"
        uow.commit()
    window = make_window()
    assert window.recovered == ["inflight@example.org"]
    assert window.recovery_banner.kind == "warning"
    assert re.search(r"inflight@example\.org.*not be resent automatically",
                     window.recovery_banner.text)
    assert statuses(uow) == {"inflight@example.org": "uncertain"}
    # Shown once: opening again finds nothing new.
    assert make_window().recovery_banner.text == ""


def test_rows_already_invited_in_the_preflight_are_not_sent(
    make_window: MakeWindow, qtbot: Any, uow: UnitOfWork, admin: Operator,
    smtp_server: LoopbackSmtpServer,
) -> None:
    configure_smtp(uow, admin, smtp_server)
    window = make_window()
    paste_and_check(window, "x@example.org\ny@example.org")
    with qtbot.waitSignal(window.sending_finished, timeout=SEND_TIMEOUT_MS):
        window.send_button.click()
    paste_and_check(window, "x@example.org\nz@example.org")
    assert [s for _, s in shown_statuses(window)] == ["Already invited", "Ready"]
    with qtbot.waitSignal(window.sending_finished, timeout=SEND_TIMEOUT_MS):
        window.send_button.click()
    assert smtp_server.recipient_counts() == {"x@example.org": 1, "y@example.org": 1,
                                              "z@example.org": 1}
    assert window.model.row_at(0).status is RowStatus.PENDING


def test_a_batch_left_queued_by_an_earlier_session_is_offered_and_sent_once(
    make_window: MakeWindow, qtbot: Any, uow: UnitOfWork, admin: Operator,
    smtp_server: LoopbackSmtpServer,
) -> None:
    from invite_desk.services.invitations.importing import parse_pasted
    from invite_desk.services.invitations.preflight import run_preflight
    from invite_desk.services.invitations.queueing import queue_invitations

    configure_smtp(uow, admin, smtp_server)
    # An earlier session queued this batch and stopped before sending it.
    pre = run_preflight(uow, admin.organization_id,
                        parse_pasted("old1@example.org\nold2@example.org").rows)
    queue_invitations(uow, admin, pre.ready, label="spring open day", source="paste")

    window = make_window()
    assert window.message_banner.kind == "info"
    assert "2 invitations from a batch of" in window.message_banner.text
    assert "(spring open day) were never sent" in window.message_banner.text
    assert window.message_banner.button.text() == "Send them now"
    with qtbot.waitSignal(window.sending_finished, timeout=SEND_TIMEOUT_MS) as finished:
        window.message_banner.button.click()
    assert finished.args[0].sent == 2
    assert smtp_server.recipient_counts() == {"old1@example.org": 1, "old2@example.org": 1}
    assert statuses(uow) == {"old1@example.org": "sent", "old2@example.org": "sent"}
    # Nothing is left to offer the next time the composer opens.
    assert "never sent" not in make_window().message_banner.text


# ------------------------------------------------------------------ issue 8: first-use trips


def test_send_asks_first_naming_the_count_the_first_addresses_and_the_batch(
    make_window: MakeWindow, uow: UnitOfWork, admin: Operator, smtp_server: LoopbackSmtpServer,
    confirmations: Confirmations,
) -> None:
    configure_smtp(uow, admin, smtp_server)
    window = make_window()
    paste_and_check(window, "\n".join(f"p{i}@example.org" for i in range(8)) + "\nnope")
    confirmations.answer = False

    window.send_button.click()

    [asked] = confirmations.asked
    assert asked["text"] == "Send 8 invitations now?"
    assert asked["action"] == "Send 8 invitations"
    assert ("To: p0@example.org, p1@example.org, p2@example.org, p3@example.org, "
            "p4@example.org and 3 more") in asked["informative"]
    assert "Batch: Pasted list" in asked["informative"]
    assert "nope" not in asked["informative"]  # only what will be sent
    # Cancel: nothing queued, nothing sent, the pre-flight is still usable.
    assert statuses(uow) == {} and smtp_server.messages == []
    assert window.send_button.isEnabled() and not window.sending


def test_after_sending_each_row_says_sent_or_failed(
    make_window: MakeWindow, qtbot: Any, uow: UnitOfWork, admin: Operator,
    smtp_server: LoopbackSmtpServer,
) -> None:
    configure_smtp(uow, admin, smtp_server)
    smtp_server.fail_recipient("gone@example.org", 550)
    window = make_window()
    paste_and_check(window, "ok@example.org\ngone@example.org\nnope\nOK@example.org")
    assert dict(shown_statuses(window))["ok@example.org"] == "Ready"

    with qtbot.waitSignal(window.sending_finished, timeout=SEND_TIMEOUT_MS):
        window.send_button.click()
        assert window._countdown_timer.isActive()  # the time left ticks while sending

    shown = shown_statuses(window)
    assert ("ok@example.org", "Sent") in shown
    assert ("gone@example.org", "Failed") in shown
    assert ("nope", "Invalid") in shown and ("OK@example.org", "Duplicate in batch") in shown
    reason = [window.proxy.index(r, Column.REASON).data() for r in range(window.proxy.rowCount())
              if window.proxy.index(r, Column.EMAIL).data() == "gone@example.org"]
    assert reason and "550" in reason[0]
    assert not window._countdown_timer.isActive()


class _FakeWorker:
    paused = False
    settings_page = None


class _FakeJob:
    worker = _FakeWorker()
    running = True

    def stop(self, wait_ms: int = 0) -> bool:
        return True

    def join(self, wait_ms: int = 0) -> bool:
        return True

    def deleteLater(self) -> None:  # noqa: N802
        pass


def test_the_time_left_counts_down_while_the_sender_waits_for_the_rate(
    make_window: MakeWindow, qtbot: Any
) -> None:
    window = make_window()
    now = [1000.0]
    window._monotonic = lambda: now[0]
    # The outbox sends for the page: stand in for its running job.
    window.outbox._job = _FakeJob()  # type: ignore[assignment]
    window.outbox._start = SendStart(None, "compose", 10)
    window._rate = 0
    try:
        window.send_progressed(SendProgress(total=10, sent=2, failed=0, uncertain=0, waiting_retry=0,
                                        remaining=8, seconds_left=480.0))
        window._render_progress()
        assert window.progress_counts.text().endswith("about 8 min left")
        window._countdown_timer.start()
        now[0] += 150  # two and a half minutes of rate-limit wait, no report from the sender
        qtbot.waitUntil(lambda: window.progress_counts.text().endswith("about 6 min left"),
                        timeout=3000)
        now[0] += 300
        qtbot.waitUntil(lambda: window.progress_counts.text().endswith("about 30 s left"),
                        timeout=3000)
        # A new report starts again from its own estimate.
        window.send_progressed(SendProgress(total=10, sent=9, failed=0, uncertain=0,
                                        waiting_retry=0, remaining=1, seconds_left=60.0))
        window._render_progress()
        assert window.progress_counts.text().endswith("about 1 min left")
    finally:
        window._countdown_timer.stop()
        window.outbox._job = None


def test_a_banner_appearing_does_not_move_the_buttons(make_window: MakeWindow, qtbot: Any) -> None:
    window = make_window()
    window.show()
    paste_and_check(window, "a@example.org\nb@example.org")
    qtbot.wait(20)
    buttons = (window.send_button, window.check_button, window.preview_button)
    before = [b.mapTo(window, b.rect().topLeft()) for b in buttons]
    for text in ("Short.", "A much longer message " * 12):
        window.message_banner.show_message(text, "error", action=("Open settings", lambda: None))
        QApplication.processEvents()
        assert [b.mapTo(window, b.rect().topLeft()) for b in buttons] == before
        window.message_banner.clear_message()
        QApplication.processEvents()
        assert [b.mapTo(window, b.rect().topLeft()) for b in buttons] == before


def test_a_missing_registration_address_offers_to_open_its_settings_page(
    qtbot: Any, context: AppContext, admin: Operator, uow: UnitOfWork,
    smtp_server: LoopbackSmtpServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from invite_desk.ui.compose import window as compose_module
    from invite_desk.ui.main_window import MainWindow, default_settings_factory

    def incomplete(*args: object, **kwargs: object) -> None:
        raise SettingsIncomplete("Set the organization's registration web address first.",
                                 settings_page="organization")

    monkeypatch.setattr(compose_module, "queue_invitations", incomplete)
    configure_smtp(uow, admin, smtp_server)
    main = MainWindow(context, admin, default_settings_factory(), remember_geometry=False)
    qtbot.addWidget(main)
    main.show()
    main.show_page("compose")
    compose = main.pages["compose"]
    assert isinstance(compose, ComposeWindow)
    qtbot.waitUntil(lambda: compose.loaded, timeout=10_000)  # read in the background
    paste_and_check(compose, "a@example.org")
    qtbot.waitUntil(lambda: compose.send_button.isEnabled(), timeout=10_000)

    compose.send_button.click()
    qtbot.waitUntil(lambda: bool(compose.message_banner.text), timeout=10_000)

    banner = compose.message_banner
    assert "registration web address" in banner.text and banner.kind == "error"
    assert banner.button.isVisibleTo(compose) and banner.button.text() == "Open settings"
    banner.button.click()
    assert main.current_page_key() == "settings"
    panel = main.pages["settings"]
    current = panel.pages[panel.stack.currentIndex()]  # type: ignore[attr-defined]
    assert current.NAME == "organization"


def test_the_main_button_is_visible_in_the_default_window(
    qtbot: Any, context: AppContext, admin: Operator
) -> None:
    from invite_desk.ui.main_window import DEFAULT_SIZE, MainWindow

    main = MainWindow(context, admin, None, remember_geometry=False)
    qtbot.addWidget(main)
    main.resize(DEFAULT_SIZE)
    main.show()
    main.show_page("compose")
    compose = main.pages["compose"]
    assert isinstance(compose, ComposeWindow)
    qtbot.waitUntil(lambda: compose.loaded, timeout=10_000)  # read in the background
    paste_and_check(compose, "\n".join(f"p{i}@example.org" for i in range(40)))
    compose.message_banner.show_message("Something to say " * 10, "warning")
    qtbot.wait(50)
    for button in (compose.send_button, compose.check_button):
        top_left = button.mapTo(main, button.rect().topLeft())
        bottom_right = button.mapTo(main, button.rect().bottomRight())
        assert main.rect().contains(top_left) and main.rect().contains(bottom_right), button.text()
        assert not button.visibleRegion().isEmpty(), button.text()
        assert button.visibleRegion().boundingRect().size() == button.size(), button.text()
