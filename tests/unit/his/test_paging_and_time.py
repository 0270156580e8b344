"""Keyset paging, the watermark lower bound, and time conversions between the HIS and the model."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from adapters.his.paging import After, KeysetPager, discovery_lower_bound
from adapters.his.timeconv import bind_time, parse_his_time
from schemas.domain.values import VIETNAM_TZ
from schemas.ports import Cursor


def test_pager_reads_pages_until_a_short_one() -> None:
    rows = [(minute, f"K{minute:02d}") for minute in range(10)]
    fetches: list[After | None] = []

    def fetch(after: After | None) -> Sequence[tuple[int, str]]:
        fetches.append(after)
        start = (
            0
            if after is None
            else next(i for i, row in enumerate(rows) if row == (after.time, after.key)) + 1
        )
        return rows[start : start + 5]

    pager = KeysetPager(fetch, lambda row: After(row[0], row[1]), page_size=5)
    assert list(pager) == rows
    # 10 rows in pages of 5: the third fetch comes back empty and ends the iteration.
    assert fetches == [None, After(4, "K04"), After(9, "K09")]


def test_watermark_lower_bound_subtracts_the_overlap() -> None:
    at = datetime(2026, 3, 4, 10, 0, tzinfo=VIETNAM_TZ)
    assert discovery_lower_bound(None, 30) is None
    assert discovery_lower_bound(Cursor(at, "K1"), 30) == at - timedelta(minutes=30)


def test_his_times_become_aware_and_bind_as_wall_clock() -> None:
    zone = VIETNAM_TZ
    expected = datetime(2026, 3, 4, 8, 15, tzinfo=zone)
    assert parse_his_time(datetime(2026, 3, 4, 8, 15), zone) == expected
    assert parse_his_time("2026-03-04 08:15:00.000000", zone) == expected
    assert parse_his_time("202603040815", zone) == expected
    assert parse_his_time(date(2026, 3, 4), zone) == expected.replace(hour=0, minute=0)
    assert parse_his_time("", zone) is None
    utc = datetime(2026, 3, 4, 1, 15, tzinfo=ZoneInfo("UTC"))
    assert bind_time(utc, zone, backend="postgresql") == datetime(2026, 3, 4, 8, 15)
    assert bind_time(utc, zone, backend="sqlite") == "2026-03-04 08:15:00.000000"
    assert bind_time(utc, zone, backend="mysql", text12=True) == "202603040815"
