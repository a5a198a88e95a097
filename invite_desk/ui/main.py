"""Start the desktop app: first-run setup or sign-in, then the main window, until Quit."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import (
    QCoreApplication,
    QMessageLogContext,
    QThreadPool,
    QtMsgType,
    qInstallMessageHandler,
)
from PySide6.QtWidgets import QApplication, QDialog

from invite_desk import __version__
from invite_desk.services import auth
from invite_desk.services.operator import Operator
from invite_desk.ui import theme
from invite_desk.ui.main_window import MainWindow
from invite_desk.ui.setup_dialog import SetupDialog
from invite_desk.ui.sign_in_dialog import SignInDialog

if TYPE_CHECKING:
    from invite_desk.app import AppContext, ReplicaLauncher

APP_NAME = "Invite Desk"
ORGANIZATION_NAME = "Invite Desk"
ORGANIZATION_DOMAIN = "invite-desk.example.org"

# Harmless Qt chatter on headless platforms, dropped so the console only shows what matters.
_IGNORED_QT_MESSAGES = ("This plugin does not support propagateSizeHints()",)

MessageHandler = Callable[[QtMsgType, QMessageLogContext, str], None]


def install_qt_message_filter() -> MessageHandler | None:
    """Drop known-harmless Qt messages; pass everything else on. Returns the previous handler."""
    previous: MessageHandler | None = None

    def handler(mode: QtMsgType, context: QMessageLogContext, message: str) -> None:
        if message in _IGNORED_QT_MESSAGES:
            return
        if previous is not None:
            previous(mode, context, message)
        else:
            print(message, file=sys.stderr)

    previous = qInstallMessageHandler(handler)
    return previous


def create_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication with the app's names, icon and theme (reused if one already exists)."""
    QCoreApplication.setApplicationName(APP_NAME)
    QCoreApplication.setOrganizationName(ORGANIZATION_NAME)
    QCoreApplication.setOrganizationDomain(ORGANIZATION_DOMAIN)
    QCoreApplication.setApplicationVersion(__version__)
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(argv or sys.argv[:1])
    QApplication.setDesktopFileName("invite-desk")
    app.setWindowIcon(theme.app_icon())
    theme.apply_theme(app)
    return app


def ask_for_operator(context: AppContext | None, email: str = "", *,
                     launcher: ReplicaLauncher | None = None) -> Operator | None:
    """First run: the setup dialog; afterwards the sign-in dialog. None when the person quits.
    In replica mode (`launcher`) the sign-in opens that operator's replica (the server's
    organization exists already: there is no setup)."""
    dialog: SetupDialog | SignInDialog
    if launcher is not None:
        setup_uow = None if email else launcher.server_setup_uow()
        if setup_uow is not None:  # a new server: create the organization there first
            setup = SetupDialog(setup_uow)
            accepted = setup.exec() == QDialog.DialogCode.Accepted
            made = setup.operator
            setup.deleteLater()
            if not accepted or made is None:
                return None
            email = made.email  # then sign in: that makes this computer's replica
        dialog = SignInDialog(None, database_label=launcher.database_label, email=email,
                              sign_in=launcher.sign_in)
    elif context is None:
        raise ValueError("a context or a replica launcher")
    elif auth.needs_setup(context.uow):
        dialog = SetupDialog(context.uow)
    else:
        dialog = SignInDialog(context.uow, database_label=context.database_label, email=email)
    accepted = dialog.exec() == QDialog.DialogCode.Accepted
    operator = dialog.operator
    dialog.deleteLater()
    return operator if accepted else None


def run_gui_replica(launcher: ReplicaLauncher) -> int:
    """Run the desktop app in replica mode: on this computer's replica of the server, kept in
    step by the sync controller (works while the server is away)."""
    try:
        return run_gui(None, launcher=launcher)
    finally:
        launcher.dispose()


def run_gui(context: AppContext | None, *, launcher: ReplicaLauncher | None = None) -> int:
    """Run the desktop app on `context` (or in replica mode) and return the exit code."""
    previous_handler = install_qt_message_filter()
    app = create_application()
    app.setQuitOnLastWindowClosed(False)  # quitting is explicit: dialogs come and go
    email = ""
    try:
        while True:
            operator = ask_for_operator(context, email, launcher=launcher)
            if operator is None:
                return 0
            window_context = launcher.context() if launcher is not None else context
            assert window_context is not None
            window = MainWindow(window_context, operator)
            window.closed.connect(app.quit)
            window.show()
            code = app.exec()
            signed_out = window.was_signed_out
            window.deleteLater()
            if not signed_out:
                return code
            email = operator.email
    finally:
        # Let background work finish before the caller disposes of the engine.
        QThreadPool.globalInstance().waitForDone()
        qInstallMessageHandler(previous_handler)
