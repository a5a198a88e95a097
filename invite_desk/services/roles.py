"""The five permission levels, lowest first, as the product documents order them."""

from __future__ import annotations

from enum import IntEnum


class Role(IntEnum):
    USER = 0
    HR_LOCAL = 1
    HR_TENANT = 2
    ADMIN_LOCAL = 3
    ADMIN_TENANT = 4

    @property
    def is_tenant_wide(self) -> bool:
        return self in (Role.HR_TENANT, Role.ADMIN_TENANT)

    @property
    def is_local(self) -> bool:
        return self in (Role.HR_LOCAL, Role.ADMIN_LOCAL)

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]

    @classmethod
    def parse(cls, value: str | int | Role) -> Role:
        if isinstance(value, Role):
            return value
        if isinstance(value, int):
            return cls(value)
        try:
            return cls[value.strip().upper()]
        except KeyError:
            names = ", ".join(r.name for r in cls)
            raise ValueError(f"Unknown role {value!r}; expected one of {names}") from None


ROLE_LABELS: dict[Role, str] = {
    Role.USER: "Member",
    Role.HR_LOCAL: "Local HR",
    Role.HR_TENANT: "Organization HR",
    Role.ADMIN_LOCAL: "Local admin",
    Role.ADMIN_TENANT: "Organization admin",
}

# What each value of `whoCanSendUserInvitation` means, in the product document's words.
WHO_CAN_INVITE_EXPLANATIONS: dict[Role, str] = {
    Role.USER: "All members can invite",
    Role.HR_LOCAL: "Only local HR and above",
    Role.HR_TENANT: "Only organization HR and above",
    Role.ADMIN_LOCAL: "Only local admins and above",
    Role.ADMIN_TENANT: "Only organization admins",
}
