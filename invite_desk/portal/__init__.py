"""The invitee registration web pages (Flask + Jinja2) on the same services; no Qt."""
