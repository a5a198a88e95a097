"""The permission matrix: every role x every guarded action, as the policy in DESIGN.md says.

The expected outcomes are written out by hand below (not recomputed from the code under test):
"ok" means allowed, a role name means denied with PermissionDenied naming that role.
"""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from invite_desk.services.errors import PermissionDenied
from invite_desk.services.operator import Operator
from invite_desk.services.permissions import Action, Target, decide, require
from invite_desk.services.roles import Role
from invite_desk.services.settings_schema import PolicySettings

ORG = uuid.UUID("00000000-0000-4000-8000-000000000001")
UNIT_A = uuid.UUID("00000000-0000-4000-8000-00000000000a")
UNIT_B = uuid.UUID("00000000-0000-4000-8000-00000000000b")
SOMEONE_ELSE = uuid.UUID("00000000-0000-4000-8000-0000000000ee")
MEMBER_IDS = {role: uuid.UUID(int=0x1000 + role.value, version=4) for role in Role}

# Column order of every row below.
ROLES = (Role.USER, Role.HR_LOCAL, Role.HR_TENANT, Role.ADMIN_LOCAL, Role.ADMIN_TENANT)


def operator(role: Role, unit_id: uuid.UUID | None = UNIT_A) -> Operator:
    """Every operator lives in unit A (tenant-wide roles too: their unit must not matter)."""
    return Operator(
        member_id=MEMBER_IDS[role], organization_id=ORG, email=f"{role.name.lower()}@x.org",
        name=role.label, role=role, unit_id=unit_id, unit_name="Unit A" if unit_id else "",
    )


def own(role: Role) -> Target:
    return Target(unit_id=UNIT_A, owner_ids=(MEMBER_IDS[role],))


SAME_UNIT = Target(unit_id=UNIT_A, owner_ids=(SOMEONE_ELSE,))
OTHER_UNIT = Target(unit_id=UNIT_B, owner_ids=(SOMEONE_ELSE,))
NO_UNIT = Target(unit_id=None, owner_ids=(SOMEONE_ELSE,))
OWN = "own"  # placeholder: the operator's own row, resolved per role

