"""Deadline clocks (DOMAIN.md §11): send target after the visit end, and the claim limit in working days."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from schemas.domain.values import VIETNAM_TZ
from worker.config import DeadlineSettings


def load_holidays(path: Path | None) -> frozenset[date]:
    """One ISO date per line; ``#`` starts a comment. Weekends are never working days anyway."""
    if path is None:
        return frozenset()
    days = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            days.add(date.fromisoformat(text))
    return frozenset(days)


def is_working_day(day: date, holidays: Iterable[date]) -> bool:
    return day.weekday() < 5 and day not in holidays


def add_working_days(start: date, count: int, holidays: frozenset[date]) -> date:
    """The date ``count`` working days after ``start`` (the start day itself does not count)."""
    day = start
    remaining = count
    while remaining > 0:
        day += timedelta(days=1)
        if is_working_day(day, holidays):
            remaining -= 1
    return day


@dataclass(frozen=True, slots=True)
class Clocks:
    target_at: (
        datetime  # "right after the visit": the configured target (default 3 h, the draft TT 48 successor)
    )
    claim_at: datetime  # TT 48 Đ7 k1: end of the N-th working day after the visit end


class DeadlineCalendar:
    def __init__(self, settings: DeadlineSettings) -> None:
        self.settings = settings
        self.holidays = load_holidays(settings.holidays_file)
        # The claim day of each visit day, computed once: a report dates tens of thousands of gaps over a
        # few hundred days.
        self._claim_days: dict[date, date] = {}

    def claim_day(self, visit_day: date) -> date:
        claim_day = self._claim_days.get(visit_day)
        if claim_day is None:
            claim_day = add_working_days(visit_day, self.settings.claim_working_days, self.holidays)
            self._claim_days[visit_day] = claim_day
        return claim_day

    def claim_at(self, visit_day: date) -> datetime:
        """The claim limit of every visit that ended on ``visit_day`` (local date)."""
        return datetime.combine(self.claim_day(visit_day), time(23, 59, 59), tzinfo=VIETNAM_TZ)

    @property
    def target_delay(self) -> timedelta:
        return timedelta(hours=self.settings.target_hours)

    def clocks(self, completed_at: datetime) -> Clocks:
        return Clocks(
            target_at=completed_at + self.target_delay,
            claim_at=self.claim_at(completed_at.astimezone(VIETNAM_TZ).date()),
        )
