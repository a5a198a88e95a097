"""Provider presets: where a provider's SMTP submission lives and the caps it enforces.

Sending is paced from these numbers so that no cap is ever hit: a sliding one-minute window
(`per_minute`) and a rolling 24-hour budget (`per_day`, counted in recipients; Invite Desk sends
one recipient per message). `connections` is the default number of parallel SMTP connections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AuthMethod = Literal["password", "oauth-microsoft", "oauth-google"]
AUTH_METHODS: tuple[AuthMethod, ...] = ("password", "oauth-microsoft", "oauth-google")


@dataclass(frozen=True, slots=True)
class ProviderPreset:
    key: str
    label: str
    host: str
    port: int
    security: str
    per_minute: int  # 0: no cap
    per_day: int  # 0: no cap (rolling 24 hours)
    connections: int
    auth: AuthMethod
    note: str = ""


MICROSOFT_365 = ProviderPreset(
    key="microsoft365", label="Microsoft 365", host="smtp.office365.com", port=587,
    security="starttls", per_minute=30, per_day=10_000, connections=3,
    auth="oauth-microsoft",
    note="Microsoft 365 accepts 30 messages a minute and 10,000 recipients a day per mailbox, "
         "over at most 3 connections at once; basic (password) sign-in is being turned off.",
)
GOOGLE_WORKSPACE = ProviderPreset(
    key="google", label="Google Workspace", host="smtp.gmail.com", port=587,
    security="starttls", per_minute=0, per_day=2_000, connections=3, auth="oauth-google",
    note="Google Workspace accepts 2,000 messages a day per user; sign in with Google "
         "(or an app password).",
)
GENERIC_RELAY = ProviderPreset(
    key="relay", label="Other mail server (relay)", host="", port=587, security="starttls",
    per_minute=0, per_day=0, connections=4, auth="password",
    note="Your own server or a relay service: set its limits if it has any.",
)
CUSTOM = ProviderPreset(
    key="", label="Custom", host="", port=587, security="starttls", per_minute=0, per_day=0,
    connections=1, auth="password",
)

PRESETS: dict[str, ProviderPreset] = {
    p.key: p for p in (MICROSOFT_365, GOOGLE_WORKSPACE, GENERIC_RELAY, CUSTOM)
}
MAX_CONNECTIONS = 16


def preset(key: str) -> ProviderPreset:
    """The preset named `key`; an unknown key (a newer version's) counts as custom."""
    return PRESETS.get(key, CUSTOM)
