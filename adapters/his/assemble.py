"""From rows keyed by standard field names to the canonical ``Encounter``.

Both SQL-reading adapters end here: they produce, per section of the encounter (``patient``, ``visit``,
``drug_lines`` … the attribute names of ``Encounter``), the rows their queries returned. This module checks
the row counts, normalises values the drivers return in their own ways (times without zone, ISO dates from
SQLite, bytes), coerces with ``schemas.domain.coerce.build_section`` and builds the dataclass.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from adapters.his.errors import EncounterDataError
from adapters.his.timeconv import parse_his_time
from schemas.domain import BirthDate, Encounter
from schemas.domain.coerce import CoercionError, build_section

#: Encounter attributes that are not sections.
_NOT_SECTIONS = frozenset({"ma_lk", "his_key", "completed_at"})
REQUIRED_SECTIONS = ("patient", "visit")


@dataclass(frozen=True, slots=True)
class SectionSpec:
    name: str  # attribute of Encounter
    cls: type[Any]  # the record dataclass
    many: bool  # a tuple of rows (True) or at most one row (False)

    @property
    def table(self) -> str:
        return str(self.cls.TABLE)


@cache
def sections() -> dict[str, SectionSpec]:
    """Every section of ``Encounter``, read from its annotations (so new sections appear by themselves)."""
    hints = typing.get_type_hints(Encounter)
    result: dict[str, SectionSpec] = {}
    for fld in dataclasses.fields(Encounter):
        if fld.name in _NOT_SECTIONS:
            continue
        hint = hints[fld.name]
        origin = typing.get_origin(hint)
        if origin is tuple:
            result[fld.name] = SectionSpec(fld.name, typing.get_args(hint)[0], many=True)
        else:
            args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
            result[fld.name] = SectionSpec(fld.name, args[0] if args else hint, many=False)
    return result


_FIELD_TYPES: dict[type[Any], dict[str, type[Any]]] = {}


def field_types(cls: type[Any]) -> dict[str, type[Any]]:
    """Upper-case standard field name → the field's value type (Optional removed)."""
    cached = _FIELD_TYPES.get(cls)
    if cached is None:
        hints = typing.get_type_hints(cls)
        cached = {}
        for fld in dataclasses.fields(cls):
            args = [arg for arg in typing.get_args(hints[fld.name]) if arg is not type(None)]
            cached[fld.name.upper()] = args[0] if args else hints[fld.name]
        _FIELD_TYPES[cls] = cached
    return cached


def normalise_row(cls: type[Any], row: Mapping[str, object], zone: ZoneInfo) -> dict[str, object]:
    """Upper-case keys, keep only fields of ``cls``, and bring driver-specific time values to one shape."""
    types = field_types(cls)
    result: dict[str, object] = {}
    for key, raw in row.items():
        name = key if key in types else key.upper()  # the adapters' rows are upper-cased already
        target = types.get(name)
        if target is not None:
            result[name] = None if raw is None else _normalise_value(target, raw, zone)
    return result


def _normalise_value(target: type[Any], value: object, zone: ZoneInfo) -> object:
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if value is None:
        return None
    if target is datetime:
        return None if isinstance(value, str) and not value.strip() else parse_his_time(value, zone)
    if target is BirthDate and isinstance(value, str) and len(value.strip()) >= 10 and "-" in value:
        # SQLite returns DATE columns as ISO text; BirthDate.parse wants yyyyMMdd[HHmm].
        return date.fromisoformat(value.strip()[:10])
    if target is date and isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(zone).date()
    return value


def build_encounter(
    *,
    his_key: str,
    ma_lk: str,
    completed_at: datetime | None,
    rows: Mapping[str, Sequence[Mapping[str, object]]],
    zone: ZoneInfo,
) -> Encounter:
    """Build the encounter; ``rows`` maps section name → rows (missing section = no rows)."""
    values: dict[str, Any] = {}
    for name, spec in sections().items():
        section_rows = rows.get(name, ())
        if not spec.many and len(section_rows) > 1:
            raise EncounterDataError(
                his_key, f"{len(section_rows)} rows where at most one is allowed", section=name
            )
        if name in REQUIRED_SECTIONS and not section_rows:
            raise EncounterDataError(his_key, "no row", section=name)
        built = []
        for row in section_rows:
            try:
                built.append(build_section(spec.cls, normalise_row(spec.cls, row, zone)))
            except CoercionError as exc:
                raise EncounterDataError(
                    his_key,
                    f"cannot read the value as {exc.expected}",
                    section=name,
                    column=exc.field_name.upper(),
                ) from exc
            except (TypeError, ValueError) as exc:
                raise EncounterDataError(
                    his_key, f"invalid row ({type(exc).__name__})", section=name
                ) from exc
        if spec.many:
            values[name] = tuple(built)
        elif built:
            values[name] = built[0]
    return Encounter(ma_lk=ma_lk, his_key=his_key, completed_at=completed_at, **values)
