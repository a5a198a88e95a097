"""referral speed: indexes that let the referral reconciliation look only at what changed

- member, referral, referral_flag: (organization_id, updated_at), the reconciliation's
  watermark ranges (rows changed since its last run).
- referral_reward: (organization_id, state, vest_after), the held rewards due to vest.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 02:20:00.000000
"""
from __future__ import annotations

from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

INDEXES = (
    ('ix_member_org_updated', 'member', ['organization_id', 'updated_at']),
    ('ix_referral_org_updated', 'referral', ['organization_id', 'updated_at']),
    ('ix_referral_flag_org_updated', 'referral_flag', ['organization_id', 'updated_at']),
    ('ix_referral_reward_org_state_vest', 'referral_reward',
     ['organization_id', 'state', 'vest_after']),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
