"""OAuth2 sign-in for SMTP (XOAUTH2): Microsoft 365 with msal, Google with google-auth-oauthlib.

Only the refresh token is kept, in the OS keyring (an entry must fit in 2,560 bytes, Windows'
cap); access tokens live in memory and are refreshed when they are about to expire. When the
refresh token is missing, expired or revoked, `SignInNeeded` says to sign in again, and where.

The HTTP side is the libraries' own (msal's `http_client`, google-auth's `Request`); tests
hand them fakes at that boundary, so nothing here needs the network to be tested.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from invite_desk.services.credentials import CredentialStore, CredentialStoreError
from invite_desk.services.errors import DomainError
from invite_desk.services.smtp.transport import SmtpAuthError

if TYPE_CHECKING:
    from invite_desk.services.mail_settings import MailSettings

MICROSOFT = "oauth-microsoft"
GOOGLE = "oauth-google"
# msal adds offline_access (and openid, profile) itself and refuses them in `scopes`.
MICROSOFT_SCOPES = ["https://outlook.office.com/SMTP.Send"]
MICROSOFT_ALL_SCOPES = [*MICROSOFT_SCOPES, "offline_access"]
GOOGLE_SCOPES = ["https://mail.google.com/"]
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
GOOGLE_AUTH_URI = "https://accounts.google.com/o/oauth2/auth"
KEYRING_LIMIT = 2560  # bytes in one Windows Credential Manager entry
EARLY = 120.0  # refresh this many seconds before the access token expires
PROVIDER_NAMES = {MICROSOFT: "Microsoft 365", GOOGLE: "Google"}


class SignInNeeded(SmtpAuthError):
    """The OAuth2 sign-in is missing, expired or revoked: someone must sign in again (an
    SmtpAuthError: like a refused password, it stops the whole batch before anything is
    claimed)."""


class TokenTooLarge(DomainError):
    """The provider's refresh token does not fit in one keyring entry."""


@dataclass(frozen=True)
class Grant:
    """A token response: the access token, its lifetime, and a refresh token if rotated."""

    access_token: str
    expires_in: float
    refresh_token: str | None = None


def _again(provider: str, username: str, why: str) -> SignInNeeded:
    name = PROVIDER_NAMES.get(provider, "the provider")
    return SignInNeeded(
        f"{why} Sign in again with {name} for {username}: Settings > Email > "
        f"\"Sign in with {name}\" (an admin), then send again. Nothing was sent.")


def save_refresh_token(store: CredentialStore, key: str, refresh_token: str) -> None:
    """Keep the refresh token in the keyring; refuse one that does not fit an entry."""
    size = len(refresh_token.encode("utf-8"))
    if size > KEYRING_LIMIT:
        raise TokenTooLarge(
            f"The sign-in returned a refresh token of {size:,} bytes; the system keyring keeps "
            f"at most {KEYRING_LIMIT:,} in one entry (Windows), so it was not saved and "
            "Invite Desk cannot stay signed in. Sign in again; if this repeats, use an app "
            "password or an SMTP relay instead.")
    if not refresh_token:
        raise SignInNeeded("The sign-in returned no refresh token; sign in again.")
    store.set(key, refresh_token)


# -- refreshing --------------------------------------------------------------------------------
Refresher = Callable[[str], Grant]  # refresh token -> grant; raises SignInNeeded


def microsoft_refresher(client_id: str, tenant: str, username: str, *,
                        http_client: Any = None) -> Refresher:
    """Refresh with msal (a public client: no secret)."""

    def refresh(refresh_token: str) -> Grant:
        app = microsoft_app(client_id, tenant, http_client=http_client)
        result = app.acquire_token_by_refresh_token(refresh_token, scopes=MICROSOFT_SCOPES)
        return _microsoft_grant(result, username)

    return refresh


def microsoft_app(client_id: str, tenant: str, *, http_client: Any = None) -> Any:
    import msal

    authority = f"https://login.microsoftonline.com/{tenant or 'organizations'}"
    kwargs: dict[str, Any] = {"authority": authority}
    if http_client is not None:
        kwargs.update(http_client=http_client, instance_discovery=False)
    return msal.PublicClientApplication(client_id, **kwargs)


