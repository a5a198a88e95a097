"""offline replica and sync: the server's change log, commit clock and command answers; the
replica's state, journal and commands (issue 12, docs/architecture.md)

The capture triggers (PostgreSQL and MariaDB only) are created by services/sync/capture.py's
DDL, which this migration runs; a SQLite database gets no capture triggers (it is never a
sync server), and a replica's journal triggers are installed when a file becomes a replica.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 04:30:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
BIGSERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        'sync_change',
        sa.Column('seq', BIGSERIAL, primary_key=True, autoincrement=True),
        sa.Column('xid', sa.BigInteger(), nullable=True),
        sa.Column('clock', sa.BigInteger(), nullable=True),
        sa.Column('conn_id', sa.BigInteger(), nullable=True),
        sa.Column('table_name', sa.String(64), nullable=False),
        sa.Column('row_id', sa.Uuid(), nullable=False),
        sa.Column('op', sa.String(1), nullable=False),
        sa.Column('organization_id', sa.Uuid(), nullable=True),
        sa.Column('changed_at', UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint('seq', name=op.f('pk_sync_change')),
    )
    op.create_index('ix_sync_change_xid_seq', 'sync_change', ['xid', 'seq'])
    op.create_index('ix_sync_change_clock_seq', 'sync_change', ['clock', 'seq'])
    op.create_index('ix_sync_change_conn_pending', 'sync_change', ['conn_id', 'clock'])
    op.create_table(
        'sync_clock',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('tick', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_clock')),
    )
    op.bulk_insert(sa.table('sync_clock', sa.column('id'), sa.column('tick')),
                   [{'id': 1, 'tick': 0}])
    op.create_table(
        'sync_applied',
        sa.Column('command_id', sa.Uuid(), nullable=False),
        sa.Column('replica_id', sa.Uuid(), nullable=False),
        sa.Column('operator_id', sa.Uuid(), nullable=True),
        sa.Column('kind', sa.String(64), nullable=False),
        sa.Column('outcome', sa.String(16), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('checkpoint', sa.String(64), nullable=False),
        sa.Column('applied_at', UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint('command_id', name=op.f('pk_sync_applied')),
    )
    op.create_table(
        'sync_state',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('replica_id', sa.Uuid(), nullable=False),
        sa.Column('remote_label', sa.String(500), nullable=False),
        sa.Column('operator_id', sa.Uuid(), nullable=True),
        sa.Column('cursor', sa.String(64), nullable=False),
        sa.Column('snapshot_done', sa.Boolean(), nullable=False),
        sa.Column('last_pull_at', UTC_DATETIME, nullable=True),
        sa.Column('last_push_at', UTC_DATETIME, nullable=True),
        sa.Column('last_attempt_at', UTC_DATETIME, nullable=True),
        sa.Column('last_error', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_state')),
    )
    op.create_table(
        'local_change',
        sa.Column('seq', BIGSERIAL, primary_key=True, autoincrement=True),
        sa.Column('table_name', sa.String(64), nullable=False),
        sa.Column('row_id', sa.Uuid(), nullable=False),
        sa.Column('op', sa.String(1), nullable=False),
        sa.Column('columns', sa.Text(), nullable=False),
        sa.Column('base_version', sa.Integer(), nullable=True),
        sa.Column('command_id', sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint('seq', name=op.f('pk_local_change')),
    )
    op.create_index('ix_local_change_command', 'local_change', ['command_id', 'seq'])
    op.create_index('ix_local_change_row', 'local_change', ['table_name', 'row_id'])
    op.create_table(
        'sync_command',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(64), nullable=False),
        sa.Column('operator_id', sa.Uuid(), nullable=True),
        sa.Column('summary', sa.Text(), nullable=False),
        sa.Column('created_at', UTC_DATETIME, nullable=False),
        sa.Column('state', sa.String(16), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('checkpoint', sa.String(64), nullable=False),
        sa.Column('answered_at', UTC_DATETIME, nullable=True),
        sa.Column('dismissed_at', UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_command')),
        sa.UniqueConstraint('seq', name=op.f('uq_sync_command_seq')),
    )
    op.create_index('ix_sync_command_state_seq', 'sync_command', ['state', 'seq'])
    op.create_table(
        'sync_applying',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_applying')),
    )
    bind = op.get_bind()
    if bind.dialect.name in ('postgresql', 'mysql', 'mariadb'):
        from invite_desk.services.sync.capture import install_capture

        install_capture(bind)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name in ('postgresql', 'mysql', 'mariadb'):
        from invite_desk.services.sync.capture import remove_capture

        remove_capture(bind)
    op.drop_table('sync_applying')
    op.drop_index('ix_sync_command_state_seq', table_name='sync_command')
    op.drop_table('sync_command')
    op.drop_index('ix_local_change_row', table_name='local_change')
    op.drop_index('ix_local_change_command', table_name='local_change')
    op.drop_table('local_change')
    op.drop_table('sync_state')
    op.drop_table('sync_applied')
    op.drop_table('sync_clock')
    op.drop_index('ix_sync_change_conn_pending', table_name='sync_change')
    op.drop_index('ix_sync_change_clock_seq', table_name='sync_change')
    op.drop_index('ix_sync_change_xid_seq', table_name='sync_change')
    op.drop_table('sync_change')
