"""Request logging that never writes a link token: /join/<token>, /confirm/<token> and
/set-password/<token> (issue 11) and /unsubscribe/<token> (issue 13) are logged as
/join/<redacted> ..., in the access log and in error logs alike.

The path is checked as sent and after each level of percent-decoding (`/join%2F<token>`,
`/join%252F<token>`, `//JOIN/<token>/extra` ...); query strings are never logged, only that
there was one (`?<redacted>`): a token may travel there too.

waitress writes no access log, so `AccessLog` is a WSGI middleware that writes one line per
request (Common Log Format, logger `invite_desk.portal.access`).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import unquote

# /join or /confirm followed by anything but a letter, digit, '-' or '_' ('/', '%2F', ';',
# '\\' ...): everything up to the query string is the token's place.
_SECRET_PATH = re.compile(
    r"(/(?:join|confirm|set-password|unsubscribe))(?![A-Za-z0-9_-])[^\s?#\"'<>]+", re.IGNORECASE
)
# A token out of its place (`/<token>`, `/joinX/<token>`, a link a mail program broke):
# any run of 32 or more token characters. Tokens are 43 (secrets.token_urlsafe(32)).
_LOOSE_TOKEN = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{32,}(?![A-Za-z0-9_-])")
REDACTED = "<redacted>"
_DECODE_LEVELS = 4

access_log = logging.getLogger("invite_desk.portal.access")


def _redact_once(text: str) -> str:
    return _LOOSE_TOKEN.sub(REDACTED, _SECRET_PATH.sub(lambda m: m.group(1) + "/" + REDACTED,
                                                       text))


def _has_secret(text: str) -> bool:
    return bool(_SECRET_PATH.search(text) or _LOOSE_TOKEN.search(text))


def redact(text: str) -> str:
    """`text` with every link token removed, however often it was percent-encoded.

    When any decoding of `text` holds a token path, the fully decoded text is redacted and
    returned (so nothing of the token survives in an encoded form)."""
    decoded = text
    for _ in range(_DECODE_LEVELS):
        if _has_secret(decoded):
            return _redact_once(decoded)
        once = unquote(decoded)
        if once == decoded:
            break
        decoded = once
    return _redact_once(decoded) if _has_secret(decoded) else text


def loggable_target(path: str, query: str = "") -> str:
    """What the access log shows for a request target: the redacted path, no query values."""
    path_only, sep, rest = path.partition("?")
    if sep:
        query = query or rest or "?"
    return redact(path_only) + (f"?{REDACTED}" if query else "")


class RedactingFilter(logging.Filter):
    """Redacts every record of a logger (e.g. waitress's 'Exception while serving /join/...')."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install_log_filters() -> None:
    for name in ("waitress", "waitress.queue"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class AccessLog:
    """WSGI middleware: one redacted access-log line per request, once the response is sent."""

    def __init__(self, app: WsgiApp, logger: logging.Logger = access_log) -> None:
        self.app = app
        self.logger = logger

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        status: list[str] = ["-"]
        size = [0]

        def capture(status_line: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            status[0] = status_line.split(" ", 1)[0]
            return start_response(status_line, headers, *args)

        body = self.app(environ, capture)
        return _Logged(body, lambda: self._write(environ, status[0], size[0]), size)

    def _write(self, environ: dict[str, Any], status: str, size: int) -> None:
        raw = environ.get("REQUEST_URI") or environ.get("RAW_URI")
        if raw:
            target = loggable_target(str(raw))
        else:
            path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
            target = loggable_target(path, str(environ.get("QUERY_STRING", "")))
        self.logger.info(
            '%s - - [%s] "%s %s %s" %s %s',
            environ.get("REMOTE_ADDR", "-"),
            time.strftime("%d/%b/%Y:%H:%M:%S %z"),
            str(environ.get("REQUEST_METHOD", "-"))[:16],
            target,
            str(environ.get("SERVER_PROTOCOL", "-"))[:16],
            status,
            size or "-",
        )


class _Logged:
    """The response body, counted as it is sent; logs when the server closes it."""

    def __init__(self, body: Iterable[bytes], done: Callable[[], None], size: list[int]) -> None:
        self._body = body
        self._done = done
        self._size = size

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._body:
            self._size[0] += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._done()
