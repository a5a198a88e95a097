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


def default_credentials() -> CredentialStore:
    store = KeyringCredentialStore()
    try:
        store.get("probe")
    except CredentialStoreError as exc:
        log.warning("%s; passwords will be kept for this session only.", exc)
        return MemoryCredentialStore()
    return store


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
