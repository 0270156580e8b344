"""``SqlMappingSource``: an ``EncounterSource`` driven by a hospital-written mapping file."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import ClassVar, Self

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from adapters.his.assemble import build_encounter, field_types, normalise_row, sections
from adapters.his.base import (
    CHANGED,
    KEY,
    LoadResult,
    Row,
    SqlEncounterSource,
    capture,
    first_column,
    group_rows,
    result_rows,
    split_listed,
    the_one_row,
    upper_keys,
)
from adapters.his.checks import CheckReport, database_message, describe_failure
from adapters.his.engine import create_his_engine
from adapters.his.errors import AdapterConfigError, AdapterError, EncounterDataError
from adapters.his.options import parse_options
from adapters.his.paging import After
from adapters.his.settings import HisSettings
from adapters.his.sql_mapping import queries
from adapters.his.sql_mapping.config import SqlMappingOptions
from adapters.his.sql_mapping.mapping import (
    BATCH_KEYS,
    FACILITY_PLACEHOLDER,
    DefaultValue,
    MappingFile,
    SectionQuery,
    UnmappedCodeError,
    load_mapping,
)
from adapters.his.timeconv import FAR_FUTURE, FAR_PAST, bind_time
from schemas.domain import Encounter, derive_ma_lk
from schemas.domain.coerce import CoercionError, build_section


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
        self._section_queries = {
            name: section.sql for name, section in mapping.sections.items() if section.sql is not None
        }
        self._one_encounter_sql = queries.one_encounter(mapping.encounters.sql, options)
        self._encounters_by_key_sql = queries.encounters_by_key(mapping.encounters.sql, options)
        self._completed_keys_sql = queries.completed_keys(mapping.encounters.sql, options)
        self._statements: dict[tuple[str, bool, str | None], sa.TextClause] = {}

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

    def _statement(self, sql: str, *, stream: bool = False, expanding: str | None = None) -> sa.TextClause:
        """The text construct of a query, built once per query: ``text()`` parses the SQL for its parameters,
        which cost more than running a small query. ``expanding``: the parameter bound to a list of keys."""
        cache_key = (sql, stream, expanding)
        statement = self._statements.get(cache_key)
        if statement is None:
            statement = sa.text(sql)
            if expanding is not None:
                statement = statement.bindparams(sa.bindparam(expanding, expanding=True))
            if stream:
                statement = statement.execution_options(yield_per=self.page_size)
            self._statements[cache_key] = statement
        return statement

    def _fetch(
        self,
        conn: Connection,
        sql: str,
        parameters: Mapping[str, object],
        *,
        stream: bool = False,
        expanding: str | None = None,
    ) -> list[Row]:
        """Rows keyed by upper-case names. ``stream``: fetch through a server-side cursor ``page_size``
        rows at a time (list pages); encounters' rows go in one round trip."""
        return result_rows(
            conn.execute(self._statement(sql, stream=stream, expanding=expanding), dict(parameters))
        )

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

    def _completed_key_values(self, conn: Connection, start: datetime, end: datetime) -> list[object]:
        parameters = self._list_parameters(since=None, start=start, end=end)
        parameters.update(range_start=self._time(start), range_end=self._time(end))
        return first_column(conn.execute(self._statement(self._completed_keys_sql), parameters))

    def _listed_rows(self, conn: Connection, key_values: list[object]) -> list[Row]:
        parameters = {
            **self._list_parameters(since=None, start=None, end=None),
            queries.MANY_KEYS: key_values,
        }
        rows = self._fetch(conn, self._encounters_by_key_sql, parameters, expanding=queries.MANY_KEYS)
        return [self._list_row(row) for row in rows]

    # -- load ----------------------------------------------------------------------------------------------
    def _encounter_rows(self, conn: Connection, his_key: object) -> list[Row]:
        parameters = self._list_parameters(since=None, start=None, end=None)
        parameters[queries.ONE_KEY] = his_key
        return self._fetch(conn, self._one_encounter_sql, parameters)

    def _section_reader(self, conn: Connection, sql: str) -> Callable[[object], list[Row]]:
        """Reads one section of one encounter, given the encounter's HIS_KEY as the encounters query gave it."""
        return lambda key_value: self._fetch(
            conn, sql, {"his_key": key_value, "facility_code": self.facility_code}
        )

    def _batch_section_reader(self, conn: Connection, sql: str) -> Callable[[list[object]], list[Row]]:
        return lambda key_values: self._fetch(
            conn, sql, {BATCH_KEYS: key_values, "facility_code": self.facility_code}, expanding=BATCH_KEYS
        )

    def _load(self, conn: Connection, his_key: str) -> Encounter | None:
        listed = the_one_row(
            his_key, self._encounter_rows(conn, his_key), section="encounters", key_name="HIS_KEY"
        )
        if listed is None:
            return None
        rows = {
            name: self._section_reader(conn, sql)(listed[KEY]) for name, sql in self._section_queries.items()
        }
        return self._assemble(his_key, listed, rows)

    def _load_many(self, conn: Connection, his_keys: Sequence[str]) -> dict[str, LoadResult]:
        list_parameters = self._list_parameters(since=None, start=None, end=None)
        by_key = self.batched_rows(
            {key: key for key in his_keys},
            lambda keys: self._fetch(
                conn,
                self._encounters_by_key_sql,
                {**list_parameters, queries.MANY_KEYS: keys},
                expanding=queries.MANY_KEYS,
            ),
            lambda key: self._encounter_rows(conn, key),
            column=KEY,
            part="encounters",
        )
        results, listed = split_listed(his_keys, by_key, section="encounters", key_name="HIS_KEY")
        rows = self._section_rows_many(conn, {key: row[KEY] for key, row in listed.items()})
        for key, row in listed.items():
            results[key] = capture(partial(self._assemble, key, row, rows[key]))
        return {key: results[key] for key in his_keys}

    def _section_rows_many(
        self, conn: Connection, key_values: Mapping[str, object]
    ) -> dict[str, dict[str, list[Row]]]:
        """Per requested key, the rows of each section with a query: one query per section for the batch where
        the mapping gives a batch query, else one per encounter (in the same transaction)."""
        rows: dict[str, dict[str, list[Row]]] = {key: {} for key in key_values}
        if not key_values:
            return rows
        for name, sql in self._section_queries.items():
            read_one = self._section_reader(conn, sql)
            batch_sql = self.mapping.sections[name].batch_sql
            if batch_sql is None:
                section = {key: read_one(value) for key, value in key_values.items()}
            else:
                section = self.batched_rows(
                    key_values,
                    self._batch_section_reader(conn, batch_sql),
                    read_one,
                    column=KEY,
                    part=name,
                    drop_column=True,
                )
            for key, section_rows in section.items():
                rows[key][name] = section_rows
        return rows

    def _assemble(self, his_key: str, listed: Row, queried: Mapping[str, list[Row]]) -> Encounter:
        """The encounter from its encounters row and the rows of the sections with a query."""
        rows = dict(queried)
        for name, section in self.mapping.sections.items():
            if section.same_row_as is not None:
                rows[name] = [dict(row) for row in rows[section.same_row_as]]
        for name, section in self.mapping.sections.items():
            rows[name] = [self._apply_section(his_key, name, section, row) for row in rows[name]]
        ma_lk = listed.get("MA_LK")
        return build_encounter(
            his_key=his_key,
            ma_lk=str(ma_lk) if ma_lk else derive_ma_lk(self.facility_code, his_key),
            completed_at=self.completion_time(his_key, listed, "encounters"),
            rows=rows,
            zone=self.zone,
        )

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
        per_key: dict[str, list[Row]] = {}
        try:
            with self.engine.connect() as conn:
                for key in keys:
                    result = conn.execute(
                        self._statement(section.sql), {"his_key": key, "facility_code": self.facility_code}
                    )
                    names = result.keys()
                    columns |= {str(column).upper() for column in names}
                    rows = [upper_keys(row) for row in result.mappings()]
                    per_key[str(key)] = rows
                    if not sections()[name].many and len(rows) > 1:
                        report.error(name, f"{len(rows)} rows for one encounter; at most one is allowed")
                    for row in rows:
                        for member in group:
                            self._check_row(report, member, dict(row), unmapped)
        except sa_exc.SQLAlchemyError as exc:
            report.error(name, f"query failed: {database_message(exc)}")
            return
        if section.batch_sql is not None:
            self._check_batch(
                report, name, section.batch_sql, keys=keys, per_key=per_key, per_key_columns=columns
            )
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

    def _check_batch(
        self,
        report: CheckReport,
        name: str,
        batch_sql: str,
        *,
        keys: Sequence[object],
        per_key: Mapping[str, list[Row]],
        per_key_columns: set[str],
    ) -> None:
        """The section's batch query must give each sampled encounter exactly the rows, in the order, that
        its one-encounter query gives (helper columns, named ``_…``, aside: the adapter ignores them)."""
        where = f"{name}.batch_sql"
        try:
            with self.engine.connect() as conn:
                result = conn.execute(
                    self._statement(batch_sql, expanding=BATCH_KEYS),
                    {BATCH_KEYS: list(keys), "facility_code": self.facility_code},
                )
                names = result.keys()
                columns = {str(column).upper() for column in names}
                rows = [upper_keys(row) for row in result.mappings()]
        except sa_exc.SQLAlchemyError as exc:
            report.error(where, f"query failed: {database_message(exc)}")
            return
        if KEY not in columns:
            report.error(where, f"no {KEY} column: the rows cannot be given to their encounters")
            return
        others = sorted(_fields(columns - {KEY}) ^ _fields(per_key_columns))
        if others:
            report.error(where, f"not the same columns as sql: {', '.join(others)}")
            return
        grouped = group_rows({str(key): key for key in keys}, rows, KEY, drop_column=True)
        if grouped is None:
            report.error(where, f"returns rows whose {KEY} is none of the sampled encounters' keys")
            return
        differ = [
            key
            for key, expected in per_key.items()
            if [_field_values(row) for row in grouped.get(key, [])]
            != [_field_values(row) for row in expected]
        ]
        if differ:
            report.error(
                where,
                f"not the same rows as sql for {len(differ)} of {len(per_key)} sampled encounter(s), "
                f"e.g. {differ[0]}",
            )

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


def _fields(columns: set[str]) -> set[str]:
    return {column for column in columns if not column.startswith("_")}


def _field_values(row: Row) -> Row:
    return {column: value for column, value in row.items() if not column.startswith("_")}


def _default(value: DefaultValue, facility_code: str) -> object:
    if isinstance(value, str):
        return value.replace(FACILITY_PLACEHOLDER, facility_code)
    if isinstance(value, float):
        return Decimal(repr(value))
    return value
