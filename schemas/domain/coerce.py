"""Turn loosely typed values (database rows, mapping files) into the canonical section types.

Adapters read rows whose columns carry the standard field names; this module converts each value to the
annotated type of the section field: ``Decimal`` for money, aware datetimes in Vietnam time, ``BirthDate``…
A value that cannot be converted raises ``CoercionError`` naming the field (never echoing the value).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from schemas.domain.values import VIETNAM_TZ, BirthDate, compact_moment

T = TypeVar("T")


class CoercionError(ValueError):
    def __init__(self, section: str, field_name: str, expected: str) -> None:
        super().__init__(f"{section}.{field_name}: cannot read the value as {expected}")
        self.section = section
        self.field_name = field_name
        self.expected = expected


_FIELD_TYPES: dict[type[Any], dict[str, type[Any]]] = {}


def _field_types(cls: type[Any]) -> dict[str, type[Any]]:
    cached = _FIELD_TYPES.get(cls)
    if cached is None:
        cached = _FIELD_TYPES[cls] = _resolve_field_types(cls)
    return cached


def _resolve_field_types(cls: type[Any]) -> dict[str, type[Any]]:
    hints = typing.get_type_hints(cls)
    result: dict[str, type[Any]] = {}
    for fld in dataclasses.fields(cls):
        hint = hints[fld.name]
        args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        result[fld.name] = args[0] if args else hint
    return result


def field_names(cls: type[Any]) -> frozenset[str]:
    return frozenset(_field_types(cls))


def _to_datetime(value: object) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=VIETNAM_TZ) if value.tzinfo is None else value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=VIETNAM_TZ)
    text = str(value).strip()
    if text.isdigit() and len(text) in (12, 14):
        return compact_moment(text[:12]).replace(tzinfo=VIETNAM_TZ)
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=VIETNAM_TZ) if parsed.tzinfo is None else parsed


def _to_date(value: object) -> date:
    if isinstance(value, datetime):
        return (value.astimezone(VIETNAM_TZ) if value.tzinfo else value).date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    if text.isdigit() and len(text) == 8:
        return compact_moment(text).date()
    return date.fromisoformat(text[:10])


def _to_birth(value: object) -> BirthDate:
    if isinstance(value, BirthDate):
        return value
    if isinstance(value, datetime):
        return BirthDate.from_datetime(value)
    if isinstance(value, date):
        return BirthDate.from_date(value)
    return BirthDate.parse(str(value))


def _to_int(value: object) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal | float):
        if value != int(value):
            raise ValueError("not an integer")
        return int(value)
    return int(str(value).strip())


def _to_decimal(value: object) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        # Floats come from drivers that lost the DECIMAL type; go through repr to avoid binary noise.
        return Decimal(repr(value))
    return Decimal(str(value).strip())


def _to_str(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


_CONVERTERS: dict[type[Any], typing.Callable[[object], object]] = {
    str: _to_str,
    int: _to_int,
    Decimal: _to_decimal,
    datetime: _to_datetime,
    date: _to_date,
    BirthDate: _to_birth,
    bool: lambda value: bool(_to_int(value)) if not isinstance(value, bool) else value,
}


def coerce_value(cls: type[Any], name: str, value: object) -> object:
    if value is None:
        return None
    target = _field_types(cls)[name]
    if type(value) is target and target is not datetime:  # already converted (aware datetimes are checked)
        return value
    if isinstance(value, str) and target is not str and not value.strip():
        return None
    try:
        return _CONVERTERS[target](value)
    except (ValueError, TypeError, InvalidOperation, ArithmeticError) as exc:
        raise CoercionError(cls.__name__, name, target.__name__) from exc


def build_section(cls: type[T], row: Mapping[str, object]) -> T:
    """Build a section from a row keyed by standard field names (any case); unknown keys are ignored."""
    known = _field_types(cls)
    values: dict[str, object] = {}
    for key, value in row.items():
        name = key.lower()
        if name in known:
            values[name] = coerce_value(cls, name, value)
    return cls(**values)
