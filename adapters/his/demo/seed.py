"""Fill the reference HIS with synthetic encounters (``vneid-sync demo seed``).

Encounters come from ``adapters.his.demo.synthetic.make_encounter`` (a realistic mix of visit kinds, a configurable
share with deliberate defects, start times spread over a date range) and are written canonical → HIS rows:
local department and sex codes (the inverse of the value maps in ``mapping.toml``), the diagnosis catalogue,
card data on the visit. Writes are bulk inserts in chunks, so ten thousand encounters take seconds on SQLite
and memory stays bounded for any count.

The writer refuses what the demo schema cannot store (a field it has no column for, a partial birth date, a
first cost that is not the earliest order) instead of dropping it: the demo adapter must give back exactly
the encounter that was written.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from adapters.his.demo import schema
from adapters.his.demo.source import DEMO_MAPPING_FILE
from adapters.his.demo.synthetic import DIAGNOSES, TB_DIAGNOSIS, Defect, kinds_mix, make_encounter
from adapters.his.sql_mapping.mapping import MappingFile, load_mapping
from schemas.domain import BirthDate, Encounter, FirstCost, derive_ma_lk
from schemas.domain.values import VIETNAM_TZ

DEFAULT_SINCE = date(2026, 1, 1)
DEPARTMENT_NAMES = {
    "HSCC": "Khoa Hồi sức cấp cứu",
    "NOI": "Khoa Nội tổng hợp",
    "NGOAI": "Khoa Ngoại tổng hợp",
    "SAN": "Khoa Phụ sản",
    "YHCT": "Khoa Y học cổ truyền",
}
DIAGNOSIS_NAMES = dict((*DIAGNOSES, TB_DIAGNOSIS))
#: Sections the demo schema has no table for.
UNSUPPORTED_SECTIONS = ("hiv_care", "birth_certificates", "pregnancy_rest", "sick_leave")
#: Fields the writer handles itself (codes, catalogue, derived or constant values).
_PATIENT_SPECIAL = frozenset({"gioi_tinh"})
_VISIT_SPECIAL = frozenset({"ma_khoa", "ma_benh_chinh", "ma_cskcb"})


class DemoSchemaError(ValueError):
    """The encounter holds something the reference HIS cannot store (names the section and field)."""


@dataclass(frozen=True, slots=True)
class SeedReport:
    total: int  # encounters written
    bad: int  # of which carry a deliberate defect
    first_key: str | None
    last_key: str | None
    seconds: float


def _wall(value: datetime | None) -> datetime | None:
    """Hospital wall-clock time, as the HIS stores it."""
    if value is None:
        return None
    return value.astimezone(VIETNAM_TZ).replace(tzinfo=None) if value.tzinfo else value


def _db_value(value: object) -> object:
    if isinstance(value, datetime):
        return _wall(value)
    if isinstance(value, BirthDate):
        return value.format12()
    return value


def derived_first_cost(encounter: Encounter) -> FirstCost | None:
    """What the demo mapping derives as the first cost: the earliest order, services before drugs."""
    candidates: list[tuple[datetime, int, int, FirstCost]] = []
    for line_no, service in enumerate(encounter.service_lines, start=1):
        if service.ngay_yl is not None:
            cost = FirstCost(
                ma_dich_vu=service.ma_dich_vu, ten_dich_vu=service.ten_dich_vu, ngay_yl=service.ngay_yl
            )
            candidates.append((service.ngay_yl, 1, line_no, cost))
    for line_no, drug in enumerate(encounter.drug_lines, start=1):
        if drug.ngay_yl is not None:
            cost = FirstCost(ma_thuoc=drug.ma_thuoc, ten_thuoc=drug.ten_thuoc, ngay_yl=drug.ngay_yl)
            candidates.append((drug.ngay_yl, 2, line_no, cost))
    return min(candidates, key=lambda item: item[:3])[3] if candidates else None


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _set_fields(record: object) -> set[str]:
    """Names of the fields of a section record that hold a value."""
    names = _FIELD_NAMES.get(type(record))
    if names is None:
        names = _FIELD_NAMES[type(record)] = tuple(fld.name for fld in fields(record))  # type: ignore[arg-type]  # records are dataclasses
    return {name for name in names if getattr(record, name) is not None}


def _stored(pairs: schema.FieldColumns) -> frozenset[str]:
    return frozenset(field.lower() for _, field in pairs)


def _require_stored(section: str, record: object, stored: frozenset[str]) -> None:
    extra = sorted(_set_fields(record) - stored)
    if extra:
        raise DemoSchemaError(f"{section}.{extra[0]}: the demo HIS has no column for this field")


_PATIENT_STORED = _stored(schema.PATIENT_COLUMNS) | _stored(schema.VISIT_CARD_COLUMNS) | _PATIENT_SPECIAL
_VISIT_STORED = _stored(schema.VISIT_COLUMNS) | _VISIT_SPECIAL
#: Section → the field that names its department (written as a department id), if any.
_DEPARTMENT_FIELD = {"drug_lines": "ma_khoa", "service_lines": "ma_khoa", "discharge_papers": "ma_khoa_rv"}
_SECTION_STORED = {
    section: _stored(pairs) | ({_DEPARTMENT_FIELD[section]} if section in _DEPARTMENT_FIELD else frozenset())
    for section, (_, pairs) in schema.SECTION_TABLES.items()
}
_LOWER_PAIRS = {
    section: tuple((column, field.lower()) for column, field in pairs)
    for section, (_, pairs) in schema.SECTION_TABLES.items()
}


class DemoWriter:
    """Writes canonical encounters into the reference HIS through one connection (caller commits)."""

    def __init__(
        self, conn: Connection, *, facility_code: str = "79999", mapping: MappingFile | None = None
    ) -> None:
        self.conn = conn
        self.facility_code = facility_code
        mapping = mapping or load_mapping(DEMO_MAPPING_FILE)
        self.sex_codes = {
            int(standard): local for local, standard in mapping.value_maps["sex"].values.items()
        }
        self.department_codes = {
            str(standard): local for local, standard in mapping.value_maps["department"].values.items()
        }
        self._next_id = {
            table.name: int(
                conn.execute(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0))).scalar_one()
            )
            + 1
            for table in schema.ALL_TABLES
        }
        self.department_ids = self._departments()
        self.diagnosis_ids = {
            str(row.icd10): int(row.id)
            for row in conn.execute(sa.select(schema.diagnoses.c.id, schema.diagnoses.c.icd10))
        }

    def _take_id(self, table: sa.Table) -> int:
        value = self._next_id[table.name]
        self._next_id[table.name] = value + 1
        return value

    def next_visit_number(self) -> int:
        return self._next_id[schema.visits.name]

    def _departments(self) -> dict[str, int]:
        existing = {str(row.code): int(row.id) for row in self.conn.execute(sa.select(schema.departments))}
        missing = [local for local in self.department_codes.values() if local not in existing]
        rows = []
        for local in missing:
            new_id = self._take_id(schema.departments)
            rows.append({"id": new_id, "code": local, "name": DEPARTMENT_NAMES.get(local, local)})
            existing[local] = new_id
        if rows:
            self.conn.execute(schema.departments.insert(), rows)
        return existing

    def _department_id(self, where: str, standard: str | None) -> int | None:
        if standard is None:
            return None
        local = self.department_codes.get(standard)
        if local is None:
            raise DemoSchemaError(f"{where}: department code not in the demo's department map")
        return self.department_ids[local]

    def _diagnosis_id(self, code: str | None, pending: list[dict[str, object]]) -> int | None:
        if code is None:
            return None
        if code not in self.diagnosis_ids:
            new_id = self._take_id(schema.diagnoses)
            self.diagnosis_ids[code] = new_id
            pending.append({"id": new_id, "icd10": code, "name": DIAGNOSIS_NAMES.get(code, code)})
        return self.diagnosis_ids[code]

    def write(self, encounters: Iterable[Encounter], *, changed_at: datetime | None = None) -> int:
        """Insert the encounters (bulk, one statement per table); returns how many were written."""
        rows: dict[str, list[dict[str, object]]] = {table.name: [] for table in schema.ALL_TABLES}
        count = 0
        for encounter in encounters:
            self._rows(encounter, rows, changed_at)
            count += 1
        for table in schema.ALL_TABLES:
            if rows[table.name]:
                self.conn.execute(table.insert(), rows[table.name])
        return count

    def _rows(
        self, encounter: Encounter, out: dict[str, list[dict[str, object]]], changed_at: datetime | None
    ) -> None:
        key = encounter.his_key
        for name in UNSUPPORTED_SECTIONS:
            if getattr(encounter, name):
                raise DemoSchemaError(f"{name}: the demo HIS has no table for this section")
        if encounter.ma_lk != derive_ma_lk(self.facility_code, key):
            raise DemoSchemaError("ma_lk: the demo adapter derives MA_LK from the facility code and HIS key")
        if encounter.first_cost != derived_first_cost(encounter):
            raise DemoSchemaError("first_cost: the demo HIS derives it from the earliest order")
        patient, visit = encounter.patient, encounter.visit
        _require_stored("patient", patient, _PATIENT_STORED)
        _require_stored("visit", visit, _VISIT_STORED)
        if visit.ma_cskcb != self.facility_code:
            raise DemoSchemaError("visit.ma_cskcb: the demo HIS serves one facility (the configured code)")
        if visit.ma_khoa is not None and ";" in visit.ma_khoa:
            raise DemoSchemaError("visit.ma_khoa: the demo HIS keeps one department per visit")
        if patient.gioi_tinh is not None and patient.gioi_tinh not in self.sex_codes:
            raise DemoSchemaError("patient.gioi_tinh: code not in the demo's sex map")

        patient_id = self._take_id(schema.patients)
        visit_id = self._take_id(schema.visits)
        times = [
            t
            for t in (visit.ngay_vao, visit.ngay_ra, visit.ngay_ttoan, encounter.completed_at)
            if t is not None
        ]
        changed = changed_at or (max(times) + timedelta(minutes=5) if times else datetime.now(VIETNAM_TZ))
        created = visit.ngay_vao or changed
        patient_row: dict[str, object] = {
            column: _db_value(getattr(patient, field.lower())) for column, field in schema.PATIENT_COLUMNS
        }
        if patient_row["nationality"] == "000":
            patient_row["nationality"] = None  # Vietnamese: the HIS leaves it empty, the mapping defaults it
        patient_row.update(
            id=patient_id,
            sex=self.sex_codes.get(patient.gioi_tinh) if patient.gioi_tinh is not None else None,
            created_at=_wall(created),
            updated_at=_wall(changed),
        )
        out["patients"].append(patient_row)
        visit_row: dict[str, object] = {
            column: _db_value(getattr(visit, field.lower())) for column, field in schema.VISIT_COLUMNS
        }
        visit_row.update(
            {
                column: _db_value(getattr(patient, field.lower()))
                for column, field in schema.VISIT_CARD_COLUMNS
            }
        )
        visit_row.update(
            id=visit_id,
            visit_code=key,
            patient_id=patient_id,
            department_id=self._department_id("visit.ma_khoa", visit.ma_khoa),
            main_diagnosis_id=self._diagnosis_id(visit.ma_benh_chinh, out["diagnoses"]),
            status="PAID" if visit.ngay_ttoan else ("DISCHARGED" if visit.ngay_ra else "OPEN"),
            created_at=_wall(created),
            updated_at=_wall(changed),
            deleted_at=None,
        )
        out["visits"].append(visit_row)

        for section, (table, _) in schema.SECTION_TABLES.items():
            value = getattr(encounter, section)
            records = value if isinstance(value, tuple) else ((value,) if value is not None else ())
            department_field = _DEPARTMENT_FIELD.get(section)
            numbered = "line_no" in table.c
            for line_no, record in enumerate(records, start=1):
                _require_stored(section, record, _SECTION_STORED[section])
                row: dict[str, object] = {
                    column: _db_value(getattr(record, field)) for column, field in _LOWER_PAIRS[section]
                }
                row.update(id=self._take_id(table), visit_id=visit_id)
                if numbered:
                    row["line_no"] = line_no
                if department_field:
                    row["department_id"] = self._department_id(
                        f"{section}.{department_field}", getattr(record, department_field)
                    )
                out[table.name].append(row)


def generate(
    count: int,
    *,
    rng: random.Random,
    first_number: int,
    since: date = DEFAULT_SINCE,
    until: date | None = None,
    bad_share: float = 0.0,
    facility_code: str = "79999",
) -> Iterator[Encounter]:
    """``count`` synthetic encounters keyed V0000001…, starting on days spread over [since, until]."""
    for encounter, _defect in generate_with_defects(
        count,
        rng=rng,
        first_number=first_number,
        since=since,
        until=until,
        bad_share=bad_share,
        facility_code=facility_code,
    ):
        yield encounter


def generate_with_defects(
    count: int,
    *,
    rng: random.Random,
    first_number: int,
    since: date = DEFAULT_SINCE,
    until: date | None = None,
    bad_share: float = 0.0,
    facility_code: str = "79999",
) -> Iterator[tuple[Encounter, Defect | None]]:
    """Like ``generate``, with the defect drawn for each encounter (``None`` for a good one)."""
    last = until or datetime.now(VIETNAM_TZ).date()
    span = max((last - since).days, 0)
    defects = list(Defect)
    for number in range(first_number, first_number + count):
        day = since + timedelta(days=rng.randint(0, span))
        start = datetime(
            day.year, day.month, day.day, rng.randint(7, 16), rng.randrange(0, 60, 5), tzinfo=VIETNAM_TZ
        )
        defect = rng.choice(defects) if rng.random() < bad_share else None  # synthetic data, not security
        kind = kinds_mix(rng)
        encounter = make_encounter(
            rng, his_key=f"V{number:07d}", kind=kind, start=start, facility_code=facility_code, defect=defect
        )
        yield encounter, defect


def writer_engine(url: str) -> Engine:
    """A read-write engine for seeding; creates the folder of a SQLite file."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(parsed)


