"""administration: member status and sign-ins, event details, audit paging, notification queue

- member.must_change_password, member.sign_in_revoked_at: one-time passwords and revoked
  sign-ins (services/admin/people.py).
- event.time_zone, description, capacity, guests_allowed (services/admin/events.py).
- audit_log: (organization_id, [actor_id | action | entity_type, entity_id,] at, id) indexes
  for keyset paging newest first under each filter; (organization_id, at) is their prefix.
- sign_in_link: emailed set-password links (only the token's SHA-256 is kept).
- outgoing_mail: notification emails queued with what they announce, sent exactly once.

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-26 01:00:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0007'
down_revision = '0005'
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def exact_string(length: int) -> sa.String:
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


AUDIT_INDEXES: dict[str, list[str]] = {
    "ix_audit_log_org_at_id": ["organization_id", "at", "id"],
    "ix_audit_log_org_actor_at_id": ["organization_id", "actor_id", "at", "id"],
    "ix_audit_log_org_action_at_id": ["organization_id", "action", "at", "id"],
    "ix_audit_log_org_entity_at_id": ["organization_id", "entity_type", "entity_id", "at", "id"],
}


def _synced() -> list[sa.Column[object]]:
    return [
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('created_at', UTC_DATETIME, nullable=False),
        sa.Column('updated_at', UTC_DATETIME, nullable=False),
    ]


def upgrade() -> None:
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.add_column(sa.Column('must_change_password', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('sign_in_revoked_at', UTC_DATETIME, nullable=True))

    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('time_zone', sa.String(length=64), nullable=False,
                                      server_default='UTC'))
        batch_op.add_column(sa.Column('description', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('capacity', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('guests_allowed', sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
    op.execute(sa.text("UPDATE event SET description = '' WHERE description IS NULL"))
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.alter_column('description', existing_type=sa.Text(), nullable=False)

    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        for name, columns in AUDIT_INDEXES.items():
            batch_op.create_index(name, columns, unique=False)
        batch_op.drop_index('ix_audit_log_org_at')

    op.create_table('sign_in_link',
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('issued_by_id', sa.Uuid(), nullable=True),
    sa.Column('token_hash', exact_string(64), nullable=True),
    sa.Column('expires_at', UTC_DATETIME, nullable=False),
    sa.Column('used_at', UTC_DATETIME, nullable=True),
    sa.Column('revoked_at', UTC_DATETIME, nullable=True),
    *_synced(),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_sign_in_link_organization_id_organization')),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], name=op.f('fk_sign_in_link_member_id_member')),
    sa.ForeignKeyConstraint(['issued_by_id'], ['member.id'], name=op.f('fk_sign_in_link_issued_by_id_member')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sign_in_link')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_sign_in_link_token_hash'))
    )
    with op.batch_alter_table('sign_in_link', schema=None) as batch_op:
        batch_op.create_index('ix_sign_in_link_member', ['member_id', 'created_at'], unique=False)

    op.create_table('outgoing_mail',
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('to_email', sa.String(length=320), nullable=False),
    sa.Column('to_name', sa.String(length=200), nullable=False),
    sa.Column('context_json', sa.Text(), nullable=False),
    sa.Column('sign_in_link_id', sa.Uuid(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', UTC_DATETIME, nullable=True),
    sa.Column('sending_owner', sa.String(length=120), nullable=True),
    sa.Column('claimed_at', UTC_DATETIME, nullable=True),
    sa.Column('sent_at', UTC_DATETIME, nullable=True),
    sa.Column('message_id', sa.String(length=300), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=False),
    *_synced(),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_outgoing_mail_organization_id_organization')),
    sa.ForeignKeyConstraint(['sign_in_link_id'], ['sign_in_link.id'], name=op.f('fk_outgoing_mail_sign_in_link_id_sign_in_link')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outgoing_mail'))
    )
    with op.batch_alter_table('outgoing_mail', schema=None) as batch_op:
        batch_op.create_index('ix_outgoing_mail_status_next', ['status', 'next_attempt_at', 'created_at'], unique=False)
        batch_op.create_index('ix_outgoing_mail_org_status', ['organization_id', 'status'], unique=False)


def downgrade() -> None:
    op.drop_table('outgoing_mail')
    op.drop_table('sign_in_link')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_org_at', ['organization_id', 'at'], unique=False)
        for name in AUDIT_INDEXES:
            batch_op.drop_index(name)
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_column('guests_allowed')
        batch_op.drop_column('capacity')
        batch_op.drop_column('description')
        batch_op.drop_column('time_zone')
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.drop_column('sign_in_revoked_at')
        batch_op.drop_column('must_change_password')
