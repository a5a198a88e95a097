"""UI test setup. Shared fixtures (database, operators) are in tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

# The offscreen platform warns on every top-level show(); harmless, but qt_log_level_fail would
# fail every test that shows a window. (Better placed in pyproject's `qt_log_ignore`.)
HEADLESS_NOISE = r"^This plugin does not support propagateSizeHints\(\)$"

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.qt_log_ignore(HEADLESS_NOISE))
