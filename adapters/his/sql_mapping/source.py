"""``SqlMappingSource``: an ``EncounterSource`` driven by a hospital-written mapping file."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import ClassVar, Self

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from adapters.his.assemble import build_encounter, field_types, normalise_row, sections
from adapters.his.base import CHANGED, KEY, Row, SqlEncounterSource, upper_keys
from adapters.his.checks import CheckReport, database_message, describe_failure
from adapters.his.engine import create_his_engine
from adapters.his.errors import AdapterConfigError, AdapterError, EncounterDataError
from adapters.his.options import parse_options
from adapters.his.paging import After
from adapters.his.sql_mapping import queries
from adapters.his.sql_mapping.config import SqlMappingOptions
from adapters.his.sql_mapping.mapping import (
    FACILITY_PLACEHOLDER,
    DefaultValue,
    MappingFile,
    SectionQuery,
    UnmappedCodeError,
    load_mapping,
)
from adapters.his.timeconv import FAR_FUTURE, FAR_PAST, bind_time, parse_his_time
from worker.config import HisSettings
from worker.domain import Encounter, derive_ma_lk
from worker.domain.coerce import CoercionError, build_section


class SqlMappingSource(SqlEncounterSource):
    """Reads any HIS schema through one SQL query per section, written by the hospital in a mapping file."""

    name: ClassVar[str] = "sql_mapping"

    def __init__(
        self,
        *,
        engine: Engine,
        mapping: MappingFile,
        mapping_file: Path,
        options: SqlMappingOptions,
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
        self.mapping = mapping
        self.mapping_file = mapping_file
        self.sql_options = options
        self._backend = engine.url.get_backend_name()
        self._defaults = {
            name: {
                column.upper(): _default(value, facility_code) for column, value in section.defaults.items()
            }
            for name, section in mapping.sections.items()
        }

    @classmethod
    def from_settings(cls, his: HisSettings, *, url: str, facility_code: str) -> Self:
        if his.mapping_file is None:
            raise AdapterConfigError(f"adapter {cls.name!r} needs his.mapping_file")
        return cls.from_mapping_file(his, his.mapping_file, url=url, facility_code=facility_code)

    @classmethod
    def from_mapping_file(cls, his: HisSettings, mapping_file: Path, *, url: str, facility_code: str) -> Self:
        mapping = load_mapping(mapping_file)
        options = parse_options(SqlMappingOptions, his.options, cls.name)
        return cls(
            engine=create_his_engine(url, his, timezone=options.zone),
            mapping=mapping,
            mapping_file=mapping_file,
            options=options,
            facility_code=facility_code,
            page_size=his.page_size,
            overlap_minutes=his.watermark_overlap_minutes,
        )

    # -- parameters --------------------------------------------------------------------------------------
    def _time(self, value: datetime) -> object:
        return bind_time(value, self.zone, backend=self._backend)

    def _list_parameters(
        self, *, since: datetime | None, start: datetime | None, end: datetime | None
    ) -> dict[str, object]:
        """What the encounters query may use (:since, :start, :end, :facility_code) plus the status values."""
        return {
            "since": self._time(since or FAR_PAST),
            "start": self._time(start or FAR_PAST),
            "end": self._time(end or FAR_FUTURE),
            "facility_code": self.facility_code,
            **queries.status_parameters(self.sql_options),
        }

    def _fetch(
        self, conn: Connection, sql: str, parameters: Mapping[str, object], *, stream: bool = False
    ) -> list[Row]:
        """Rows keyed by upper-case names. ``stream``: fetch through a server-side cursor ``page_size``
        rows at a time (list pages); one encounter's rows are few and go in one round trip."""
        statement = sa.text(sql)
        if stream:
            statement = statement.execution_options(yield_per=self.page_size)
        result = conn.execute(statement, dict(parameters))
        return [upper_keys(row) for row in result.mappings()]

    def _list_row(self, row: Row) -> Row:
        for column, map_name in self.mapping.encounters.maps.items():
            name = column.upper()
            if name in row:
                try:
                    row[name] = self.mapping.value_maps[map_name].translate(map_name, row[name])
                except UnmappedCodeError:
                    row[name] = None  # a listing never fails on a code; load() reports it
        return row

    # -- pages ---------------------------------------------------------------------------------------------
    def _discover_page(self, conn: Connection, lower: datetime | None, after: After | None) -> Sequence[Row]:
        sql = queries.discover_page(
            self.mapping.encounters.sql,
            self.sql_options,
            lower=lower is not None,
            after=after is not None,
            limit=self.page_size,
        )
        parameters = self._list_parameters(since=lower, start=None, end=None)
        if lower is not None:
            parameters["lower"] = self._time(lower)
        if after is not None:
            parameters.update(after_time=after.time, after_key=after.key)
        return [self._list_row(row) for row in self._fetch(conn, sql, parameters, stream=True)]

    def _completed_page(
        self, conn: Connection, start: datetime, end: datetime, after: After | None
    ) -> Sequence[Row]:
        sql = queries.completed_page(
            self.mapping.encounters.sql, self.sql_options, after=after is not None, limit=self.page_size
        )
        parameters = self._list_parameters(since=None, start=start, end=end)
        parameters.update(range_start=self._time(start), range_end=self._time(end))
        if after is not None:
            parameters.update(after_time=after.time, after_key=after.key)
        return [self._list_row(row) for row in self._fetch(conn, sql, parameters, stream=True)]

    # -- load ----------------------------------------------------------------------------------------------
    def _encounter_row(self, conn: Connection, his_key: str) -> Row | None:
        sql = queries.one_encounter(self.mapping.encounters.sql, self.sql_options)
        parameters = self._list_parameters(since=None, start=None, end=None)
        parameters["his_key_value"] = his_key
        rows = self._fetch(conn, sql, parameters)
        if len(rows) > 1:
            raise EncounterDataError(his_key, f"{len(rows)} rows share this HIS_KEY", section="encounters")
        return rows[0] if rows else None

    def _section_rows(self, conn: Connection, his_key: str, key_value: object) -> dict[str, list[Row]]:
        rows: dict[str, list[Row]] = {}
        parameters = {"his_key": key_value, "facility_code": self.facility_code}
        for name, section in self.mapping.sections.items():
            if section.sql is not None:
                rows[name] = self._fetch(conn, section.sql, parameters)
        for name, section in self.mapping.sections.items():
            if section.same_row_as is not None:
                rows[name] = [dict(row) for row in rows[section.same_row_as]]
        for name, section in self.mapping.sections.items():
            rows[name] = [self._apply_section(his_key, name, section, row) for row in rows[name]]
        return rows

    def _apply_section(self, his_key: str, name: str, section: SectionQuery, row: Row) -> Row:
        for column, map_name in section.maps.items():
            field = column.upper()
            try:
                row[field] = self.mapping.value_maps[map_name].translate(map_name, row.get(field))
            except UnmappedCodeError as exc:
                raise EncounterDataError(his_key, str(exc), section=name, column=field) from None
        for field, value in self._defaults[name].items():
            if row.get(field) is None:
                row[field] = value
        return row

    def _load(self, conn: Connection, his_key: str) -> Encounter | None:
        listed = self._encounter_row(conn, his_key)
        if listed is None:
            return None
        rows = self._section_rows(conn, his_key, listed[KEY])
        ma_lk = listed.get("MA_LK")
        return build_encounter(
            his_key=his_key,
            ma_lk=str(ma_lk) if ma_lk else derive_ma_lk(self.facility_code, his_key),
            completed_at=parse_his_time(listed.get(self.options.completion_time_field), self.zone),
            rows=rows,
            zone=self.zone,
        )

    # -- check ---------------------------------------------------------------------------------------------
    def check(self, sample: int = 20) -> CheckReport:
        report = CheckReport(adapter=self.name)
        report.info("mapping", f"file {self.mapping_file}")
        keys = self._check_encounters(report, sample)
        if keys is None:
            return report
        report.sampled = len(keys)
        if not keys:
            report.warning("encounters", "no completed encounter found: section queries run without rows")
        for name, section in self.mapping.sections.items():
            if section.sql is not None:
                self._check_section(report, name, section, keys or [""])
        self.check_loads(report, [str(key) for key in keys])
        return report

    def _check_encounters(self, report: CheckReport, sample: int) -> list[object] | None:
        where = "encounters"
        try:
            with self.engine.connect() as conn:
                probe = conn.execute(
                    sa.text(queries.sample(self.mapping.encounters.sql, 1)),
                    self._list_parameters(since=None, start=None, end=None),
                )
                names = probe.keys()
                columns = {str(column).upper() for column in names}
                probe.close()
        except sa_exc.SQLAlchemyError as exc:
            report.error(where, f"query failed: {database_message(exc)}")
            return None
        needed = {KEY, CHANGED, self.options.completion_time_field}
        if self.sql_options.completion.value == "status":
            needed.add("STATUS")
        missing = sorted(needed - columns)
        for column in missing:
            report.error(f"{where}.{column}", f"column missing (needed as {column})")
        if missing:
            return None
        try:
            refs = []
            for ref in self.discover(None):
                refs.append(ref)
                if len(refs) >= sample:
                    break
            later = datetime.now(self.zone) - timedelta(days=30)
            next(iter(self.list_completed(later, later + timedelta(days=31))), None)
        except AdapterError as exc:
            report.error(where, describe_failure(exc))
            return None
        report.info(where, f"{len(refs)} completed encounter(s) sampled")
        return [ref.his_key for ref in refs]

    def _check_section(
        self, report: CheckReport, name: str, section: SectionQuery, keys: Sequence[object]
    ) -> None:
        assert section.sql is not None
        # Sections that reuse this query's row are checked on the same rows.
        group = [
            name,
            *(other for other, query in self.mapping.sections.items() if query.same_row_as == name),
        ]
        unmapped: dict[tuple[str, str, str], Counter[str]] = {}
        columns: set[str] = set()
        try:
            with self.engine.connect() as conn:
                for key in keys:
                    result = conn.execute(
                        sa.text(section.sql), {"his_key": key, "facility_code": self.facility_code}
                    )
                    names = result.keys()
                    columns |= {str(column).upper() for column in names}
                    rows = [upper_keys(row) for row in result.mappings()]
                    if not sections()[name].many and len(rows) > 1:
                        report.error(name, f"{len(rows)} rows for one encounter; at most one is allowed")
                    for row in rows:
                        for member in group:
                            self._check_row(report, member, dict(row), unmapped)
        except sa_exc.SQLAlchemyError as exc:
            report.error(name, f"query failed: {database_message(exc)}")
            return
        allowed: set[str] = set()
        for member in group:
            allowed |= set(field_types(sections()[member].cls))
            mapped = {column.upper() for column in self.mapping.sections[member].maps}
            for column in sorted(mapped - columns):
                report.warning(
                    f"{member}.{column}", "a value map is set but the query returns no such column"
                )
        for column in sorted(columns - allowed):
            if not column.startswith("_"):
                report.error(
                    f"{name}.{column}",
                    "not a standard field of this section (typo? prefix helper columns with _)",
                )
        for (member, column, map_name), codes in unmapped.items():
            report.unmapped(f"{member}.{column}", map_name, codes)

    def _check_row(
        self, report: CheckReport, name: str, row: Row, unmapped: dict[tuple[str, str, str], Counter[str]]
    ) -> None:
        section = self.mapping.sections[name]
        for column, map_name in section.maps.items():
            field = column.upper()
            try:
                row[field] = self.mapping.value_maps[map_name].translate(map_name, row.get(field))
            except UnmappedCodeError as exc:
                unmapped.setdefault((name, field, map_name), Counter())[exc.code] += 1
                row[field] = None
        for field, value in self._defaults[name].items():
            if row.get(field) is None:
                row[field] = value
        cls = sections()[name].cls
        try:
            build_section(cls, normalise_row(cls, row, self.zone))
        except CoercionError as exc:
            report.error(f"{name}.{exc.field_name.upper()}", f"cannot read the value as {exc.expected}")


def _default(value: DefaultValue, facility_code: str) -> object:
    if isinstance(value, str):
        return value.replace(FACILITY_PLACEHOLDER, facility_code)
    if isinstance(value, float):
        return Decimal(repr(value))
    return value
