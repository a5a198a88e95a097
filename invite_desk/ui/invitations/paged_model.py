"""Moved to `invite_desk.ui.paged` (every page's table uses it); kept for old imports."""

from invite_desk.ui.paged import LOADING_TEXT, PagedTableModel, PageSource

__all__ = ["LOADING_TEXT", "PageSource", "PagedTableModel"]
