"""What the SQL-reading adapters share: the engine, retries, watermark paging and the ``EncounterSource``
methods built on three small per-adapter queries (a discovery page, a completed-range page, one load).

Rows passed between the two layers are dictionaries keyed by upper-case standard names; list rows carry
``HIS_KEY``, ``CHANGED_AT`` and the completion time column (``NGAY_RA``, ``NGAY_TTOAN`` or the configured
status time), and optionally ``MA_LK``, ``MA_LOAI_KCB``, ``MA_KHOA``, ``MA_DOITUONG_KCB``, ``INSURED``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from sqlalchemy.engine import Connection, Engine

from adapters.his.checks import CheckReport
from adapters.his.errors import AdapterError, EncounterDataError
from adapters.his.options import CommonOptions
from adapters.his.paging import After, KeysetPager, discovery_lower_bound
from adapters.his.timeconv import parse_his_time
from adapters.his.transient import run_with_retry
from worker.domain import Encounter
from worker.domain.encounter import NON_INSURED_CATEGORY
from worker.ports import Cursor, EncounterRef

KEY = "HIS_KEY"
CHANGED = "CHANGED_AT"

Row = dict[str, Any]
T = TypeVar("T")


def upper_keys(row: Mapping[Any, Any]) -> Row:
    return {str(key).upper(): value for key, value in row.items()}


class SqlEncounterSource(ABC):
    """Base of the adapters that read a relational HIS through SQLAlchemy (implements ``EncounterSource``)."""

    name: ClassVar[str]

    def __init__(
        self,
        *,
        engine: Engine,
        options: CommonOptions,
        facility_code: str,
        page_size: int,
        overlap_minutes: int,
    ) -> None:
        self.engine = engine
        self.options = options
        self.facility_code = facility_code
        self.page_size = page_size
        self.overlap_minutes = overlap_minutes
        self.zone = options.zone

    # -- per adapter ------------------------------------------------------------------------------------
    @abstractmethod
    def _discover_page(self, conn: Connection, lower: datetime | None, after: After | None) -> Sequence[Row]:
        """Completed encounters changed at or after ``lower``, ordered by (CHANGED_AT, HIS_KEY), strictly
        after ``after``, at most ``page_size`` rows."""

    @abstractmethod
    def _completed_page(
        self, conn: Connection, start: datetime, end: datetime, after: After | None
    ) -> Sequence[Row]:
        """Encounters completed in [start, end), ordered by (completion time, HIS_KEY), after ``after``."""

    @abstractmethod
    def _load(self, conn: Connection, his_key: str) -> Encounter | None:
        """The encounter read inside one transaction, or None when the HIS no longer shows it completed."""

    @abstractmethod
    def check(self, sample: int = 20) -> CheckReport:
        """Check the configuration against the live database (``vneid-sync adapters check``)."""

    # -- EncounterSource --------------------------------------------------------------------------------
    def discover(self, since: Cursor | None) -> Iterator[EncounterRef]:
        lower = discovery_lower_bound(since, self.overlap_minutes)

        def fetch(after: After | None) -> Sequence[Row]:
            return self._read("discover", lambda conn: self._discover_page(conn, lower, after))

        pager = KeysetPager(fetch, lambda row: After(row[CHANGED], row[KEY]), self.page_size)
        return (self.ref(row) for row in pager)

    def list_completed(self, start: datetime, end: datetime) -> Iterator[EncounterRef]:
        time_field = self.options.completion_time_field

        def fetch(after: After | None) -> Sequence[Row]:
            return self._read("list_completed", lambda conn: self._completed_page(conn, start, end, after))

        pager = KeysetPager(fetch, lambda row: After(row[time_field], row[KEY]), self.page_size)
        return (self.ref(row) for row in pager)

    def load(self, his_key: str) -> Encounter | None:
        return self._read(f"load {his_key}", lambda conn: self._load(conn, his_key))

    def close(self) -> None:
        self.engine.dispose()

    # -- shared helpers ---------------------------------------------------------------------------------
    def check_loads(self, report: CheckReport, keys: Sequence[str]) -> None:
        """Load each sampled encounter; the same failure on many encounters is reported once, with a count."""
        failures: dict[str, list[str]] = {}
        for key in keys:
            try:
                self.load(key)
                report.loaded += 1
            except AdapterError as exc:
                failures.setdefault(str(exc).replace(key, "<key>"), []).append(key)
        for message, failed in failures.items():
            report.error("load", f"{message} — {len(failed)} of {len(keys)} sampled, e.g. {failed[0]}")

    def _read(self, operation: str, work: Callable[[Connection], T]) -> T:
        """Run ``work`` on a fresh pooled connection in one (read-only) transaction, with retries."""

        def attempt() -> T:
            with self.engine.connect() as conn:
                return work(conn)

        return run_with_retry(
            f"{self.name}.{operation}",
            attempt,
            attempts=self.options.retry_attempts,
            initial_wait_s=self.options.retry_initial_wait_s,
        )

    def ref(self, row: Mapping[str, Any]) -> EncounterRef:
        key = str(row[KEY])
        try:
            completed = parse_his_time(row.get(self.options.completion_time_field), self.zone)
            changed = parse_his_time(row.get(CHANGED), self.zone) or completed
        except ValueError:
            raise EncounterDataError(key, "the change or completion time cannot be read as a time") from None
        if changed is None or completed is None:
            # The queries filter on both; a NULL here means a driver returned something unreadable.
            raise EncounterDataError(key, "the change or completion time is missing")
        return EncounterRef(
            his_key=key,
            completed_at=completed,
            changed_at=changed,
            visit_type=_text(row.get("MA_LOAI_KCB")),
            department=_text(row.get("MA_KHOA")),
            insured=insured_flag(row),
        )


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
    return text.strip() or None


def insured_flag(row: Mapping[str, Any]) -> bool | None:
    """INSURED when the query gives it; otherwise from the patient category (9 = not using BHYT)."""
    if row.get("INSURED") is not None:
        value = row["INSURED"]
        return (
            value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "t", "y", "yes")
        )
    category = _text(row.get("MA_DOITUONG_KCB"))
    if category is None:
        return None
    insured = category != NON_INSURED_CATEGORY
    if insured and "MA_THE_BHYT" in row:
        insured = bool(_text(row["MA_THE_BHYT"]))
    return insured
