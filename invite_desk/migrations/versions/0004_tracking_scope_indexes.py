"""tracking scope indexes: a local role's tables stay fast at a million rows

The (organization_id, status, <sort key>, id, ...) indexes of 0003 end with unit_id, so that
a LOCAL role's view (its unit's invitations) is read by walking them without opening a table
row to check the unit (services/tracking/read.py). Same names, one more column.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 18:45:00.000000
"""
from __future__ import annotations

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

# As created by 0003; each gains a trailing unit_id.
BEFORE: dict[str, list[str]] = {
    "ix_invitation_org_status_queued_id": ["organization_id", "status", "queued_at", "id"],
    "ix_invitation_org_status_sent_id": ["organization_id", "status", "sent_at", "id",
                                         "expires_at"],
    "ix_invitation_org_status_expires_id": ["organization_id", "status", "expires_at", "id",
                                            "sent_at"],
    "ix_invitation_org_status_accepted_id": ["organization_id", "status", "accepted_at", "id",
                                             "expires_at"],
    "ix_invitation_org_status_email_id": ["organization_id", "status", "email_normalized", "id",
                                          "expires_at"],
}
AFTER: dict[str, list[str]] = {name: [*columns, "unit_id"] for name, columns in BEFORE.items()}


def _replace(indexes: dict[str, list[str]]) -> None:
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        for name in indexes:
            batch_op.drop_index(name)
        for name, columns in indexes.items():
            batch_op.create_index(name, columns, unique=False)


def upgrade() -> None:
    _replace(AFTER)


def downgrade() -> None:
    _replace(BEFORE)
