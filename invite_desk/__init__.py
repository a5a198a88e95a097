"""Invite Desk: invitations and referrals for membership organizations."""

__version__ = "0.1.0"