def _microsoft_grant(result: dict[str, Any] | None, username: str) -> Grant:
    if not result or "access_token" not in result:
        error = (result or {}).get("error", "no answer")
        description = str((result or {}).get("error_description", "")).split("\n")[0]
        if error in ("invalid_grant", "interaction_required", "invalid_client",
                     "unauthorized_client"):
            raise _again(MICROSOFT, username,
                         f"Microsoft 365 no longer accepts the sign-in ({error}: {description}).")
        raise SignInNeeded(
            f"Microsoft 365 did not renew the sign-in ({error}: {description}). Try again "
            "later; if it persists, sign in again in Settings > Email.")
    return Grant(str(result["access_token"]), float(result.get("expires_in", 3600)),
                 result.get("refresh_token"))


def google_refresher(client_id: str, client_secret: str, username: str, *,
                     request: Any = None) -> Refresher:
    """Refresh with google-auth (installed apps have a client secret that is not secret)."""

    def refresh(refresh_token: str) -> Grant:
        from google.auth.exceptions import RefreshError, TransportError
        from google.oauth2.credentials import Credentials

        creds = Credentials(  # type: ignore[no-untyped-call]
            token=None, refresh_token=refresh_token, token_uri=GOOGLE_TOKEN_URI,
                            client_id=client_id, client_secret=client_secret,
                            scopes=GOOGLE_SCOPES)
        transport = request
        if transport is None:
            from google.auth.transport.requests import Request

            transport = Request()
        try:
            creds.refresh(transport)  # type: ignore[no-untyped-call]
        except RefreshError as error:
            raise _again(GOOGLE, username,
                         f"Google no longer accepts the sign-in ({_first_line(error)}).") from error
        except TransportError as error:
            raise SignInNeeded(f"Google could not be reached to renew the sign-in "
                               f"({_first_line(error)}). Try again later.") from error
        lifetime = 3600.0
        if creds.expiry is not None:
            from datetime import datetime

            lifetime = (creds.expiry - datetime.utcnow()).total_seconds()  # noqa: DTZ003 (google-auth's naive UTC)
        return Grant(str(creds.token), lifetime,
                     creds.refresh_token if creds.refresh_token != refresh_token else None)

    return refresh


def _first_line(error: BaseException) -> str:
    return str(error).split("\n")[0][:200] or type(error).__name__


