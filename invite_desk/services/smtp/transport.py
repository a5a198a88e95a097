"""One persistent SMTP connection that classifies each send as sent, temporary, permanent or uncertain."""

from __future__ import annotations

import smtplib
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from types import TracebackType
from typing import TYPE_CHECKING, Literal

from invite_desk.services.email.message import InvalidAddress
from invite_desk.services.email.raw import wire_form
from invite_desk.services.errors import DomainError
from invite_desk.services.smtp.ratelimit import RateLimiter

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

Security = Literal["ssl", "starttls", "none"]
SignIn = Literal["password", "xoauth2"]
AccessToken = Callable[[], str]  # returns a fresh OAuth2 access token (refreshing as needed)
_DROPPED = (
    smtplib.SMTPServerDisconnected,
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
)


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    """Where and how to send. The password is not here: it comes from the OS keyring."""

    host: str
    port: int
    security: Security
    username: str | None
    from_address: str
    from_name: str
    rate_per_minute: int = 0
    timeout: float = 30.0
    auth: SignIn = "password"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Sent:
    """The server accepted the message; `reply` is its final answer (often with a queue id)."""

    reply: str


@dataclass(frozen=True, slots=True)
class TemporaryFailure:
    """A 4xx answer or a lost connection before the data was sent: try again later."""

    code: int | None
    reply: str


@dataclass(frozen=True, slots=True)
class PermanentFailure:
    """A 5xx answer (for example 550 unknown recipient): do not retry; keep the reply."""

    code: int | None
    reply: str


@dataclass(frozen=True, slots=True)
class Uncertain:
    """The connection broke after the whole message was sent: it may have been delivered.

    Never resend automatically; show it to the operator.
    """

    reason: str


SendResult = Sent | TemporaryFailure | PermanentFailure | Uncertain


class SmtpConnectError(DomainError):
    """The server could not be reached, or TLS could not be set up."""


