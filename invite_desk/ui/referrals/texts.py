"""Sentences about a member's points and badges (My referrals, the Members page)."""

from __future__ import annotations

from invite_desk.services import referral_program as rp


def points_text(activity: rp.ReferralActivity) -> str:
    held = f" (+{activity.held_points:,} on hold)" if activity.held_points else ""
    return f"{activity.points:,}{held}"


def next_badge_text(activity: rp.ReferralActivity) -> str:
    badge = activity.next_badge
    if badge is None:
        return "Every badge earned." if activity.badges else ""
    missing = max(badge.milestone - activity.active_referees, 0)
    return (f"{missing:,} more active referee{'' if missing == 1 else 's'} to the "
            f"“{badge.label}” badge.")


def activity_summary(activity: rp.ReferralActivity) -> str:
    """One paragraph: points, badges and the next badge (the member page shows it)."""
    badges = ", ".join(b.label for b in activity.badges) or "none yet"
    parts = [f"Points: {points_text(activity)}.", f"Badges: {badges}."]
    upcoming = next_badge_text(activity)
    if upcoming:
        parts.append(upcoming)
    return " ".join(parts)
