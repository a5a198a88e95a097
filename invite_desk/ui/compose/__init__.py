"""The Invite composer: enter invitees, pre-flight check, preview, send with progress."""

from invite_desk.ui.compose.window import ComposeWindow

__all__ = ["ComposeWindow"]
