"""Issue 8: two people deciding on one application, or saving settings for the first time, at
the same moment. The one who comes second gets the usual "someone else changed this" Conflict,
never a raw database error, on every backend.

Each race is played deterministically: the second person's service call is paused right after
it read the row, the first person's call runs to its commit in its own unit of work, then the
second call goes on with what it read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from invite_desk.services import adhesion, auth, mail_settings, settings
from invite_desk.services.concurrency import CHANGED_MEANWHILE
from invite_desk.services.errors import Conflict
from invite_desk.services.models import AdhesionStatus, AuditLog, Member, MemberStatus, Setting
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from tests.tracking_data import Seeder

PASSWORD = "a long enough password"


@pytest.fixture
def first(any_uow: UnitOfWork) -> Operator:
    return auth.setup_organization(
        any_uow, organization_name="Harbour Rowing Club", admin_email="ada@example.org",
        admin_first_name="Ada", admin_last_name="Admin", password=PASSWORD,
        registration_base_url="https://join.example.org")


@pytest.fixture
def second(any_uow: UnitOfWork, first: Operator) -> Operator:
    return Seeder(any_uow, first.organization_id).member(
        "Bob", "Boss", role=Role.ADMIN_TENANT, email="bob@example.org")


def pause_after(monkeypatch: pytest.MonkeyPatch, module: Any, name: str,
                meanwhile: Callable[[], object]) -> None:
    """Run `meanwhile` once, right after the next call of `module.name` returns."""
    original = getattr(module, name)
    done: list[bool] = []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if not done:
            done.append(True)
            meanwhile()
        return result

    monkeypatch.setattr(module, name, wrapper)


def count(uow: UnitOfWork, stmt: Any) -> int:
    with uow:
        return int(uow.session.scalar(stmt) or 0)


DECISIONS: dict[str, Callable[[UnitOfWork, Operator, Any], object]] = {
    "approve": lambda u, o, m: adhesion.approve(u, o, m),
    "reject": lambda u, o, m: adhesion.reject(u, o, m, "Not eligible"),
    "return_to_draft": lambda u, o, m: adhesion.return_to_draft(u, o, m, "Add your address"),
}
EXPECTED = {"approve": AdhesionStatus.APPROVED, "reject": AdhesionStatus.REJECTED,
            "return_to_draft": AdhesionStatus.DRAFT}


@pytest.mark.parametrize(("earlier", "later"), [
    ("approve", "reject"), ("reject", "approve"), ("approve", "approve"),
    ("return_to_draft", "approve"), ("reject", "return_to_draft"),
])
def test_two_reviewers_deciding_at_once(
    any_uow: UnitOfWork, first: Operator, second: Operator, monkeypatch: pytest.MonkeyPatch,
    earlier: str, later: str,
) -> None:
    uow = any_uow
    seeder = Seeder(uow, first.organization_id)
    referrer = seeder.member("Uma", "Underwood")
    applicant = seeder.member("Cal", "Carter", status=MemberStatus.APPLICANT,
                              referred_by=referrer.member_id)
    with uow:
        row = uow.session.get(Member, applicant.member_id)
        assert row is not None
        row.adhesion_status = AdhesionStatus.PENDING.value
        uow.commit()
    pause_after(monkeypatch, adhesion, "require",
                lambda: DECISIONS[earlier](uow, first, applicant.member_id))

    with pytest.raises(Conflict) as caught:
        DECISIONS[later](uow, second, applicant.member_id)

    assert str(caught.value) == CHANGED_MEANWHILE
    with uow:
        row = uow.session.get(Member, applicant.member_id)
        assert row is not None and row.adhesion_status == EXPECTED[earlier].value
    decisions = count(uow, select(func.count()).select_from(AuditLog).where(
        AuditLog.action.like("adhesion.%")))
    assert decisions == 1


def test_two_first_saves_of_the_smtp_settings(
    any_uow: UnitOfWork, first: Operator, second: Operator, monkeypatch: pytest.MonkeyPatch
) -> None:
    uow = any_uow
    values = {"port": 587, "security": "starttls", "from_address": "invitations@example.org",
              "rate_per_minute": 30}
    pause_after(monkeypatch, mail_settings, "load_mail_settings",
                lambda: mail_settings.update_mail_settings(
                    uow, first, {**values, "host": "smtp.first.example"}))

    with pytest.raises(Conflict) as caught:
        mail_settings.update_mail_settings(uow, second, {**values, "host": "smtp.second.example"})

    assert str(caught.value) == CHANGED_MEANWHILE
    assert mail_settings.get_mail_settings(uow, first.organization_id).host == "smtp.first.example"
    # The second person reloads and saves again: now it is an ordinary update.
    saved = mail_settings.update_mail_settings(uow, second, {**values,
                                                             "host": "smtp.second.example"})
    assert saved.host == "smtp.second.example"
    assert count(uow, select(func.count()).select_from(Setting).where(
        Setting.key == mail_settings.SMTP_KEY)) == 1


def test_two_first_saves_of_the_templates(
    any_uow: UnitOfWork, first: Operator, second: Operator, monkeypatch: pytest.MonkeyPatch
) -> None:
    uow = any_uow
    defaults = mail_settings.get_templates(uow, first.organization_id)
    mine = type(defaults)("Join us, {{ invitee_name }}", defaults.html, defaults.text)
    theirs = type(defaults)("Welcome aboard", defaults.html, defaults.text)
    pause_after(monkeypatch, mail_settings, "load_templates",
                lambda: mail_settings.update_templates(uow, first, mine))
    with pytest.raises(Conflict, match="Someone else changed this"):
        mail_settings.update_templates(uow, second, theirs)
    assert mail_settings.get_templates(uow, first.organization_id).subject == mine.subject


def test_two_first_saves_of_a_policy_setting(
    any_uow: UnitOfWork, first: Operator, second: Operator, monkeypatch: pytest.MonkeyPatch
) -> None:
    uow = any_uow
    pause_after(monkeypatch, settings, "load", lambda: settings.update_settings(
        uow, first, {"invitation_expiry_days": 30}))
    with pytest.raises(Conflict, match="Someone else changed this"):
        settings.update_settings(uow, second, {"invitation_expiry_days": 45})
    assert settings.get_settings(uow, first.organization_id).invitation_expiry_days == 30
