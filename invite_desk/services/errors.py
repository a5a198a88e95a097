"""Domain errors: each carries a message a person can act on."""

from __future__ import annotations

from collections.abc import Mapping


class DomainError(Exception):
    """Base of every error the services raise on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class PermissionDenied(DomainError):
    """The operator's role or scope does not allow the action."""

    def __init__(self, action: str, needed: str, *, detail: str = "", role_ok: bool = False) -> None:
        self.action = action
        self.needed = needed
        if role_ok and detail:
            # The role suffices; something else (e.g. invitations turned off) stands in the way.
            message = f"You cannot {action}. {detail}"
        else:
            message = f"You cannot {action}: this needs the {needed} role or higher."
            if detail:
                message = f"{message} {detail}"
        super().__init__(message)


class AuthenticationFailed(DomainError):
    """Sign-in failed. The message never says whether the email exists."""

    def __init__(self) -> None:
        super().__init__("The email or password is incorrect.")


class NotFound(DomainError):
    """A row the caller asked for does not exist (or is outside its scope)."""


class Conflict(DomainError):
    """The row changed since it was read, or the action contradicts its state."""


class ValidationFailed(DomainError):
    """One or more fields are invalid; `errors` maps each field to its reason."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        lines = "; ".join(f"{field}: {reason}" for field, reason in self.errors.items())
        super().__init__(f"Please correct: {lines}")


class SettingsIncomplete(DomainError):
    """An action needs a setting that is not set yet; `settings_page` names the page that sets it
    ("organization", "email", "template", "invitations", "referrals"), so a window can open it."""

    def __init__(self, message: str, *, settings_page: str) -> None:
        super().__init__(message)
        self.settings_page = settings_page
