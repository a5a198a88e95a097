"""The Members window: search and filters, who referred each member, and a member page with
their referral activity."""

from invite_desk.ui.members.window import MembersWindow

__all__ = ["MembersWindow"]