# (case id, action, settings, target) -> outcome per role in ROLES order.
#                USER        HR_LOCAL     HR_TENANT    ADMIN_LOCAL   ADMIN_TENANT
MATRIX: list[tuple[str, Action, PolicySettings | None, Target | str | None, tuple[str, ...]]] = [
    ("change settings", Action.CHANGE_SETTINGS, None, None,
     ("ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ok")),
    # The suppression list (issue 13): organization HR see it, organization admins change it.
    ("see the suppression list", Action.VIEW_SUPPRESSION, None, None,
     ("HR_TENANT", "HR_TENANT", "ok", "ok", "ok")),
    ("change the suppression list", Action.MANAGE_SUPPRESSION, None, None,
     ("ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ok")),
    # Sending: role >= whoCanSendUserInvitation, and invitations enabled.
    ("send, who=USER", Action.SEND_INVITATIONS, PolicySettings(), None,
     ("ok", "ok", "ok", "ok", "ok")),
    ("send, who=HR_LOCAL", Action.SEND_INVITATIONS,
     PolicySettings(who_can_send_user_invitation=Role.HR_LOCAL), None,
     ("HR_LOCAL", "ok", "ok", "ok", "ok")),
    ("send, who=HR_TENANT", Action.SEND_INVITATIONS,
     PolicySettings(who_can_send_user_invitation=Role.HR_TENANT), None,
     ("HR_TENANT", "HR_TENANT", "ok", "ok", "ok")),
    ("send, who=ADMIN_LOCAL", Action.SEND_INVITATIONS,
     PolicySettings(who_can_send_user_invitation=Role.ADMIN_LOCAL), None,
     ("ADMIN_LOCAL", "ADMIN_LOCAL", "ADMIN_LOCAL", "ok", "ok")),
    ("send, who=ADMIN_TENANT", Action.SEND_INVITATIONS,
     PolicySettings(who_can_send_user_invitation=Role.ADMIN_TENANT), None,
     ("ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ok")),
    ("send, invitations off", Action.SEND_INVITATIONS,
     PolicySettings(has_user_invitation=False), None,
     ("USER", "USER", "USER", "USER", "USER")),
    ("send, invitations off, who=ADMIN_LOCAL", Action.SEND_INVITATIONS,
     PolicySettings(has_user_invitation=False, who_can_send_user_invitation=Role.ADMIN_LOCAL),
     None,
     ("ADMIN_LOCAL", "ADMIN_LOCAL", "ADMIN_LOCAL", "ADMIN_LOCAL", "ADMIN_LOCAL")),
    # On behalf of another member: at least HR_LOCAL, and that member within scope.
    ("on behalf, same unit", Action.SEND_ON_BEHALF, PolicySettings(), SAME_UNIT,
     ("HR_LOCAL", "ok", "ok", "ok", "ok")),
    ("on behalf, other unit", Action.SEND_ON_BEHALF, PolicySettings(), OTHER_UNIT,
     ("HR_TENANT", "HR_TENANT", "ok", "ADMIN_TENANT", "ok")),
    ("on behalf, who=ADMIN_LOCAL, same unit", Action.SEND_ON_BEHALF,
     PolicySettings(who_can_send_user_invitation=Role.ADMIN_LOCAL), SAME_UNIT,
     ("ADMIN_LOCAL", "ADMIN_LOCAL", "ADMIN_LOCAL", "ok", "ok")),
    ("on behalf, who=ADMIN_LOCAL, other unit", Action.SEND_ON_BEHALF,
     PolicySettings(who_can_send_user_invitation=Role.ADMIN_LOCAL), OTHER_UNIT,
     ("ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ok")),
    ("on behalf, invitations off", Action.SEND_ON_BEHALF,
     PolicySettings(has_user_invitation=False), SAME_UNIT,
     ("HR_LOCAL", "HR_LOCAL", "HR_LOCAL", "HR_LOCAL", "HR_LOCAL")),
    # Seeing invitations: USER its own, *_LOCAL its unit, *_TENANT everything.
    ("view invitation, own", Action.VIEW_INVITATION, None, OWN,
     ("ok", "ok", "ok", "ok", "ok")),
    ("view invitation, same unit", Action.VIEW_INVITATION, None, SAME_UNIT,
     ("HR_LOCAL", "ok", "ok", "ok", "ok")),
    ("view invitation, other unit", Action.VIEW_INVITATION, None, OTHER_UNIT,
     ("HR_TENANT", "HR_TENANT", "ok", "ADMIN_TENANT", "ok")),
    ("view invitation, no unit", Action.VIEW_INVITATION, None, NO_UNIT,
     ("HR_TENANT", "HR_TENANT", "ok", "ADMIN_TENANT", "ok")),
    # Resend / revoke / extend follow the same scope.
    ("manage invitation, own", Action.MANAGE_INVITATION, None, OWN,
     ("ok", "ok", "ok", "ok", "ok")),
    ("manage invitation, same unit", Action.MANAGE_INVITATION, None, SAME_UNIT,
     ("HR_LOCAL", "ok", "ok", "ok", "ok")),
    ("manage invitation, other unit", Action.MANAGE_INVITATION, None, OTHER_UNIT,
     ("HR_TENANT", "HR_TENANT", "ok", "ADMIN_TENANT", "ok")),
    # Adhesion approvals: HR and admins within their scope; never a USER.
    ("approve, same unit", Action.APPROVE_APPLICATION, None, SAME_UNIT,
     ("HR_LOCAL", "ok", "ok", "ok", "ok")),
    ("approve, other unit", Action.APPROVE_APPLICATION, None, OTHER_UNIT,
     ("HR_TENANT", "HR_TENANT", "ok", "ADMIN_TENANT", "ok")),
    ("approve, own application", Action.APPROVE_APPLICATION, None, OWN,
     ("HR_LOCAL", "ok", "ok", "ok", "ok")),
    # Members: a USER sees itself; local roles their unit; tenant roles everyone.
    ("view member, self", Action.VIEW_MEMBER, None, OWN,
     ("ok", "ok", "ok", "ok", "ok")),
    ("view member, same unit", Action.VIEW_MEMBER, None, SAME_UNIT,
     ("HR_LOCAL", "ok", "ok", "ok", "ok")),
    ("view member, other unit", Action.VIEW_MEMBER, None, OTHER_UNIT,
     ("HR_TENANT", "HR_TENANT", "ok", "ADMIN_TENANT", "ok")),
    # Issue 11, administration. People: local admins within their unit, the organization
    # admin everywhere (the role limits, "never above your own role" and "the last
    # organization admin", are in services/admin/people.py: tests/integration/
    # test_permissions_admin.py).
    ("manage people, any", Action.MANAGE_PEOPLE, None, None,
     ("ADMIN_LOCAL", "ADMIN_LOCAL", "ADMIN_LOCAL", "ok", "ok")),
    ("manage people, same unit", Action.MANAGE_PEOPLE, None, SAME_UNIT,
     ("ADMIN_LOCAL", "ADMIN_LOCAL", "ADMIN_LOCAL", "ok", "ok")),
    ("manage people, self", Action.MANAGE_PEOPLE, None, OWN,
     ("ADMIN_LOCAL", "ADMIN_LOCAL", "ADMIN_LOCAL", "ok", "ok")),
    ("manage people, other unit", Action.MANAGE_PEOPLE, None, OTHER_UNIT,
     ("ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ok")),
    ("manage people, no unit", Action.MANAGE_PEOPLE, None, NO_UNIT,
     ("ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ok")),
    ("view people, any", Action.VIEW_PEOPLE, None, None,
     ("HR_LOCAL", "ok", "ok", "ok", "ok")),
    ("view people, same unit", Action.VIEW_PEOPLE, None, SAME_UNIT,
     ("HR_LOCAL", "ok", "ok", "ok", "ok")),
    ("view people, other unit", Action.VIEW_PEOPLE, None, OTHER_UNIT,
     ("HR_TENANT", "HR_TENANT", "ok", "ADMIN_TENANT", "ok")),
    # Events: like people.
    ("manage events, same unit", Action.MANAGE_EVENTS, None, SAME_UNIT,
     ("ADMIN_LOCAL", "ADMIN_LOCAL", "ADMIN_LOCAL", "ok", "ok")),
    ("manage events, other unit", Action.MANAGE_EVENTS, None, OTHER_UNIT,
     ("ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ok")),
    ("view events, same unit", Action.VIEW_EVENTS, None, SAME_UNIT,
     ("HR_LOCAL", "ok", "ok", "ok", "ok")),
    ("view events, other unit", Action.VIEW_EVENTS, None, OTHER_UNIT,
     ("HR_TENANT", "HR_TENANT", "ok", "ADMIN_TENANT", "ok")),
    # Units and the whole audit log: organization structure, organization admin only.
    ("manage units", Action.MANAGE_UNITS, None, None,
     ("ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ok")),
    ("view audit log", Action.VIEW_AUDIT_LOG, None, None,
     ("ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ADMIN_TENANT", "ok")),
]

