"""Database passwords live in the credential store (the OS keyring), never in the config file."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from invite_desk import app
from invite_desk.services import local_config
from invite_desk.services.credentials import (
    KeyringCredentialStore,
    MemoryCredentialStore,
    database_key,
    resolve_database_url,
)
from tests.db_servers import skip_or_fail

SECRET = "secret-pw-123"


def test_a_password_in_the_url_moves_to_the_store() -> None:
    store = MemoryCredentialStore()
    connect, public = resolve_database_url(
        f"postgresql+psycopg://invite:{SECRET}@db.example:5432/members", store
    )
    assert connect.password == SECRET
    assert public.password is None
    assert SECRET not in public.render_as_string(hide_password=False)
    assert store.get(database_key(connect)) == SECRET
    assert database_key(connect) == "db:postgresql+psycopg://invite@db.example:5432/members"


def test_a_url_without_password_gets_it_back_from_the_store() -> None:
    store = MemoryCredentialStore()
    resolve_database_url(f"mariadb+pymysql://invite:{SECRET}@db.example/members", store)

    connect, public = resolve_database_url("mariadb+pymysql://invite@db.example/members", store)

    assert connect.password == SECRET
    assert public.password is None


def test_the_stored_password_is_per_server_user_and_database() -> None:
    store = MemoryCredentialStore()
    resolve_database_url(f"postgresql+psycopg://invite:{SECRET}@db.example/members", store)
    for other in ("postgresql+psycopg://other@db.example/members",
                  "postgresql+psycopg://invite@elsewhere.example/members",
                  "postgresql+psycopg://invite@db.example/archive"):
        connect, _ = resolve_database_url(other, store)
        assert connect.password is None, other


def test_a_new_password_in_the_url_replaces_the_stored_one() -> None:
    store = MemoryCredentialStore()
    resolve_database_url("postgresql+psycopg://invite:old-password@db.example/members", store)
    resolve_database_url(f"postgresql+psycopg://invite:{SECRET}@db.example/members", store)
    connect, _ = resolve_database_url("postgresql+psycopg://invite@db.example/members", store)
    assert connect.password == SECRET


def test_passwords_with_url_special_characters_survive() -> None:
    awkward = "p@ss w:rd/%?#é"
    url = URL.create("postgresql+psycopg", username="invite", password=awkward,
                     host="db.example", database="members")
    store = MemoryCredentialStore()
    _, public = resolve_database_url(url.render_as_string(hide_password=False), store)
    connect, _ = resolve_database_url(public, store)
    assert connect.password == awkward


def test_sqlite_urls_never_touch_the_store() -> None:
    class Untouchable(MemoryCredentialStore):
        def get(self, key: str) -> str | None:
            raise AssertionError("the store was asked")

        def set(self, key: str, secret: str) -> None:
            raise AssertionError("the store was written")

    connect, public = resolve_database_url("sqlite:///members.sqlite3", Untouchable())
    assert connect == public == make_url("sqlite:///members.sqlite3")


def _config_text() -> str:
    path = local_config.config_path()
    return path.read_text(encoding="utf-8") if path.exists() else ""


def test_remembering_a_server_database_keeps_its_password_out_of_the_config_file() -> None:
    """migrate=False never connects, so any host will do: what matters is what gets written."""
    store = MemoryCredentialStore()
    context = app.build(f"postgresql+psycopg://u:{SECRET}@host/db", migrate=False,
                        remember=True, credentials=store)
    try:
        config = _config_text()
        assert config, "the database URL should have been remembered"
        assert SECRET not in config
        assert local_config.read_config()["database_url"] == "postgresql+psycopg://u@host/db"
        assert SECRET not in context.database_label
        assert context.engine.url.password == SECRET  # connecting still uses it
    finally:
        context.dispose()

    # The next start uses the remembered URL; the password comes back from the store.
    again = app.build(local_config.read_config()["database_url"], migrate=False,
                      credentials=store)
    try:
        assert again.engine.url.password == SECRET
    finally:
        again.dispose()
    assert SECRET not in _config_text()


def test_remembering_a_real_server_database(server_db_url: str) -> None:
    """The same against a live server: connect with the password, reconnect without it."""
    url = make_url(server_db_url)
    secret = str(url.password)
    store = MemoryCredentialStore()
    context = app.build(server_db_url, remember=True, credentials=store)
    context.dispose()
    # (Test servers may use a password that also appears in the user or database name.)
    assert f":{secret}@" not in _config_text()
    remembered = local_config.read_config()["database_url"]
    assert make_url(remembered).password is None
    assert make_url(remembered) == make_url(server_db_url)._replace(password=None)

    again = app.build(remembered, credentials=store)
    try:
        with again.engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar() == 1
    finally:
        again.dispose()
    assert f":{secret}@" not in _config_text()


# ---------------------------------------------------------------- the real Secret Service


@pytest.fixture
def secret_service_store() -> Iterator[KeyringCredentialStore]:
    """A KeyringCredentialStore on the real Secret Service (gnome-keyring under dbus-run-session)."""
    if os.environ.get("INVITE_DESK_TEST_KEYRING") != "secretservice":
        skip_or_fail("INVITE_DESK_TEST_KEYRING=secretservice is not set: no Secret Service "
                     "keyring to test against (CI runs gnome-keyring under dbus-run-session)")
    import keyring
    from keyring.backends import SecretService

    backend = keyring.get_keyring()
    chain = getattr(backend, "backends", [backend])
    assert isinstance(chain[0], SecretService.Keyring), f"keyring backend is {backend!r}"
    store = KeyringCredentialStore(service=f"invite-desk-test-{uuid.uuid4().hex[:8]}")
    yield store
    store.delete("db:postgresql+psycopg://invite@db.example/members")


@pytest.mark.keyring
def test_secret_service_round_trip(secret_service_store: KeyringCredentialStore) -> None:
    import keyring

    key = "db:postgresql+psycopg://invite@db.example/members"
    assert secret_service_store.get(key) is None

    secret_service_store.set(key, "s3cret – with ünïcode ✓")
    assert secret_service_store.get(key) == "s3cret – with ünïcode ✓"
    # It really is in the keyring, not in the object.
    assert keyring.get_password(secret_service_store.service, key) == "s3cret – with ünïcode ✓"
    assert KeyringCredentialStore(secret_service_store.service).get(key) == "s3cret – with ünïcode ✓"

    secret_service_store.set(key, "replaced")
    assert secret_service_store.get(key) == "replaced"

    secret_service_store.delete(key)
    assert secret_service_store.get(key) is None
    secret_service_store.delete(key)  # deleting what is not there is not an error


@pytest.mark.keyring
def test_database_passwords_go_to_the_secret_service(
    secret_service_store: KeyringCredentialStore,
) -> None:
    connect, public = resolve_database_url(
        f"postgresql+psycopg://invite:{SECRET}@db.example/members", secret_service_store
    )
    assert secret_service_store.get(database_key(connect)) == SECRET
    again, _ = resolve_database_url(public, KeyringCredentialStore(secret_service_store.service))
    assert again.password == SECRET
