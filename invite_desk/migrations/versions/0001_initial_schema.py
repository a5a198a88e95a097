"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 17:07:02.286355
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

# Naive UTC timestamps, microsecond precision on MySQL/MariaDB as well.
UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def exact_string(length: int) -> sa.String:
    """Compared byte for byte on MySQL/MariaDB too (models.exact_string)."""
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


def upgrade() -> None:

    op.create_table('organization',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('logo', sa.LargeBinary(), nullable=True),
    sa.Column('logo_mime', sa.String(length=50), nullable=True),
    sa.Column('accent_color', sa.String(length=7), nullable=False),
    sa.Column('registration_base_url', sa.String(length=500), nullable=False),
    sa.Column('archived', sa.Boolean(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', UTC_DATETIME, nullable=False),
    sa.Column('updated_at', UTC_DATETIME, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organization'))
    )
    op.create_table('setting',
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('value_json', sa.Text(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', UTC_DATETIME, nullable=False),
    sa.Column('updated_at', UTC_DATETIME, nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_setting_organization_id_organization')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_setting')),
    sa.UniqueConstraint('organization_id', 'key', name=op.f('uq_setting_organization_id_key'))
    )
    op.create_table('unit',
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('archived', sa.Boolean(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', UTC_DATETIME, nullable=False),
    sa.Column('updated_at', UTC_DATETIME, nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_unit_organization_id_organization')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_unit')),
    sa.UniqueConstraint('organization_id', 'name', name=op.f('uq_unit_organization_id_name'))
    )
    with op.batch_alter_table('unit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_unit_organization_id'), ['organization_id'], unique=False)

    op.create_table('event',
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('unit_id', sa.Uuid(), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('starts_at', UTC_DATETIME, nullable=True),
    sa.Column('location', sa.String(length=300), nullable=False),
    sa.Column('archived', sa.Boolean(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', UTC_DATETIME, nullable=False),
    sa.Column('updated_at', UTC_DATETIME, nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_event_organization_id_organization')),
    sa.ForeignKeyConstraint(['unit_id'], ['unit.id'], name=op.f('fk_event_unit_id_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event'))
    )
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_organization_id'), ['organization_id'], unique=False)

    op.create_table('member',
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('email_normalized', exact_string(320), nullable=False),
    sa.Column('first_name', sa.String(length=100), nullable=False),
    sa.Column('last_name', sa.String(length=100), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('unit_id', sa.Uuid(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('adhesion_status', sa.String(length=20), nullable=True),
    sa.Column('adhesion_reason', sa.Text(), nullable=False),
    sa.Column('referred_by_id', sa.Uuid(), nullable=True),
    sa.Column('password_hash', sa.String(length=200), nullable=True),
    sa.Column('joined_at', UTC_DATETIME, nullable=False),
    sa.Column('last_sign_in_at', UTC_DATETIME, nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', UTC_DATETIME, nullable=False),
    sa.Column('updated_at', UTC_DATETIME, nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_member_organization_id_organization')),
    sa.ForeignKeyConstraint(['referred_by_id'], ['member.id'], name=op.f('fk_member_referred_by_id_member')),
    sa.ForeignKeyConstraint(['unit_id'], ['unit.id'], name=op.f('fk_member_unit_id_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member')),
    sa.UniqueConstraint('organization_id', 'email_normalized', name=op.f('uq_member_organization_id_email_normalized'))
    )
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.create_index('ix_member_org_last_first', ['organization_id', 'last_name', 'first_name'], unique=False)
        batch_op.create_index(batch_op.f('ix_member_organization_id'), ['organization_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_member_referred_by_id'), ['referred_by_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_member_unit_id'), ['unit_id'], unique=False)

    op.create_table('audit_log',
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('actor_id', sa.Uuid(), nullable=True),
    sa.Column('action', sa.String(length=100), nullable=False),
    sa.Column('entity_type', sa.String(length=50), nullable=False),
    sa.Column('entity_id', sa.Uuid(), nullable=True),
    sa.Column('before_json', sa.Text(), nullable=False),
    sa.Column('after_json', sa.Text(), nullable=False),
    sa.Column('at', UTC_DATETIME, nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', UTC_DATETIME, nullable=False),
    sa.Column('updated_at', UTC_DATETIME, nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['member.id'], name=op.f('fk_audit_log_actor_id_member')),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_audit_log_organization_id_organization')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_entity', ['entity_type', 'entity_id'], unique=False)
        batch_op.create_index('ix_audit_log_org_at', ['organization_id', 'at'], unique=False)

    op.create_table('batch',
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('created_by_id', sa.Uuid(), nullable=False),
    sa.Column('inviter_id', sa.Uuid(), nullable=False),
    sa.Column('label', sa.String(length=300), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=True),
    sa.Column('personal_message', sa.Text(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', UTC_DATETIME, nullable=False),
    sa.Column('updated_at', UTC_DATETIME, nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['member.id'], name=op.f('fk_batch_created_by_id_member')),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], name=op.f('fk_batch_event_id_event')),
    sa.ForeignKeyConstraint(['inviter_id'], ['member.id'], name=op.f('fk_batch_inviter_id_member')),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_batch_organization_id_organization')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_batch'))
    )
    with op.batch_alter_table('batch', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_batch_organization_id'), ['organization_id'], unique=False)

    op.create_table('invitation',
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('email_normalized', exact_string(320), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=True),
    sa.Column('inviter_id', sa.Uuid(), nullable=False),
    sa.Column('sender_id', sa.Uuid(), nullable=False),
    sa.Column('unit_id', sa.Uuid(), nullable=True),
    sa.Column('batch_id', sa.Uuid(), nullable=True),
    sa.Column('personal_message', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('token_hash', exact_string(64), nullable=True),
    sa.Column('expires_at', UTC_DATETIME, nullable=True),
    sa.Column('queued_at', UTC_DATETIME, nullable=True),
    sa.Column('sent_at', UTC_DATETIME, nullable=True),
    sa.Column('accepted_at', UTC_DATETIME, nullable=True),
    sa.Column('revoked_at', UTC_DATETIME, nullable=True),
    sa.Column('message_id', sa.String(length=300), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', UTC_DATETIME, nullable=True),
    sa.Column('sending_owner', sa.String(length=120), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('accepted_member_id', sa.Uuid(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', UTC_DATETIME, nullable=False),
    sa.Column('updated_at', UTC_DATETIME, nullable=False),
    sa.ForeignKeyConstraint(['accepted_member_id'], ['member.id'], name=op.f('fk_invitation_accepted_member_id_member')),
    sa.ForeignKeyConstraint(['batch_id'], ['batch.id'], name=op.f('fk_invitation_batch_id_batch')),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], name=op.f('fk_invitation_event_id_event')),
    sa.ForeignKeyConstraint(['inviter_id'], ['member.id'], name=op.f('fk_invitation_inviter_id_member')),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_invitation_organization_id_organization')),
    sa.ForeignKeyConstraint(['sender_id'], ['member.id'], name=op.f('fk_invitation_sender_id_member')),
    sa.ForeignKeyConstraint(['unit_id'], ['unit.id'], name=op.f('fk_invitation_unit_id_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invitation')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_invitation_token_hash'))
    )
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.create_index('ix_invitation_batch_status', ['batch_id', 'status'], unique=False)
        batch_op.create_index('ix_invitation_inviter_created', ['inviter_id', 'created_at'], unique=False)
        batch_op.create_index('ix_invitation_org_email', ['organization_id', 'email_normalized'], unique=False)
        batch_op.create_index('ix_invitation_org_expires', ['organization_id', 'status', 'expires_at'], unique=False)
        batch_op.create_index('ix_invitation_org_status_sent', ['organization_id', 'status', 'sent_at'], unique=False)
        batch_op.create_index('ix_invitation_org_status_queued', ['organization_id', 'status', 'queued_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_invitation_unit_id'), ['unit_id'], unique=False)

    op.create_table('referral',
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('referrer_id', sa.Uuid(), nullable=False),
    sa.Column('referee_id', sa.Uuid(), nullable=False),
    sa.Column('invitation_id', sa.Uuid(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('referred_at', UTC_DATETIME, nullable=False),
    sa.Column('completed_at', UTC_DATETIME, nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', UTC_DATETIME, nullable=False),
    sa.Column('updated_at', UTC_DATETIME, nullable=False),
    sa.ForeignKeyConstraint(['invitation_id'], ['invitation.id'], name=op.f('fk_referral_invitation_id_invitation')),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_referral_organization_id_organization')),
    sa.ForeignKeyConstraint(['referee_id'], ['member.id'], name=op.f('fk_referral_referee_id_member')),
    sa.ForeignKeyConstraint(['referrer_id'], ['member.id'], name=op.f('fk_referral_referrer_id_member')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_referral')),
    sa.UniqueConstraint('referrer_id', 'referee_id', name=op.f('uq_referral_referrer_id_referee_id'))
    )
    with op.batch_alter_table('referral', schema=None) as batch_op:
        batch_op.create_index('ix_referral_org_referred_at', ['organization_id', 'referred_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_referral_referee_id'), ['referee_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_referral_referrer_id'), ['referrer_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('referral', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_referral_referrer_id'))
        batch_op.drop_index(batch_op.f('ix_referral_referee_id'))
        batch_op.drop_index('ix_referral_org_referred_at')

    op.drop_table('referral')
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invitation_unit_id'))
        batch_op.drop_index('ix_invitation_org_status_sent')
        batch_op.drop_index('ix_invitation_org_status_queued')
        batch_op.drop_index('ix_invitation_org_expires')
        batch_op.drop_index('ix_invitation_org_email')
        batch_op.drop_index('ix_invitation_inviter_created')
        batch_op.drop_index('ix_invitation_batch_status')

    op.drop_table('invitation')
    with op.batch_alter_table('batch', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_batch_organization_id'))

    op.drop_table('batch')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_org_at')
        batch_op.drop_index('ix_audit_log_entity')

    op.drop_table('audit_log')
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_member_unit_id'))
        batch_op.drop_index(batch_op.f('ix_member_referred_by_id'))
        batch_op.drop_index(batch_op.f('ix_member_organization_id'))
        batch_op.drop_index('ix_member_org_last_first')

    op.drop_table('member')
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_organization_id'))

    op.drop_table('event')
    with op.batch_alter_table('unit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_unit_organization_id'))

    op.drop_table('unit')
    op.drop_table('setting')
    op.drop_table('organization')

