"""The signed-in operator, as every service receives it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from invite_desk.services.roles import Role


@dataclass(frozen=True)
class Operator:
    member_id: uuid.UUID
    organization_id: uuid.UUID
    email: str
    name: str
    role: Role
    unit_id: uuid.UUID | None
    unit_name: str

    @property
    def scope_label(self) -> str:
        if self.role.is_tenant_wide:
            return "whole organization"
        if self.role.is_local:
            return self.unit_name or "no unit"
        return "own invitations"
