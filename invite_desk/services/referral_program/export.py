"""The leaderboard as CSV or JSON lines (the report command and the Referrals page's export)."""

from __future__ import annotations

import csv
import json
from typing import Any, TextIO

from invite_desk.services.referral_program.types import Leaderboard, LeaderboardRow

COLUMNS = ("rank", "referrer_name", "referrer_email", "unit", "completed", "active", "pending",
           "pending_invitations", "pending_referrals", "invitations_sent",
           "invitations_accepted", "acceptance_rate", "points", "held_points", "badges",
           "score", "opted_out", "open_flags")


def _defuse(text: str) -> str:
    """Keep spreadsheet programs from running a cell as a formula (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def row_values(row: LeaderboardRow) -> dict[str, Any]:
    return {
        "rank": row.rank, "referrer_name": row.referrer_name,
        "referrer_email": row.referrer_email, "unit": row.unit_name,
        "completed": row.completed, "active": row.active, "pending": row.pending,
        "pending_invitations": row.pending_invitations,
        "pending_referrals": row.pending_referrals, "invitations_sent": row.invitations_sent,
        "invitations_accepted": row.invitations_accepted,
        "acceptance_rate": (round(row.acceptance_rate, 4)
                            if row.acceptance_rate is not None else None),
        "points": row.points, "held_points": row.held_points,
        "badges": [badge.milestone for badge in row.badges], "score": row.score,
        "opted_out": row.opted_out, "open_flags": row.open_flags,
    }


def write_csv(board: Leaderboard, out: TextIO) -> int:
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for row in board.rows:
        values = row_values(row)
        cells = []
        for column in COLUMNS:
            value = values[column]
            if column == "badges":
                cells.append(" ".join(str(m) for m in value))
            elif value is None:
                cells.append("")
            elif isinstance(value, bool):
                cells.append("yes" if value else "no")
            elif isinstance(value, str):
                cells.append(_defuse(value))
            else:
                cells.append(str(value))
        writer.writerow(cells)
    return len(board.rows)


def write_json_lines(board: Leaderboard, out: TextIO) -> int:
    for row in board.rows:
        out.write(json.dumps(row_values(row), ensure_ascii=False) + "\n")
    return len(board.rows)
