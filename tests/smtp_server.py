"""A real SMTP server on loopback (aiosmtpd) for tests, recording every message, with fault injection.

with LoopbackSmtpServer(auth=("sender", "secret"), tls="starttls") as server:
    server.fail_next("RCPT", 450, times=2)      # the next two RCPT commands get 450
    server.fail_recipient("gone@example.org", 550)
    server.drop_connection_after(3)             # close the socket after 3 more messages
    server.drop_during_data()                   # keep the next message, then hang up unanswered
    LoopbackSmtpServer(smtputf8=True)           # offers SMTPUTF8 (internationalized addresses)
    ... send ...
    server.messages, server.count_for("a@example.org"), server.connections
    LoopbackSmtpServer(xoauth2={"me@x.org": "token"})  # offers AUTH XOAUTH2, checks the string
    LoopbackSmtpServer(reply_delay=0.025)       # every reply waits 25 ms (a distant provider)
    server.max_concurrent                       # most connections open at the same moment
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import collections
import datetime
import functools
import ipaddress
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

Command = Literal["MAIL", "RCPT", "DATA"]
Tls = Literal["starttls", "ssl"] | None

DEFAULT_TEXTS = {
    421: "4.3.2 Service not available, closing transmission channel",
    450: "4.2.1 Mailbox busy, try again later",
    451: "4.3.0 Local error in processing, try again later",
    452: "4.3.1 Insufficient system storage",
    530: "5.7.0 Authentication required",
    550: "5.1.1 Mailbox unavailable: no such user here",
    552: "5.3.4 Message too big",
    554: "5.7.1 Message rejected as spam",
}


@dataclass(frozen=True)
class ReceivedMessage:
    """One message the server accepted: the envelope and the parsed content."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    connection: int  # which connection (1-based) delivered it
    mail_options: tuple[str, ...] = ()  # e.g. ("SMTPUTF8", "BODY=8BITMIME")

    @functools.cached_property
    def message(self) -> EmailMessage:
        """The content parsed with policy.default (lazily: big batches stay cheap to receive)."""
        parsed = BytesParser(policy=policy.default).parsebytes(self.raw)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class _Fault:
    command: Command
    code: int
    text: str
    remaining: int | None  # None: every time
    recipient: str | None = None

    def matches(self, command: Command, recipients: tuple[str, ...]) -> bool:
        if self.command != command or self.remaining == 0:
            return False
        return self.recipient is None or self.recipient.lower() in (r.lower() for r in recipients)


