"""The invitee registration web pages (Flask + Jinja2) on the same services; no Qt."""

from invite_desk.portal.app import create_app

__all__ = ["create_app"]
