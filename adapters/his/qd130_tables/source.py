"""``Qd130TablesSource``: reads encounters from QĐ 130 tables/views (XML1 … XML15) in the HIS database."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any, ClassVar, Self

import sqlalchemy.exc as sa_exc
from sqlalchemy.engine import Connection, Engine
from structlog import get_logger

from adapters.his.assemble import build_encounter, sections
from adapters.his.base import (
    LoadResult,
    Row,
    SqlEncounterSource,
    capture,
    first_column,
    result_rows,
    split_listed,
    the_one_row,
)
from adapters.his.checks import CheckReport, database_message, describe_failure
from adapters.his.engine import create_his_engine
from adapters.his.errors import AdapterConfigError, AdapterError
from adapters.his.options import Completion, parse_options
from adapters.his.paging import After
from adapters.his.qd130_tables import queries
from adapters.his.qd130_tables.config import Qd130TablesOptions
from adapters.his.settings import HisSettings
from schemas.domain import Encounter, derive_ma_lk

log = get_logger(__name__)


class Qd130TablesSource(SqlEncounterSource):
    """Reads a HIS that already exposes the QĐ 130 tables XML1…XML15 with the standard column names."""

    name: ClassVar[str] = "qd130_tables"

    def __init__(
        self,
        *,
        engine: Engine,
        options: Qd130TablesOptions,
        facility_code: str,
        page_size: int = 500,
        overlap_minutes: int = 30,
    ) -> None:
        super().__init__(
            engine=engine,
            options=options,
            facility_code=facility_code,
            page_size=page_size,
            overlap_minutes=overlap_minutes,
        )
        self.qd_options = options
        self._catalogue: queries.Catalogue | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, his: HisSettings, *, url: str, facility_code: str) -> Self:
        options = parse_options(Qd130TablesOptions, his.options, cls.name)
        return cls(
            engine=create_his_engine(url, his, timezone=options.zone),
            options=options,
            facility_code=facility_code,
            page_size=his.page_size,
            overlap_minutes=his.watermark_overlap_minutes,
        )

    # -- tables ----------------------------------------------------------------------------------------------
    def catalogue(self, conn: Connection) -> queries.Catalogue:
        """The tables as found in the database (reflected once, on first use)."""
        with self._lock:
            if self._catalogue is None:
                catalogue = queries.reflect(conn, self.qd_options)
                self._require_xml1(catalogue)
                for table_id in catalogue.absent:
                    log.warning("his.qd130.table_missing", table=table_id)
                self._catalogue = catalogue
            return self._catalogue

    def _require_xml1(self, catalogue: queries.Catalogue) -> None:
        xml1 = catalogue.tables.get("XML1")
        if xml1 is None:
            raise AdapterConfigError(
                f"{self.name}: table XML1 ({self.qd_options.table_name('XML1')}) not found"
            )
        needed = ["MA_LK", self.options.completion_time_field]
        if self.qd_options.completion is Completion.STATUS:
            needed.append(queries.STATUS)
        if self.qd_options.changed_at_column is not None:
            needed.append("CHANGED_AT")
        absent = [name for name in needed if name not in xml1.columns]
        if absent:
            raise AdapterConfigError(f"{self.name}: XML1 lacks the column(s) {', '.join(absent)}")
        for bound in catalogue.tables.values():
            if "MA_LK" not in bound.columns:
                raise AdapterConfigError(f"{self.name}: {bound.table_id} has no MA_LK column")

    def _xml1(self, conn: Connection) -> queries.BoundTable:
        return self.catalogue(conn).tables["XML1"]

    def _time(self, value: datetime) -> object:
        return queries.time_parameter(value, self.qd_options)

    # -- pages -----------------------------------------------------------------------------------------------
    def _discover_page(self, conn: Connection, lower: datetime | None, after: After | None) -> Sequence[Row]:
        query = queries.discover_page(
            self._xml1(conn),
            self.qd_options,
            lower=self._time(lower) if lower is not None else None,
            after=after,
            limit=self.page_size,
        )
        return self._rows(conn, query, stream=True)

    def _completed_page(
        self, conn: Connection, start: datetime, end: datetime, after: After | None
    ) -> Sequence[Row]:
        query = queries.completed_page(
            self._xml1(conn),
            self.qd_options,
            start=self._time(start),
            end=self._time(end),
            after=after,
            limit=self.page_size,
        )
        return self._rows(conn, query, stream=True)

    def _completed_key_values(self, conn: Connection, start: datetime, end: datetime) -> list[object]:
        query = queries.completed_keys(
            self._xml1(conn), self.qd_options, start=self._time(start), end=self._time(end)
        )
        return first_column(conn.execute(query))

    def _listed_rows(self, conn: Connection, key_values: list[object]) -> list[Row]:
        return self._rows(conn, queries.listed_rows(self._xml1(conn), self.qd_options, key_values))

    def _rows(self, conn: Connection, query: Any, *, stream: bool = False) -> list[Row]:
        """Rows keyed by upper-case names. ``stream``: fetch through a server-side cursor ``page_size`` rows at
        a time (list pages); encounters' rows go in one round trip."""
        if stream:
            query = query.execution_options(yield_per=self.page_size)
        return result_rows(conn.execute(query))

    # -- load ------------------------------------------------------------------------------------------------
    def _load(self, conn: Connection, his_key: str) -> Encounter | None:
        catalogue = self.catalogue(conn)
        found = self._rows(conn, queries.encounter_row(catalogue.tables["XML1"], self.qd_options, his_key))
        if the_one_row(his_key, found, section="XML1", key_name="MA_LK") is None:
            return None
        tables = {"XML1": found}
        for table_id, bound in catalogue.tables.items():
            if table_id != "XML1":
                tables[table_id] = self._rows(conn, queries.section_rows(bound, his_key))
        return self._assemble(his_key, tables)

    def _load_many(self, conn: Connection, his_keys: Sequence[str]) -> dict[str, LoadResult]:
        catalogue = self.catalogue(conn)
        xml1 = catalogue.tables["XML1"]
        found = self.batched_rows(
            {key: key for key in his_keys},
            lambda keys: self._rows(conn, queries.encounter_rows(xml1, self.qd_options, keys)),
            lambda key: self._rows(conn, queries.encounter_row(xml1, self.qd_options, key)),
            column="MA_LK",
            part="XML1",
        )
        results, listed = split_listed(his_keys, found, section="XML1", key_name="MA_LK")
        present = {key: key for key in listed}  # MA_LK is the key itself
        tables: dict[str, dict[str, list[Row]]] = {key: {"XML1": found[key]} for key in present}
        for table_id, bound in catalogue.tables.items():
            if table_id == "XML1" or not present:
                continue
            by_key = self.batched_rows(
                present,
                self._table_reader_many(conn, bound),
                self._table_reader(conn, bound),
                column="MA_LK",
                part=table_id,
            )
            for key, rows in by_key.items():
                tables[key][table_id] = rows
        for key in present:
            results[key] = capture(partial(self._assemble, key, tables[key]))
        return {key: results[key] for key in his_keys}

    def _table_reader(self, conn: Connection, bound: queries.BoundTable) -> Callable[[object], list[Row]]:
        return lambda key: self._rows(conn, queries.section_rows(bound, key))

    def _table_reader_many(
        self, conn: Connection, bound: queries.BoundTable
    ) -> Callable[[list[object]], list[Row]]:
        return lambda keys: self._rows(conn, queries.section_rows_many(bound, keys))

    def _assemble(self, his_key: str, tables: dict[str, list[Row]]) -> Encounter:
        """The encounter from the rows of its tables (XML1 holds exactly its one row)."""
        rows: dict[str, list[Row]] = {}
        for name, spec in sections().items():
            if spec.table in tables:
                rows[name] = tables[spec.table]
        if rows.get("first_cost"):
            rows["first_cost"] = rows["first_cost"][:1]  # the first check-in (XML0 may hold a later one too)
        ma_lk = his_key if self.qd_options.ma_lk == "as_is" else derive_ma_lk(self.facility_code, his_key)
        return build_encounter(
            his_key=his_key,
            ma_lk=ma_lk,
            completed_at=self.completion_time(his_key, tables["XML1"][0], "XML1"),
            rows=rows,
            zone=self.zone,
        )

    # -- check -----------------------------------------------------------------------------------------------
    def check(self, sample: int = 20) -> CheckReport:
        report = CheckReport(adapter=self.name)
        try:
            with self.engine.connect() as conn:
                catalogue = queries.reflect(conn, self.qd_options)
        except sa_exc.SQLAlchemyError as exc:
            report.error("database", f"cannot read the table list: {database_message(exc)}")
            return report
        self._check_tables(report, catalogue)
        try:
            self._require_xml1(catalogue)
        except AdapterConfigError as exc:
            report.error("XML1", str(exc))
        if not report.ok:
            return report
        self._catalogue = catalogue
        self._check_sample(report, sample)
        return report

    def _check_tables(self, report: CheckReport, catalogue: queries.Catalogue) -> None:
        for table_id in catalogue.absent:
            where = f"{table_id} ({self.qd_options.table_name(table_id)})"
            if table_id == "XML1":
                report.error(where, "table not found")
            else:
                report.info(where, "table not found: its section stays empty")
        for table_id, bound in catalogue.tables.items():
            where = f"{table_id} ({bound.table.name})"
            for name in bound.bad_renames:
                report.error(f"{where}.{name}", "configured column not found in the table")
            if "MA_LK" in bound.missing:
                report.error(f"{where}.MA_LK", "column missing: rows cannot be linked to the encounter")
            others = [name for name in bound.missing if name != "MA_LK"]
            if others:
                report.info(
                    where, f"{len(others)} standard column(s) not found, read as empty: {', '.join(others)}"
                )

    def _check_sample(self, report: CheckReport, sample: int) -> None:
        try:
            keys = [ref.his_key for _, ref in zip(range(sample), self.discover(None), strict=False)]
            later = datetime.now(self.zone) - timedelta(days=30)
            next(iter(self.list_completed(later, later + timedelta(days=31))), None)
        except AdapterError as exc:
            report.error("XML1", describe_failure(exc))
            return
        report.sampled = len(keys)
        if not keys:
            report.warning("XML1", "no completed encounter found")
        self.check_loads(report, keys)
