"""The Applications page: scope, filters and counts, the side panel, approve / reject / back to
draft on one or several rows, the reason dialog, permissions mirrored, and stale rows.

Background work runs synchronously (SynchronousRunner) except in one test that uses the real
thread pool. Each test asserts what the operator sees and what the database holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from pytestqt.qtbot import QtBot
from sqlalchemy import Engine, select, update

from invite_desk.app import AppContext
from invite_desk.services import adhesion
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.models import (
    AdhesionStatus,
    AuditLog,
    Member,
    MemberStatus,
    ReferralStatus,
    utcnow,
)
from invite_desk.services.operator import Operator
from invite_desk.services.registration.joining import register_with_invitation
from invite_desk.services.registration.public import register_publicly
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from invite_desk.ui.applications import ApplicationsPage
from invite_desk.ui.applications.model import ApplicationsModel, Column, StatusFilter
from invite_desk.ui.applications.page import DENIED_TITLE, ReasonDialog, Verdict
from invite_desk.ui.hub import APPLICATIONS, MEMBERS, REFERRALS, Changes
from invite_desk.ui.tasks import SynchronousRunner
from tests.conftest import MakeOperator, MakeUnit
from tests.registration_fixtures import form, invite, member_by_email, referral_rows, set_policy


# -------------------------------------------------------------------------------- fixtures
@pytest.fixture
def context(engine: Engine, uow: UnitOfWork) -> AppContext:
    return AppContext(engine=engine, uow=uow, credentials=MemoryCredentialStore(),
                      database_label="test")


@pytest.fixture
def units(make_unit: MakeUnit) -> dict[str, uuid.UUID]:
    return {"North": make_unit("North"), "South": make_unit("South")}


def apply(uow: UnitOfWork, inviter: Operator, email: str, first: str, last: str, *,
          unit_id: uuid.UUID | None = None, days_ago: int = 0) -> uuid.UUID:
    """`inviter` invites `email`, who registers while adhesion is required: an applicant."""
    sent = invite(uow, inviter, email, unit_id=unit_id)
    result = register_with_invitation(uow, sent.token, form(first, last),
                                      now=utcnow() - timedelta(days=days_ago))
    assert result.application_pending and result.member_id is not None
    return result.member_id


@pytest.fixture
def applicants(uow: UnitOfWork, admin: Operator, make_operator: MakeOperator,
               units: dict[str, uuid.UUID]) -> dict[str, uuid.UUID]:
    """Sam (South, the oldest), Zoë (North, invited by Ada Admin) and Pat (public page, no
    unit, the newest), all pending."""
    set_policy(uow, admin, adhesion_required=True)
    south_member = make_operator(Role.USER, units["South"])
    ids = {
        "sam": apply(uow, south_member, "sam@example.org", "Sam", "Weiß", days_ago=3),
        "zoe": apply(uow, admin, "zoe@example.org", "Zoë", "Martin", unit_id=units["North"],
                     days_ago=2),
    }
    register_publicly(uow, admin.organization_id, form("Pat", "Public", email="pat@example.org"))
    pat = member_by_email(uow, "pat@example.org")
    assert pat is not None
    ids["pat"] = pat.id
    return ids


MakePage = Callable[..., ApplicationsPage]


@pytest.fixture
def make_page(qtbot: QtBot, context: AppContext, admin: Operator) -> MakePage:
    def make(operator: Operator | None = None, **kw: Any) -> ApplicationsPage:
        kw.setdefault("runner", SynchronousRunner())
        page = ApplicationsPage(context, operator or admin, **kw)
        qtbot.addWidget(page)
        page.resize(1000, 700)
        page.show()
        return page

    return make


def shown_names(page: ApplicationsPage) -> list[str]:
    return [row.name for row in page.visible_rows()]


def cell(page: ApplicationsPage, name: str, column: Column) -> str:
    names = shown_names(page)
    return str(page.proxy.index(names.index(name), column).data())


def pick(page: ApplicationsPage, *names: str) -> None:
    by_name = {row.name: row.member_id for row in page.visible_rows()}
    page.select_members([by_name[n] for n in names])


def click(qtbot: QtBot, widget: Any) -> None:
    assert widget.isVisible() and widget.isEnabled(), widget.text()
    qtbot.mouseClick(widget, Qt.MouseButton.LeftButton)


def stored(uow: UnitOfWork, member_id: uuid.UUID) -> Member:
    with uow:
        member = uow.session.get(Member, member_id)
        assert member is not None
        uow.session.expunge(member)
        return member


def audit_actions(uow: UnitOfWork, member_id: uuid.UUID) -> list[str]:
    with uow:
        return list(uow.session.scalars(
            select(AuditLog.action).where(AuditLog.entity_id == member_id)
            .order_by(AuditLog.at)))


def filter_texts(page: ApplicationsPage) -> list[str]:
    return [page.filter_buttons[f].text() for f in StatusFilter]


def give_reason(qtbot: QtBot, page: ApplicationsPage, reason: str) -> ReasonDialog:
    dialog = page.reason_dialog
    assert dialog is not None and dialog.isVisible()
    qtbot.keyClicks(dialog.reason_edit, reason)
    click(qtbot, dialog.accept_button)
    return dialog


# -------------------------------------------------------------------------------- the list
@pytest.mark.usefixtures("applicants")
def test_the_models_pass_the_qt_model_tester(make_page: MakePage, qtmodeltester: Any) -> None:
    page = make_page()
    assert page.model.rowCount() == 3
    qtmodeltester.check(page.model)
    qtmodeltester.check(page.proxy)
    empty = ApplicationsModel()
    qtmodeltester.check(empty)


@pytest.mark.usefixtures("applicants")
def test_organization_hr_sees_every_open_application_oldest_first(
    make_page: MakePage, make_operator: MakeOperator
) -> None:
    page = make_page(make_operator(Role.HR_TENANT))

    assert page.scope_label.text() == "Showing applications across the organization."
    assert page.status_filter is StatusFilter.OPEN
    assert filter_texts(page) == ["Open (3)", "Approved (0)", "Rejected (0)", "All (3)"]
    assert shown_names(page) == ["Sam Weiß", "Zoë Martin", "Pat Public"]
    assert page.table_stack.currentWidget() is page.table
    assert cell(page, "Zoë Martin", Column.EMAIL) == "zoe@example.org"
    assert cell(page, "Zoë Martin", Column.UNIT) == "North"
    assert cell(page, "Zoë Martin", Column.REFERRED_BY) == "Ada Admin"
    assert cell(page, "Zoë Martin", Column.STATUS) == "Pending"
    assert cell(page, "Pat Public", Column.UNIT) == "No unit"
    assert cell(page, "Pat Public", Column.REFERRED_BY) == "—"
    submitted = [cell(page, n, Column.SUBMITTED) for n in shown_names(page)]
    assert submitted == sorted(submitted)
    # Nothing is selected yet: the actions wait for a selection.
    assert not page.approve_button.isEnabled() and not page.reject_button.isEnabled()
    assert "Select an application" in page.detail.visible_text()


def test_local_hr_sees_only_their_unit(
    make_page: MakePage, make_operator: MakeOperator, units: dict[str, uuid.UUID],
    applicants: dict[str, uuid.UUID],
) -> None:
    page = make_page(make_operator(Role.HR_LOCAL, units["North"]))

    assert page.scope_label.text() == "Showing applications in North."
    assert shown_names(page) == ["Zoë Martin"]
    assert filter_texts(page) == ["Open (1)", "Approved (0)", "Rejected (0)", "All (1)"]
    assert page.table.isColumnHidden(Column.UNIT)  # one unit: the column would repeat it


def test_local_hr_without_a_unit_is_told_why_the_list_is_empty(
    make_page: MakePage, make_operator: MakeOperator, applicants: dict[str, uuid.UUID],
) -> None:
    page = make_page(make_operator(Role.HR_LOCAL))
    assert "no unit" in page.scope_label.text()
    assert shown_names(page) == []
    assert page.empty_title.text() == "No applications waiting"


def test_columns_sort_by_name_and_back_to_oldest_first(
    qtbot: QtBot, make_page: MakePage, applicants: dict[str, uuid.UUID]
) -> None:
    page = make_page()
    header = page.table.horizontalHeader()
    x = header.sectionViewportPosition(Column.NAME) + 5
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton,
                     pos=QPoint(x, header.height() // 2))
    assert shown_names(page) == ["Pat Public", "Sam Weiß", "Zoë Martin"]
    page.table.sortByColumn(Column.SUBMITTED, Qt.SortOrder.DescendingOrder)
    assert shown_names(page) == ["Pat Public", "Zoë Martin", "Sam Weiß"]
    page.table.sortByColumn(Column.SUBMITTED, Qt.SortOrder.AscendingOrder)
    assert shown_names(page) == ["Sam Weiß", "Zoë Martin", "Pat Public"]


@pytest.mark.usefixtures("applicants")
def test_the_side_panel_shows_who_referred_them_and_the_history(make_page: MakePage) -> None:
    page = make_page()
    pick(page, "Zoë Martin")

    text = page.detail.visible_text()
    assert page.detail.name_label.text() == "Zoë Martin"
    assert page.detail.email_label.text() == "zoe@example.org"
    assert page.detail.status_label.text() == "Pending"
    assert "North" in text
    assert "Ada Admin" in page.detail.referrals_label.text()
    assert "referral completed on approval" in page.detail.referrals_label.text()
    history = page.detail.history_label.text()
    assert "Registered through an invitation" in history
    assert "Application submitted" in history
    assert history.index("Registered") < history.index("Application submitted")

    pick(page, "Zoë Martin", "Sam Weiß")
    assert "2 applications selected" in page.detail.visible_text()


# -------------------------------------------------------------------------------- decisions
def test_approving_makes_a_member_and_completes_the_referral(
    qtbot: QtBot, make_page: MakePage, uow: UnitOfWork, applicants: dict[str, uuid.UUID]
) -> None:
    page = make_page()
    decided: list[int] = []
    page.applications_decided.connect(decided.append)
    broadcasts: list[Changes] = []
    page.hub.changed.connect(broadcasts.append)
    pick(page, "Zoë Martin")
    assert page.approve_button.text() == "Approve"
    click(qtbot, page.approve_button)
    # A hub mutation: every open view hears of it (Members, Referrals, the main window).
    assert [(b.kinds, b.origin) for b in broadcasts] == [
        (frozenset({APPLICATIONS, MEMBERS, REFERRALS}), page)]

    zoe = stored(uow, applicants["zoe"])
    assert zoe.status == MemberStatus.ACTIVE.value
    assert zoe.adhesion_status == AdhesionStatus.APPROVED.value
    [referral] = referral_rows(uow, applicants["zoe"])
    assert referral.status == ReferralStatus.COMPLETED.value and referral.completed_at is not None
    assert "adhesion.approved" in audit_actions(uow, applicants["zoe"])

    assert page.confirmation_banner.text == (
        "Approved Zoë Martin; their referral by Ada Admin is completed.")
    assert page.confirmation_banner.kind == "success"
    assert page.message_banner.text == ""
    assert shown_names(page) == ["Sam Weiß", "Pat Public"]  # left the Open filter
    assert filter_texts(page) == ["Open (2)", "Approved (1)", "Rejected (0)", "All (3)"]
    assert decided == [1]
    # The next application in the queue is selected, ready for a decision.
    assert [r.name for r in page.selected_rows()] == ["Pat Public"]

    click(qtbot, page.filter_buttons[StatusFilter.APPROVED])
    assert shown_names(page) == ["Zoë Martin"]
    assert cell(page, "Zoë Martin", Column.STATUS) == "Approved"
    pick(page, "Zoë Martin")
    assert not page.approve_button.isEnabled() and not page.reject_button.isEnabled()
    assert "Approved by Ada Admin" in page.detail.history_label.text()
    assert "referral completed" in page.detail.referrals_label.text()


def test_rejecting_asks_for_a_reason_and_keeps_it(
    qtbot: QtBot, make_page: MakePage, uow: UnitOfWork, admin: Operator,
    applicants: dict[str, uuid.UUID],
) -> None:
    page = make_page()
    pick(page, "Sam Weiß")
    click(qtbot, page.reject_button)
    dialog = page.reason_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.question_label.text() == "Why is Sam Weiß's application rejected?"
    assert stored(uow, applicants["sam"]).adhesion_status == AdhesionStatus.PENDING.value

    give_reason(qtbot, page, "Membership is open to residents of the coast.")

    assert page.reason_dialog is None
    sam = stored(uow, applicants["sam"])
    assert sam.adhesion_status == AdhesionStatus.REJECTED.value
    assert sam.status == MemberStatus.REJECTED.value
    assert sam.adhesion_reason == "Membership is open to residents of the coast."
    with uow:
        entry = uow.session.scalars(select(AuditLog).where(
            AuditLog.action == "adhesion.rejected",
            AuditLog.entity_id == applicants["sam"])).one()
        assert entry.actor_id == admin.member_id
        assert "residents of the coast" in entry.after_json
    assert page.confirmation_banner.text == (
        "Rejected Sam Weiß's application; the reason is kept with it.")
    assert "Sam Weiß" not in shown_names(page)

    page.set_status_filter(StatusFilter.REJECTED)
    assert shown_names(page) == ["Sam Weiß"]
    assert cell(page, "Sam Weiß", Column.REASON) == "Membership is open to residents of the coast."
    pick(page, "Sam Weiß")
    assert "Rejected by Ada Admin" in page.detail.history_label.text()
    assert page.detail.reason_label.text() == "Membership is open to residents of the coast."


def test_a_reason_is_required_and_cancel_changes_nothing(
    qtbot: QtBot, make_page: MakePage, uow: UnitOfWork, applicants: dict[str, uuid.UUID]
) -> None:
    page = make_page()
    pick(page, "Sam Weiß")
    click(qtbot, page.reject_button)
    dialog = page.reason_dialog
    assert dialog is not None

    click(qtbot, dialog.accept_button)  # no reason
    assert dialog.isVisible() and page.reason_dialog is dialog
    assert dialog.error == "Please give a reason; the applicant will see it."
    qtbot.keyClicks(dialog.reason_edit, "   ")
    click(qtbot, dialog.accept_button)  # blanks are no reason either
    assert dialog.isVisible() and dialog.error
    assert stored(uow, applicants["sam"]).adhesion_status == AdhesionStatus.PENDING.value

    qtbot.keyClicks(dialog.reason_edit, "x")
    assert dialog.error == ""  # typing clears the complaint
    dialog.buttons.button(dialog.buttons.StandardButton.Cancel).click()
    assert page.reason_dialog is None
    assert stored(uow, applicants["sam"]).adhesion_status == AdhesionStatus.PENDING.value
    assert audit_actions(uow, applicants["sam"])[-1] == "adhesion.submitted"
    assert page.confirmation_banner.text == ""
    assert shown_names(page) == ["Sam Weiß", "Zoë Martin", "Pat Public"]


def test_the_reason_dialog_refuses_an_empty_or_too_long_reason(qtbot: QtBot) -> None:
    dialog = ReasonDialog(Verdict.DRAFT, ["Zoë Martin", "Sam Weiß"])
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.windowTitle() == "Return 2 applications to draft"
    assert "Zoë Martin and Sam Weiß" in dialog.question_label.text()
    dialog.accept()
    assert dialog.result() != dialog.DialogCode.Accepted and dialog.isVisible()
    assert "reason" in dialog.error
    dialog.reason_edit.setPlainText("x" * (adhesion.REASON_MAX + 1))
    dialog.accept()
    assert dialog.isVisible() and "at most 2,000 characters" in dialog.error
    dialog.reason_edit.setPlainText("  Please add your postal address.  ")
    dialog.accept()
    assert dialog.result() == dialog.DialogCode.Accepted
    assert dialog.reason == "Please add your postal address."


def test_returning_to_draft_keeps_it_open_with_the_reason(
    qtbot: QtBot, make_page: MakePage, uow: UnitOfWork, applicants: dict[str, uuid.UUID]
) -> None:
    page = make_page()
    pick(page, "Zoë Martin")
    click(qtbot, page.draft_button)
    give_reason(qtbot, page, "Please add your postal address.")

    zoe = stored(uow, applicants["zoe"])
    assert zoe.adhesion_status == AdhesionStatus.DRAFT.value
    assert zoe.status == MemberStatus.APPLICANT.value
    assert zoe.adhesion_reason == "Please add your postal address."
    assert audit_actions(uow, applicants["zoe"])[-1] == "adhesion.returned_to_draft"
    assert page.confirmation_banner.text == (
        "Returned Zoë Martin's application to draft, with your reason.")
    # Still open: it stays in the list, marked, with the reason.
    assert "Zoë Martin" in shown_names(page)
    assert cell(page, "Zoë Martin", Column.STATUS) == "Back to draft"
    assert cell(page, "Zoë Martin", Column.REASON) == "Please add your postal address."
    pick(page, "Zoë Martin")
    assert not page.draft_button.isEnabled()  # already in draft
    assert page.draft_button.toolTip() == "Only new or pending applications can go back to draft."
    assert page.approve_button.isEnabled() and page.reject_button.isEnabled()


def test_several_selected_applications_are_approved_at_once(
    qtbot: QtBot, make_page: MakePage, uow: UnitOfWork, applicants: dict[str, uuid.UUID]
) -> None:
    page = make_page()
    # Click the first row, then Ctrl-click the second, as a person would.
    for row, modifier in ((0, Qt.KeyboardModifier.NoModifier),
                          (1, Qt.KeyboardModifier.ControlModifier)):
        rect = page.table.visualRect(page.proxy.index(row, Column.NAME))
        qtbot.mouseClick(page.table.viewport(), Qt.MouseButton.LeftButton, modifier,
                         rect.center())
    assert [r.name for r in page.selected_rows()] == ["Sam Weiß", "Zoë Martin"]
    assert page.approve_button.text() == "Approve (2)"
    assert page.selection_label.text() == "2 applications selected"

    click(qtbot, page.approve_button)

    for key in ("sam", "zoe"):
        member = stored(uow, applicants[key])
        assert member.adhesion_status == AdhesionStatus.APPROVED.value
        assert member.status == MemberStatus.ACTIVE.value
        assert [r.status for r in referral_rows(uow, applicants[key])] == [
            ReferralStatus.COMPLETED.value]
    assert stored(uow, applicants["pat"]).adhesion_status == AdhesionStatus.PENDING.value
    assert page.confirmation_banner.text == (
        "Approved 2 applications: Sam Weiß and Zoë Martin; 2 referrals are completed.")
    assert shown_names(page) == ["Pat Public"]
    assert filter_texts(page) == ["Open (1)", "Approved (2)", "Rejected (0)", "All (3)"]


def test_the_real_thread_pool_approves_and_reloads(
    qtbot: QtBot, context: AppContext, admin: Operator, uow: UnitOfWork,
    applicants: dict[str, uuid.UUID],
) -> None:
    page = ApplicationsPage(context, admin)  # its own hub and pool
    qtbot.addWidget(page)
    page.show()
    qtbot.waitUntil(lambda: page.loaded and shown_names(page) == [
        "Sam Weiß", "Zoë Martin", "Pat Public"], timeout=10_000)
    pick(page, "Pat Public")
    page.approve_selected()
    assert page.busy and not page.approve_button.isEnabled()  # while it runs
    qtbot.waitUntil(lambda: not page.busy and "Pat Public" not in shown_names(page),
                    timeout=10_000)
    assert stored(uow, applicants["pat"]).status == MemberStatus.ACTIVE.value
    assert page.confirmation_banner.text == "Approved Pat Public."  # nobody referred them
    assert page.hub.shutdown(10_000)


# -------------------------------------------------------------------------------- refusals
def test_a_member_sees_an_explanation_and_no_actions(
    make_page: MakePage, make_operator: MakeOperator, units: dict[str, uuid.UUID],
    applicants: dict[str, uuid.UUID],
) -> None:
    page = make_page(make_operator(Role.USER, units["North"]))
    assert not page.may_review
    assert page.body.currentWidget() is page.denied and page.denied.isVisible()
    assert page.denied_title.text() == DENIED_TITLE
    assert "Applications are reviewed by HR and admins" in page.visible_text()
    assert "HR_LOCAL" in page.denied_text.text() and "Member (USER)" in page.denied_text.text()
    for widget in (page.table, page.approve_button, page.reject_button, page.draft_button,
                   *page.filter_buttons.values()):
        assert not widget.isVisible()
    assert page.model.rowCount() == 0  # nothing was even read
    assert not page.scope_label.isVisible()


def test_a_row_decided_meanwhile_by_someone_else_shows_the_conflict(
    qtbot: QtBot, make_page: MakePage, make_operator: MakeOperator, uow: UnitOfWork,
    applicants: dict[str, uuid.UUID],
) -> None:
    page = make_page()
    pick(page, "Zoë Martin")
    adhesion.approve(uow, make_operator(Role.HR_TENANT), applicants["zoe"])  # another desk

    click(qtbot, page.reject_button)
    give_reason(qtbot, page, "Not a resident.")

    assert page.message_banner.kind == "error"
    assert "Zoë Martin's application changed since you opened it (it is now approved)" in (
        page.message_banner.text)
    assert page.confirmation_banner.text == ""
    zoe = stored(uow, applicants["zoe"])
    assert zoe.adhesion_status == AdhesionStatus.APPROVED.value and zoe.adhesion_reason == ""
    assert audit_actions(uow, applicants["zoe"]).count("adhesion.approved") == 1
    assert "adhesion.rejected" not in audit_actions(uow, applicants["zoe"])
    # The page reloaded: the row shows what the database says now.
    assert "Zoë Martin" not in shown_names(page)
    assert filter_texts(page)[1] == "Approved (1)"


def test_one_stale_row_does_not_stop_the_others(
    qtbot: QtBot, make_page: MakePage, uow: UnitOfWork, admin: Operator,
    applicants: dict[str, uuid.UUID],
) -> None:
    page = make_page()
    pick(page, "Sam Weiß", "Zoë Martin")
    adhesion.reject(uow, admin, applicants["sam"], "Decided elsewhere.")
    click(qtbot, page.approve_button)
    assert stored(uow, applicants["zoe"]).adhesion_status == AdhesionStatus.APPROVED.value
    assert stored(uow, applicants["sam"]).adhesion_status == AdhesionStatus.REJECTED.value
    assert page.confirmation_banner.text == (
        "Approved Zoë Martin; their referral by Ada Admin is completed.")
    assert "Sam Weiß's application changed since you opened it" in page.message_banner.text


def test_an_operator_demoted_since_sign_in_is_refused_in_a_banner(
    qtbot: QtBot, make_page: MakePage, make_operator: MakeOperator, uow: UnitOfWork,
    applicants: dict[str, uuid.UUID],
) -> None:
    hr = make_operator(Role.HR_TENANT)
    page = make_page(hr)
    pick(page, "Pat Public")
    with uow:
        uow.session.execute(update(Member).where(Member.id == hr.member_id)
                            .values(role=Role.USER.name))
        uow.commit()

    click(qtbot, page.approve_button)

    assert page.message_banner.kind == "error"
    # Pat registered on the public page (no unit): only organization HR and up decide.
    assert page.message_banner.text == (
        "You cannot approve or reject this membership application: this needs the HR_TENANT "
        "role or higher.\nThe applications could not be loaded. You cannot see membership "
        "applications: this needs the HR_LOCAL role or higher.")
    assert page.message_banner.button.text() == "Try again"
    assert stored(uow, applicants["pat"]).adhesion_status == AdhesionStatus.PENDING.value
    assert shown_names(page) == []  # the reload was refused too: nothing stays on show


# -------------------------------------------------------------------------------- empty states
def test_empty_list_explains_adhesion_and_where_it_is_switched(
    make_page: MakePage, uow: UnitOfWork, admin: Operator
) -> None:
    page = make_page()
    assert page.table_stack.currentWidget() is page.empty_state
    assert page.empty_title.text() == "No applications waiting"
    assert "Adhesion is the formal application process" in page.empty_text.text()
    assert "Adhesion is off" in page.empty_text.text()
    assert "Settings › Referrals" in page.empty_text.text()
    assert not page.detail.isVisible() and not page.approve_button.isVisible()

    set_policy(uow, admin, adhesion_required=True)
    page.reload_button.click()
    assert "Adhesion is on" in page.empty_text.text()
    assert "Settings › Referrals" in page.empty_text.text()
    page.set_status_filter(StatusFilter.REJECTED)
    assert page.empty_title.text() == "No rejected applications"
