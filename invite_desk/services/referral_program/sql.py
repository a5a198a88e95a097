"""The few SQL expressions whose spelling differs between SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Double, case, cast, func, literal, literal_column
from sqlalchemy.orm import Session


def dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def email_domain(session: Session, column: Any) -> ColumnElement[str]:
    """The part after the last '@' (addresses are stored normalized, so it is lower-case)."""
    name = dialect(session)
    if name == "postgresql":
        return func.split_part(column, "@", 2)
    if name in ("mysql", "mariadb"):
        return func.substring_index(column, "@", -1)
    return func.substr(column, func.instr(column, "@") + 1)


def hour_bucket(session: Session, column: Any) -> ColumnElement[str]:
    """The UTC hour a timestamp falls in, as text (bursts are counted per hour)."""
    name = dialect(session)
    if name == "postgresql":
        return func.to_char(column, "YYYY-MM-DD HH24")
    if name in ("mysql", "mariadb"):
        return func.date_format(column, "%Y-%m-%d %H")
    return func.strftime("%Y-%m-%d %H", column)


def seconds_between(session: Session, start: Any, end: Any) -> ColumnElement[Any]:
    name = dialect(session)
    if name == "postgresql":
        return func.extract("epoch", end - start)
    if name in ("mysql", "mariadb"):
        return cast(func.timestampdiff(literal_column("MICROSECOND"), start, end), Double) / 1e6
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def bucket_index(column: Any, boundaries: list[datetime]) -> ColumnElement[int]:
    """Which of the half-open buckets [b0, b1), [b1, b2), ... the value falls in, as a
    balanced tree of CASEs (log2 n comparisons per row, computed by the database).

    The boundaries are local week/month starts converted to UTC, so daylight saving and
    the organization's time zone are exact; values outside give -1."""
    def node(low: int, high: int) -> Any:
        # buckets low..high-1, boundaries[low]..boundaries[high]
        if high - low == 1:
            return literal(low)
        mid = (low + high) // 2
        return case((column < boundaries[mid], node(low, mid)), else_=node(mid, high))

    if len(boundaries) < 2:
        return literal(-1)
    return case(
        (column < boundaries[0], literal(-1)),
        (column >= boundaries[-1], literal(-1)),
        else_=node(0, len(boundaries) - 1),
    )
