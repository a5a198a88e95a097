"""What an invitations view asks for: a tab, a search, filters and a sort, as plain values."""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum

from invite_desk.services.models import InvitationKind
from invite_desk.services.tracking.status import Tab

SEARCH_MAX = 254  # characters: the longest address; longer text cannot be a prefix of one
_NOT_TEXT = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")


def search_needle(text: str) -> str:
    """A typed search as matched: control characters and lone surrogates (a paste from a
    broken source) dropped, composed (NFC, like stored names and addresses), trimmed, inner
    spaces collapsed, at most SEARCH_MAX characters. Every database can bind the result."""
    cleaned = unicodedata.normalize("NFC", _NOT_TEXT.sub(" ", text))
    return " ".join(cleaned.split())[:SEARCH_MAX].strip()


class Column(IntEnum):
    """The columns of the invitations table; every one can be sorted on, in SQL."""

    INVITEE = 0
    INVITER = 1
    SENDER = 2
    UNIT = 3
    KIND = 4
    BATCH = 5
    SENT = 6
    EXPIRES = 7
    ACCEPTED = 8
    STATUS = 9
    LAST_ERROR = 10

    @property
    def title(self) -> str:
        return COLUMN_TITLES[self]


COLUMN_TITLES: dict[Column, str] = {
    Column.INVITEE: "Invitee",
    Column.INVITER: "Inviter",
    Column.SENDER: "Sender",
    Column.UNIT: "Unit",
    Column.KIND: "Kind",
    Column.BATCH: "Batch",
    Column.SENT: "Sent",
    Column.EXPIRES: "Expires",
    Column.ACCEPTED: "Accepted",
    Column.STATUS: "Status",
    Column.LAST_ERROR: "Last error",
}


@dataclass(frozen=True)
class Filters:
    """Narrow a view. Dates are aware datetimes on the sent date: [sent_from, sent_to)."""

    sent_from: datetime | None = None
    sent_to: datetime | None = None
    unit_id: uuid.UUID | None = None
    inviter_id: uuid.UUID | None = None
    batch_id: uuid.UUID | None = None
    event_id: uuid.UUID | None = None
    kind: InvitationKind | None = None

    @property
    def active(self) -> bool:
        return any(value is not None for value in (
            self.sent_from, self.sent_to, self.unit_id, self.inviter_id, self.batch_id,
            self.event_id, self.kind))


@dataclass(frozen=True)
class InvitationQuery:
    """One view of the invitations table. The default: Pending, newest sent first."""

    tab: Tab = Tab.PENDING
    search: str = ""
    filters: Filters = field(default_factory=Filters)
    sort: Column = Column.SENT
    descending: bool = True

    @property
    def search_text(self) -> str:
        """The search as matched (see `search_needle`)."""
        return search_needle(self.search)
