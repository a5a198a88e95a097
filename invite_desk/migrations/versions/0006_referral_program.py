"""referral programme: points ledger, reward states, anti-gaming flags, member origins

- referral_ledger: append-only award / vest / revoke rows with their reason.
- referral_reward: where each rewarded referral stands (held, vested, revoked, fake).
- referral_flag: anti-gaming findings awaiting an admin's decision.
- member_origin: the channel a member came in by, and hashed registration IP / user agent.
- leaderboard_opt_out: members who do not want to appear on the members' leaderboard.
- covering indexes for the reports on referral and invitation.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 01:00:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def exact_string(length: int) -> sa.String:
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


def _synced() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('created_at', UTC_DATETIME, nullable=False),
        sa.Column('updated_at', UTC_DATETIME, nullable=False),
    ]


def upgrade() -> None:
    op.create_table('referral_ledger',
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('referral_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('reason', sa.String(length=30), nullable=False),
    sa.Column('cycle', sa.Integer(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('vested_points', sa.Integer(), nullable=False),
    sa.Column('at', UTC_DATETIME, nullable=False),
    *_synced(),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_referral_ledger_organization_id_organization')),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], name=op.f('fk_referral_ledger_member_id_member')),
    sa.ForeignKeyConstraint(['referral_id'], ['referral.id'], name=op.f('fk_referral_ledger_referral_id_referral')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_referral_ledger')),
    sa.UniqueConstraint('referral_id', 'kind', 'cycle', name=op.f('uq_referral_ledger_referral_id_kind_cycle'))
    )
    with op.batch_alter_table('referral_ledger', schema=None) as batch_op:
        batch_op.create_index('ix_referral_ledger_org_member', ['organization_id', 'member_id', 'points', 'vested_points'], unique=False)
        batch_op.create_index('ix_referral_ledger_member_at', ['member_id', 'at'], unique=False)

    op.create_table('referral_reward',
    sa.Column('referral_id', sa.Uuid(), nullable=False),
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('referrer_id', sa.Uuid(), nullable=False),
    sa.Column('cycle', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('completed_at', UTC_DATETIME, nullable=False),
    sa.Column('awarded_at', UTC_DATETIME, nullable=True),
    sa.Column('vest_after', UTC_DATETIME, nullable=True),
    sa.ForeignKeyConstraint(['referral_id'], ['referral.id'], name=op.f('fk_referral_reward_referral_id_referral')),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_referral_reward_organization_id_organization')),
    sa.ForeignKeyConstraint(['referrer_id'], ['member.id'], name=op.f('fk_referral_reward_referrer_id_member')),
    sa.PrimaryKeyConstraint('referral_id', name=op.f('pk_referral_reward'))
    )
    with op.batch_alter_table('referral_reward', schema=None) as batch_op:
        batch_op.create_index('ix_referral_reward_org_completed', ['organization_id', 'completed_at', 'referrer_id', 'state', 'points'], unique=False)
        batch_op.create_index('ix_referral_reward_org_referrer_state', ['organization_id', 'referrer_id', 'state', 'points'], unique=False)

    op.create_table('referral_flag',
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('referrer_id', sa.Uuid(), nullable=False),
    sa.Column('referral_id', sa.Uuid(), nullable=True),
    sa.Column('dedupe_key', exact_string(200), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('decided_at', UTC_DATETIME, nullable=True),
    sa.Column('decided_by_id', sa.Uuid(), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    *_synced(),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_referral_flag_organization_id_organization')),
    sa.ForeignKeyConstraint(['referrer_id'], ['member.id'], name=op.f('fk_referral_flag_referrer_id_member')),
    sa.ForeignKeyConstraint(['referral_id'], ['referral.id'], name=op.f('fk_referral_flag_referral_id_referral')),
    sa.ForeignKeyConstraint(['decided_by_id'], ['member.id'], name=op.f('fk_referral_flag_decided_by_id_member')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_referral_flag')),
    sa.UniqueConstraint('organization_id', 'dedupe_key', name=op.f('uq_referral_flag_organization_id_dedupe_key'))
    )
    with op.batch_alter_table('referral_flag', schema=None) as batch_op:
        batch_op.create_index('ix_referral_flag_org_status', ['organization_id', 'status', 'created_at'], unique=False)
        batch_op.create_index('ix_referral_flag_referral_status', ['referral_id', 'status'], unique=False)
        batch_op.create_index('ix_referral_flag_referrer_status', ['referrer_id', 'status'], unique=False)

    op.create_table('member_origin',
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('joined_at', UTC_DATETIME, nullable=False),
    sa.Column('email_key', exact_string(320), nullable=False),
    sa.Column('disposable', sa.Boolean(), nullable=False),
    sa.Column('ip_hash', exact_string(64), nullable=True),
    sa.Column('ua_hash', exact_string(64), nullable=True),
    sa.Column('recorded_at', UTC_DATETIME, nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], name=op.f('fk_member_origin_member_id_member')),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_member_origin_organization_id_organization')),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_member_origin'))
    )
    with op.batch_alter_table('member_origin', schema=None) as batch_op:
        batch_op.create_index('ix_member_origin_org_joined', ['organization_id', 'joined_at', 'channel'], unique=False)
        batch_op.create_index('ix_member_origin_org_device', ['organization_id', 'ip_hash', 'ua_hash'], unique=False)
        batch_op.create_index('ix_member_origin_org_recorded', ['organization_id', 'recorded_at'], unique=False)

    op.create_table('leaderboard_opt_out',
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('at', UTC_DATETIME, nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], name=op.f('fk_leaderboard_opt_out_member_id_member')),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_leaderboard_opt_out_organization_id_organization')),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_leaderboard_opt_out'))
    )
    with op.batch_alter_table('leaderboard_opt_out', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_leaderboard_opt_out_organization_id'), ['organization_id'], unique=False)

    op.create_table('referral_month_stats',
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('month_start', UTC_DATETIME, nullable=False),
    sa.Column('referrer_id', sa.Uuid(), nullable=False),
    sa.Column('completed', sa.Integer(), nullable=False),
    sa.Column('active', sa.Integer(), nullable=False),
    sa.Column('vested_points', sa.Integer(), nullable=False),
    sa.Column('vested', sa.Integer(), nullable=False),
    sa.Column('held_points', sa.Integer(), nullable=False),
    sa.Column('reached', UTC_DATETIME, nullable=True),
    sa.Column('sent', sa.Integer(), nullable=False),
    sa.Column('accepted', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_referral_month_stats_organization_id_organization')),
    sa.ForeignKeyConstraint(['referrer_id'], ['member.id'], name=op.f('fk_referral_month_stats_referrer_id_member')),
    sa.PrimaryKeyConstraint('organization_id', 'month_start', 'referrer_id', name=op.f('pk_referral_month_stats'))
    )
    with op.batch_alter_table('referral_month_stats', schema=None) as batch_op:
        batch_op.create_index('ix_referral_month_stats_referrer', ['organization_id', 'referrer_id', 'vested'], unique=False)

    op.create_table('growth_day_stats',
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('day_start', UTC_DATETIME, nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('unit_key', exact_string(36), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_growth_day_stats_organization_id_organization')),
    sa.PrimaryKeyConstraint('organization_id', 'day_start', 'kind', 'unit_key', name=op.f('pk_growth_day_stats'))
    )

    with op.batch_alter_table('referral', schema=None) as batch_op:
        batch_op.create_index('ix_referral_org_completed', ['organization_id', 'completed_at', 'referrer_id', 'status', 'referee_id'], unique=False)
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.create_index('ix_invitation_org_updated', ['organization_id', 'updated_at', 'inviter_id'], unique=False)
        batch_op.create_index('ix_invitation_org_sent_inviter', ['organization_id', 'sent_at', 'inviter_id', 'status', 'accepted_at', 'expires_at', 'unit_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.drop_index('ix_invitation_org_sent_inviter')
        batch_op.drop_index('ix_invitation_org_updated')
    with op.batch_alter_table('referral', schema=None) as batch_op:
        batch_op.drop_index('ix_referral_org_completed')
    op.drop_table('growth_day_stats')
    op.drop_table('referral_month_stats')
    op.drop_table('leaderboard_opt_out')
    op.drop_table('member_origin')
    op.drop_table('referral_flag')
    op.drop_table('referral_reward')
    op.drop_table('referral_ledger')
