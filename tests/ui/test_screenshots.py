"""`invite-desk screenshots DIR` renders every window to PNG on a throwaway database."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from invite_desk.ui.screenshots import run_screenshots

README = Path(__file__).resolve().parents[2] / "README.md"

EXPECTED = {
    "setup", "setup-errors", "sign-in",
    "main-compose", "main-invitations", "main-referrals", "main-members",
    "main-applications", "main-suppression",
    "main-as-member", "main-as-member-referrals", "main-as-member-settings",
    "main-admin", "main-audit", "member-edit", "units", "events", "audit-log",
    "referrals-leaderboard", "referrals-trends", "gamification", "sync-status", "sync-rejected",
}


@pytest.fixture
def restore_app_look(qapp: QApplication, free_left_behind: Callable[[], None]) -> Iterator[None]:
    """run_screenshots themes the (shared) QApplication; put it back for the other tests
    (after freeing the windows it left, which the old look would restyle: seconds)."""
    style, sheet, palette, font = qapp.style().name(), qapp.styleSheet(), qapp.palette(), qapp.font()
    yield
    free_left_behind()
    qapp.setStyleSheet(sheet)
    qapp.setStyle(style)
    qapp.setPalette(palette)
    qapp.setFont(font)


@pytest.mark.usefixtures("restore_app_look")
def test_screenshots_write_every_window(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "shots"
    assert run_screenshots(None, out) == 0

    written = {path.stem for path in out.glob("*.png")}
    assert written >= EXPECTED
    settings_pages = {name for name in written if name.startswith("settings-")}
    try:
        from invite_desk.ui.settings.window import PAGE_CLASSES
    except ModuleNotFoundError:
        assert settings_pages == set()
    else:
        assert settings_pages == {f"settings-{cls.NAME}" for cls in PAGE_CLASSES}
    captured = capsys.readouterr()
    printed = captured.out.split()
    # Every picture waited for its page's figures: none shows "Loading…" or waited in vain.
    assert "still loading" not in captured.err, captured.err
    readme = {path.name for path in (out / "readme").glob("*.png")}
    assert sorted(printed) == sorted([*(str(out / f"{name}.png") for name in written),
                                      *(str(out / "readme" / name) for name in readme)])
    # The pictures README.md shows, in the state it describes: docs/screenshots/ is refreshed
    # from DIR/readme/.
    shown = set(re.findall(r"docs/screenshots/([\w-]+\.png)", README.read_text()))
    assert readme == shown - {"portal-join.png"}  # a web page, not a desktop window

    # Settings is pictured page by page; "main-settings" would repeat its first page.
    assert "main-settings" not in written or not settings_pages
    # No two pictures are the same picture.
    digests: dict[bytes, str] = {}
    for name in sorted(written):
        image = QImage(str(out / f"{name}.png"))
        digest = bytes(image.constBits())
        assert digest not in digests, f"{name} repeats {digests.get(digest)}"
        digests[digest] = name

    for name in written:
        image = QImage(str(out / f"{name}.png"))
        assert not image.isNull(), name
        if name.startswith(("main", "settings")):
            assert (image.width(), image.height()) == (1200, 780), name
        else:
            assert image.width() >= 400 and image.height() >= 300, name
        # Not a blank canvas: a real window has many colours (text, icons, borders).
        colours = {image.pixel(x, y) for x in range(0, image.width(), 7)
                   for y in range(0, image.height(), 7)}
        assert len(colours) > 20, name


@pytest.mark.usefixtures("restore_app_look")
def test_the_sign_in_picture_shows_no_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from invite_desk.ui import screenshots
    from invite_desk.ui.sign_in_dialog import SignInDialog

    seen: list[str] = []
    real_shoot = screenshots._Camera.shoot

    def shoot(camera: screenshots._Camera, widget: object, name: str, size: object = None) -> Path:
        if isinstance(widget, SignInDialog):
            seen.append(widget.error_text)
            assert widget.email_edit.text(), "the sign-in picture shows the email filled in"
        return real_shoot(camera, widget, name, size)  # type: ignore[arg-type]

    monkeypatch.setattr(screenshots._Camera, "shoot", shoot)
    monkeypatch.setattr(screenshots, "_shoot_main", lambda *args, **kwargs: None)
    assert run_screenshots(None, tmp_path / "shots") == 0
    assert seen == [""]
