"""What a page is handed by the main window besides the hub: the app's parts it may name.

Pages never import `invite_desk.app` (the composition root) nor the unit of work module: they
type the context they are given with this protocol and reach `context.uow` only inside the
functions they hand to the hub, which run off the GUI thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from invite_desk.services.credentials import CredentialStore
    from invite_desk.services.uow import UnitOfWork


class PageContext(Protocol):
    @property
    def engine(self) -> Engine: ...

    @property
    def uow(self) -> UnitOfWork: ...

    @property
    def credentials(self) -> CredentialStore: ...


__all__ = ["PageContext", "UnitOfWork"]
