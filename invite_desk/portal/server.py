"""Serving the portal: werkzeug's threaded WSGI server with token-redacting request logs.

This is a desktop companion serving one organization's invitees, usually a few requests a
minute, behind the organization's HTTPS reverse proxy. werkzeug's threaded server is enough for
that; a larger deployment can serve `create_app(...)` with any WSGI server (the bad-token limit
then counts per process).
"""

from __future__ import annotations

import ipaddress
import sys

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from invite_desk.app import AppContext
from invite_desk.portal.app import create_app
from invite_desk.portal.request_log import RedactingRequestHandler


def make_portal_server(app: Flask, host: str = "127.0.0.1", port: int = 8080) -> BaseWSGIServer:
    """A threaded server for `app` (port 0 picks a free one: see `server.server_port`)."""
    return make_server(host, port, app, threaded=True, request_handler=RedactingRequestHandler)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(context: AppContext, host: str, port: int, *, proxy_hops: int = 0) -> int:
    """Run the portal until Ctrl+C."""
    app = create_app(context, proxy_hops=proxy_hops)
    # A port in use or not allowed: werkzeug says so on stderr and exits with status 1.
    server = make_portal_server(app, host, port)
    shown = f"[{host}]" if ":" in host else host
    print(f"Registration portal on http://{shown}:{server.server_port}/ "
          f"(database: {context.database_label}). Press Ctrl+C to stop.", flush=True)
    if not _is_loopback(host) and not proxy_hops:
        print("Note: serve the portal to the internet through an HTTPS reverse proxy, and pass "
              "--proxy-hops 1 so it sees the real client addresses.", file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
