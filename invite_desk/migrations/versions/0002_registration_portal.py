"""registration portal: event guests, and how an invitation was accepted

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 18:00:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

# Naive UTC timestamps, microsecond precision on MySQL/MariaDB as well (as in 0001).
UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def exact_string(length: int) -> sa.String:
    """Compared byte for byte on MySQL/MariaDB too (models.exact_string)."""
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


def upgrade() -> None:
    op.create_table('event_guest',
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('invitation_id', sa.Uuid(), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('email_normalized', exact_string(320), nullable=False),
    sa.Column('first_name', sa.String(length=100), nullable=False),
    sa.Column('last_name', sa.String(length=100), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=True),
    sa.Column('registered_at', UTC_DATETIME, nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', UTC_DATETIME, nullable=False),
    sa.Column('updated_at', UTC_DATETIME, nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], name=op.f('fk_event_guest_event_id_event')),
    sa.ForeignKeyConstraint(['invitation_id'], ['invitation.id'], name=op.f('fk_event_guest_invitation_id_invitation')),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], name=op.f('fk_event_guest_member_id_member')),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_event_guest_organization_id_organization')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_guest')),
    sa.UniqueConstraint('event_id', 'email_normalized', name=op.f('uq_event_guest_event_id_email_normalized'))
    )
    with op.batch_alter_table('event_guest', schema=None) as batch_op:
        batch_op.create_index('ix_event_guest_org_email', ['organization_id', 'email_normalized'], unique=False)
        batch_op.create_index(batch_op.f('ix_event_guest_invitation_id'), ['invitation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_event_guest_member_id'), ['member_id'], unique=False)

    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('accepted_via', sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.drop_column('accepted_via')

    with op.batch_alter_table('event_guest', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_guest_member_id'))
        batch_op.drop_index(batch_op.f('ix_event_guest_invitation_id'))
        batch_op.drop_index('ix_event_guest_org_email')

    op.drop_table('event_guest')
