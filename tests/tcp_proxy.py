"""A TCP proxy on loopback between a client and a database server, for network faults:

    proxy = Proxy("127.0.0.1", 5432)
    port = proxy.start()   # point the client at 127.0.0.1:port
    proxy.cut()            # drop every open connection (a cable pulled mid-round)
    proxy.refuse(True)     # the server is gone: new connections are refused
    proxy.refuse(False)    # it is back, on the same port
    proxy.stop()

Bytes are forwarded unchanged, so TLS, authentication and the protocol are the real ones."""

from __future__ import annotations

import contextlib
import socket
import threading


class Proxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._refusing = False
        self._stopped = False
        self._accepting: threading.Thread | None = None
        self.connections = 0  # accepted so far, for tests that want to see traffic

    # -- control ---------------------------------------------------------------------------

    def start(self) -> int:
        """Listen on 127.0.0.1 (a free port the first time, the same one after refuse(False));
        returns the port."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        with self._lock:
            self._listener = listener
            self._stopped = False
        self._accepting = threading.Thread(target=self._accept, args=(listener,),
                                           name=f"proxy-{self.port}", daemon=True)
        self._accepting.start()
        return self.port

    def cut(self) -> None:
        """Drop every open connection at once, both ways (the peers see a reset or EOF)."""
        with self._lock:
            doomed = list(self._open)
            self._open.clear()
        for sock in doomed:
            _close(sock)

    def refuse(self, refusing: bool) -> None:
        """True: close the listening port (connecting fails with "connection refused") and drop
        what is open, as when the server stops. False: listen again on the same port."""
        if refusing == self._refusing:
            return
        self._refusing = refusing
        if refusing:
            self._close_listener()
            self.cut()
        else:
            self.start()

    @property
    def refusing(self) -> bool:
        return self._refusing

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
        self._close_listener()
        self.cut()

    def __enter__(self) -> Proxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- forwarding ------------------------------------------------------------------------

    def _close_listener(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            _close(listener)
        if self._accepting is not None:
            self._accepting.join(timeout=5)
            self._accepting = None

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed
            try:
                server = socket.create_connection(self.target, timeout=10)
                server.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._listener is not listener or self._stopped:
                    _close(client)
                    _close(server)
                    return
                self._open.update((client, server))
                self.connections += 1
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True,
                                 name=f"proxy-{self.port}-pump").start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(source)
                self._open.discard(sink)
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
