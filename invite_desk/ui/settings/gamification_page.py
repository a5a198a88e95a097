"""Settings → Gamification: points, badges, the vesting hold, the leaderboard's visibility and
the anti-gaming burst threshold of the referral programme.

Only ADMIN_TENANT changes them (the Settings window makes the page read-only for anyone else,
with the reason in its banner); the services check again and audit every change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from PySide6.QtWidgets import QCheckBox, QCompleter, QLineEdit, QWidget

from invite_desk.services import referral_program as rp
from invite_desk.services.operator import Operator
from invite_desk.ui.hub import OperationsHub
from invite_desk.ui.settings.page import SettingsPage, Writer, parse_whole_number, set_editable

if TYPE_CHECKING:
    from invite_desk.ui.context import UnitOfWork

MAX_POINTS = 100_000
MAX_HOLD_DAYS = 3_650
MAX_MILESTONES = 10


def parse_milestones(text: str) -> tuple[int, ...] | str:
    """'1, 5, 10' -> (1, 5, 10); the reason as a string when it is not a list of badges."""
    parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    if not parts:
        return "Enter at least one milestone, e.g. 1, 5, 10."
    values = []
    for part in parts:
        try:
            value = int(part)
        except ValueError:
            return f"“{part}” is not a whole number; separate milestones with commas."
        if value < 1:
            return "Each milestone is a number of active referees, 1 or more."
        values.append(value)
    if len(set(values)) != len(values):
        return "Each milestone may appear only once."
    if len(values) > MAX_MILESTONES:
        return f"At most {MAX_MILESTONES} badges."
    return tuple(sorted(values))


def _whole(text: str, low: int, high: int, what: str) -> int | str:
    value = parse_whole_number(text)
    if value is None:
        return f"Enter {what}."
    if not isinstance(value, int):
        return f"“{value}” is not a whole number."
    if not low <= value <= high:
        return f"Enter a number from {low:,} to {high:,}."
    return value


class GamificationPage(SettingsPage):
    """Points per completed referral, badge milestones, the hold before points vest, whether
    members see the leaderboard, the burst threshold, and the organization's time zone."""

    NAME = "gamification"
    TITLE = "Gamification"
    INTRO = (
        "Recognize members who bring in people who stay. Points and badges count referees who "
        "are active members; they are taken back automatically when a referee lapses, is "
        "rejected, or turns out to be fake, and the points ledger says why."
    )

    def __init__(self, uow: UnitOfWork, operator: Operator, parent: QWidget | None = None,
                 *, hub: OperationsHub | None = None) -> None:
        super().__init__(uow, operator, parent, hub=hub)
        self.loaded = rp.GamificationSettings()

        self.points_edit = self._number_edit("Points per completed referral", "10")
        self.add_field(
            "points_per_referral", editors=[self.points_edit],
            title="Points per completed referral",
            help_text="Awarded when the person referred becomes an active member.")

        self.milestones_edit = QLineEdit()
        self.milestones_edit.setAccessibleName("Badge milestones")
        self.milestones_edit.setPlaceholderText("1, 5, 10")
        self.milestones_edit.setMaximumWidth(220)
        self.add_field(
            "badge_milestones", editors=[self.milestones_edit], title="Badge milestones",
            help_text="A badge for each number of active referees reached, separated by "
                      "commas. A badge is taken back when the count drops below it.")

        self.hold_edit = self._number_edit("Days before points vest", "0")
        self.add_field(
            "vesting_hold_days", editors=[self.hold_edit], title="Days before points vest",
            help_text="Points stay on hold this many days after the referee became active "
                      "(0: they vest at once). A referee who lapses during the hold takes "
                      "the points back before they count.")

        self.visible_box = QCheckBox("Show the leaderboard to members")
        self.add_field(
            "leaderboard_visible_to_members", editors=[self.visible_box],
            header=self.visible_box,
            help_text="Members see the leaderboard on their “My referrals” page. Members who "
                      "opted out of it are never shown to other members.")

        self.burst_edit = self._number_edit("Burst threshold", "30")
        self.add_field(
            "burst_per_hour", editors=[self.burst_edit],
            title="Burst threshold (invitations per hour)",
            help_text="More invitations than this from one member within an hour are flagged "
                      "for an admin to review; their points wait until then.")

        self.zone_edit = QLineEdit()
        self.zone_edit.setAccessibleName("Time zone")
        self.zone_edit.setPlaceholderText("UTC")
        self.zone_edit.setMaximumWidth(260)
        completer = QCompleter(sorted(available_timezones()), self.zone_edit)
        completer.setCaseSensitivity(completer.caseSensitivity().CaseInsensitive)
        self.zone_edit.setCompleter(completer)
        self.add_field(
            "time_zone", editors=[self.zone_edit], title="Time zone",
            help_text="Where the organization's day, week, month and year begin for the "
                      "reports, e.g. Europe/Paris.")

    def _number_edit(self, name: str, placeholder: str) -> QLineEdit:
        edit = QLineEdit()
        edit.setAccessibleName(name)
        edit.setPlaceholderText(placeholder)
        edit.setMaximumWidth(110)
        return edit

    # ---- contract ---------------------------------------------------------------------------

    def fetch(self) -> rp.GamificationSettings:
        return rp.get_settings(self.uow, self.operator)

    def show_loaded(self, data: rp.GamificationSettings) -> None:
        self.loaded = data
        self.begin_loading()
        try:
            self.points_edit.setText(str(self.loaded.points_per_referral))
            self.milestones_edit.setText(", ".join(str(m) for m in self.loaded.badge_milestones))
            self.hold_edit.setText(str(self.loaded.vesting_hold_days))
            self.visible_box.setChecked(self.loaded.leaderboard_visible_to_members)
            self.burst_edit.setText(str(self.loaded.burst_per_hour))
            self.zone_edit.setText(self.loaded.time_zone)
        finally:
            self.end_loading()

    def _parsed(self) -> dict[str, Any]:
        """Field -> value, or -> the reason (a str) when the value cannot be used."""
        zone = self.zone_edit.text().strip() or "UTC"
        try:
            ZoneInfo(zone)
            zone_value: Any = zone
        except (ZoneInfoNotFoundError, ValueError):
            zone_value = ValueError(f"“{zone}” is not a time zone name, e.g. Europe/Paris.")
        values: dict[str, Any] = {
            "points_per_referral": _whole(self.points_edit.text(), 0, MAX_POINTS,
                                          "the points per referral"),
            "badge_milestones": parse_milestones(self.milestones_edit.text()),
            "vesting_hold_days": _whole(self.hold_edit.text(), 0, MAX_HOLD_DAYS,
                                        "a number of days (0 for none)"),
            "leaderboard_visible_to_members": self.visible_box.isChecked(),
            "burst_per_hour": _whole(self.burst_edit.text(), 1, 100_000,
                                     "the invitations per hour"),
            "time_zone": zone_value,
        }
        return values

    def check(self) -> dict[str, str]:
        errors = {}
        for field, value in self._parsed().items():
            if isinstance(value, ValueError):
                errors[field] = str(value)
            elif isinstance(value, str) and field != "time_zone":
                errors[field] = value
        return errors

    def changes(self) -> dict[str, Any]:
        """Edited values (an unusable one counts as a change; Save checks first)."""
        return {f: v for f, v in self._parsed().items() if v != getattr(self.loaded, f)}

    def writer(self) -> Writer:
        changes, uow, operator = self.changes(), self.uow, self.operator
        return lambda: rp.save_settings(uow, operator, changes) if changes else None

    def written(self, result: object) -> None:
        if isinstance(result, rp.GamificationSettings):
            self.loaded = result

    def update_dependent_controls(self) -> None:
        set_editable([self.points_edit, self.milestones_edit, self.hold_edit, self.visible_box,
                      self.burst_edit, self.zone_edit], self.editable(), self.read_only_reason)