def seed_demo_his(
    url: str,
    *,
    encounters: int,
    bad_share: float = 0.05,
    since: date = DEFAULT_SINCE,
    until: date | None = None,
    random_seed: int | None = None,
    facility_code: str = "79999",
    chunk_size: int = 2000,
) -> SeedReport:
    """Create the schema if needed and append ``encounters`` synthetic encounters; commits per chunk."""
    if not 0.0 <= bad_share <= 1.0:
        raise ValueError("bad_share must be between 0 and 1")
    began = time.perf_counter()
    engine = writer_engine(url)
    rng = random.Random(random_seed)  # noqa: S311  # synthetic data, not security
    written = with_defects = 0
    first_key = last_key = None
    try:
        schema.create_schema(engine)
        while written < encounters:
            size = min(chunk_size, encounters - written)
            with engine.begin() as conn:
                writer = DemoWriter(conn, facility_code=facility_code)
                batch = list(
                    generate_with_defects(
                        size,
                        rng=rng,
                        first_number=writer.next_visit_number(),
                        since=since,
                        until=until,
                        bad_share=bad_share,
                        facility_code=facility_code,
                    )
                )
                writer.write(encounter for encounter, _ in batch)
            with_defects += sum(1 for _, defect in batch if defect is not None)
            first_key = first_key or batch[0][0].his_key
            last_key = batch[-1][0].his_key
            written += size
        # Fresh statistics, as a hospital's database has: planned on the empty tables' estimates, a batch
        # read joined 50 visits to 450 000 service orders by a sequential scan (0.23 s instead of a few ms).
        analyze = "ANALYZE TABLE" if engine.dialect.name in ("mysql", "mariadb") else "ANALYZE"
        with engine.begin() as conn:
            for table in schema.metadata.sorted_tables:
                conn.exec_driver_sql(f"{analyze} {engine.dialect.identifier_preparer.format_table(table)}")
    finally:
        engine.dispose()
    return SeedReport(written, with_defects, first_key, last_key, round(time.perf_counter() - began, 3))
