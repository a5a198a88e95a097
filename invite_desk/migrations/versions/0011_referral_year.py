"""referral periods: per referrer and calendar month, quarter, year and all time, the
leaderboard's figures and score, indexed in rank order (and by invitations sent / accepted,
the conversion table's orders), so a page of a leaderboard or conversion table is read from
an index instead of aggregating every referrer (issue 10's speed targets).

The rows are derived from referral_month_stats by the reconciliation (the organization's
time zone decides the local calendar, which SQL cannot apply on SQLite): the first
reconciliation after this upgrade builds them with a few INSERT ... SELECT statements over
the monthly summary (seconds at a million referrals), so this migration only creates the
table.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26 04:30:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
INDEXES = (
    ('ix_referral_period_stats_rank',
     ['organization_id', 'period', 'score', 'reached', 'referrer_id']),
    ('ix_referral_period_stats_unit_rank',
     ['organization_id', 'period', 'unit_id', 'score', 'reached', 'referrer_id']),
    # covering: a conversion page's counts are read from the index alone
    ('ix_referral_period_stats_sent',
     ['organization_id', 'period', 'sent', 'accepted', 'referrer_id']),
    ('ix_referral_period_stats_accepted',
     ['organization_id', 'period', 'accepted', 'sent', 'referrer_id']),
)


def upgrade() -> None:
    op.create_table(
        'referral_period_stats',
        sa.Column('organization_id', sa.Uuid(), nullable=False),
        sa.Column('referrer_id', sa.Uuid(), nullable=False),
        sa.Column('period', sa.String(length=8), nullable=False),
        sa.Column('unit_id', sa.Uuid(), nullable=True),
        *[sa.Column(name, sa.Integer(), nullable=False)
          for name in ('score', 'completed', 'active', 'vested_points', 'vested',
                       'held_points')],
        sa.Column('reached', UTC_DATETIME, nullable=True),
        sa.Column('sent', sa.Integer(), nullable=False),
        sa.Column('accepted', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ['organization_id'], ['organization.id'],
            name=op.f('fk_referral_period_stats_organization_id_organization')),
        sa.ForeignKeyConstraint(
            ['referrer_id'], ['member.id'],
            name=op.f('fk_referral_period_stats_referrer_id_member')),
        sa.PrimaryKeyConstraint('organization_id', 'referrer_id', 'period',
                                name=op.f('pk_referral_period_stats')),
    )
    for name, columns in INDEXES:
        op.create_index(name, 'referral_period_stats', columns, unique=False)


def downgrade() -> None:
    for name, _ in reversed(INDEXES):
        op.drop_index(name, table_name='referral_period_stats')
    op.drop_table('referral_period_stats')
