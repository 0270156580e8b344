"""Watermark arithmetic and keyset paging: how discovery reads any number of rows in bounded memory.

A page is one short query (``ORDER BY time, key LIMIT page_size``, continuing strictly after the last row of
the previous page), fetched whole and released before its rows are handed out. So no cursor or transaction
stays open while the caller works on the rows (MySQL would drop an idle streaming cursor after
``net_write_timeout``; PostgreSQL would hold back vacuum), a retry restarts exactly one page, and memory is
bounded by ``page_size`` whatever the table size. The continuation values are the raw values the database
returned for the last row, so equality is exact whatever the column type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from schemas.ports import Cursor

RowT = TypeVar("RowT")


@dataclass(frozen=True, slots=True)
class After:
    """Continue after this (time, key), as the database returned them."""

    time: object
    key: object


def discovery_lower_bound(since: Cursor | None, overlap_minutes: int) -> datetime | None:
    """The change time discovery re-reads from: the watermark minus the overlap (clock skew, long
    transactions that commit after later ones). ``None``: read everything."""
    if since is None:
        return None
    return since.changed_at - timedelta(minutes=overlap_minutes)


@dataclass(frozen=True, slots=True)
class KeysetPager(Generic[RowT]):
    """Iterate pages: ``fetch(after)`` returns at most ``page_size`` rows ordered by (time, key)."""

    fetch: Callable[[After | None], Sequence[RowT]]
    position: Callable[[RowT], After]
    page_size: int

    def __iter__(self) -> Iterator[RowT]:
        after: After | None = None
        while True:
            page = self.fetch(after)
            yield from page
            if len(page) < self.page_size:
                return
            after = self.position(page[-1])
