"""How ``qd130_tables`` finds its tables and builds its queries (SQLAlchemy Core, so every dialect quotes
and binds correctly).

Tables and columns are looked up case-insensitively among what the database actually has (PostgreSQL
folds unquoted names to lower case, MariaDB and SQLite keep them): the HIS may have created ``XML1`` or
``xml1``, with ``MA_LK`` or ``ma_lk``. A column the standard defines but the view lacks is simply not
read (``adapters check`` lists it); only ``MA_LK`` and the columns the completion rule needs are required.
Every selected column is labelled with its standard name, so the order of columns in the view (for
example the XML2/XML3 money columns) does not matter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapters.his.base import CHANGED, KEY
from adapters.his.options import Completion
from adapters.his.paging import After
from adapters.his.qd130_tables.config import Qd130TablesOptions, standard_columns, table_ids

STATUS = "STATUS"
HIV_FLAG = "HIV_RESTRICTED"
#: XML1 columns listed with each encounter besides key, times and status.
LISTED = ("MA_LOAI_KCB", "MA_KHOA", "MA_DOITUONG_KCB")


@dataclass(frozen=True, slots=True)
class BoundTable:
    """One QĐ 130 table found in the database, its standard columns resolved to real ones."""

    table_id: str
    table: sa.Table
    columns: dict[str, sa.Column[Any]]  # standard (or pseudo) name → column
    missing: tuple[str, ...]  # standard columns the table does not have
    bad_renames: tuple[str, ...]  # configured renames whose HIS column does not exist

    def column(self, name: str) -> sa.Column[Any] | None:
        return self.columns.get(name)


@dataclass(frozen=True, slots=True)
class Catalogue:
    tables: dict[str, BoundTable] = field(default_factory=dict)
    absent: tuple[str, ...] = ()  # configured tables not found in the database


def reflect(conn: Connection, options: Qd130TablesOptions) -> Catalogue:
    inspector = sa.inspect(conn)
    names = [
        *inspector.get_table_names(schema=options.db_schema),
        *inspector.get_view_names(schema=options.db_schema),
    ]
    by_lower = {name.lower(): name for name in names}
    tables: dict[str, BoundTable] = {}
    absent: list[str] = []
    for table_id in table_ids():
        configured = options.table_name(table_id)
        if configured is None:
            continue
        actual = by_lower.get(configured.lower())
        if actual is None:
            absent.append(table_id)
            continue
        table = sa.Table(actual, sa.MetaData(), schema=options.db_schema, autoload_with=conn)
        tables[table_id] = _bind(table_id, table, options)
    return Catalogue(tables, tuple(absent))


def _bind(table_id: str, table: sa.Table, options: Qd130TablesOptions) -> BoundTable:
    by_lower = {column.name.lower(): column for column in table.columns}
    renames = options.renames(table_id)
    columns: dict[str, sa.Column[Any]] = {}
    missing: list[str] = []
    bad: list[str] = []
    for name in standard_columns(table_id):
        wanted = renames.get(name, name)
        column = by_lower.get(wanted.lower())
        if column is not None:
            columns[name] = column
        else:
            (bad if name in renames else missing).append(name)
    extras: dict[str, str | None] = {}
    if table_id == "XML1":
        extras[CHANGED] = options.changed_at_column
        if options.completion is Completion.STATUS:
            extras[STATUS] = options.status_column
    elif table_id in ("XML2", "XML3", "XML4"):
        extras[HIV_FLAG] = options.hiv_flag_column
    for pseudo, column_name in extras.items():
        if column_name is not None:
            column = by_lower.get(column_name.lower())
            if column is not None:
                columns[pseudo] = column
            else:
                bad.append(pseudo)
    return BoundTable(table_id, table, columns, tuple(missing), tuple(bad))


# ------------------------------------------------------------------------------------------------ listing


def completed_clause(xml1: BoundTable, options: Qd130TablesOptions) -> sa.ColumnElement[bool]:
    time_column = xml1.columns[options.completion_time_field]
    clause: sa.ColumnElement[bool] = time_column.is_not(None)
    if options.time_format != "native":
        clause = sa.and_(clause, time_column != "")
    if options.completion is Completion.STATUS:
        clause = sa.and_(clause, xml1.columns[STATUS].in_(options.status_values))
    return clause


def changed_column(xml1: BoundTable, options: Qd130TablesOptions) -> sa.Column[Any]:
    changed = xml1.columns.get(CHANGED)
    return changed if changed is not None else xml1.columns[options.completion_time_field]


def _listing(xml1: BoundTable, options: Qd130TablesOptions) -> sa.Select[Any]:
    key = xml1.columns["MA_LK"]
    completion = options.completion_time_field
    selected: list[sa.ColumnElement[Any]] = [
        key.label(KEY),
        changed_column(xml1, options).label(CHANGED),
        xml1.columns[completion].label(completion),
    ]
    selected += [xml1.columns[name].label(name) for name in LISTED if name in xml1.columns]
    return sa.select(*selected).where(completed_clause(xml1, options))


def _after(time_column: sa.Column[Any], key: sa.Column[Any], after: After) -> sa.ColumnElement[bool]:
    # The leading ">=" is redundant but sargable: an index range scan starts at the last row.
    return sa.and_(
        time_column >= after.time,
        sa.or_(time_column > after.time, sa.and_(time_column == after.time, key > after.key)),
    )


def discover_page(
    xml1: BoundTable, options: Qd130TablesOptions, *, lower: object | None, after: After | None, limit: int
) -> sa.Select[Any]:
    changed = changed_column(xml1, options)
    key = xml1.columns["MA_LK"]
    query = _listing(xml1, options).where(changed.is_not(None))
    if lower is not None:
        query = query.where(changed >= lower)
    if after is not None:
        query = query.where(_after(changed, key, after))
    return query.order_by(changed, key).limit(limit)


def completed_page(
    xml1: BoundTable,
    options: Qd130TablesOptions,
    *,
    start: object,
    end: object,
    after: After | None,
    limit: int,
) -> sa.Select[Any]:
    time_column = xml1.columns[options.completion_time_field]
    key = xml1.columns["MA_LK"]
    query = _listing(xml1, options).where(time_column >= start, time_column < end)
    if after is not None:
        query = query.where(_after(time_column, key, after))
    return query.order_by(time_column, key).limit(limit)


def completed_keys(
    xml1: BoundTable, options: Qd130TablesOptions, *, start: object, end: object
) -> sa.Select[Any]:
    """The MA_LK alone of every encounter completed in [start, end), unordered."""
    time_column = xml1.columns[options.completion_time_field]
    return sa.select(xml1.columns["MA_LK"]).where(
        completed_clause(xml1, options), time_column >= start, time_column < end
    )


def listed_rows(xml1: BoundTable, options: Qd130TablesOptions, his_keys: Sequence[object]) -> sa.Select[Any]:
    """The list rows (as ``completed_page``) of the given keys, when completed."""
    return _listing(xml1, options).where(xml1.columns["MA_LK"].in_(his_keys))


# ------------------------------------------------------------------------------------------------ loading


def _encounter(xml1: BoundTable, options: Qd130TablesOptions) -> sa.Select[Any]:
    selected = [column.label(name) for name, column in xml1.columns.items() if name not in (CHANGED, STATUS)]
    return sa.select(*selected).where(completed_clause(xml1, options))


def encounter_row(xml1: BoundTable, options: Qd130TablesOptions, his_key: object) -> sa.Select[Any]:
    return _encounter(xml1, options).where(xml1.columns["MA_LK"] == his_key)


def encounter_rows(
    xml1: BoundTable, options: Qd130TablesOptions, his_keys: Sequence[object]
) -> sa.Select[Any]:
    """``encounter_row`` of several encounters (their MA_LK is selected with the other XML1 columns)."""
    return _encounter(xml1, options).where(xml1.columns["MA_LK"].in_(his_keys))


def _lines(bound: BoundTable) -> sa.Select[Any]:
    query = sa.select(*(column.label(name) for name, column in bound.columns.items()))
    order: Sequence[sa.Column[Any]] = [
        bound.columns[name] for name in ("STT", "NGAY_YL") if name in bound.columns
    ]
    return query.order_by(*order) if order else query


def section_rows(bound: BoundTable, his_key: object) -> sa.Select[Any]:
    return _lines(bound).where(bound.columns["MA_LK"] == his_key)


def section_rows_many(bound: BoundTable, his_keys: Sequence[object]) -> sa.Select[Any]:
    """``section_rows`` of several encounters in one query, ordered as each encounter's own query orders."""
    return _lines(bound).where(bound.columns["MA_LK"].in_(his_keys))


def time_parameter(value: datetime, options: Qd130TablesOptions) -> object:
    """A bound for a completion/change column: naive wall-clock time, or yyyyMMddHHmm text."""
    local = value.astimezone(options.zone).replace(tzinfo=None) if value.tzinfo else value
    return local.strftime("%Y%m%d%H%M") if options.time_format == "yyyyMMddHHmm" else local
