"""tracking indexes: invitation tables that open, sort and search fast at a million rows

Each (organization_id, status, <sort key>, id, ...) index lets a tab be read as a merge of
per-status branches in the order of a sort column, without sorting (services/tracking/read.py).
They supersede (organization_id, status, queued_at), (organization_id, status, sent_at) and
(organization_id, status, expires_at), which are their prefixes (the outbox's ORDER BY
queued_at, id is now answered by the index alone). (organization_id, name) answers name searches; (sender_id,
created_at) answers a member's own invitations (inviter OR sender) with two index lookups.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 18:30:00.000000
"""
from __future__ import annotations

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

NEW_INDEXES: dict[str, list[str]] = {
    "ix_invitation_org_status_queued_id": ["organization_id", "status", "queued_at", "id"],
    "ix_invitation_org_status_sent_id": ["organization_id", "status", "sent_at", "id", "expires_at"],
    "ix_invitation_org_status_expires_id": ["organization_id", "status", "expires_at", "id",
                                            "sent_at"],
    "ix_invitation_org_status_accepted_id": ["organization_id", "status", "accepted_at", "id",
                                             "expires_at"],
    "ix_invitation_org_status_email_id": ["organization_id", "status", "email_normalized", "id",
                                          "expires_at"],
    "ix_invitation_org_name": ["organization_id", "name"],
    "ix_invitation_sender_created": ["sender_id", "created_at"],
}

SUPERSEDED: dict[str, list[str]] = {
    "ix_invitation_org_status_queued": ["organization_id", "status", "queued_at"],
    "ix_invitation_org_status_sent": ["organization_id", "status", "sent_at"],
    "ix_invitation_org_expires": ["organization_id", "status", "expires_at"],
}


def upgrade() -> None:
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        for name in SUPERSEDED:
            batch_op.drop_index(name)
        for name, columns in NEW_INDEXES.items():
            batch_op.create_index(name, columns, unique=False)


def downgrade() -> None:
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        for name in NEW_INDEXES:
            batch_op.drop_index(name)
        for name, columns in SUPERSEDED.items():
            batch_op.create_index(name, columns, unique=False)
