"""portal hardening: confirmed public registration, retired links, shared secrets and limits

- pending_registration: a public registration waiting for its emailed confirmation link.
- retired_link: hashes of invitation links that were revoked or replaced by a newer one.
- portal_secret: the session-signing key every portal process shares.
- rate_limit_counter: fixed-window counters every portal process shares.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 22:10:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def exact_string(length: int) -> sa.String:
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


def upgrade() -> None:
    op.create_table('pending_registration',
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('email_normalized', exact_string(320), nullable=False),
    sa.Column('first_name', sa.String(length=100), nullable=False),
    sa.Column('last_name', sa.String(length=100), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=True),
    sa.Column('token_hash', exact_string(64), nullable=False),
    sa.Column('expires_at', UTC_DATETIME, nullable=False),
    sa.Column('confirmed_at', UTC_DATETIME, nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', UTC_DATETIME, nullable=False),
    sa.Column('updated_at', UTC_DATETIME, nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_pending_registration_organization_id_organization')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pending_registration')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_pending_registration_token_hash'))
    )
    with op.batch_alter_table('pending_registration', schema=None) as batch_op:
        batch_op.create_index('ix_pending_registration_org_email', ['organization_id', 'email_normalized'], unique=False)

    op.create_table('retired_link',
    sa.Column('token_hash', exact_string(64), nullable=False),
    sa.Column('invitation_id', sa.Uuid(), nullable=False),
    sa.Column('reason', sa.String(length=20), nullable=False),
    sa.Column('retired_at', UTC_DATETIME, nullable=False),
    sa.ForeignKeyConstraint(['invitation_id'], ['invitation.id'], name=op.f('fk_retired_link_invitation_id_invitation')),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_retired_link'))
    )
    with op.batch_alter_table('retired_link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_retired_link_invitation_id'), ['invitation_id'], unique=False)

    op.create_table('portal_secret',
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.Column('created_at', UTC_DATETIME, nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_portal_secret'))
    )

    op.create_table('rate_limit_counter',
    sa.Column('key', exact_string(200), nullable=False),
    sa.Column('window', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('hits', sa.Integer(), nullable=False),
    sa.Column('expires_at', UTC_DATETIME, nullable=False),
    sa.PrimaryKeyConstraint('key', 'window', name=op.f('pk_rate_limit_counter'))
    )
    with op.batch_alter_table('rate_limit_counter', schema=None) as batch_op:
        batch_op.create_index('ix_rate_limit_counter_expires_at', ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('rate_limit_counter', schema=None) as batch_op:
        batch_op.drop_index('ix_rate_limit_counter_expires_at')
    op.drop_table('rate_limit_counter')
    op.drop_table('portal_secret')
    with op.batch_alter_table('retired_link', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_retired_link_invitation_id'))
    op.drop_table('retired_link')
    with op.batch_alter_table('pending_registration', schema=None) as batch_op:
        batch_op.drop_index('ix_pending_registration_org_email')
    op.drop_table('pending_registration')
