"""The test helper that simulates the network going away (tests/tcp_proxy.py), on real servers:
a cut drops open connections and refuses new ones, restore brings them back."""

from __future__ import annotations

import socket
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from tests.tcp_proxy import proxied_url, proxy_for


def _timeout_args(url: str) -> dict[str, int]:
    if url.startswith("postgresql"):
        return {"connect_timeout": 2}
    # PyMySQL's connect_timeout covers the TCP connect only; the greeting is a read.
    return {"connect_timeout": 2, "read_timeout": 2}


def test_cut_drops_connections_refuses_new_ones_and_restore_forwards_again(
        server_db_url: str) -> None:
    proxy = proxy_for(server_db_url)
    try:
        engine = create_engine(proxied_url(server_db_url, proxy), poolclass=NullPool,
                               connect_args=_timeout_args(server_db_url))
        with engine.connect() as open_connection:
            assert open_connection.execute(text("SELECT 1")).scalar() == 1
            proxy.cut()
            with pytest.raises(OperationalError):
                open_connection.execute(text("SELECT 1"))
        started = time.monotonic()
        with pytest.raises(OperationalError), engine.connect():
            pass
        assert time.monotonic() - started < 2  # refused at once, not a timeout
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(proxy.address, timeout=1).close()
        proxy.restore()
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 2")).scalar() == 2
        proxy.hold()
        started = time.monotonic()
        with pytest.raises(OperationalError), engine.connect():
            pass
        assert 1.5 < time.monotonic() - started < 6  # the connect timeout, not a refusal
        proxy.restore()
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 3")).scalar() == 3
        engine.dispose()
    finally:
        proxy.stop()
