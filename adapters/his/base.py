"""What the SQL-reading adapters share: the engine, retries, watermark paging and the ``EncounterSource``
methods built on small per-adapter queries (a discovery page, a completed-range page, one load, a batch load).

Rows passed between the two layers are dictionaries keyed by upper-case standard names; list rows carry
``HIS_KEY``, ``CHANGED_AT`` and the completion time column (``NGAY_RA``, ``NGAY_TTOAN`` or the configured
status time), and optionally ``MA_LK``, ``MA_LOAI_KCB``, ``MA_KHOA``, ``MA_DOITUONG_KCB``, ``INSURED``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from sqlalchemy.engine import Connection, CursorResult, Engine, Result
from structlog import get_logger

from adapters.his.checks import CheckReport, describe_failure
from adapters.his.errors import AdapterError, EncounterDataError
from adapters.his.options import CommonOptions
from adapters.his.paging import After, KeysetPager, discovery_lower_bound
from adapters.his.timeconv import parse_his_time
from adapters.his.transient import run_with_retry
from schemas.domain import Encounter
from schemas.domain.encounter import NON_INSURED_CATEGORY
from schemas.ports import Cursor, EncounterRef, SourceDataError

log = get_logger(__name__)

KEY = "HIS_KEY"
CHANGED = "CHANGED_AT"
#: Keys bound in one batch query: far below every supported database's limit on bound parameters (SQLite
#: 32766, PostgreSQL 65535) even when a query names the key list twice, and a short statement to time out.
KEY_CHUNK = 500

Row = dict[str, Any]
LoadResult = Encounter | SourceDataError | None
T = TypeVar("T")


def upper_keys(row: Mapping[Any, Any]) -> Row:
    return {str(key).upper(): value for key, value in row.items()}


def result_rows(result: Result[Any]) -> list[Row]:
    """Every row of a result keyed by upper-case column names (the names are upper-cased once, not per row)."""
    columns = result.keys()  # a Result's column names (ruff's SIM118 would read it as a dict)
    names = [str(name).upper() for name in columns]
    return [dict(zip(names, row, strict=True)) for row in result]


def first_column(result: CursorResult[Any]) -> list[object]:
    """The first column of every row, fetched from the DBAPI cursor in one call: SQLAlchemy's per-row work
    cost 1.5 µs a key, more than the database, when coverage lists a million keys."""
    try:
        return [row[0] for row in result.cursor.fetchall()] if result.cursor is not None else []
    finally:
        result.close()


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
    def _completed_key_values(self, conn: Connection, start: datetime, end: datetime) -> list[object]:
        """The key of every encounter completed in [start, end) as the driver returns it: one query, the key
        column alone, in no order."""

    @abstractmethod
    def _listed_rows(self, conn: Connection, key_values: list[object]) -> list[Row]:
        """The list rows (as ``_completed_page`` gives them) of those of ``key_values`` that are completed."""

    @abstractmethod
    def _load(self, conn: Connection, his_key: str) -> Encounter | None:
        """The encounter read inside one transaction, or None when the HIS no longer shows it completed."""

    @abstractmethod
    def _load_many(self, conn: Connection, his_keys: Sequence[str]) -> dict[str, LoadResult]:
        """``_load`` of each key (distinct keys) inside one transaction, with one query per part per batch; a
        ``SourceDataError`` of one encounter is its result, not raised."""

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

    # -- CompletedKeyLister ------------------------------------------------------------------------------
    def completed_keys(self, start: datetime, end: datetime) -> list[str]:
        values = self._read("completed_keys", lambda conn: self._completed_key_values(conn, start, end))
        return list(map(str, values))  # the form ``ref`` gives a key

    def refs(self, his_keys: Sequence[str]) -> list[EncounterRef]:
        wanted = list(dict.fromkeys(his_keys))

        def read(conn: Connection) -> list[Row]:
            rows: list[Row] = []
            for first in range(0, len(wanted), KEY_CHUNK):
                rows += self._listed_rows(conn, list(wanted[first : first + KEY_CHUNK]))
            return rows

        if not wanted:
            return []
        # A database may match a key given in another form (a case-insensitive collation): only exact keys.
        asked = set(wanted)
        refs = (self.ref(row) for row in self._read(f"refs ({len(wanted)} keys)", read))
        return [ref for ref in refs if ref.his_key in asked]

    def load(self, his_key: str) -> Encounter | None:
        return self._read(f"load {his_key}", lambda conn: self._load(conn, his_key))

    def load_many(self, his_keys: Sequence[str]) -> dict[str, LoadResult]:
        keys = list(dict.fromkeys(his_keys))
        if not keys:
            return {}
        return self._read(f"load_many ({len(keys)} keys)", lambda conn: self._load_many(conn, keys))

    def close(self) -> None:
        self.engine.dispose()

    # -- shared helpers ---------------------------------------------------------------------------------
    def check_loads(self, report: CheckReport, keys: Sequence[str]) -> None:
        """Load each sampled encounter; the same failure on many encounters is reported once, with a count.
        Then load them all as one batch, which must give the same result for every key."""
        failures: dict[str, list[str]] = {}
        one_by_one: dict[str, object] = {}
        for key in keys:
            try:
                one_by_one[key] = self.load(key)
                report.loaded += 1
            except AdapterError as exc:
                failures.setdefault(str(exc).replace(key, "<key>"), []).append(key)
                one_by_one[key] = exc
        for message, failed in failures.items():
            report.error("load", f"{message} — {len(failed)} of {len(keys)} sampled, e.g. {failed[0]}")
        if not keys:
            return
        try:
            batched = self.load_many(keys)
        except AdapterError as exc:
            # A query that fails for every key already failed the loads above, reported there with its key.
            if not any(failure_is_query(outcome) for outcome in one_by_one.values()):
                report.error("load_many", describe_failure(exc))
            return
        differ = [
            key for key in keys if key not in batched or not same_outcome(one_by_one[key], batched[key])
        ]
        if differ:
            report.error(
                "load_many",
                f"the batch load differs from load for {len(differ)} of {len(keys)} sampled, e.g. {differ[0]}",
            )

    def batched_rows(
        self,
        queried: Mapping[str, object],
        fetch_many: Callable[[list[object]], list[Row]],
        fetch_one: Callable[[object], list[Row]],
        *,
        column: str,
        part: str,
        drop_column: bool = False,
    ) -> dict[str, list[Row]]:
        """Rows of one part of the encounters (``queried``: requested key → the value the query is given),
        read with ``fetch_many`` over chunks of values and attributed to the keys by ``column``.

        A database may match a value given in another form (a case-insensitive collation, a number compared
        with text): when some row matches no value as given, the part is read again key by key with
        ``fetch_one``, exactly as ``load`` reads it, rather than guessing whose row it is."""
        values = list({key_text(value): value for value in queried.values()}.values())
        rows: list[Row] = []
        for first in range(0, len(values), KEY_CHUNK):
            rows += fetch_many(values[first : first + KEY_CHUNK])
        grouped = group_rows(queried, rows, column, drop_column=drop_column)
        if grouped is None:
            log.warning("his.batch_unattributed", adapter=self.name, part=part, keys=len(queried))
            return {key: fetch_one(value) for key, value in queried.items()}
        return grouped

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

    def completion_time(self, his_key: str, row: Mapping[str, Any], section: str) -> datetime | None:
        """The completion time of a loaded encounter's own row."""
        column = self.options.completion_time_field
        try:
            return parse_his_time(row.get(column), self.zone)
        except ValueError:
            raise EncounterDataError(
                his_key, "cannot read the value as a time", section=section, column=column
            ) from None

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


