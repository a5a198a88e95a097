"""Shared fixtures: a migrated database, a unit of work, an organization and operators per role."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine

from invite_desk.services import auth, db
from invite_desk.services.credentials import MemoryCredentialStore
from invite_desk.services.models import Member, MemberStatus, Unit
from invite_desk.services.operator import Operator
from invite_desk.services.roles import Role
from invite_desk.services.uow import UnitOfWork

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

pytest_plugins = ["tests.smtp_fixtures", "tests.db_servers", "tests.imap_fixtures",
                  "tests.sync_push_support"]

# Property tests check what a function returns, not how fast: Hypothesis' default 200 ms
# deadline per example only turned a busy CI machine (pytest-xdist workers on every core)
# into "DeadlineExceeded"/"Flaky" failures. Speed has its own tests and benchmarks.
hypothesis_settings.register_profile("invite-desk", deadline=None)
hypothesis_settings.load_profile("invite-desk")

ADMIN_EMAIL = "ada.admin@example.org"
ADMIN_PASSWORD = "correct horse battery"


# Password hashes in tests: argon2id still, with the smallest cost argon2 allows. The product's
# cost (3 passes over 64 MiB on 4 lanes) took 0.2-1 s per hash and as long per check on a
# busy CI machine, and nearly every test hashes one (the `admin` fixture) and many sign in:
# minutes of a CI run spent proving nothing about the code under test. A test marked
# `real_password_hash` gets the product's hasher (tests/unit/test_password_cost.py checks
# that cost itself). Hashes made either way verify either way (argon2 reads the cost from
# the hash), so a hash stored here still signs in through a real `invite-desk` process.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
_FAST_DUMMY_HASH = FAST_HASHER.hash("invite-desk-dummy-password")


@pytest.fixture(autouse=True)
def _fast_password_hashes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("real_password_hash"):
        return
    from invite_desk.services import demo
    from invite_desk.services.sync import replica

    monkeypatch.setattr(auth, "_hasher", FAST_HASHER)
    monkeypatch.setattr(auth, "_DUMMY_HASH", _FAST_DUMMY_HASH)
    monkeypatch.setattr(replica, "_DUMMY_HASH", _FAST_DUMMY_HASH)
    monkeypatch.setattr(demo, "_hasher", FAST_HASHER)


@pytest.fixture(autouse=True)
def _server_connections_closed() -> Iterator[None]:
    """Fails the test that leaves a PostgreSQL connection open once every fixture is torn
    down (an engine never disposed, a replica never closed). Left open, the connection is
    finalized by the garbage collector whenever it runs, and psycopg's "connection ... was
    deleted while still open" warning then fails whichever test happens to be running."""
    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    made: weakref.WeakSet[object] = weakref.WeakSet()

    def on_connect(dbapi_connection: object, _record: object) -> None:
        if type(dbapi_connection).__module__.startswith("psycopg"):
            made.add(dbapi_connection)

    event.listen(Pool, "connect", on_connect)
    try:
        yield
    finally:
        event.remove(Pool, "connect", on_connect)
    still_open = [c for c in list(made) if not getattr(c, "closed", True)]
    if still_open:
        pytest.fail(f"{len(still_open)} PostgreSQL connection(s) made by this test are still "
                    "open after its teardown: dispose the engine (or close the replica) "
                    "that made them", pytrace=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist, hand out the long-running (`slow`) tests first: started last, one
    of them would keep a worker busy for a minute after the other ran out of work. The order
    is the same in every worker (xdist requires it): a stable sort of the collected order."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the real user's data or config folders."""
    base = tmp_path_factory.mktemp("userdirs")
    monkeypatch.setenv("INVITE_DESK_DATA_DIR", str(base / "data"))
    monkeypatch.setenv("INVITE_DESK_CONFIG_DIR", str(base / "config"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'invite-desk.sqlite3'}"


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file upgraded to head once per session (per xdist worker: tmp_path_factory is
    the worker's own), which `engine` copies instead of running every migration per test."""
    path = tmp_path_factory.mktemp("template") / "migrated.sqlite3"
    eng = db.make_engine(f"sqlite:///{path}")
    db.upgrade_to_head(eng)
    eng.dispose()
    return path


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite file (WAL included) through SQLite's backup API."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(source)) as src, \
            contextlib.closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


@pytest.fixture
def engine(sqlite_url: str, migrated_sqlite_template: Path) -> Iterator[Engine]:
    """A SQLite file at head: a copy of the migrated template (what upgrade_to_head makes)."""
    copy_sqlite(migrated_sqlite_template, Path(sqlite_url.removeprefix("sqlite:///")))
    eng = db.make_engine(sqlite_url)
    db.upgrade_to_head(eng)  # a no-op at head; kept so a stale template can never be used
    yield eng
    eng.dispose()


@pytest.fixture
def uow(engine: Engine) -> UnitOfWork:
    return UnitOfWork(engine)


@pytest.fixture
def credentials() -> MemoryCredentialStore:
    return MemoryCredentialStore()


@pytest.fixture
def admin(uow: UnitOfWork) -> Operator:
    """The organization's first ADMIN_TENANT operator (first-run setup already done)."""
    return auth.setup_organization(
        uow,
        organization_name="Harbour Rowing Club",
        description="A rowing club with chapters along the coast.",
        admin_email=ADMIN_EMAIL,
        admin_first_name="Ada",
        admin_last_name="Admin",
        password=ADMIN_PASSWORD,
        registration_base_url="https://join.example.org",
    )


MakeUnit = Callable[[str], uuid.UUID]
MakeOperator = Callable[..., Operator]


@pytest.fixture
def make_unit(uow: UnitOfWork, admin: Operator) -> MakeUnit:
    def make(name: str) -> uuid.UUID:
        with uow:
            unit = Unit(organization_id=admin.organization_id, name=name)
            uow.session.add(unit)
            uow.commit()
            return unit.id

    return make


@pytest.fixture
def make_operator(uow: UnitOfWork, admin: Operator) -> MakeOperator:
    """Create a member with `role` in `unit_id` and return them as a signed-in operator."""

    def make(role: Role, unit_id: uuid.UUID | None = None, *, email: str | None = None,
             password: str | None = None) -> Operator:
        address = email or f"{role.name.lower()}-{uuid.uuid4().hex[:8]}@example.org"
        with uow:
            member = Member(
                organization_id=admin.organization_id,
                email=address,
                email_normalized=auth.normalize_email(address),
                first_name=role.name.title().replace("_", " "),
                last_name="Tester",
                role=role.name,
                unit_id=unit_id,
                status=MemberStatus.ACTIVE.value,
                password_hash=auth.hash_password(password) if password else None,
            )
            uow.session.add(member)
            uow.session.flush()
            operator = auth.operator_for(uow.session, member)
            uow.commit()
            return operator

    return make
