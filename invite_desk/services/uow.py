"""Unit of work: one session per `with` block; leaving it rolls back unless commit() was called."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Self

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from invite_desk.services.errors import Conflict


class UnitOfWork:
    """Reusable and thread-safe: each `with uow:` opens a fresh session for the calling thread
    (the GUI thread and a background worker may share one UnitOfWork)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._factory = sessionmaker(bind=engine, expire_on_commit=False)
        self._local = threading.local()

    def _stack(self) -> list[Session]:
        stack: list[Session] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    @property
    def session(self) -> Session:
        stack = self._stack()
        if not stack:
            raise RuntimeError("use the unit of work inside `with uow:`")
        return stack[-1]

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def __enter__(self) -> Self:
        self._stack().append(self._factory())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session = self._stack().pop()
        try:
            session.rollback()
        finally:
            session.close()

    def commit(self) -> None:
        """Commit; a row someone else changed meanwhile becomes a Conflict a person can act on."""
        try:
            self.session.commit()
        except StaleDataError:
            self.session.rollback()
            raise Conflict(
                "Someone else changed this at the same time. Reload (Revert) to see the latest "
                "values, then make your change again."
            ) from None

    def rollback(self) -> None:
        self.session.rollback()