class TokenSource:
    """A callable giving a valid access token: cached in memory, refreshed shortly before it
    expires with the refresh token from the keyring (saved again when the provider rotates
    it). Thread-safe: the connections of one send run share it."""

    def __init__(self, provider: str, username: str, store: CredentialStore, key: str,
                 refresher: Refresher, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.provider = provider
        self.username = username
        self._store = store
        self._key = key
        self._refresher = refresher
        self._clock = clock
        self._lock = threading.Lock()
        self._token = ""
        self._expires = 0.0
        self.refreshes = 0

    def __repr__(self) -> str:  # never the tokens
        return f"TokenSource({self.provider}, {self.username})"

    def __call__(self) -> str:
        with self._lock:
            if self._token and self._clock() < self._expires - EARLY:
                return self._token
            try:
                refresh_token = self._store.get(self._key)
            except CredentialStoreError as error:
                raise SignInNeeded(f"{error}. The OAuth2 sign-in is kept there.") from error
            if not refresh_token:
                raise _again(self.provider, self.username,
                             "Nobody has signed in on this computer yet.")
            grant = self._refresher(refresh_token)
            self.refreshes += 1
            if grant.refresh_token and grant.refresh_token != refresh_token:
                save_refresh_token(self._store, self._key, grant.refresh_token)
            self._token = grant.access_token
            self._expires = self._clock() + grant.expires_in
            return self._token

    def forget(self) -> None:
        """Drop the cached access token (after the server refused it)."""
        with self._lock:
            self._token, self._expires = "", 0.0


# -- signing in (interactive: called from the desktop or the CLI) -------------------------------
def google_client_key(client_id: str) -> str:
    return f"oauth-client:{GOOGLE}:{client_id}"


def sign_in_microsoft(client_id: str, tenant: str, username: str, store: CredentialStore,
                      key: str, *, show: Callable[[str], None],
                      http_client: Any = None) -> str:
    """Device code flow: `show` gets the text to show (a URL and a code to type there);
    blocks until the person signed in (or the code expired). Saves the refresh token."""
    app = microsoft_app(client_id, tenant, http_client=http_client)
    flow = app.initiate_device_flow(scopes=MICROSOFT_SCOPES)
    if "user_code" not in flow:
        raise SignInNeeded(
            f"Microsoft 365 did not start the sign-in ({flow.get('error', 'no answer')}: "
            f"{str(flow.get('error_description', '')).splitlines()[0:1]}). Check the "
            "application (client) ID and the tenant in Settings > Email.")
    show(str(flow["message"]))
    result = app.acquire_token_by_device_flow(flow)
    grant = _microsoft_grant(result, username)
    if not grant.refresh_token:
        raise SignInNeeded("Microsoft 365 returned no refresh token (offline_access); sign in "
                           "again and accept the permission.")
    save_refresh_token(store, key, grant.refresh_token)
    return f"Signed in with Microsoft 365 for {username}."


def sign_in_google(client_id: str, client_secret: str, username: str, store: CredentialStore,
                   key: str, *, open_browser: bool = True,
                   run: Callable[[Any], Any] | None = None) -> str:
    """Loopback sign-in (InstalledAppFlow on a free local port, the browser opens). Saves the
    refresh token, and the client secret in its own keyring entry."""
    from google_auth_oauthlib.flow import InstalledAppFlow

    config = {"installed": {
        "client_id": client_id, "client_secret": client_secret,
        "auth_uri": GOOGLE_AUTH_URI, "token_uri": GOOGLE_TOKEN_URI,
        "redirect_uris": ["http://localhost"],
    }}
    flow = InstalledAppFlow.from_client_config(config, scopes=GOOGLE_SCOPES)
    if run is not None:
        creds = run(flow)
    else:
        creds = flow.run_local_server(
            host="localhost", port=0, open_browser=open_browser, login_hint=username,
            access_type="offline", prompt="consent",
            success_message="Invite Desk is signed in. You can close this window.")
    refresh_token = getattr(creds, "refresh_token", None)
    if not refresh_token:
        raise SignInNeeded("Google returned no refresh token; sign in again and allow access.")
    save_refresh_token(store, key, str(refresh_token))
    store.set(google_client_key(client_id), client_secret)
    return f"Signed in with Google for {username}."


def token_source(provider: str, username: str, client_id: str, tenant: str,
                 store: CredentialStore, key: str, *, http: Any = None) -> TokenSource:
    """The token source for the settings' provider (http: a fake for tests)."""
    refresher: Refresher
    if provider == MICROSOFT:
        refresher = microsoft_refresher(client_id, tenant, username, http_client=http)
    elif provider == GOOGLE:
        secret = store.get(google_client_key(client_id)) or ""
        refresher = google_refresher(client_id, secret, username, request=http)
    else:
        raise ValueError(f"not an OAuth2 provider: {provider}")
    return TokenSource(provider, username, store, key, refresher)


def for_settings(mail: MailSettings, store: CredentialStore, *,
                 http: Any = None) -> TokenSource | None:
    """The access-token source the settings call for (None: password sign-in)."""
    if not mail.uses_oauth:
        return None
    return token_source(mail.auth, mail.username, mail.oauth_client_id, mail.oauth_tenant,
                        store, mail.refresh_token_key(), http=http)


def check_sign_in(mail: MailSettings, store: CredentialStore, *, http: Any = None) -> None:
    """Before a batch or a connection test: refresh the token once, so an expired or
    revoked sign-in is said clearly (SignInNeeded) before anything is claimed."""
    source = for_settings(mail, store, http=http)
    if source is not None:
        source()
