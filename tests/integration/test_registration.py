"""Registration through invitation links and the public page, at the services level: every
token state, invite-only with N = 1 and N = 2, adhesion on and off, referrals, event guests."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from invite_desk.services import auth
from invite_desk.services.errors import AuthenticationFailed, ValidationFailed
from invite_desk.services.models import (
    AcceptedVia,
    AdhesionStatus,
    AuditLog,
    EventGuest,
    InvitationKind,
    InvitationStatus,
    Member,
    MemberStatus,
    ReferralStatus,
    utcnow,
)
from invite_desk.services.operator import Operator
from invite_desk.services.referrals import referrals_of
from invite_desk.services.registration.joining import register_with_invitation
from invite_desk.services.registration.links import LinkState, open_link
from invite_desk.services.registration.public import (
    PublicState,
    public_registration,
    register_publicly,
)
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork
from tests.conftest import MakeOperator, MakeUnit
from tests.registration_fixtures import (
    PASSWORD,
    form,
    invitation,
    invite,
    make_event,
    member_by_email,
    members_with_email,
    referral_rows,
    set_policy,
)

ZOE = "Zoe.Martin@Example.org"


# ----------------------------------------------------------------------------- link states


def test_a_sent_link_shows_branding_inviter_message_and_the_address(
    uow: UnitOfWork, admin: Operator
) -> None:
    sent = invite(uow, admin, ZOE, name="Zoë Martin", message="Come row with us! <b>hi</b>")
    view = open_link(uow, sent.token, organization_id=admin.organization_id)
    assert view.state is LinkState.VALID
    assert view.branding is not None and view.branding.name == "Harbour Rowing Club"
    assert view.inviter_name == "Ada Admin"
    assert view.personal_message == "Come row with us! <b>hi</b>"  # escaped by the template
    assert view.email == ZOE
    assert (view.first_name, view.last_name) == ("Zoë", "Martin")
    assert view.asks_password and not view.adhesion_required
    assert view.kind is InvitationKind.MEMBERSHIP


@pytest.mark.parametrize(
    ("status", "expires_in", "expected"),
    [
        (InvitationStatus.SENT, timedelta(days=3), LinkState.VALID),
        (InvitationStatus.UNCERTAIN, timedelta(days=3), LinkState.VALID),
        (InvitationStatus.SENT, -timedelta(seconds=1), LinkState.EXPIRED),  # by time alone
        (InvitationStatus.UNCERTAIN, -timedelta(days=1), LinkState.EXPIRED),
        (InvitationStatus.EXPIRED, -timedelta(days=1), LinkState.EXPIRED),
        (InvitationStatus.ACCEPTED, timedelta(days=3), LinkState.USED),
        (InvitationStatus.REVOKED, timedelta(days=3), LinkState.REVOKED),
        (InvitationStatus.FAILED, timedelta(days=3), LinkState.INVALID),
        (InvitationStatus.QUEUED, timedelta(days=3), LinkState.INVALID),
        (InvitationStatus.DRAFT, timedelta(days=3), LinkState.INVALID),
        (InvitationStatus.SENDING, timedelta(days=3), LinkState.NOT_READY),
    ],
)
def test_every_token_state_has_its_page(
    uow: UnitOfWork, admin: Operator, status: InvitationStatus, expires_in: timedelta,
    expected: LinkState,
) -> None:
    sent = invite(uow, admin, ZOE, status=status, expires_at=utcnow() + expires_in,
                  message="private words")
    view = open_link(uow, sent.token, organization_id=admin.organization_id)
    assert view.state is expected
    if expected is not LinkState.VALID:
        # Nothing personal on a page that is not the form.
        assert view.email == "" and view.personal_message == ""
        # A withdrawn link names whom to ask; no other page names the inviter.
        assert view.inviter_name == ("Ada Admin" if expected is LinkState.REVOKED else "")
        result = register_with_invitation(uow, sent.token, form(),
                                          organization_id=admin.organization_id)
        assert result.state is expected and not result.registered
        assert member_by_email(uow, ZOE) is None
        assert invitation(uow, sent.id).status == status.value


def test_unknown_malformed_and_foreign_tokens_are_invalid(
    uow: UnitOfWork, admin: Operator
) -> None:
    sent = invite(uow, admin, ZOE)
    for token in ("A" * 43, "not a token!", "", "x" * 500, sent.token[:-1]):
        view = open_link(uow, token, organization_id=admin.organization_id)
        assert view.state is LinkState.INVALID
        assert view.branding is not None  # the portal's own branding, nothing of the link
    assert open_link(uow, sent.token, organization_id=uuid.uuid4()).state is LinkState.INVALID


def test_expiry_is_decided_by_the_clock_not_the_status(uow: UnitOfWork, admin: Operator) -> None:
    sent = invite(uow, admin, ZOE)
    later = utcnow() + timedelta(days=15)
    assert open_link(uow, sent.token, now=later).state is LinkState.EXPIRED
    result = register_with_invitation(uow, sent.token, form(), now=later)
    assert result.state is LinkState.EXPIRED
    assert member_by_email(uow, ZOE) is None


# ---------------------------------------------------------------------------- registering


def test_registering_makes_a_member_linked_to_the_inviter(
    uow: UnitOfWork, admin: Operator, make_unit: MakeUnit, make_operator: MakeOperator
) -> None:
    unit = make_unit("North Harbour")
    hr = make_operator(Role.HR_LOCAL, unit)
    sent = invite(uow, hr, ZOE, name="Zoë Martin")

    result = register_with_invitation(uow, sent.token, form(" Zoë ", " Martin "),
                                      organization_id=admin.organization_id)

    assert result.registered and result.first_name == "Zoë" and not result.application_pending
    member = member_by_email(uow, ZOE)
    assert member is not None and member.id == result.member_id
    assert member.email == ZOE and (member.first_name, member.last_name) == ("Zoë", "Martin")
    assert member.role == "USER" and member.status == MemberStatus.ACTIVE.value
    assert member.unit_id == unit and member.referred_by_id == hr.member_id
    assert member.adhesion_status is None
    row = invitation(uow, sent.id)
    assert row.status == InvitationStatus.ACCEPTED.value
    assert row.accepted_member_id == member.id and row.accepted_at is not None
    assert row.accepted_via == AcceptedVia.LINK.value
    assert row.token_hash is not None  # kept: the link then says "already used"
    records = referrals_of(uow, member.id)
    assert [(r.referrer_id, r.status, r.invitation_id) for r in records] == [
        (hr.member_id, ReferralStatus.COMPLETED, sent.id)]
    assert records[0].completed_at is not None
    # The password works: an active member may sign in with it (as a USER).
    assert auth.sign_in(uow, ZOE.upper(), PASSWORD).role is Role.USER
    with uow:
        actions = set(uow.session.scalars(select(AuditLog.action)))
    assert {"member.registered", "invitation.accepted", "referral.recorded"} <= actions


def test_a_used_link_says_so_and_makes_no_second_member(uow: UnitOfWork, admin: Operator) -> None:
    sent = invite(uow, admin, ZOE)
    assert register_with_invitation(uow, sent.token, form()).registered
    again = register_with_invitation(uow, sent.token, form("Mallory"))
    assert again.state is LinkState.USED
    assert open_link(uow, sent.token).state is LinkState.USED
    assert members_with_email(uow, ZOE) == 1
    member = member_by_email(uow, ZOE)
    assert member is not None and member.first_name == "Zoë"


def test_other_live_invitations_are_closed_as_accepted_elsewhere(
    uow: UnitOfWork, admin: Operator, make_operator: MakeOperator
) -> None:
    other = make_operator(Role.USER)
    third = make_operator(Role.USER)
    first = invite(uow, admin, ZOE)
    second = invite(uow, other, ZOE.lower())
    expired = invite(uow, third, ZOE, expires_at=utcnow() - timedelta(days=1))

    result = register_with_invitation(uow, second.token, form())

    assert result.registered and result.member_id is not None
    closed = invitation(uow, first.id)
    assert closed.status == InvitationStatus.ACCEPTED.value
    assert closed.accepted_via == AcceptedVia.OTHER_INVITATION.value
    assert closed.accepted_member_id == result.member_id
    assert invitation(uow, expired.id).status == InvitationStatus.SENT.value  # not live: untouched
    assert open_link(uow, first.token).state is LinkState.USED
    # Open registration: only the member whose link was used is the referrer.
    assert [r.referrer_id for r in referral_rows(uow, result.member_id)] == [other.member_id]
    member = member_by_email(uow, ZOE)
    assert member is not None and member.referred_by_id == other.member_id


def test_without_referral_tracking_the_member_is_still_linked_but_no_referral_is_written(
    uow: UnitOfWork, admin: Operator
) -> None:
    set_policy(uow, admin, referral_is_active=False)
    sent = invite(uow, admin, ZOE)
    result = register_with_invitation(uow, sent.token, form())
    assert result.registered and result.member_id is not None
    assert referral_rows(uow, result.member_id) == []
    member = member_by_email(uow, ZOE)
    assert member is not None and member.referred_by_id == admin.member_id


@pytest.mark.parametrize(
    "bad",
    [
        form(password="short"),
        form(confirmation="a different password"),
        form("", ""),
        form("x" * 101),
    ],
    ids=["short-password", "mismatch", "no-name", "long-name"],
)
def test_form_errors_change_nothing(uow: UnitOfWork, admin: Operator, bad: object) -> None:
    sent = invite(uow, admin, ZOE)
    with pytest.raises(ValidationFailed) as caught:
        register_with_invitation(uow, sent.token, bad)  # type: ignore[arg-type]
    assert caught.value.errors
    assert member_by_email(uow, ZOE) is None
    assert invitation(uow, sent.id).status == InvitationStatus.SENT.value


def test_without_the_password_setting_the_form_asks_only_for_a_name(
    uow: UnitOfWork, admin: Operator
) -> None:
    set_policy(uow, admin, registration_asks_password=False)
    sent = invite(uow, admin, ZOE)
    assert open_link(uow, sent.token).asks_password is False
    result = register_with_invitation(uow, sent.token, form(password=""))
    assert result.registered
    member = member_by_email(uow, ZOE)
    assert member is not None and member.password_hash is None
    with pytest.raises(AuthenticationFailed):
        auth.sign_in(uow, ZOE, "")


def test_an_address_that_is_already_a_member_is_told_so(uow: UnitOfWork, admin: Operator) -> None:
    sent = invite(uow, admin, "ADA.ADMIN@example.org")
    assert open_link(uow, sent.token).state is LinkState.ALREADY_MEMBER
    result = register_with_invitation(uow, sent.token, form("Eve"))
    assert result.state is LinkState.ALREADY_MEMBER
    assert invitation(uow, sent.id).status == InvitationStatus.SENT.value
    assert auth.sign_in(uow, "ada.admin@example.org", "correct horse battery").role is Role.ADMIN_TENANT


def test_a_deactivated_member_rejoins_as_a_member_not_as_what_they_were(
    uow: UnitOfWork, admin: Operator, make_operator: MakeOperator
) -> None:
    former = make_operator(Role.ADMIN_TENANT, email=ZOE)
    with uow:
        row = uow.session.get(Member, former.member_id)
        assert row is not None
        row.status = MemberStatus.DEACTIVATED.value
        uow.commit()
    sent = invite(uow, admin, ZOE)
    result = register_with_invitation(uow, sent.token, form("Zoë", "Back"))
    assert result.registered and result.member_id == former.member_id
    member = member_by_email(uow, ZOE)
    assert member is not None
    assert (member.role, member.status, member.last_name) == ("USER", "active", "Back")
    assert members_with_email(uow, ZOE) == 1


# ---------------------------------------------------------------------------- invite-only


def test_invite_only_with_one_referral_turns_the_public_page_off(
    uow: UnitOfWork, admin: Operator
) -> None:
    set_policy(uow, admin, number_of_referrals_needed_for_signup=1)
    view = public_registration(uow, admin.organization_id)
    assert view.state is PublicState.INVITE_ONLY and view.referrals_needed == 1
    outcome = register_publicly(uow, admin.organization_id, form(email="walk.in@example.org"))
    assert outcome.state is PublicState.INVITE_ONLY
    assert member_by_email(uow, "walk.in@example.org") is None
    # Invited users can register normally.
    sent = invite(uow, admin, ZOE)
    assert open_link(uow, sent.token).state is LinkState.VALID
    assert register_with_invitation(uow, sent.token, form()).registered


@pytest.mark.parametrize("needed", [None, 0])
def test_zero_or_empty_means_open_registration(
    uow: UnitOfWork, admin: Operator, needed: int | None
) -> None:
    set_policy(uow, admin, number_of_referrals_needed_for_signup=needed)
    assert public_registration(uow, admin.organization_id).state is PublicState.OPEN


def test_invite_only_with_two_needs_two_distinct_members_and_credits_both(
    uow: UnitOfWork, admin: Operator, make_operator: MakeOperator
) -> None:
    set_policy(uow, admin, number_of_referrals_needed_for_signup=2)
    bob = make_operator(Role.USER)
    first = invite(uow, admin, ZOE)
    # The same member inviting twice is still one member.
    again = invite(uow, admin, ZOE)

    view = open_link(uow, first.token)
    assert view.state is LinkState.NEEDS_MORE_INVITATIONS
    assert (view.invitations_needed, view.invitations_held, view.invitations_missing) == (2, 1, 1)
    assert view.inviter_name == "Ada Admin" and view.email == ZOE
    assert register_with_invitation(uow, again.token, form()).state is LinkState.NEEDS_MORE_INVITATIONS
    assert member_by_email(uow, ZOE) is None

    second = invite(uow, bob, ZOE)
    assert open_link(uow, first.token).state is LinkState.VALID
    result = register_with_invitation(uow, first.token, form())

    assert result.registered and result.member_id is not None
    credited = {r.referrer_id: r for r in referral_rows(uow, result.member_id)}
    assert set(credited) == {admin.member_id, bob.member_id}
    assert credited[bob.member_id].invitation_id == second.id
    assert all(r.status == ReferralStatus.COMPLETED.value for r in credited.values())
    assert invitation(uow, second.id).accepted_via == AcceptedVia.OTHER_INVITATION.value
    assert invitation(uow, again.id).status == InvitationStatus.ACCEPTED.value
    member = member_by_email(uow, ZOE)
    assert member is not None and member.referred_by_id == admin.member_id


def test_a_revoked_or_expired_second_invitation_does_not_count(
    uow: UnitOfWork, admin: Operator, make_operator: MakeOperator
) -> None:
    set_policy(uow, admin, number_of_referrals_needed_for_signup=2)
    bob, carol = make_operator(Role.USER), make_operator(Role.USER)
    first = invite(uow, admin, ZOE)
    invite(uow, bob, ZOE, status=InvitationStatus.REVOKED)
    invite(uow, carol, ZOE, expires_at=utcnow() - timedelta(minutes=1))
    view = open_link(uow, first.token)
    assert view.state is LinkState.NEEDS_MORE_INVITATIONS and view.invitations_held == 1


# ------------------------------------------------------------------------------- adhesion


def test_with_adhesion_the_member_is_an_applicant_and_the_referral_pending(
    uow: UnitOfWork, admin: Operator
) -> None:
    set_policy(uow, admin, adhesion_required=True)
    sent = invite(uow, admin, ZOE)
    assert open_link(uow, sent.token).adhesion_required
    result = register_with_invitation(uow, sent.token, form())
    assert result.registered and result.application_pending
    member = member_by_email(uow, ZOE)
    assert member is not None
    assert member.status == MemberStatus.APPLICANT.value
    assert member.adhesion_status == AdhesionStatus.PENDING.value
    assert [r.status for r in referral_rows(uow, member.id)] == [ReferralStatus.PENDING.value]
    with pytest.raises(AuthenticationFailed):  # applicants cannot sign in yet
        auth.sign_in(uow, ZOE, PASSWORD)
    with uow:
        submitted = uow.session.scalar(
            select(AuditLog).where(AuditLog.action == "adhesion.submitted"))
        assert submitted is not None and '"new"' in submitted.before_json


# ---------------------------------------------------------------------------- event guests


def test_an_event_invitation_records_a_guest_and_makes_no_member(
    uow: UnitOfWork, admin: Operator
) -> None:
    event_id = make_event(uow, admin)
    sent = invite(uow, admin, ZOE, kind=InvitationKind.EVENT, event_id=event_id)
    view = open_link(uow, sent.token)
    assert view.state is LinkState.VALID and view.kind is InvitationKind.EVENT
    assert view.event is not None and view.event.name == "Summer Regatta"
    assert not view.asks_password

    result = register_with_invitation(uow, sent.token, form(password=""))

    assert result.registered and result.kind is InvitationKind.EVENT
    assert result.member_id is None and result.event_name == "Summer Regatta"
    assert member_by_email(uow, ZOE) is None
    with uow:
        guest = uow.session.scalars(select(EventGuest)).one()
        assert (guest.event_id, guest.invitation_id, guest.email) == (event_id, sent.id, ZOE)
        assert guest.first_name == "Zoë" and guest.member_id is None
    assert invitation(uow, sent.id).status == InvitationStatus.ACCEPTED.value
    assert open_link(uow, sent.token).state is LinkState.USED


def test_an_event_guest_who_later_joins_credits_the_event_inviter_too(
    uow: UnitOfWork, admin: Operator, make_operator: MakeOperator
) -> None:
    bob = make_operator(Role.USER)
    event_id = make_event(uow, admin)
    guest_link = invite(uow, bob, ZOE, kind=InvitationKind.EVENT, event_id=event_id)
    assert register_with_invitation(uow, guest_link.token, form(password="")).registered

    membership = invite(uow, admin, ZOE)
    result = register_with_invitation(uow, membership.token, form())

    assert result.registered and result.member_id is not None
    credited = {r.referrer_id: r.invitation_id for r in referral_rows(uow, result.member_id)}
    assert credited == {admin.member_id: membership.id, bob.member_id: guest_link.id}
    with uow:
        guest = uow.session.scalars(select(EventGuest)).one()
        assert guest.member_id == result.member_id


# ------------------------------------------------------------------------ public registration


def test_public_registration_makes_a_member_and_answers_the_same_for_a_known_address(
    uow: UnitOfWork, admin: Operator
) -> None:
    new = register_publicly(uow, admin.organization_id, form(email="walk.in@example.org"))
    with uow:
        admin_before = uow.session.get(Member, admin.member_id)
        assert admin_before is not None
        hash_before, name_before = admin_before.password_hash, admin_before.first_name
    known = register_publicly(
        uow, admin.organization_id,
        form("Mallory", "Intruder", email="Ada.Admin@example.org", password="mallory's password"),
    )

    assert new == known  # the very same answer
    assert new.state is PublicState.OPEN
    member = member_by_email(uow, "walk.in@example.org")
    assert member is not None and member.status == "active" and member.referred_by_id is None
    assert member.unit_id is None and member.role == "USER"
    with uow:
        admin_after = uow.session.get(Member, admin.member_id)
        assert admin_after is not None
        assert (admin_after.password_hash, admin_after.first_name) == (hash_before, name_before)
        repeated = uow.session.scalars(
            select(AuditLog).where(AuditLog.action == "registration.repeated")).one()
        assert repeated.entity_id == admin.member_id and "mallory" not in repeated.after_json.lower()
    assert members_with_email(uow, "ada.admin@example.org") == 1


def test_public_registration_validates_the_address_and_the_password(
    uow: UnitOfWork, admin: Operator
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        register_publicly(uow, admin.organization_id, form(email="not an address", password="short"))
    assert set(caught.value.errors) == {"email", "password"}


def test_public_registration_closes_live_invitations_and_credits_the_oldest_inviter(
    uow: UnitOfWork, admin: Operator, make_operator: MakeOperator, make_unit: MakeUnit
) -> None:
    unit = make_unit("South")
    bob = make_operator(Role.USER, unit)
    carol = make_operator(Role.USER)
    oldest = invite(uow, bob, ZOE)
    newer = invite(uow, carol, ZOE)
    register_publicly(uow, admin.organization_id, form(email=ZOE))
    member = member_by_email(uow, ZOE)
    assert member is not None
    assert member.referred_by_id == bob.member_id and member.unit_id == unit
    assert [r.referrer_id for r in referral_rows(uow, member.id)] == [bob.member_id]
    for sent in (oldest, newer):
        row = invitation(uow, sent.id)
        assert row.status == "accepted" and row.accepted_via == AcceptedVia.PUBLIC_REGISTRATION.value
