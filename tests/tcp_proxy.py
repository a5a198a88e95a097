"""A TCP proxy in front of a real database server, to simulate the network or the server going
away and coming back (the offline replica's tests).

    with TcpProxy("127.0.0.1", 5432) as proxy:
        url = proxied_url(server_url, proxy)  # the same database, through the proxy
        ...
        proxy.cut()      # every open connection is reset and new ones are refused
        proxy.restore()  # new connections are forwarded again

`cut()` closes both sides of every forwarded connection (a client in the middle of a query
sees the connection drop) and makes the listening socket refuse new connections: the port is
closed, so a client's connect fails at once with "connection refused", as when the server is
down. `hold()` is the other kind of outage: new connections are accepted but never answered
(a dead network), which is what a connect timeout is for. `restore()` undoes either.

The proxy runs on its own threads and knows nothing about the protocol it forwards.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from types import TracebackType
from typing import Self

from sqlalchemy.engine import URL, make_url

_CHUNK = 65536


class TcpProxy:
    """Forwards 127.0.0.1:<port> to (target_host, target_port) until cut or stopped."""

    def __init__(self, target_host: str, target_port: int, *, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self._lock = threading.Lock()
        # cut/hold/restore/stop may come from a timer thread as well as the test's own:
        # one at a time, so a listener is never closed while another call is opening it.
        self._life = threading.RLock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._held: list[socket.socket] = []
        self._mode = "forward"  # forward | cut | hold
        self._stopped = threading.Event()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.port = port
        self.connections = 0  # forwarded connections accepted so far

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> Self:
        with self._life:
            self._open_listener()
        return self

    def stop(self) -> None:
        with self._life:
            self._stopped.set()
            self._close_listener()
            self._drop_all()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def mode(self) -> str:
        return self._mode

    # -- outages ---------------------------------------------------------------------------

    def cut(self) -> None:
        """Reset every open connection and refuse new ones (the server went away)."""
        with self._life:
            with self._lock:
                self._mode = "cut"
            self._close_listener()
            self._drop_all()

    def hold(self) -> None:
        """Reset every open connection; accept new ones but never answer (a dead network)."""
        with self._life:
            with self._lock:
                self._mode = "hold"
            self._drop_all()
            if self._listener is None:
                self._open_listener()

    def restore(self) -> None:
        """Forward new connections again (on the same port)."""
        with self._life:
            with self._lock:
                self._mode = "forward"
                held, self._held = self._held, []
            for sock in held:
                _close(sock)
            if self._listener is None:
                self._open_listener()

    # -- internals -------------------------------------------------------------------------

    def _open_listener(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._thread = threading.Thread(target=self._accept_loop, args=(listener,),
                                        name=f"tcp-proxy-{self.port}", daemon=True)
        self._thread.start()

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is None:
            return
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        _close(listener)
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _drop_all(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
            held, self._held = self._held, []
        for client, upstream in pairs:
            _reset(client)
            _close(upstream)
        for sock in held:
            _reset(sock)

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by cut() or stop()
            with self._lock:
                mode = self._mode
                if mode == "hold":
                    self._held.append(client)
                    continue
            if mode == "cut":
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                if self._mode != "forward":
                    _reset(client)
                    _close(upstream)
                    continue
                self._pairs.append((client, upstream))
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, upstream),
                             name=f"tcp-proxy-pump-{self.port}", daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: upstream, upstream: client}
        selector = selectors.DefaultSelector()
        try:
            for sock in peers:
                selector.register(sock, selectors.EVENT_READ)
            while not self._stopped.is_set():
                for key, _ in selector.select(timeout=0.5):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = source.recv(_CHUNK)
                    if not data:
                        return
                    peers[source].sendall(data)
                if client.fileno() < 0 or upstream.fileno() < 0:
                    return
        except (OSError, ValueError):
            return
        finally:
            selector.close()
            with self._lock:
                if (client, upstream) in self._pairs:
                    self._pairs.remove((client, upstream))
            _close(client)
            _close(upstream)


def _reset(sock: socket.socket) -> None:
    """Close with RST rather than FIN, so the peer sees the connection dropped at once."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    _close(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


def proxy_for(url: str | URL) -> TcpProxy:
    """A started proxy in front of the server a database URL names."""
    parsed = make_url(url)
    default_port = 5432 if parsed.get_backend_name() == "postgresql" else 3306
    return TcpProxy(parsed.host or "127.0.0.1", parsed.port or default_port).start()


def proxied_url(url: str | URL, proxy: TcpProxy) -> str:
    """The same database URL (password included) through the proxy."""
    parsed = make_url(url).set(host="127.0.0.1", port=proxy.port)
    return parsed.render_as_string(hide_password=False)
