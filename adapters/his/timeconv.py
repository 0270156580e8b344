"""Times between the HIS and the canonical model.

HIS timestamps usually carry no zone: they are wall-clock times in the hospital's zone (option ``timezone``).
Everything we hand out is timezone-aware; everything we bind into a query is naive wall-clock time in that
zone (SQLite gets the ISO text SQLAlchemy itself writes, so string comparisons order correctly).
"""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from schemas.domain.values import compact_moment

#: Bounds used when a query parameter must be bound but the caller gave no limit.
FAR_PAST = datetime(1900, 1, 1)
FAR_FUTURE = datetime(9999, 12, 31)


def parse_his_time(value: object, zone: ZoneInfo) -> datetime | None:
    """A time read from the HIS (datetime, date, ISO text or ``yyyyMMddHHmm[ss]``) as an aware datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=zone) if value.tzinfo is None else value
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=zone)
    text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
    text = text.strip()
    if not text:
        return None
    if text.isdigit() and len(text) in (8, 12, 14):
        return compact_moment(text).replace(tzinfo=zone)
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed


def to_his_wall_clock(value: datetime, zone: ZoneInfo) -> datetime:
    """An aware (or already wall-clock) datetime as naive wall-clock time in the HIS zone."""
    if value.tzinfo is None:
        return value
    return value.astimezone(zone).replace(tzinfo=None)


def bind_time(value: datetime, zone: ZoneInfo, *, backend: str, text12: bool = False) -> object:
    """The parameter value to compare with a HIS time column.

    ``text12``: the column stores ``yyyyMMddHHmm`` text (common in QĐ 130 views), which orders like time.
    SQLite stores times as ISO text: bind text in the same shape SQLAlchemy writes, so that equal instants
    compare equal and ``>=``/``<`` keep their meaning.
    """
    local = to_his_wall_clock(value, zone)
    if text12:
        return local.strftime("%Y%m%d%H%M")
    if backend == "sqlite":
        return local.strftime("%Y-%m-%d %H:%M:%S.%f")
    return local
