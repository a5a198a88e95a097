"""Registration: invitees follow their link (or the public page) and become members or guests.

- `branding`: which organization the portal serves, its name, colours and logo.
- `form`: the registration form's fields and their checks.
- `links`: what an invitation link shows (valid, expired, used, not valid, ...).
- `joining`: register through an invitation link (single use, one transaction).
- `public`: the public registration page, or the invite-only notice.
- `admission`: creating the member, closing their other invitations, crediting referrers.
"""