CELLS = [
    pytest.param(action, policy, target, role, expected, id=f"{case} / {role.name}")
    for case, action, policy, target, outcomes in MATRIX
    for role, expected in zip(ROLES, outcomes, strict=True)
]


def test_matrix_covers_every_role_and_guarded_action() -> None:
    assert {action for _, action, *_ in MATRIX} == set(Action)
    assert all(len(outcomes) == len(Role) for *_, outcomes in MATRIX)
    assert set(ROLES) == set(Role)


@pytest.mark.parametrize(("action", "policy", "target", "role", "expected"), CELLS)
def test_permission_matrix(action: Action, policy: PolicySettings | None,
                           target: Target | str | None, role: Role, expected: str) -> None:
    who = operator(role)
    resolved = own(role) if target == OWN else target
    assert not isinstance(resolved, str)
    decision = decide(who, action, settings=policy, target=resolved)
    if expected == "ok":
        assert decision.allowed
        require(who, action, settings=policy, target=resolved)  # does not raise
        return
    assert not decision.allowed
    assert decision.needed is Role[expected]
    with pytest.raises(PermissionDenied) as denied:
        require(who, action, settings=policy, target=resolved)
    error = denied.value
    assert type(error) is PermissionDenied
    assert error.needed == expected
    if policy is not None and not policy.has_user_invitation and role >= Role[expected]:
        # The role suffices; the message says what does stand in the way instead.
        assert str(error).startswith(f"You cannot {action.value}. Invitations are turned off")
    else:
        assert str(error).startswith(f"You cannot {action.value}: this needs the {expected} role")


