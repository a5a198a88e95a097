"""The Invitations window: tabs, search, filters, sorting, row actions and a detail pane."""

from invite_desk.ui.invitations.window import InvitationsWindow

__all__ = ["InvitationsWindow"]
