"""Serving the portal: waitress (a production WSGI server) with a bounded pool of worker
threads, no `Server` header, and a token-redacting access log (WSGI middleware).

The portal faces the internet behind the organization's HTTPS reverse proxy. Every process
keeps its session key and rate-limit counters in the database, so an organization can run
several portal processes behind its load balancer on a shared PostgreSQL/MariaDB database.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import sys
import threading
from typing import Any

from flask import Flask
from waitress import wasyncore
from waitress.server import create_server

from invite_desk.app import AppContext
from invite_desk.portal.app import create_app
from invite_desk.portal.request_log import install_log_filters

DEFAULT_THREADS = 8
# Connections waitress accepts at once; beyond it new ones wait in the kernel's backlog.
CONNECTION_LIMIT = 200


class PortalServer:
    """A waitress server for the portal; `run()` serves until `stop()` (from any thread)."""

    def __init__(self, app: Flask, host: str, port: int, threads: int) -> None:
        install_log_filters()
        self._server: Any = create_server(
            app,  # create_app's AccessLog middleware writes the redacted access log
            host=host,
            port=port,
            threads=threads,
            connection_limit=CONNECTION_LIMIT,
            ident=None,  # no Server header at all (waitress would name itself and nothing else)
            # X-Forwarded-* are trusted (or not) by create_app(proxy_hops=...), not here.
            clear_untrusted_proxy_headers=False,
            channel_timeout=60,
            max_request_body_size=1024 * 1024,
        )
        self.threads = threads
        self._stopped = threading.Event()

    @property
    def server_port(self) -> int:
        return int(self._server.effective_port)

    def run(self) -> None:
        try:
            self._server.run()
        finally:
            self._stopped.set()

    def stop(self) -> None:
        """Close every connection and the listening socket in the server's own loop thread."""
        server = self._server

        def close_all() -> None:
            wasyncore.close_all(server._map)

        try:
            server.trigger.pull_trigger(close_all)
        except OSError:
            close_all()
        self._stopped.wait(timeout=10)
        server.task_dispatcher.shutdown(timeout=5)


def make_portal_server(
    app: Flask, host: str = "127.0.0.1", port: int = 8080, *, threads: int = DEFAULT_THREADS
) -> PortalServer:
    """A waitress server for `app` (port 0 picks a free one: see `server.server_port`)."""
    return PortalServer(app, host, port, threads)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(
    context: AppContext, host: str, port: int, *, proxy_hops: int = 0,
    threads: int = DEFAULT_THREADS, smtp_password: str | None = None,
) -> int:
    """Run the portal until Ctrl+C."""
    logging.getLogger("invite_desk.portal.access").setLevel(logging.INFO)
    app = create_app(context, proxy_hops=proxy_hops, smtp_password=smtp_password)
    try:
        server = make_portal_server(app, host, port, threads=threads)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(f"error: Port {port} is in use by another program.", file=sys.stderr)
        else:
            print(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}",
                  file=sys.stderr)
        return 1
    shown = f"[{host}]" if ":" in host else host
    print(f"Registration portal on http://{shown}:{server.server_port}/ "
          f"(database: {context.database_label}, {threads} threads). Press Ctrl+C to stop.",
          flush=True)
    if not _is_loopback(host) and not proxy_hops:
        print("Note: serve the portal to the internet through an HTTPS reverse proxy, and pass "
              "--proxy-hops 1 so it sees the real client addresses.", file=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return 0
