"""Where the packaged resources (icons, styles) are: inside the installed wheel or the source tree.

One implementation for the whole app lives in invite_desk/resources_path.py (the email templates
use it too); the windows import it from here."""

from __future__ import annotations

from invite_desk.resources_path import resource_path

__all__ = ["resource_path"]