def key_text(value: object) -> str:
    """A key value as text, the form keys are compared in (drivers return text, bytes or numbers)."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def group_rows(
    queried: Mapping[str, object], rows: Iterable[Row], column: str, *, drop_column: bool = False
) -> dict[str, list[Row]] | None:
    """Rows by requested key (every key present, in the rows' order), matching ``column`` against the value
    each key was queried with; ``None`` when a row has no such column or matches none of them."""
    owners: dict[str, list[str]] = {}
    for key, value in queried.items():
        owners.setdefault(key_text(value), []).append(key)
    grouped: dict[str, list[Row]] = {key: [] for key in queried}
    for row in rows:
        if column not in row:
            return None
        value = row.pop(column) if drop_column else row[column]
        found = owners.get(key_text(value)) if value is not None else None
        if not found:
            return None
        for key in found:
            grouped[key].append(row if len(found) == 1 else dict(row))
    return grouped


def the_one_row(his_key: str, rows: list[Row], *, section: str, key_name: str) -> Row | None:
    """The encounter's single listed row, ``None`` when the HIS lists none; several is that encounter's error."""
    if len(rows) > 1:
        raise EncounterDataError(his_key, f"{len(rows)} rows share this {key_name}", section=section)
    return rows[0] if rows else None


def split_listed(
    his_keys: Sequence[str], found: Mapping[str, list[Row]], *, section: str, key_name: str
) -> tuple[dict[str, LoadResult], dict[str, Row]]:
    """Per key of a batch: the results already known (not listed: ``None``; listed twice: its error) and the
    single listed row of every other key, to be read further."""
    results: dict[str, LoadResult] = {}
    listed: dict[str, Row] = {}
    for key in his_keys:
        try:
            row = the_one_row(key, found[key], section=section, key_name=key_name)
        except EncounterDataError as exc:
            results[key] = exc
            continue
        if row is None:
            results[key] = None
        else:
            listed[key] = row
    return results, listed


def capture(read: Callable[[], Encounter | None]) -> LoadResult:
    """``read()``, or the ``SourceDataError`` it raised: one encounter's data error is its batch result."""
    try:
        return read()
    except SourceDataError as exc:
        return exc


def same_outcome(expected: object, actual: object) -> bool:
    """Whether two loads of one key agree: equal encounters (or both None), or errors of the same type and
    message."""
    if isinstance(expected, BaseException) or isinstance(actual, BaseException):
        return type(expected) is type(actual) and str(expected) == str(actual)
    return expected == actual


def failure_is_query(outcome: object) -> bool:
    """A load failed on the database side (bad SQL, timeout), not on one encounter's data."""
    return isinstance(outcome, AdapterError) and not isinstance(outcome, SourceDataError)


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