class LoopbackSmtpServer:
    """aiosmtpd on 127.0.0.1 and a free port, in a background thread."""

    host = "127.0.0.1"

    def __init__(
        self, *, auth: tuple[str, str] | None = None, tls: Tls = None, smtputf8: bool = False,
        xoauth2: dict[str, str] | None = None, reply_delay: float = 0.0,
    ) -> None:
        self.auth = auth
        # user -> the access token the server accepts; the SASL string is checked byte for byte
        self.xoauth2 = dict(xoauth2) if xoauth2 is not None else None
        self.xoauth2_attempts: list[str] = []  # the decoded strings clients sent
        self.reply_delay = reply_delay
        self._open_now = 0
        self.max_concurrent = 0
        self.tls = tls
        self.smtputf8 = smtputf8  # advertise SMTPUTF8 (RFC 6531) after EHLO
        self.port = 0
        self._lock = threading.Lock()
        self._messages: list[ReceivedMessage] = []
        self._faults: list[_Fault] = []
        self._drop_after: int | None = None
        self._drop_in_data = 0
        self._protocols: list[SMTP] = []
        self.auth_failures = 0
        self._controller: _Controller | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> LoopbackSmtpServer:
        tls_context = _server_tls_context() if self.tls else None
        kwargs: dict[str, Any] = {
            "hostname": self.host,
            "server_hostname": "loopback.test",
            "ready_timeout": 10.0,
            "authenticator": self._authenticate,
            # AUTH is enforced in handle_MAIL instead of aiosmtpd's auth_required, which warns
            # (and so fails under filterwarnings=error) when combined with plain-text AUTH.
            "auth_require_tls": self.tls == "starttls",
            "enable_SMTPUTF8": self.smtputf8,
        }
        if self.xoauth2 is None:
            kwargs["auth_exclude_mechanism"] = ["XOAUTH2"]
        if self.tls == "starttls":
            kwargs.update(tls_context=tls_context, require_starttls=True)
        elif self.tls == "ssl":
            kwargs.update(ssl_context=tls_context)
        # Controller(port=0) cannot report the port it got in every aiosmtpd version: pick a
        # free one first, and try again in the unlikely case another process takes it meanwhile.
        for _ in range(5):
            self.port = _free_port(self.host)
            controller = _Controller(self, _Handler(self), port=self.port, **kwargs)
            try:
                controller.start()
            except OSError:
                controller.loop.close()
                continue
            self._controller = controller
            return self
        raise RuntimeError("no free port for the loopback SMTP server")

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is None:
            return
        # Close connections a test left open first, so no transport is left for the garbage
        # collector (it would emit a ResourceWarning, an error under filterwarnings=error).
        done = threading.Event()

        def close_all() -> None:
            for protocol in self._protocols:
                if protocol.transport is not None:
                    protocol.transport.close()
            done.set()

        controller.loop.call_soon_threadsafe(close_all)
        done.wait(5)
        controller.stop()

    def __enter__(self) -> LoopbackSmtpServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what was received -----------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._lock:
            return list(self._messages)

    def count_for(self, address: str) -> int:
        """How many accepted messages were addressed to `address` (case-insensitive)."""
        return self.recipient_counts()[address.lower()]

    def recipient_counts(self) -> collections.Counter[str]:
        with self._lock:
            return collections.Counter(r.lower() for m in self._messages for r in m.rcpt_tos)

    @property
    def connections(self) -> int:
        """How many client connections were opened (the start-up probe not counted)."""
        with self._lock:
            return max(0, len(self._protocols) - 1)

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's test certificate."""
        return ssl.create_default_context(cafile=str(_certificates().ca))

    def clear(self) -> None:
        """Forget received messages and pending faults."""
        with self._lock:
            self._messages.clear()
            self._faults.clear()
            self._drop_after = None
            self._drop_in_data = 0

    # -- fault injection -------------------------------------------------------------------

    def fail_next(self, command: Command, code: int, *, times: int = 1, text: str = "") -> None:
        """Answer `code` to the next `times` MAIL, RCPT or DATA (the final reply) commands.

        421 also closes the connection, as real servers do.
        """
        self._add(_Fault(command, code, text or DEFAULT_TEXTS.get(code, "Fault"), times))

    def fail_recipient(
        self, address: str, code: int, *, times: int | None = None, text: str = ""
    ) -> None:
        """Answer `code` to RCPT TO:<address> (every time, or the next `times` times)."""
        fault = _Fault("RCPT", code, text or DEFAULT_TEXTS.get(code, "Fault"), times, address)
        self._add(fault)

    def drop_connection_after(self, messages: int) -> None:
        """Close the connection right after the `messages`-th further message is accepted."""
        with self._lock:
            self._drop_after = messages

    def drop_during_data(self, *, times: int = 1) -> None:
        """Keep the next messages but hang up before answering their DATA (the uncertain case)."""
        with self._lock:
            self._drop_in_data = times

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    # -- called from the server thread -----------------------------------------------------

    def _opened(self) -> None:
        with self._lock:
            self._open_now += 1
            self.max_concurrent = max(self.max_concurrent, self._open_now)

    def _closed(self) -> None:
        with self._lock:
            self._open_now -= 1

    def _check_xoauth2(self, blob: bytes) -> bool:
        try:
            text = base64.b64decode(blob, validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            text = ""
        accepted = self.xoauth2 or {}
        with self._lock:
            self.xoauth2_attempts.append(text)
            if any(text == f"user={u}\x01auth=Bearer {t}\x01\x01" for u, t in accepted.items()):
                return True
            self.auth_failures += 1
        return False

    def _take_fault(self, command: Command, recipients: tuple[str, ...]) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(command, recipients):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault
        return None

    def _register(self, protocol: SMTP) -> int:
        with self._lock:
            self._protocols.append(protocol)
            return len(self._protocols) - 1

    def _store(self, envelope: Envelope, connection: int) -> tuple[int, bool, bool]:
        """Record a message; return its number and whether to hang up before or after replying."""
        received = ReceivedMessage(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            raw=envelope.original_content or b"",
            connection=connection,
            mail_options=tuple(envelope.mail_options),
        )
        with self._lock:
            self._messages.append(received)
            number = len(self._messages)
            if self._drop_in_data:
                self._drop_in_data -= 1
                return number, True, False
            if self._drop_after is not None:
                self._drop_after -= 1
                if self._drop_after <= 0:
                    self._drop_after = None
                    return number, False, True
        return number, False, False

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if self.auth is not None and isinstance(data, LoginPassword):
            user, password = self.auth
            if data.login == user.encode() and data.password == password.encode():
                return AuthResult(success=True)
        with self._lock:
            self.auth_failures += 1
        return AuthResult(success=False, handled=False)


class _Controller(Controller):
    """Counts connections and keeps each protocol so stop() can close what is still open."""

    def __init__(self, owner: LoopbackSmtpServer, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._owner = owner

    def factory(self) -> SMTP:
        protocol = _SMTP(self._owner, self.handler, **self.SMTP_kwargs)
        setattr(protocol, "connection_number", self._owner._register(protocol))  # noqa: B010
        return protocol


class _SMTP(SMTP):
    """Counts open connections and delays every reply by the server's reply_delay."""

    def __init__(self, owner: LoopbackSmtpServer, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._owner = owner

    def connection_made(self, transport: Any) -> None:
        self._owner._opened()
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._owner._closed()
        super().connection_lost(error)

    async def push(self, status: Any) -> None:
        if self._owner.reply_delay:
            await asyncio.sleep(self._owner.reply_delay)
        await super().push(status)


class _Handler:
    """aiosmtpd hooks: apply the faults, store accepted messages."""

    def __init__(self, owner: LoopbackSmtpServer) -> None:
        self.owner = owner

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802
        """SASL XOAUTH2 (only advertised with xoauth2=...): on a refusal, a 334 with a JSON
        error first, as Google and Microsoft do, then 535 once the client answers."""
        blob = args[1].encode() if len(args) > 1 else None
        if blob is None:
            answer = await server.challenge_auth("")
            if not isinstance(answer, bytes):
                return AuthResult(success=False, handled=True)
            blob = base64.b64encode(answer)
        if self.owner._check_xoauth2(blob):
            return AuthResult(success=True)
        await server.challenge_auth('{"status":"401","schemes":"bearer","scope":"SMTP.Send"}')
        return AuthResult(success=False, handled=False)

    async def handle_MAIL(  # noqa: N802 (aiosmtpd's hook names)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        needs_auth = self.owner.auth is not None or self.owner.xoauth2 is not None
        if needs_auth and not session.authenticated:
            return "530 " + DEFAULT_TEXTS[530]
        fault = self.owner._take_fault("MAIL", ())
        if fault is not None:
            return _reply(server, fault)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        fault = self.owner._take_fault("RCPT", (address,))
        if fault is not None:
            return _reply(server, fault)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        fault = self.owner._take_fault("DATA", tuple(envelope.rcpt_tos))
        if fault is not None:
            return _reply(server, fault)
        connection = getattr(server, "connection_number", 0)
        number, hang_up_now, hang_up_after = self.owner._store(envelope, connection)
        assert server.transport is not None
        if hang_up_now:
            server.transport.close()  # the reply below is never written
        elif hang_up_after:
            server.loop.call_soon(server.transport.close)  # runs after the reply is written
        return f"250 2.0.0 OK queued as {number}"


def _reply(server: SMTP, fault: _Fault) -> str:
    if fault.code == 421 and server.transport is not None:
        server.loop.call_soon(server.transport.close)
    return f"{fault.code} {fault.text}"


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


# -- a test certificate authority and a server certificate for 127.0.0.1 ----------------------


@dataclass(frozen=True)
class _Certificates:
    ca: Path
    cert: Path
    key: Path


_certs: _Certificates | None = None
_certs_lock = threading.Lock()


def _certificates() -> _Certificates:
    """Created once per test run in a temporary folder, removed at exit."""
    global _certs
    with _certs_lock:
        if _certs is None:
            folder = Path(tempfile.mkdtemp(prefix="invite-desk-smtp-tls-"))
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            try:
                _certs = _make_with_cryptography(folder)
            except ImportError:  # cryptography comes with keyring on Linux only
                _certs = _make_with_openssl(folder)
        return _certs


def _server_tls_context() -> ssl.SSLContext:
    certs = _certificates()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.cert, certs.key)
    return context


def _make_with_cryptography(folder: Path) -> _Certificates:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Invite Desk test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = _Certificates(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    paths.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def _make_with_openssl(folder: Path) -> _Certificates:
    """Fallback: a self-signed certificate (its own CA) made by the openssl command."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        + ["-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)]
        + ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return _Certificates(cert, cert, key)
