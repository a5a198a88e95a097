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


class Confirmations:
    """Stands in for the person answering `widgets.confirm`: records each question, answers
    `answer` (True: the action button, False: Cancel)."""

    def __init__(self) -> None:
        self.answer = True
        self.asked: list[dict[str, str]] = []

    def __call__(self, parent: object, title: str, text: str, *, informative: str = "",
                 action: str = "OK") -> bool:
        self.asked.append({"title": title, "text": text, "informative": informative,
                           "action": action})
        return self.answer


@pytest.fixture(autouse=True)
def confirmations(monkeypatch: pytest.MonkeyPatch) -> Confirmations:
    """No test blocks on a confirmation box: every one is answered (yes unless told)."""
    from invite_desk.ui import widgets

    answers = Confirmations()
    monkeypatch.setattr(widgets, "confirm", answers)
    return answers