@pytest.mark.parametrize("role", [Role.USER, Role.HR_LOCAL, Role.ADMIN_LOCAL])
def test_a_denial_never_names_a_role_the_operator_already_outranks(role: Role) -> None:
    """ADMIN_LOCAL outranks HR_TENANT but only sees its unit: it must be told ADMIN_TENANT."""
    decision = decide(operator(role), Action.VIEW_INVITATION, target=OTHER_UNIT)
    assert not decision.allowed
    assert decision.needed > role


def test_invitations_off_explains_how_to_turn_them_back_on() -> None:
    with pytest.raises(PermissionDenied) as denied:
        require(operator(Role.ADMIN_TENANT), Action.SEND_INVITATIONS,
                settings=PolicySettings(has_user_invitation=False))
    assert "Invitations are turned off" in str(denied.value)
    assert "turn them on in Settings" in str(denied.value)


def test_out_of_unit_denials_say_so() -> None:
    with pytest.raises(PermissionDenied) as denied:
        require(operator(Role.HR_LOCAL), Action.APPROVE_APPLICATION, target=OTHER_UNIT)
    assert "The applicant belongs to another unit." in str(denied.value)
    with pytest.raises(PermissionDenied) as denied:
        require(operator(Role.HR_LOCAL), Action.SEND_ON_BEHALF, settings=PolicySettings(),
                target=OTHER_UNIT)
    assert "That member is outside your unit." in str(denied.value)


def test_tenant_roles_do_not_depend_on_their_own_unit() -> None:
    for role in (Role.HR_TENANT, Role.ADMIN_TENANT):
        for unit in (UNIT_A, UNIT_B, None):
            assert decide(operator(role, unit), Action.VIEW_INVITATION, target=OTHER_UNIT).allowed


def test_sending_decisions_need_the_settings() -> None:
    with pytest.raises(ValueError, match="settings"):
        decide(operator(Role.ADMIN_TENANT), Action.SEND_INVITATIONS)


TARGETS = st.sampled_from([None, SAME_UNIT, OTHER_UNIT, NO_UNIT])


@given(
    role=st.sampled_from(Role),
    lower=st.sampled_from(Role),
    higher=st.sampled_from(Role),
    enabled=st.booleans(),
    action=st.sampled_from([Action.SEND_INVITATIONS, Action.SEND_ON_BEHALF]),
    target=TARGETS,
)
def test_raising_who_can_send_never_grants_new_sending_rights(
    role: Role, lower: Role, higher: Role, enabled: bool, action: Action, target: Target | None
) -> None:
    lower, higher = min(lower, higher), max(lower, higher)
    who = operator(role)

    def allowed(who_can_send: Role) -> bool:
        policy = PolicySettings(has_user_invitation=enabled,
                                who_can_send_user_invitation=who_can_send)
        return decide(who, action, settings=policy, target=target).allowed

    if allowed(higher):
        assert allowed(lower)


@given(role=st.sampled_from(Role), who_can_send=st.sampled_from(Role), target=TARGETS)
def test_turning_invitations_off_denies_everyone(role: Role, who_can_send: Role,
                                                target: Target | None) -> None:
    policy = PolicySettings(has_user_invitation=False, who_can_send_user_invitation=who_can_send)
    for action in (Action.SEND_INVITATIONS, Action.SEND_ON_BEHALF):
        assert not decide(operator(role), action, settings=policy, target=target).allowed
