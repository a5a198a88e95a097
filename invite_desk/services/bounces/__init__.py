"""Bounces: read the bounce mailbox over IMAP, classify each message (hard, soft, an
auto-reply, something else), match it to its invitation, and record what it means."""
