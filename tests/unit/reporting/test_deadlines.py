"""Deadline clocks (DOMAIN.md §11): working days skip weekends and listed holidays; dates are Vietnam dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from schemas.domain.values import VIETNAM_TZ
from worker.config import DeadlineSettings
from worker.reporting.deadlines import DeadlineCalendar, add_working_days, is_working_day, load_holidays

#: Tết Bính Ngọ 2026: the official break from Monday 16/02 to Friday 20/02 (weekends around it anyway).
TET_2026 = frozenset(date(2026, 2, day) for day in range(16, 21))


def test_weekends_are_never_working_days() -> None:
    assert is_working_day(date(2026, 3, 6), ())  # Friday
    assert not is_working_day(date(2026, 3, 7), ())  # Saturday
    assert not is_working_day(date(2026, 3, 8), ())  # Sunday
    assert is_working_day(date(2026, 3, 9), ())  # Monday


def test_a_listed_holiday_is_not_a_working_day() -> None:
    assert not is_working_day(date(2026, 2, 17), TET_2026)
    assert is_working_day(date(2026, 2, 17), frozenset())


@pytest.mark.parametrize(
    ("start", "count", "expected"),
    [
        (date(2026, 3, 6), 1, date(2026, 3, 9)),  # Friday + 1 → Monday
        (date(2026, 3, 7), 1, date(2026, 3, 9)),  # a Saturday visit counts from Monday
        (date(2026, 3, 8), 5, date(2026, 3, 13)),  # Sunday + 5 → Friday of the same week
        (date(2026, 3, 5), 7, date(2026, 3, 16)),  # Thursday + 7 spans one weekend
        (date(2026, 3, 5), 0, date(2026, 3, 5)),  # the start day itself never counts
        (date(2026, 3, 2), 10, date(2026, 3, 16)),  # two full weeks
    ],
)
def test_add_working_days_skips_weekends(start: date, count: int, expected: date) -> None:
    assert add_working_days(start, count, frozenset()) == expected


def test_add_working_days_skips_holidays() -> None:
    # Friday 13/02 before Tết: the next working day is Monday 23/02, the 7th is Tuesday 03/03.
    assert add_working_days(date(2026, 2, 13), 1, TET_2026) == date(2026, 2, 23)
    assert add_working_days(date(2026, 2, 13), 7, TET_2026) == date(2026, 3, 3)
    assert add_working_days(date(2026, 2, 13), 7, frozenset()) == date(2026, 2, 24)


def test_load_holidays_reads_iso_dates_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "holidays.txt"
    path.write_text(
        "# Ngày nghỉ lễ 2026\n\n2026-01-01  # Tết Dương lịch\n  2026-04-27\n2026-04-30\n# 2026-05-01 commented out\n",
        encoding="utf-8",
    )
    assert load_holidays(path) == {date(2026, 1, 1), date(2026, 4, 27), date(2026, 4, 30)}
    assert load_holidays(None) == frozenset()


def test_load_holidays_rejects_a_line_that_is_not_a_date(tmp_path: Path) -> None:
    path = tmp_path / "holidays.txt"
    path.write_text("2026-01-01\n30/04/2026\n", encoding="utf-8")
    with pytest.raises(ValueError, match="30/04/2026"):
        load_holidays(path)


def test_clocks_target_is_hours_after_the_end_and_claim_the_end_of_the_nth_working_day() -> None:
    calendar = DeadlineCalendar(DeadlineSettings())
    completed = datetime(2026, 3, 6, 10, 0, tzinfo=VIETNAM_TZ)  # Friday
    clocks = calendar.clocks(completed)
    assert clocks.target_at == completed + timedelta(hours=3)
    # Mon 9 … Tue 17 are the 7 working days; the limit is the end of that day, Vietnam time.
    assert clocks.claim_at == datetime(2026, 3, 17, 23, 59, 59, tzinfo=VIETNAM_TZ)


def test_clocks_count_from_the_vietnam_date_not_the_utc_date() -> None:
    calendar = DeadlineCalendar(DeadlineSettings())
    # 18:30 UTC on Thursday 05/03 is 01:30 on Friday 06/03 in Vietnam: the visit ended on Friday.
    clocks = calendar.clocks(datetime(2026, 3, 5, 18, 30, tzinfo=UTC))
    assert clocks.claim_at == datetime(2026, 3, 17, 23, 59, 59, tzinfo=VIETNAM_TZ)
    earlier = calendar.clocks(datetime(2026, 3, 5, 16, 30, tzinfo=UTC))  # 23:30 Thursday in Vietnam
    assert earlier.claim_at == datetime(2026, 3, 16, 23, 59, 59, tzinfo=VIETNAM_TZ)


def test_clocks_use_the_holidays_file_and_the_configured_counts(tmp_path: Path) -> None:
    path = tmp_path / "holidays.txt"
    path.write_text("\n".join(day.isoformat() for day in sorted(TET_2026)) + "\n", encoding="utf-8")
    calendar = DeadlineCalendar(DeadlineSettings(holidays_file=path, claim_working_days=2, target_hours=1.5))
    completed = datetime(2026, 2, 13, 15, 0, tzinfo=VIETNAM_TZ)  # the Friday before Tết
    clocks = calendar.clocks(completed)
    assert clocks.target_at == completed + timedelta(hours=1, minutes=30)
    assert clocks.claim_at == datetime(2026, 2, 24, 23, 59, 59, tzinfo=VIETNAM_TZ)
    without = DeadlineCalendar(DeadlineSettings(claim_working_days=2)).clocks(completed)
    assert without.claim_at == datetime(2026, 2, 17, 23, 59, 59, tzinfo=VIETNAM_TZ)
