"""The Invitations window on 1,000,000 invitations (and 1,000,000 members), offscreen.

Measures, each from the user's action to the rows painted on screen:
- opening the window on the Pending view (the default: newest sent first);
- sorting by the Sent column (oldest first);
- scrolling to the end of the Pending view;
- a search in it (an invitees' email prefix);
and the process's resident memory after all of that, against the same steps on an empty
database (the baseline). Each side runs in its own process, so neither warms the other's
caches or memory. Tab counts load in the background after the first paint; their time is
reported too, as are sorts no index answers (inviter) and a broad search, for honesty.
Each side runs five times (fresh processes); the figures are medians, with min and max.

Targets (from the issue): each action under 200 ms, memory growth under 100 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.bigdb import SIZE, big_database
from bench.common import fresh_database, result

TARGET_MS = 200.0
TARGET_MB = 100.0
SEARCH = "invitee42"  # an email prefix: 11,111 invitees at 1M, about 580 of them pending
BROAD_SEARCH = "invitee1"  # 111,111 invitees at 1M, about 5,300 of them pending


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def measure(url: str) -> dict[str, Any]:
    """Run in a child process: open the window on `url` and time each step."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt

    from invite_desk.app import AppContext
    from invite_desk.services import auth, db
    from invite_desk.services.credentials import MemoryCredentialStore
    from invite_desk.services.tracking import Column, Tab
    from invite_desk.services.uow import UnitOfWork
    from invite_desk.ui.invitations import InvitationsWindow
    from invite_desk.ui.main import create_application

    qapp = create_application()
    engine = db.make_engine(url)
    uow = UnitOfWork(engine)
    admin = auth.sign_in(uow, "bench@example.org", "bench-password-1")
    context = AppContext(engine=engine, uow=uow, credentials=MemoryCredentialStore(),
                         database_label=url)
    rss_start = _rss_mb()

    def wait(condition: Callable[[], bool], timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            qapp.processEvents()
            if time.monotonic() > deadline:
                raise TimeoutError("the window did not get there in time")
            time.sleep(0.0005)

    # The app is already running when someone opens the Invitations page: let Qt load its
    # fonts and styles on a throwaway window first, so the timing is the page's own.
    # (PySide6 also sets up each class's bindings on first use: the main window and the
    # Compose page, built at sign-in, use these same kinds of widgets.)
    from PySide6.QtGui import QStandardItemModel
    from PySide6.QtWidgets import (
        QCheckBox,
        QComboBox,
        QDateEdit,
        QLabel,
        QLineEdit,
        QPushButton,
        QScrollArea,
        QSpinBox,
        QSplitter,
        QTabBar,
        QTableView,
        QVBoxLayout,
        QWidget,
    )

    warm = QWidget()
    layout = QVBoxLayout(warm)
    for widget in (QLabel("Warming up"), QTabBar(), QLineEdit(), QComboBox(), QDateEdit(),
                   QSpinBox(), QCheckBox("x"), QPushButton("x"), QScrollArea()):
        layout.addWidget(widget)
    table = QTableView()
    table.setModel(QStandardItemModel(30, 5, table))
    splitter = QSplitter()
    splitter.addWidget(table)
    layout.addWidget(splitter)
    warm.show()
    for _ in range(5):
        qapp.processEvents()
    table.viewport().repaint()
    table.horizontalHeader().viewport().repaint()
    warm.close()

    figures: dict[str, Any] = {}
    started = time.perf_counter()
    window = InvitationsWindow(context, admin, sweep_interval_ms=0)
    window.resize(1200, 780)
    window.show()
    model = window.model

    def painted(row: int = 0) -> None:
        """Wait until `row`'s page is in (or the view is empty), then paint synchronously."""
        wait(lambda: model.has_opened and not model.is_opening and (
            model.rowCount() == 0 or model.row_at(row) is not None))
        window.table.viewport().repaint()

    painted()
    figures["open_ms"] = (time.perf_counter() - started) * 1000
    figures["pending_rows"] = model.rowCount()
    wait(lambda: bool(window.counts))
    figures["counts_ms"] = (time.perf_counter() - started) * 1000

    def timed(action: Callable[[], None], row: Callable[[], int] = lambda: 0) -> float:
        wait(lambda: window._pool.activeThreadCount() == 0)  # the previous step's tail
        begun = time.perf_counter()
        action()
        painted(row())
        return (time.perf_counter() - begun) * 1000

    def to_end() -> None:
        window.table.scrollToBottom()
        qapp.processEvents()  # the view asks for the rows now in sight

    def last_row() -> int:
        return max(model.rowCount() - 1, 0)

    figures["sort_sent_ms"] = timed(
        lambda: window.table.sortByColumn(Column.SENT, Qt.SortOrder.AscendingOrder))
    figures["scroll_end_ms"] = timed(to_end, last_row)
    figures["search_ms"] = timed(lambda: window.set_search(SEARCH))
    figures["search_rows"] = model.rowCount()
    figures["broad_search_ms"] = timed(lambda: window.set_search(BROAD_SEARCH))
    figures["broad_search_rows"] = model.rowCount()
    figures["clear_search_ms"] = timed(lambda: window.set_search(""))
    figures["all_tab_ms"] = timed(lambda: window.set_tab(Tab.ALL))
    figures["all_rows"] = model.rowCount()
    figures["all_scroll_end_ms"] = timed(to_end, last_row)
    window.set_tab(Tab.PENDING)
    painted()
    figures["sort_inviter_ms"] = timed(
        lambda: window.table.sortByColumn(Column.INVITER, Qt.SortOrder.AscendingOrder))
    figures["cached_rows"] = model.cached_rows()
    figures["rss_start_mb"] = rss_start
    figures["rss_mb"] = _rss_mb()
    window.close()
    engine.dispose()
    return figures


def _measure_in_child(url: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.tracking", "--measure", url],
        capture_output=True, text=True, check=False,
        env={**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")},
    )
    if done.returncode != 0:
        raise RuntimeError(f"measuring {url} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


RUNS = 5  # fresh processes per database; each figure is their median (the timings are noisy)


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def run(quick: bool = False) -> list[dict[str, Any]]:
    size = 100_000 if quick else SIZE
    build_started = time.perf_counter()
    uow, _admin, url = big_database(size)  # also upgrades it (indexes of migration 0003)
    uow.engine.dispose()
    ready_s = time.perf_counter() - build_started
    with tempfile.TemporaryDirectory() as folder:
        empty_url = f"sqlite:///{Path(folder) / 'empty.sqlite3'}"
        empty_uow, _ = fresh_database(empty_url)
        empty_uow.engine.dispose()
        empty_runs = [_measure_in_child(empty_url) for _ in range(RUNS)]
    big_runs = [_measure_in_child(url) for _ in range(RUNS)]
    empty, big = _median(empty_runs), _median(big_runs)
    common = {"database_rows": size, "database_ready_s": round(ready_s, 1), "runs": RUNS}
    rows: list[dict[str, Any]] = []

    def timing(name: str, key: str, target: str | None, **extra: Any) -> None:
        values = sorted(run[key] for run in big_runs)
        rows.append(result(f"tracking.{name}", big[key], "ms", empty[key],
                           baseline_name="same step, empty database", target=target,
                           min=round(values[0], 1), max=round(values[-1], 1),
                           **extra, **common))

    timing("open_pending_first_paint", "open_ms", "< 200 ms", rows=big["pending_rows"])
    timing("sort_by_sent", "sort_sent_ms", "< 200 ms")
    timing("search", "search_ms", "< 200 ms", query=SEARCH, rows=big["search_rows"])
    timing("scroll_to_end", "scroll_end_ms", "< 200 ms", rows=big["pending_rows"])
    timing("tab_counts_loaded", "counts_ms", None,
           note="in the background, after the first paint; from opening the window")
    timing("broad_search", "broad_search_ms", None, query=BROAD_SEARCH,
           rows=big["broad_search_rows"])
    timing("sort_by_inviter", "sort_inviter_ms", None,
           note="a name from another table: sorted in SQL without an index")
    timing("open_all_tab", "all_tab_ms", None, rows=big["all_rows"])
    timing("all_scroll_to_end", "all_scroll_end_ms", None, rows=big["all_rows"])
    growth = big["rss_mb"] - empty["rss_mb"]
    rows.append(result("tracking.memory_growth", growth, "MB", None, target="< 100 MB",
                       rss_mb=round(big["rss_mb"], 1), empty_database_rss_mb=round(
                           empty["rss_mb"], 1), cached_rows=big["cached_rows"], **common))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tracking")
    parser.add_argument("--measure", metavar="URL", help="(internal) measure one database")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure)), flush=True)
        return 0
    for row in run(quick=args.quick):
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
