"""Sending over SMTP: one persistent connection, outcome classification, rate limit, retries."""

from invite_desk.services.smtp.ratelimit import RateLimiter
from invite_desk.services.smtp.transport import (
    PermanentFailure,
    RetryPolicy,
    Security,
    SendResult,
    Sent,
    SmtpAuthError,
    SmtpConfig,
    SmtpConnectError,
    SmtpTransport,
    TemporaryFailure,
    Uncertain,
    test_connection,
)

__all__ = [
    "PermanentFailure",
    "RateLimiter",
    "RetryPolicy",
    "Security",
    "SendResult",
    "Sent",
    "SmtpAuthError",
    "SmtpConfig",
    "SmtpConnectError",
    "SmtpTransport",
    "TemporaryFailure",
    "Uncertain",
    "test_connection",
]
