"""The one composition root: builds the engine, unit of work and credential store, and hands
them to the windows, the portal and the command line."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.engine import URL

from invite_desk.services import db, local_config
from invite_desk.services.credentials import (
    CredentialStore,
    CredentialStoreError,
    KeyringCredentialStore,
    MemoryCredentialStore,
    resolve_database_url,
)
from invite_desk.services.uow import UnitOfWork

log = logging.getLogger(__name__)


@dataclass
class AppContext:
    engine: Engine
    uow: UnitOfWork
    credentials: CredentialStore
    database_label: str  # the URL without its password, for the status bar and logs

    def dispose(self) -> None:
        self.engine.dispose()


class _KeyringOrMemory:
    """The OS keyring, falling back to this session's memory the first time it fails
    (with one warning), so that a machine without a keyring still works on SQLite."""

    def __init__(self) -> None:
        self._store: CredentialStore = KeyringCredentialStore()

    def _fallback(self, exc: CredentialStoreError) -> None:
        log.warning("%s; passwords will be kept for this session only.", exc)
        self._store = MemoryCredentialStore()

    def get(self, key: str) -> str | None:
        try:
            return self._store.get(key)
        except CredentialStoreError as exc:
            self._fallback(exc)
            return None

    def set(self, key: str, secret: str) -> None:
        try:
            self._store.set(key, secret)
        except CredentialStoreError as exc:
            self._fallback(exc)
            self._store.set(key, secret)

    def delete(self, key: str) -> None:
        try:
            self._store.delete(key)
        except CredentialStoreError as exc:
            self._fallback(exc)


def default_credentials() -> CredentialStore:
    return _KeyringOrMemory()


def build(
    database_url: str | URL | None = None,
    *,
    credentials: CredentialStore | None = None,
    migrate: bool = True,
    remember: bool = False,
) -> AppContext:
    """Connect to the database (default: the embedded SQLite file) and upgrade it to head."""
    store = credentials if credentials is not None else default_credentials()
    url = database_url or local_config.default_database_url()
    connect_url, public_url = resolve_database_url(url, store)
    engine = db.make_engine(connect_url)
    if migrate:
        db.upgrade_to_head(engine)
    label = public_url.render_as_string(hide_password=True)
    if remember and database_url:
        local_config.write_config({"database_url": label})
    return AppContext(engine=engine, uow=UnitOfWork(engine), credentials=store,
                      database_label=label)
