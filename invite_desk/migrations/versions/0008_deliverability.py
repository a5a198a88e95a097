"""deliverability: suppression list, bounces, one-click opt-out, reminders, scheduled batches

- suppression: addresses no invitation may reach, with the reason, evidence and source;
  undone rows keep `undone_at` (never deleted).
- processed_bounce: bounce-mailbox messages already handled (re-runs never double-count).
- invitation: unsubscribe_token_hash, bounced_at, bounce_kind, bounce_detail, soft_bounces,
  reminder_sent_at, reminder_owner.
- batch: scheduled_at.

Revision ID: 0008
Revises: 0005
Create Date: 2026-11-26 01:10:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def exact_string(length: int) -> sa.String:
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


def upgrade() -> None:
    op.create_table('suppression',
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('address_normalized', exact_string(320), nullable=False),
    sa.Column('reason', sa.String(length=20), nullable=False),
    sa.Column('evidence', sa.Text(), nullable=False),
    sa.Column('source', sa.String(length=300), nullable=False),
    sa.Column('invitation_id', sa.Uuid(), nullable=True),
    sa.Column('created_by_id', sa.Uuid(), nullable=True),
    sa.Column('undone_at', UTC_DATETIME, nullable=True),
    sa.Column('undone_by_id', sa.Uuid(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', UTC_DATETIME, nullable=False),
    sa.Column('updated_at', UTC_DATETIME, nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_suppression_organization_id_organization')),
    sa.ForeignKeyConstraint(['invitation_id'], ['invitation.id'], name=op.f('fk_suppression_invitation_id_invitation')),
    sa.ForeignKeyConstraint(['created_by_id'], ['member.id'], name=op.f('fk_suppression_created_by_id_member')),
    sa.ForeignKeyConstraint(['undone_by_id'], ['member.id'], name=op.f('fk_suppression_undone_by_id_member')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suppression'))
    )
    with op.batch_alter_table('suppression', schema=None) as batch_op:
        batch_op.create_index('ix_suppression_org_address', ['organization_id', 'address_normalized'], unique=False)

    op.create_table('processed_bounce',
    sa.Column('key', exact_string(200), nullable=False),
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('invitation_id', sa.Uuid(), nullable=True),
    sa.Column('verdict', sa.String(length=20), nullable=False),
    sa.Column('processed_at', UTC_DATETIME, nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_processed_bounce_organization_id_organization')),
    sa.ForeignKeyConstraint(['invitation_id'], ['invitation.id'], name=op.f('fk_processed_bounce_invitation_id_invitation')),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_processed_bounce'))
    )

    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unsubscribe_token_hash', exact_string(64), nullable=True))
        batch_op.add_column(sa.Column('bounced_at', UTC_DATETIME, nullable=True))
        batch_op.add_column(sa.Column('bounce_kind', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('bounce_detail', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('soft_bounces', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('reminder_sent_at', UTC_DATETIME, nullable=True))
        batch_op.add_column(sa.Column('reminder_owner', sa.String(length=120), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_invitation_unsubscribe_token_hash'), ['unsubscribe_token_hash'])

    with op.batch_alter_table('batch', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scheduled_at', UTC_DATETIME, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('batch', schema=None) as batch_op:
        batch_op.drop_column('scheduled_at')
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_invitation_unsubscribe_token_hash'), type_='unique')
        batch_op.drop_column('reminder_owner')
        batch_op.drop_column('reminder_sent_at')
        batch_op.drop_column('soft_bounces')
        batch_op.drop_column('bounce_kind')
        batch_op.drop_column('bounce_detail')
        batch_op.drop_column('bounced_at')
        batch_op.drop_column('unsubscribe_token_hash')
    op.drop_table('processed_bounce')
    with op.batch_alter_table('suppression', schema=None) as batch_op:
        batch_op.drop_index('ix_suppression_org_address')
    op.drop_table('suppression')
