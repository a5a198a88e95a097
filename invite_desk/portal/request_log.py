"""Request logging that never writes an invitation token: /join/<token> is logged as
/join/<redacted>, in werkzeug's access log and in Flask's error log alike."""

from __future__ import annotations

import re
from typing import Any

from werkzeug.serving import WSGIRequestHandler

_JOIN_PATH = re.compile(r"(/join/)[^\s/?#\"'<>]+", re.IGNORECASE)
REDACTED = "<redacted>"


def redact(text: str) -> str:
    return _JOIN_PATH.sub(lambda m: m.group(1) + REDACTED, text)


class RedactingRequestHandler(WSGIRequestHandler):
    """werkzeug's request handler, with every log line (access, errors, bad request lines)
    passed through `redact`."""

    def log(self, type: str, message: str, *args: Any) -> None:
        try:
            text = message % args if args else message
        except (TypeError, ValueError):
            text = " ".join([message, *map(str, args)])
        super().log(type, "%s", redact(text))
