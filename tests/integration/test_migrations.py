"""Migrations on SQLite, PostgreSQL and MariaDB: empty -> head, idempotent, no drift from the
models, and values that come back exactly as they went in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from invite_desk.services import auth, db
from invite_desk.services.models import (
    Base,
    Invitation,
    InvitationKind,
    InvitationStatus,
    Member,
    Organization,
    Unit,
)
from invite_desk.services.uow import UnitOfWork

PASSWORD = "a long enough password"


def snapshot(engine: Engine) -> dict[str, Any]:
    """Tables, columns, indexes and constraints as the database reports them."""
    inspector = inspect(engine)
    tables: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        tables[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
            ],
            "pk": inspector.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
            ),
            "unique": sorted(
                (u["name"], tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(table)
            ),
            "foreign_keys": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"])
                for f in inspector.get_foreign_keys(table)
            ),
        }
    return tables


def version_rows(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.scalars(text("SELECT version_num FROM alembic_version")))


def test_an_empty_database_upgrades_to_head(any_engine: Engine) -> None:
    assert inspect(any_engine).get_table_names() == []
    assert db.current_revision(any_engine) is None

    assert db.upgrade_to_head(any_engine) is True

    tables = set(inspect(any_engine).get_table_names())
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    assert version_rows(any_engine) == [db.head_revision()]
    assert db.current_revision(any_engine) == db.head_revision()


def test_a_second_upgrade_changes_nothing(any_engine: Engine) -> None:
    db.upgrade_to_head(any_engine)
    before = snapshot(any_engine)

    assert db.upgrade_to_head(any_engine) is False

    assert snapshot(any_engine) == before
    assert version_rows(any_engine) == [db.head_revision()]


def test_the_migrated_schema_matches_the_models(any_engine: Engine) -> None:
    """Autogenerate finds nothing to add, drop or alter: migrations and models agree."""
    db.upgrade_to_head(any_engine)
    with any_engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "target_metadata": Base.metadata}
        )
        drift = compare_metadata(context, Base.metadata)
    assert drift == []


def test_every_model_column_exists_with_its_nullability(any_engine: Engine) -> None:
    db.upgrade_to_head(any_engine)
    inspector = inspect(any_engine)
    for name, table in Base.metadata.tables.items():
        stored = {c["name"]: c["nullable"] for c in inspector.get_columns(name)}
        assert stored == {c.name: c.nullable for c in table.columns}, name


def test_values_come_back_exactly(any_db_url: str) -> None:
    """UUIDs, aware datetimes with microseconds, non-ASCII text and bytes round-trip."""
    engine = db.make_engine(any_db_url)
    try:
        db.upgrade_to_head(engine)
        uow = UnitOfWork(engine)
        org_id, unit_id, member_id, invitation_id = (uuid.uuid4() for _ in range(4))
        # Not UTC on purpose: the column keeps the instant and hands it back in UTC.
        joined = datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30)))
        sent = datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
        logo = bytes(range(256)) * 3
        first, last = "Zoë Łucja", "Ødegaard-Núñez 李 🚲"
        message = "Ça roule ? <b>Tom & Jerry</b> \u00a0 — see you at 9:00 ☕"
        with uow:
            session = uow.session
            session.add(Organization(id=org_id, name="Fédération Nordique 🚴", logo=logo,
                                     logo_mime="image/png"))
            session.flush()
            session.add(Unit(id=unit_id, organization_id=org_id, name="Ålesund"))
            session.flush()
            session.add(Member(
                id=member_id, organization_id=org_id, email="zoe@example.org",
                email_normalized="zoe@example.org", first_name=first, last_name=last,
                unit_id=unit_id, joined_at=joined,
            ))
            session.flush()
            session.add(Invitation(
                id=invitation_id, organization_id=org_id, email="søren@example.org",
                email_normalized="søren@example.org", name="Søren Kjær",
                kind=InvitationKind.MEMBERSHIP.value, inviter_id=member_id, sender_id=member_id,
                unit_id=unit_id, personal_message=message, status=InvitationStatus.SENT.value,
                token_hash="ab" * 32, sent_at=sent, expires_at=sent + timedelta(days=14),
            ))
            uow.commit()

        with uow:  # a new session: everything below is read from the database
            member = uow.session.get(Member, member_id)
            invitation = uow.session.get(Invitation, invitation_id)
            org = uow.session.get(Organization, org_id)
            assert member is not None and invitation is not None and org is not None
            assert isinstance(member.id, uuid.UUID) and member.id == member_id
            assert member.unit_id == unit_id and member.organization_id == org_id
            assert (member.first_name, member.last_name) == (first, last)
            assert member.joined_at == joined
            assert member.joined_at.utcoffset() == timedelta(0)
            assert member.joined_at.microsecond == joined.astimezone(UTC).microsecond == 123456
            assert invitation.id == invitation_id and invitation.inviter_id == member_id
            assert invitation.sent_at == sent and invitation.sent_at.microsecond == 999999
            assert invitation.expires_at == datetime(2026, 1, 14, 23, 59, 59, 999999, tzinfo=UTC)
            assert invitation.personal_message == message
            assert invitation.email_normalized == "søren@example.org"
            assert org.name == "Fédération Nordique 🚴" and org.logo == logo
            assert member.version == 1 and member.created_at.tzinfo is not None
            # Lookups by UUID and by aware datetime work in SQL too, not only via identity.
            found = uow.session.scalar(
                select(Member.id).where(Member.unit_id == unit_id, Member.joined_at == joined)
            )
            assert found == member_id
    finally:
        engine.dispose()


def test_member_email_is_unique_case_insensitively(any_db_url: str) -> None:
    engine = db.make_engine(any_db_url)
    try:
        db.upgrade_to_head(engine)
        uow = UnitOfWork(engine)
        admin = auth.setup_organization(
            uow, organization_name="Case Club", admin_email="Foo@x.org", admin_first_name="Foo",
            admin_last_name="Bar", password=PASSWORD,
        )
        with uow:
            uow.session.add(Member(
                organization_id=admin.organization_id, email="foo@x.org",
                email_normalized=auth.normalize_email("foo@x.org"), first_name="Other",
            ))
            with pytest.raises(IntegrityError):
                uow.session.flush()

        with uow:
            stored = uow.session.execute(select(Member.email, Member.email_normalized)).all()
        assert [tuple(row) for row in stored] == [("Foo@x.org", "foo@x.org")]
        assert auth.sign_in(uow, "FOO@X.ORG", PASSWORD).member_id == admin.member_id
    finally:
        engine.dispose()


def test_addresses_that_differ_only_by_an_accent_are_different_members(any_db_url: str) -> None:
    """zoe@ and zoë@ are two mailboxes. MariaDB's default collation would call them equal."""
    engine = db.make_engine(any_db_url)
    try:
        db.upgrade_to_head(engine)
        uow = UnitOfWork(engine)
        admin = auth.setup_organization(
            uow, organization_name="Accent Club", admin_email="zoe@x.org", admin_first_name="Zoe",
            admin_last_name="Plain", password=PASSWORD,
        )
        with uow:
            uow.session.add(Member(
                organization_id=admin.organization_id, email="zoë@x.org",
                email_normalized=auth.normalize_email("zoë@x.org"), first_name="Zoë",
            ))
            uow.commit()
        with uow:
            assert uow.session.scalar(select(func.count()).select_from(Member)) == 2
            found = uow.session.scalars(
                select(Member.first_name).where(Member.email_normalized == "zoë@x.org")
            ).all()
        assert found == ["Zoë"]
        assert auth.sign_in(uow, "zoe@x.org", PASSWORD).member_id == admin.member_id
    finally:
        engine.dispose()


def test_sql_lower_folds_every_letter_like_python(any_db_url: str) -> None:
    """Searches compare lower(name) with str.lower(): both sides must agree on every backend."""
    engine = db.make_engine(any_db_url)
    try:
        with engine.connect() as connection:
            for name in ("Émile", "ŁUKASZ", "Zoë", "SØREN", "O'Brien"):
                assert connection.scalar(select(func.lower(name))) == name.lower(), name
            assert connection.scalar(select(func.lower(None))) is None
    finally:
        engine.dispose()
