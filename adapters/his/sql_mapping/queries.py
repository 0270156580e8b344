"""The SQL the ``sql_mapping`` adapter runs around the hospital's own queries.

The encounters query is wrapped as a derived table ``q`` and filtered, ordered and paged outside it, so its
author only has to return the right columns: the adapter adds the completion rule, the watermark or date
range, and keyset paging on (time, HIS_KEY). Column references are unquoted upper-case aliases, which every
supported database resolves case-insensitively (so do not quote the aliases in the mapping file).

Only our own constants, validated option names and integers are formatted into the SQL; every value is a
bound parameter (hence the ``noqa: S608`` below).
"""

from __future__ import annotations

from adapters.his.base import CHANGED, KEY
from adapters.his.options import Completion
from adapters.his.sql_mapping.config import SqlMappingOptions


def strip_sql(sql: str) -> str:
    """The query text without surrounding blanks or a trailing semicolon (it becomes a subquery)."""
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text


def status_parameters(options: SqlMappingOptions) -> dict[str, object]:
    return {f"status_{index}": value for index, value in enumerate(options.status_values)}


def completed_condition(options: SqlMappingOptions) -> str:
    time_column = options.completion_time_field
    condition = f"q.{time_column} IS NOT NULL"
    if options.completion is Completion.STATUS:
        placeholders = ", ".join(f":status_{index}" for index in range(len(options.status_values)))
        condition += f" AND q.STATUS IN ({placeholders})"
    return condition


def _after(time_column: str) -> str:
    # The leading ">=" is redundant but sargable: it lets the database start an index range scan at the
    # last row instead of filtering everything before it (the OR alone defeats the index).
    return (
        f"q.{time_column} >= :after_time"
        f" AND (q.{time_column} > :after_time OR (q.{time_column} = :after_time AND q.{KEY} > :after_key))"
    )


def discover_page(base_sql: str, options: SqlMappingOptions, *, lower: bool, after: bool, limit: int) -> str:
    # A row without a change time cannot be placed on the watermark: only the sweep sees it.
    conditions = [completed_condition(options), f"q.{CHANGED} IS NOT NULL"]
    if lower:
        conditions.append(f"q.{CHANGED} >= :lower")
    if after:
        conditions.append(_after(CHANGED))
    where = " AND ".join(conditions)
    return f"SELECT q.* FROM ({strip_sql(base_sql)}) q WHERE {where} ORDER BY q.{CHANGED}, q.{KEY} LIMIT {int(limit)}"  # noqa: S608  # see module docstring


def completed_page(base_sql: str, options: SqlMappingOptions, *, after: bool, limit: int) -> str:
    time_column = options.completion_time_field
    conditions = [
        completed_condition(options),
        f"q.{time_column} >= :range_start",
        f"q.{time_column} < :range_end",
    ]
    if after:
        conditions.append(_after(time_column))
    where = " AND ".join(conditions)
    return f"SELECT q.* FROM ({strip_sql(base_sql)}) q WHERE {where} ORDER BY q.{time_column}, q.{KEY} LIMIT {int(limit)}"  # noqa: S608  # see module docstring


def completed_keys(base_sql: str, options: SqlMappingOptions) -> str:
    """The HIS_KEY alone of every encounter completed in [:range_start, :range_end), unordered."""
    time_column = options.completion_time_field
    where = (
        f"{completed_condition(options)} AND q.{time_column} >= :range_start AND q.{time_column} < :range_end"
    )
    return f"SELECT q.{KEY} FROM ({strip_sql(base_sql)}) q WHERE {where}"  # noqa: S608  # see module docstring


#: The parameters of ``one_encounter`` and ``encounters_by_key`` (named apart from the :his_key of sections).
ONE_KEY = "his_key_value"
MANY_KEYS = "his_key_values"


def one_encounter(base_sql: str, options: SqlMappingOptions) -> str:
    return f"SELECT q.* FROM ({strip_sql(base_sql)}) q WHERE q.{KEY} = :{ONE_KEY} AND {completed_condition(options)}"  # noqa: S608  # see module docstring


def encounters_by_key(base_sql: str, options: SqlMappingOptions) -> str:
    """``one_encounter`` for a list of keys, bound as an expanding parameter (``IN :his_key_values``)."""
    return f"SELECT q.* FROM ({strip_sql(base_sql)}) q WHERE q.{KEY} IN :{MANY_KEYS} AND {completed_condition(options)}"  # noqa: S608  # see module docstring


def sample(base_sql: str, limit: int) -> str:
    return f"SELECT q.* FROM ({strip_sql(base_sql)}) q LIMIT {int(limit)}"  # noqa: S608  # see module docstring
