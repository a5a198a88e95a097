"""Offline replica and sync with the organization's PostgreSQL or MariaDB server (issue 12).

The design, with its reasoning, is in docs/architecture.md ("Offline replica and sync")."""
