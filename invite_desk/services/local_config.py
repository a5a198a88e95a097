"""Where the embedded database lives, and the per-user config file (no secrets in it)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from platformdirs import user_config_dir, user_data_dir

APP_NAME = "invite-desk"


def data_dir() -> Path:
    override = os.environ.get("INVITE_DESK_DATA_DIR")
    return Path(override) if override else Path(user_data_dir(APP_NAME, appauthor=False))


def config_path() -> Path:
    override = os.environ.get("INVITE_DESK_CONFIG_DIR")
    base = Path(override) if override else Path(user_config_dir(APP_NAME, appauthor=False))
    return base / "config.json"


def default_database_url() -> str:
    """The embedded SQLite file in the user's data directory."""
    return f"sqlite:///{data_dir() / 'invite-desk.sqlite3'}"


def read_config() -> dict[str, Any]:
    try:
        loaded = json.loads(config_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def write_config(values: dict[str, Any]) -> None:
    """Merge `values` into the config file. Callers never pass secrets."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    merged = {**read_config(), **values}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(merged, indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(path)
