"""QĐ 130 tables XML0…XML15 as a HIS might expose them, filled from canonical encounters, for the tests
of the ``qd130_tables`` adapter. Standard column names; names, order and time storage can be varied."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from adapters.his.assemble import field_types, sections
from adapters.his.qd130_tables.config import table_ids
from schemas.domain import BirthDate, Encounter
from schemas.domain.records import INHERITED_FIELDS
from schemas.domain.values import VIETNAM_TZ
from schemas.spec import FieldType, base_fields

CHANGED_COLUMN = "NGAY_CAP_NHAT"
_TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def _section_types(table_id: str) -> dict[str, type[Any]]:
    types: dict[str, type[Any]] = {}
    for spec in sections().values():
        if spec.table == table_id:
            types.update(field_types(spec.cls))
    return types


def _column_type(table_id: str, name: str, spec_type: FieldType, *, text_times: bool) -> Any:
    # A document table's own fields, else the patient/visit field it inherits (INHERITED_FIELDS).
    canonical = _section_types(table_id).get(name) or _section_types("XML1").get(name)
    if canonical is BirthDate:
        return sa.String(12)  # yyyyMMddHHmm with 0000 for unknown parts
    if name == "MA_LK":
        return sa.String(100)
    if canonical is Decimal or spec_type is FieldType.DECIMAL:
        return sa.Numeric(18, 3)
    if canonical in (int, bool) or (canonical is None and spec_type is FieldType.NUMBER):
        return sa.Integer()
    if canonical is datetime or (canonical is None and spec_type is FieldType.DATETIME12):
        return sa.String(12) if text_times else _TIMESTAMP
    if canonical is date or (canonical is None and spec_type is FieldType.DATE8):
        return sa.String(8) if text_times else sa.Date()
    return sa.Text()


def create_tables(
    engine: sa.Engine,
    *,
    schema: str | None = None,
    names: dict[str, str] | None = None,
    renames: dict[str, dict[str, str]] | None = None,
    reversed_tables: Sequence[str] = (),
    text_times: bool = False,
    skip: Sequence[str] = (),
) -> dict[str, sa.Table]:
    """Create XML0…XML15 (minus ``skip``); ``names``/``renames`` give HIS names, ``reversed_tables`` lists
    tables whose columns are created in reverse order."""
    metadata = sa.MetaData(schema=schema)
    tables: dict[str, sa.Table] = {}
    for table_id in table_ids():
        if table_id in skip:
            continue
        columns = [
            sa.Column(
                (renames or {}).get(table_id, {}).get(spec.name, spec.name),
                _column_type(table_id, spec.name, spec.type, text_times=text_times),
                key=spec.name,
            )
            for spec in base_fields(table_id)
        ]
        if table_id == "XML1":
            columns.append(
                sa.Column(CHANGED_COLUMN, sa.String(14) if text_times else _TIMESTAMP, key=CHANGED_COLUMN)
            )
        if table_id in reversed_tables:
            columns.reverse()
        tables[table_id] = sa.Table((names or {}).get(table_id, table_id), metadata, *columns)
    metadata.create_all(engine)
    return tables


def _db_value(value: object, *, text_times: bool) -> object:
    if isinstance(value, BirthDate):
        return value.format12()
    if isinstance(value, datetime):
        local = value.astimezone(VIETNAM_TZ).replace(tzinfo=None)
        return local.strftime("%Y%m%d%H%M") if text_times else local
    if isinstance(value, date):
        return value.strftime("%Y%m%d") if text_times else value
    if isinstance(value, bool):
        return None  # hiv_restricted is not a standard column
    return value


def _record_values(record: object) -> dict[str, object]:
    return {fld.name.upper(): getattr(record, fld.name) for fld in fields(record)}  # type: ignore[arg-type]


def rows_for(
    encounter: Encounter, *, text_times: bool, changed_at: datetime | None = None
) -> dict[str, list[dict[str, object]]]:
    shared = {**_record_values(encounter.patient), **_record_values(encounter.visit)}
    rows: dict[str, list[dict[str, object]]] = {}
    for name, spec in sections().items():
        value = getattr(encounter, name)
        records = value if isinstance(value, tuple) else ((value,) if value is not None else ())
        if name == "patient":
            continue  # written with the visit: both are XML1
        for index, record in enumerate(records, start=1):
            row = _record_values(record)
            if name == "visit":
                row = dict(shared)
                completed = encounter.visit.ngay_ra or datetime.now(VIETNAM_TZ)
                row[CHANGED_COLUMN] = changed_at or completed + timedelta(minutes=5)
            for inherited in INHERITED_FIELDS.get(spec.table, ()):
                row.setdefault(inherited, shared.get(inherited))
            row.update(MA_LK=encounter.ma_lk, STT=index)
            rows.setdefault(spec.table, []).append(row)
    return rows


def write(
    engine: sa.Engine,
    tables: dict[str, sa.Table],
    encounters: Sequence[Encounter],
    *,
    text_times: bool = False,
    changed_at: datetime | None = None,
) -> None:
    by_table: dict[str, list[dict[str, object]]] = {}
    for encounter in encounters:
        for table_id, rows in rows_for(encounter, text_times=text_times, changed_at=changed_at).items():
            by_table.setdefault(table_id, []).extend(rows)
    with engine.begin() as conn:
        for table_id, rows in by_table.items():
            table = tables.get(table_id)
            if table is None:
                continue
            keys = {column.key for column in table.columns}
            conn.execute(
                table.insert(),
                [
                    {
                        key: _db_value(value, text_times=text_times)
                        for key, value in row.items()
                        if key in keys
                    }
                    for row in rows
                ],
            )
