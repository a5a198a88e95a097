"""referral speed: indexes that let the referral reconciliation look only at what changed

- member, referral, referral_flag: (organization_id, updated_at), the reconciliation's
  watermark ranges (rows changed since its last run); member (organization_id, status,
  joined_at): one month's active members, recounted when a member of it changed.
- referral_reward: (organization_id, state, vest_after), the held rewards due to vest.
- referral_running_stats: running totals per dimension, group and local month (leaderboard
  ranking, conversion counts and time-to-accept histograms, active members for the K-factor).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 02:20:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

INDEXES = (
    ('ix_member_org_updated', 'member', ['organization_id', 'updated_at']),
    ('ix_member_org_status_joined', 'member', ['organization_id', 'status', 'joined_at']),
    ('ix_referral_org_updated', 'referral', ['organization_id', 'updated_at']),
    ('ix_referral_flag_org_updated', 'referral_flag', ['organization_id', 'updated_at']),
    ('ix_referral_reward_org_state_vest', 'referral_reward',
     ['organization_id', 'state', 'vest_after']),
)


UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def exact_string(length: int) -> sa.String:
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        'referral_running_stats',
        sa.Column('organization_id', sa.Uuid(), nullable=False),
        sa.Column('dim', sa.String(length=10), nullable=False),
        sa.Column('month_start', UTC_DATETIME, nullable=False),
        sa.Column('group_key', exact_string(36), nullable=False),
        *[sa.Column(name, sa.Integer(), nullable=False)
          for name in ('score', 'sent', 'accepted', *(f'h{i}' for i in range(16)))],
        sa.ForeignKeyConstraint(
            ['organization_id'], ['organization.id'],
            name=op.f('fk_referral_running_stats_organization_id_organization')),
        sa.PrimaryKeyConstraint('organization_id', 'dim', 'month_start', 'group_key',
                                name=op.f('pk_referral_running_stats')),
    )
    op.create_index('ix_referral_running_stats_group', 'referral_running_stats',
                    ['organization_id', 'dim', 'group_key', 'month_start'], unique=False)
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
    op.drop_index('ix_referral_running_stats_group', table_name='referral_running_stats')
    op.drop_table('referral_running_stats')
