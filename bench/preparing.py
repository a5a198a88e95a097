"""Prepare a 10,000-row CSV (read, validate, dedupe, check, queue) against 1,000,000 members and
1,000,000 invitations; the baseline is the same CSV against an empty organization."""

from __future__ import annotations

import random
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.bigdb import big_database
from bench.common import fresh_database, result
from invite_desk.services.invitations.importing import parse_csv
from invite_desk.services.invitations.preflight import RowStatus, run_preflight
from invite_desk.services.invitations.queueing import queue_invitations
from invite_desk.services.operator import Operator
from invite_desk.services.uow import UnitOfWork


def make_csv(rows: int, seed: int = 3, run: str = "") -> bytes:
    """New addresses mixed with existing members, pending invitees, duplicates and typos."""
    rng = random.Random(seed)
    run = run or uuid.uuid4().hex[:6]  # fresh addresses each run: the cached database keeps them
    lines = ["email,name,message"]
    for i in range(rows):
        pick = rng.random()
        if pick < 0.05:
            email = f"member{rng.randrange(1_000_000)}@bench.example"
        elif pick < 0.08:
            email = f"invitee{rng.randrange(1_000_000)}@bench.example"
        elif pick < 0.09:
            email = f"new{max(0, i - 1)}.{run}@fresh.example"
        elif pick < 0.10:
            email = f"broken{i}.{run}@@fresh.example"
        else:
            email = f"new{i}.{run}@fresh.example"
        lines.append(f"{email},Person {i},")
    return "\n".join(lines).encode()


def prepare(uow: UnitOfWork, admin: Operator, data: bytes) -> tuple[float, dict[str, int]]:
    started = time.perf_counter()
    imported = parse_csv(data)
    pre = run_preflight(uow, admin.organization_id, imported.rows)
    batch = queue_invitations(uow, admin, pre.ready, source="csv", label="bench")
    elapsed = time.perf_counter() - started
    counts = {s.value: pre.count(s) for s in RowStatus}
    counts["queued_now"] = batch.queued  # not "queued": that is the already-queued verdict
    return elapsed, counts


def run(quick: bool = False) -> list[dict[str, Any]]:
    size = 100_000 if quick else 1_000_000
    rows = 10_000
    data = make_csv(rows)
    with tempfile.TemporaryDirectory() as folder:
        empty_uow, empty_admin = fresh_database(f"sqlite:///{Path(folder) / 'empty.sqlite3'}")
        baseline, _ = prepare(empty_uow, empty_admin, data)
        empty_uow.engine.dispose()
    build_started = time.perf_counter()
    uow, admin, _url = big_database(size)
    build_seconds = time.perf_counter() - build_started
    value, counts = prepare(uow, admin, data)
    uow.engine.dispose()
    return [result("preparing", value, "s", baseline, rows=rows, database_rows=size * 2,
                   baseline_name="same CSV, empty database", target="< 2 s", counts=counts,
                   database_ready_s=round(build_seconds, 1))]
