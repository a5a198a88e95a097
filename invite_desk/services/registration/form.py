"""The registration form: what a person enters, and the checks it must pass."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from invite_desk.services import auth
from invite_desk.services.errors import ValidationFailed
from invite_desk.services.registration.busy import hash_gate

NAME_MAX = 100
PASSWORD_MAX = 1024  # argon2 takes any length; a cap keeps one request's cost bounded
EMAIL_MAX = 320


@dataclass(frozen=True)
class RegistrationForm:
    """The fields as submitted. `email` is read only on the public page: through an
    invitation link the address is the invitation's (the link proves the mailbox)."""

    first_name: str = ""
    last_name: str = ""
    password: str = ""
    password_confirmation: str = ""
    email: str = ""


@dataclass(frozen=True)
class CleanRegistration:
    first_name: str
    last_name: str
    password_hash: str | None
    email: str = ""  # validated; empty when the address comes from the invitation

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


def clean_name(text: str) -> str:
    """Trimmed, single-spaced, without control characters."""
    kept = "".join(ch for ch in text if not unicodedata.category(ch).startswith("C"))
    return " ".join(kept.split())


def check_form(
    form: RegistrationForm, *, needs_password: bool, needs_email: bool
) -> CleanRegistration:
    """Every problem at once as ValidationFailed (field -> reason); hashes the password."""
    errors: dict[str, str] = {}
    first, last = clean_name(form.first_name), clean_name(form.last_name)
    if not first and not last:
        errors["first_name"] = "Please enter your name."
    if len(first) > NAME_MAX:
        errors["first_name"] = f"First name must be at most {NAME_MAX} characters."
    if len(last) > NAME_MAX:
        errors["last_name"] = f"Last name must be at most {NAME_MAX} characters."
    email = ""
    if needs_email:
        if len(form.email.strip()) > EMAIL_MAX:
            errors["email"] = "This email address is too long."
        else:
            try:
                email = auth.checked_email(form.email, "email")
            except ValidationFailed:
                errors["email"] = "Please enter a valid email address, like name@example.org."
    password_hash: str | None = None
    if needs_password:
        problem = auth.password_problem(form.password)
        if problem:
            errors["password"] = f"{problem}."
        elif len(form.password) > PASSWORD_MAX:
            errors["password"] = f"Password must be at most {PASSWORD_MAX:,} characters."
        elif form.password != form.password_confirmation:
            errors["password_confirmation"] = "The two passwords do not match."
        elif email and form.password.strip().lower() == email.lower():
            errors["password"] = "Please choose a password that is not your email address."
    if errors:
        raise ValidationFailed(errors)
    if needs_password:
        with hash_gate.slot():  # argon2 takes 64 MiB a hash: a burst must queue, not pile up
            password_hash = auth.hash_password(form.password)
    return CleanRegistration(first, last, password_hash, email)
