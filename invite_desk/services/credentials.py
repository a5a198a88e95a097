"""Secrets live only in the OS keyring (database and SMTP passwords); never in a file or a log."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.engine import URL, make_url

KEYRING_SERVICE = "invite-desk"


class CredentialStore(Protocol):
    def get(self, key: str) -> str | None: ...

    def set(self, key: str, secret: str) -> None: ...

    def delete(self, key: str) -> None: ...


class CredentialStoreError(Exception):
    """The keyring could not be used; the message says how to fix it."""


class KeyringCredentialStore:
    """The OS keyring (Secret Service, macOS Keychain, Windows Credential Locker)."""

    def __init__(self, service: str = KEYRING_SERVICE) -> None:
        self.service = service

    def get(self, key: str) -> str | None:
        import keyring
        from keyring.errors import KeyringError

        try:
            return keyring.get_password(self.service, key)
        except KeyringError as exc:
            raise CredentialStoreError(f"The system keyring is not available: {exc}") from None

    def set(self, key: str, secret: str) -> None:
        import keyring
        from keyring.errors import KeyringError

        try:
            keyring.set_password(self.service, key, secret)
        except KeyringError as exc:
            raise CredentialStoreError(
                f"Could not save the password in the system keyring: {exc}"
            ) from None

    def delete(self, key: str) -> None:
        import keyring
        from keyring.errors import KeyringError, PasswordDeleteError

        try:
            keyring.delete_password(self.service, key)
        except PasswordDeleteError:
            pass
        except KeyringError as exc:
            raise CredentialStoreError(f"The system keyring is not available: {exc}") from None


class MemoryCredentialStore:
    """For tests and for machines without a keyring: secrets last as long as the process."""

    def __init__(self) -> None:
        self._secrets: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self._secrets.get(key)

    def set(self, key: str, secret: str) -> None:
        self._secrets[key] = secret

    def delete(self, key: str) -> None:
        self._secrets.pop(key, None)


def without_password(url: URL) -> URL:
    """`url` with no password at all.

    Not `url.set(password=None)`: URL.set() treats None as "leave unchanged" and would keep it.
    """
    return url._replace(password=None)


def database_key(url: URL) -> str:
    """The keyring entry name for a database: its URL without the password."""
    return "db:" + without_password(url).render_as_string(hide_password=False)


def smtp_key(host: str, port: int, username: str) -> str:
    return f"smtp:{username}@{host}:{port}"


def oauth_key(provider: str, username: str) -> str:
    """The keyring entry of an OAuth2 refresh token (e.g. "oauth:oauth-google:me@x.org")."""
    return f"oauth:{provider}:{username.lower()}"


def resolve_database_url(url: str | URL, store: CredentialStore) -> tuple[URL, URL]:
    """Return (URL to connect with, URL safe to show or save).

    A password given in the URL is moved to the keyring; a URL without one gets the
    password the keyring holds for it, if any.
    """
    parsed = make_url(url)
    public = without_password(parsed)
    if parsed.get_backend_name() == "sqlite":
        return parsed, public
    if parsed.password:
        store.set(database_key(parsed), str(parsed.password))
        return parsed, public
    secret = store.get(database_key(parsed))
    if secret:
        return parsed.set(password=secret), public
    return parsed, public
