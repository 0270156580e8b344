"""Small value types of the domain that the standard encodes in a special way."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo
from zoneinfo import ZoneInfo

VIETNAM_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def local_midnight(day: date, tz: tzinfo = VIETNAM_TZ) -> datetime:
    """The first instant of ``day`` on the wall clock of ``tz`` (Vietnam unless told), as an aware datetime.

    A calendar day of the standard (a visit day, a claim day, QĐ 31's legal start) is a local day: its bounds
    are ``local_midnight(day)`` and ``local_midnight(day + timedelta(days=1))``."""
    return datetime.combine(day, time(0, 0), tzinfo=tz)


def compact_moment(text: str) -> datetime:
    """``yyyyMMdd``, ``yyyyMMddHHmm`` or ``yyyyMMddHHmmss`` (the QĐ 130 time shapes) as a naive datetime.

    Same result as ``datetime.strptime`` with the matching layout, ten times cheaper: every encounter carries
    dozens of such times. Raises ``ValueError`` for any other shape or an impossible date."""
    if not (text.isascii() and text.isdigit()) or len(text) not in (8, 12, 14):
        raise ValueError("not a yyyyMMdd[HHmm[ss]] time")
    return datetime(
        int(text[0:4]),
        int(text[4:6]),
        int(text[6:8]),
        int(text[8:10] or 0),
        int(text[10:12] or 0),
        int(text[12:14] or 0),
    )


@dataclass(frozen=True, slots=True)
class BirthDate:
    """A date of birth that may lack its day/month or its time (NGAY_SINH, DOMAIN.md §7).

    Unknown day and month, or unknown hour and minute, are written as ``0000`` in ``yyyyMMddHHmm``;
    newborns up to 28 days old need the full time.
    """

    year: int
    month: int | None = None
    day: int | None = None
    hour: int | None = None
    minute: int | None = None

    def __post_init__(self) -> None:
        if (self.month is None) != (self.day is None):
            raise ValueError("month and day are either both known or both unknown")
        if (self.hour is None) != (self.minute is None):
            raise ValueError("hour and minute are either both known or both unknown")
        if self.month is not None and self.day is not None:
            date(self.year, self.month, self.day)  # raises on an impossible date
        if self.hour is not None and not (0 <= self.hour <= 23 and 0 <= (self.minute or 0) <= 59):
            raise ValueError("hour or minute out of range")

    @classmethod
    def from_datetime(cls, value: datetime) -> BirthDate:
        local = value.astimezone(VIETNAM_TZ) if value.tzinfo else value
        return cls(local.year, local.month, local.day, local.hour, local.minute)

    @classmethod
    def from_date(cls, value: date) -> BirthDate:
        return cls(value.year, value.month, value.day)

    @classmethod
    def parse(cls, text: str) -> BirthDate:
        """Parse ``yyyyMMddHHmm`` (or ``yyyyMMdd``/``yyyy``), reading ``0000`` parts as unknown."""
        digits = text.strip()
        if not digits.isdigit() or len(digits) not in (4, 8, 12):
            raise ValueError("birth date must be yyyy, yyyyMMdd or yyyyMMddHHmm")
        year = int(digits[:4])
        month_day = digits[4:8]
        hour_minute = digits[8:12]
        month = day = hour = minute = None
        if month_day and month_day != "0000":
            month, day = int(month_day[:2]), int(month_day[2:])
        if hour_minute and hour_minute != "0000" and month is not None:
            hour, minute = int(hour_minute[:2]), int(hour_minute[2:])
        return cls(year, month, day, hour, minute)

    @property
    def is_complete(self) -> bool:
        return self.day is not None and self.hour is not None

    def as_date(self) -> date | None:
        if self.month is None or self.day is None:
            return None
        return date(self.year, self.month, self.day)

    def format12(self) -> str:
        """The ``yyyyMMddHHmm`` form with ``0000`` for unknown parts."""
        month_day = f"{self.month:02d}{self.day:02d}" if self.month is not None else "0000"
        hour_minute = f"{self.hour:02d}{self.minute:02d}" if self.hour is not None else "0000"
        return f"{self.year:04d}{month_day}{hour_minute}"