class SmtpAuthError(DomainError):
    """The server refused the user name or password, or sign-in is impossible as configured."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to wait before retrying a temporary failure."""

    max_attempts: int = 5
    base_delay: float = 30.0
    factor: float = 2.0
    max_delay: float = 900.0

    def delay_for(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based), capped at max_delay."""
        if attempt < 1:
            raise ValueError("attempt numbers start at 1")
        return float(min(self.max_delay, self.base_delay * self.factor ** (attempt - 1)))

    def should_retry(self, attempt: int) -> bool:
        """Whether another attempt may follow failed attempt number `attempt`."""
        return attempt < self.max_attempts


class _TrackingSMTP(smtplib.SMTP):
    """Records when the end-of-data marker leaves, so a later failure is known to be uncertain."""

    end_of_data_sent = False
    last_data_reply = ""

    def send(self, s: ReadableBuffer | str) -> None:
        # Commands are single lines; only the message body ends with CRLF "." CRLF.
        if isinstance(s, bytes) and s.endswith(b"\r\n.\r\n"):
            self.end_of_data_sent = True
        super().send(s)

    def data(self, msg: ReadableBuffer | str) -> tuple[int, bytes]:
        code, reply = super().data(msg)
        self.last_data_reply = f"{code} {_text(reply)}"
        return code, reply


class _TrackingSMTP_SSL(_TrackingSMTP, smtplib.SMTP_SSL):  # noqa: N801 (mirrors smtplib's name)
    """The same for implicit TLS (port 465)."""


class SmtpTransport:
    """Sends messages over one persistent connection, reconnecting once when it was dropped."""

    def __init__(
        self,
        config: SmtpConfig,
        password: str | None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        access_token: AccessToken | None = None,
    ) -> None:
        self.config = config
        self._password = password
        self._ssl_context = ssl_context
        self._access_token = access_token
        self.limiter = RateLimiter(config.rate_per_minute, clock=clock, sleep=sleep)
        self._conn: _TrackingSMTP | None = None
        self.connections_opened = 0

    def __repr__(self) -> str:
        return f"SmtpTransport({self.config.address}, security={self.config.security!r})"

    def __enter__(self) -> SmtpTransport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def connect(self) -> None:
        """Open the connection now (sending opens it when needed); raises the domain errors."""
        if self._conn is None or self._conn.sock is None:
            self._conn = _open(self.config, self._password, self._ssl_context,
                               self._access_token)
            self.connections_opened += 1

    def send(self, message: EmailMessage | bytes, to: str) -> SendResult:
        """Send `message` to one recipient and say what happened; never resends after DATA.

        Waits first as the rate limit requires. Raises SmtpConnectError or SmtpAuthError when
        the server cannot be reached or refuses the sign-in: those concern the whole batch.
        """
        try:
            sender, recipient = wire_form(self.config.from_address), wire_form(to)
        except InvalidAddress as error:
            return PermanentFailure(None, str(error))
        international = sender.smtputf8 or recipient.smtputf8
        for attempt in (1, 2):
            self.connect()
            conn = self._conn
            assert conn is not None
            options: list[str] = []
            if international:  # known only now, after EHLO
                if not conn.has_extn("smtputf8"):
                    return PermanentFailure(None, _no_smtputf8_message(self.config, to))
                options = ["SMTPUTF8"] + (["BODY=8BITMIME"] if conn.has_extn("8bitmime") else [])
            if attempt == 1:
                self.limiter.acquire()
            conn.end_of_data_sent = False
            try:
                if isinstance(message, bytes):  # already CRLF MIME (email/raw.py)
                    refused = conn.sendmail(str(sender), [str(recipient)], message,
                                            mail_options=options)
                else:
                    refused = conn.send_message(message, str(sender), [str(recipient)])
            except smtplib.SMTPRecipientsRefused as error:
                code, reply = error.recipients.get(
                    str(recipient), next(iter(error.recipients.values())))
                return _classify(code, reply)
            except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as error:
                if error.smtp_code == 530:
                    raise SmtpAuthError(_auth_needed_message(self.config)) from error
                return _classify(error.smtp_code, error.smtp_error)
            except (*_DROPPED, TimeoutError) as error:
                self._discard()
                if conn.end_of_data_sent:
                    return Uncertain(
                        f"The connection to {self.config.address} broke after the message was "
                        f"sent and before the server confirmed it ({_describe(error)})."
                    )
                if attempt == 2:
                    return TemporaryFailure(
                        None, f"Connection to {self.config.address} lost twice: {_describe(error)}"
                    )
                continue
            except smtplib.SMTPException as error:  # e.g. SMTPUTF8 needed but not offered
                return PermanentFailure(None, str(error))
            except Exception as error:  # anything else: this message only, never the batch
                self._discard()
                if conn.end_of_data_sent:
                    return Uncertain(
                        f"Sending to {to} stopped after the message was handed to "
                        f"{self.config.address}: {type(error).__name__}: {error}"
                    )
                return PermanentFailure(
                    None, f"The message could not be handed to {self.config.address}: "
                    f"{type(error).__name__}: {error}"
                )
            if str(recipient) in refused:
                code, reply = refused[str(recipient)]
                return _classify(code, reply)
            return Sent(conn.last_data_reply)
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Say QUIT politely and close; safe to call twice."""
        conn, self._conn = self._conn, None
        if conn is None or conn.sock is None:
            return
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()

    def _discard(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def test_connection(
    config: SmtpConfig, password: str | None, *, ssl_context: ssl.SSLContext | None = None,
    access_token: AccessToken | None = None,
) -> str:
    """Connect, secure and sign in as configured; return a plain-language success message."""
    conn = _open(config, password, ssl_context, access_token)
    try:
        conn.noop()
    except (smtplib.SMTPException, OSError) as error:
        raise SmtpConnectError(
            f"{config.address} stopped answering: {_describe(error)}."
        ) from error
    finally:
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()
    security = {
        "ssl": " over SSL/TLS",
        "starttls": " with STARTTLS",
        "none": " without encryption",
    }[config.security]
    signed_in = f" and signed in as {config.username}" if config.username else " (no sign-in)"
    return f"Connected to {config.address}{security}{signed_in}. Sending should work."


def _open(
    config: SmtpConfig, password: str | None, ssl_context: ssl.SSLContext | None,
    access_token: AccessToken | None = None,
) -> _TrackingSMTP:
    """Connect, EHLO, STARTTLS and log in as configured, translating failures to domain errors."""
    context = ssl_context or ssl.create_default_context()
    conn: _TrackingSMTP
    try:
        if config.security == "ssl":
            conn = _TrackingSMTP_SSL(
                config.host, config.port, timeout=config.timeout, context=context
            )
        else:
            conn = _TrackingSMTP(config.host, config.port, timeout=config.timeout)
    except ssl.SSLError as error:
        raise SmtpConnectError(_tls_message(config, error)) from error
    except (OSError, smtplib.SMTPException) as error:
        raise SmtpConnectError(f"Could not reach {config.address}: {_describe(error)}.") from error
    try:
        conn.ehlo_or_helo_if_needed()
        if config.security == "starttls":
            if not conn.has_extn("starttls"):
                raise SmtpConnectError(
                    f"{config.address} does not offer STARTTLS. Choose SSL/TLS (usually port 465) "
                    "or no encryption if this server really has none."
                )
            conn.starttls(context=context)
            conn.ehlo()
        if config.auth == "xoauth2":
            if access_token is None:
                raise SmtpAuthError(
                    f"{config.address} is set to sign in with OAuth2, but nobody has signed in "
                    "on this computer. Press \"Sign in\" in Settings > Email first.")
            _login_xoauth2(conn, config, access_token)
        elif config.username:
            _login(conn, config, password or "")
    except ssl.SSLError as error:
        conn.close()
        raise SmtpConnectError(_tls_message(config, error)) from error
    except (OSError, smtplib.SMTPServerDisconnected) as error:
        conn.close()
        raise SmtpConnectError(f"Could not reach {config.address}: {_describe(error)}.") from error
    except smtplib.SMTPException as error:  # e.g. EHLO or STARTTLS answered with an error
        conn.close()
        raise SmtpConnectError(f"{config.address} refused to start: {_describe(error)}.") from error
    except (SmtpConnectError, SmtpAuthError):
        conn.close()
        raise
    return conn


def _login(conn: smtplib.SMTP, config: SmtpConfig, password: str) -> None:
    """Sign in with one mechanism; unlike smtplib.login, never retry refused credentials with
    another mechanism, which would count as a second failed sign-in (account lockouts)."""
    if not conn.has_extn("auth"):
        hint = (
            " Many servers offer sign-in only after STARTTLS." if config.security == "none" else ""
        )
        raise SmtpAuthError(
            f"{config.address} does not offer sign-in (AUTH). Leave the user name empty if it "
            f"needs none.{hint}"
        )
    advertised = conn.esmtp_features["auth"].upper().split()
    usable = [name for name in ("PLAIN", "LOGIN", "CRAM-MD5") if name in advertised]
    if not usable:
        raise SmtpAuthError(
            f"{config.address} offers no sign-in method Invite Desk supports "
            f"(it offers {', '.join(advertised) or 'none'}; supported: PLAIN, LOGIN, CRAM-MD5)."
        )
    conn.user, conn.password = config.username or "", password
    refused: smtplib.SMTPAuthenticationError | None = None
    for name in usable:
        try:
            conn.auth(name, getattr(conn, "auth_" + name.lower().replace("-", "_")))
            return
        except smtplib.SMTPAuthenticationError as error:
            refused = error
            if error.smtp_code == 535:  # the credentials themselves were refused
                break
    assert refused is not None
    raise SmtpAuthError(
        f"{config.address} refused the user name or password for {config.username} "
        f"({refused.smtp_code} {_text(refused.smtp_error)}). Check the password in the SMTP "
        "settings; some providers need an app password instead of the normal one."
    ) from refused


def xoauth2_string(user: str, token: str) -> str:
    """The SASL XOAUTH2 initial response before base64 (smtplib encodes it)."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def _login_xoauth2(conn: smtplib.SMTP, config: SmtpConfig, access_token: AccessToken) -> None:
    """AUTH XOAUTH2 with a fresh access token; a refusal says to sign in again."""
    if not conn.has_extn("auth") or "XOAUTH2" not in conn.esmtp_features["auth"].upper().split():
        raise SmtpAuthError(
            f"{config.address} does not offer OAuth2 sign-in (XOAUTH2). Check the server name, "
            "or choose password sign-in."
        )
    token = access_token()  # may raise a DomainError saying to sign in again
    user = config.username or ""
    initial = xoauth2_string(user, token)

    def respond(challenge: bytes | None = None) -> str:
        # After a refusal the server sends an error as a 334 challenge: answer empty.
        return initial if challenge is None else ""

    try:
        conn.auth("XOAUTH2", respond, initial_response_ok=True)
    except smtplib.SMTPAuthenticationError as error:
        raise SmtpAuthError(
            f"{config.address} refused the OAuth2 sign-in for {user} ({error.smtp_code} "
            f"{_text(error.smtp_error)}). Sign in again in Settings > Email; check that the "
            "mailbox may send with SMTP (Microsoft 365: \"Authenticated SMTP\" is on for it)."
        ) from error


def _classify(code: int, reply: bytes | str) -> TemporaryFailure | PermanentFailure:
    if 400 <= code < 500:
        return TemporaryFailure(code, _text(reply))
    return PermanentFailure(code, _text(reply))


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _no_smtputf8_message(config: SmtpConfig, to: str) -> str:
    return (
        f"The mail server {config.address} does not accept internationalized addresses "
        f"(SMTPUTF8), so it cannot send to {to}. Ask the invitee for an address without "
        "accented or non-Latin letters before the @, or use a server that offers SMTPUTF8."
    )


def _auth_needed_message(config: SmtpConfig) -> str:
    return (
        f"{config.address} requires sign-in before sending. Enter the user name and password "
        "in the SMTP settings."
    )


def _tls_message(config: SmtpConfig, error: ssl.SSLError) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"The certificate of {config.host} could not be verified: {error.verify_message}."
    return (
        f"Could not set up encryption with {config.address} ({error.reason or error}). Check the "
        "security setting: SSL/TLS is usually port 465, STARTTLS port 587."
    )


def _describe(error: BaseException) -> str:
    """A short human reason for a network error."""
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, socket.gaierror):
        return "host name not found"
    if isinstance(error, TimeoutError):
        return "no answer in time"
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return (
            f"the server closed the connection ({error})"
            if str(error)
            else "the server closed the connection"
        )
    if isinstance(error, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return "the connection was reset"
    if isinstance(error, smtplib.SMTPResponseException):
        return f"the server answered {error.smtp_code} {_text(error.smtp_error)}"
    return str(error) or type(error).__name__
