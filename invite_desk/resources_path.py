"""Where the packaged resources (email templates, icons, styles) live on this machine."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import invite_desk


def resource_path(*parts: str) -> Path:
    """Path of a file under resources/: inside the installed wheel, else in the source tree."""
    packaged = resources.files("invite_desk").joinpath("resources")
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged.joinpath(*parts)
    source_tree = Path(invite_desk.__file__).resolve().parent.parent / "resources"
    return source_tree.joinpath(*parts)
