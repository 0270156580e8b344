"""The mapping file of the ``sql_mapping`` adapter (TOML or YAML): its model, loading and validation.

Shape (see docs/adapters.md for a full example)::

    version = 1
    [encounters]            # one row per encounter: HIS_KEY, CHANGED_AT and the completion columns
    sql = "SELECT ... AS HIS_KEY, ... AS CHANGED_AT, ... AS NGAY_RA FROM ..."
    maps = { MA_KHOA = "department" }

    [sections.visit]        # one query per section, filtered by :his_key, columns aliased to standard names
    sql = "SELECT ... WHERE v.code = :his_key"
    batch_sql = "SELECT v.code AS HIS_KEY, ... WHERE v.code IN :his_keys"   # optional: many encounters at once
    maps = { MA_KHOA = "department" }
    defaults = { MA_CSKCB = "{facility_code}" }

    [sections.patient]
    same_row_as = "visit"   # the visit query already returns the patient's columns

    [value_maps.department]
    values = { NOI = "K03", NGOAI = "K19" }
    unmapped = "error"      # error | keep | empty
    separator = ","         # the HIS separates several codes with this; we write ";"

Every error names the file, the section and the column it is about.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from adapters.his.assemble import field_types, sections
from adapters.his.errors import MappingError

#: Named parameters a query may use.
PARAMETERS = frozenset({"his_key", "since", "start", "end", "facility_code"})
#: The list of keys a section's batch query selects with ``IN :his_keys`` (expanded by SQLAlchemy).
BATCH_KEYS = "his_keys"
BATCH_PARAMETERS = frozenset({BATCH_KEYS, "facility_code"})
#: Optional columns of the encounters query the adapter reads (besides HIS_KEY, CHANGED_AT, completion).
ENCOUNTER_OPTIONAL = frozenset({"MA_LK", "MA_LOAI_KCB", "MA_KHOA", "MA_DOITUONG_KCB", "INSURED", "STATUS"})
#: Standard multi-value separator (DOMAIN.md §7).
STANDARD_SEPARATOR = ";"
FACILITY_PLACEHOLDER = "{facility_code}"

# Same rule as SQLAlchemy's text(): ":name" not preceded by ":" or a word character, not followed by ":".
_PARAMETER = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")
_PARENTHESISED_KEYS = re.compile(rf"\(\s*:{BATCH_KEYS}\s*\)")

DefaultValue = str | int | float | bool


class UnmappedCodeError(LookupError):
    """A value map has no entry for a value (the value is kept on the exception, never in its message)."""

    def __init__(self, map_name: str, code: str) -> None:
        super().__init__(f"value map {map_name!r} has no entry for this code")
        self.map_name = map_name
        self.code = code


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ValueMap(_Strict):
    """Local codes → standard codes (sex, department, diagnosis, visit type …)."""

    values: dict[str, str | int] = Field(description="Local code → standard code.")
    unmapped: Literal["error", "keep", "empty"] = Field(
        "error", description="A code not in values: reject the encounter, keep it as is, or leave it empty."
    )
    separator: str | None = Field(
        None, description="The field holds several codes separated by this; each is mapped, joined with ';'."
    )

    @field_validator("values", mode="before")
    @classmethod
    def _string_keys(cls, value: Any) -> Any:
        # YAML reads `1: 1` with an integer key; the HIS value is compared as text anyway.
        return {str(key): item for key, item in value.items()} if isinstance(value, dict) else value

    def translate(self, name: str, value: object) -> object:
        """The standard code for ``value``; raises ``UnmappedCodeError`` when unmapped = error."""
        if value is None:
            return None
        text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        if self.separator is None:
            return self._one(name, text.strip())
        parts = [part.strip() for part in text.split(self.separator) if part.strip()]
        mapped = [self._one(name, part) for part in parts]
        kept = [str(item) for item in mapped if item is not None]
        return STANDARD_SEPARATOR.join(kept) if kept else None

    def _one(self, name: str, code: str) -> object:
        if code in self.values:
            return self.values[code]
        if self.unmapped == "keep":
            return code
        if self.unmapped == "empty" or code == "":
            return None
        raise UnmappedCodeError(name, code)


class EncounterQuery(_Strict):
    sql: str = Field(description="One row per encounter: HIS_KEY, CHANGED_AT and the completion columns.")
    maps: dict[str, str] = Field(default_factory=dict, description="Column → value map name.")


class SectionQuery(_Strict):
    sql: str | None = Field(None, description="Rows of this section for one encounter (:his_key).")
    batch_sql: str | None = Field(
        None,
        description="Optional: the same rows for many encounters (IN :his_keys), each with its HIS_KEY column.",
    )
    same_row_as: str | None = Field(
        None, description="Reuse the row of another single-row section's query instead of a query."
    )
    maps: dict[str, str] = Field(default_factory=dict, description="Standard field → value map name.")
    defaults: dict[str, DefaultValue] = Field(
        default_factory=dict, description="Standard field → constant used when the column is missing or NULL."
    )


class MappingFile(_Strict):
    version: Literal[1] = 1
    description: str = ""
    encounters: EncounterQuery
    sections: dict[str, SectionQuery]
    value_maps: dict[str, ValueMap] = Field(default_factory=dict)


def query_parameters(sql: str) -> set[str]:
    return set(_PARAMETER.findall(sql))


def load_mapping(path: Path) -> MappingFile:
    """Read and validate a mapping file; every problem is a ``MappingError`` naming file/section/column."""
    try:
        raw_text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError(f"cannot read the mapping file ({type(exc).__name__})", file=path) from exc
    is_yaml = path.suffix.lower() in (".yaml", ".yml")
    try:
        data = yaml.safe_load(raw_text) if is_yaml else tomllib.loads(raw_text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise MappingError(f"not valid {'YAML' if is_yaml else 'TOML'}: {exc}", file=path) from exc
    if not isinstance(data, dict):
        raise MappingError("the file must hold a table/mapping at the top level", file=path)
    try:
        mapping = MappingFile.model_validate(data)
    except ValidationError as exc:
        raise _first_problem(exc, path) from None
    validate_mapping(mapping, path)
    return mapping


def _first_problem(exc: ValidationError, path: Path) -> MappingError:
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    section = column = None
    if loc and loc[0] == "sections" and len(loc) > 1:
        section = loc[1]
        column = loc[3] if len(loc) > 3 and loc[2] in ("maps", "defaults") else None
    elif loc and loc[0] == "encounters":
        section = "encounters"
        column = loc[2] if len(loc) > 2 and loc[1] == "maps" else None
    elif loc and loc[0] == "value_maps" and len(loc) > 1:
        section = f"value_maps.{loc[1]}"
    message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
    others = f" (and {len(exc.errors()) - 1} more problems)" if len(exc.errors()) > 1 else ""
    return MappingError(f"{'.'.join(loc)}: {message}{others}", file=path, section=section, column=column)


def validate_mapping(mapping: MappingFile, path: Path) -> None:
    """The checks pydantic cannot express: names of sections, fields, maps and parameters."""
    _check_parameters(mapping.encounters.sql, path, "encounters", needs_key=False)
    for column, map_name in mapping.encounters.maps.items():
        if map_name not in mapping.value_maps:
            raise MappingError(
                f"unknown value map {map_name!r}", file=path, section="encounters", column=column
            )
    for name, section in mapping.sections.items():
        _validate_section(mapping, path, name, section)
    for required in ("patient", "visit"):
        if required not in mapping.sections:
            raise MappingError("required section is missing", file=path, section=required)


def _validate_section(mapping: MappingFile, path: Path, name: str, section: SectionQuery) -> None:
    known = sections()
    if name not in known:
        raise MappingError(f"unknown section; known: {', '.join(sorted(known))}", file=path, section=name)
    if (section.sql is None) == (section.same_row_as is None):
        raise MappingError("give exactly one of sql and same_row_as", file=path, section=name)
    if section.sql is not None:
        _check_parameters(section.sql, path, name, needs_key=True)
    if section.batch_sql is not None:
        _check_batch_parameters(section, path, name)
    if section.same_row_as is not None:
        target = mapping.sections.get(section.same_row_as)
        target_spec = known.get(section.same_row_as)
        if (
            known[name].many
            or target is None
            or target.sql is None
            or target_spec is None
            or target_spec.many
        ):
            raise MappingError(
                f"same_row_as joins two single-row sections; {section.same_row_as!r} must be one with its own sql",
                file=path,
                section=name,
            )
    fields = field_types(known[name].cls)
    for column, map_name in section.maps.items():
        if column.upper() not in fields:
            raise MappingError(f"not a field of section {name}", file=path, section=name, column=column)
        if map_name not in mapping.value_maps:
            raise MappingError(f"unknown value map {map_name!r}", file=path, section=name, column=column)
    for column in section.defaults:
        if column.upper() not in fields:
            raise MappingError(f"not a field of section {name}", file=path, section=name, column=column)


def _check_parameters(sql: str, path: Path, section: str, *, needs_key: bool) -> None:
    used = query_parameters(sql)
    unknown = sorted(used - PARAMETERS)
    if unknown:
        raise MappingError(
            f"unknown parameter :{unknown[0]}; allowed: {', '.join(':' + p for p in sorted(PARAMETERS))}",
            file=path,
            section=section,
        )
    if needs_key and "his_key" not in used:
        raise MappingError(
            "the query must select one encounter's rows with :his_key", file=path, section=section
        )
    if not needs_key and "his_key" in used:
        raise MappingError(":his_key is not available in the encounters query", file=path, section=section)


def _check_batch_parameters(section: SectionQuery, path: Path, name: str) -> None:
    assert section.batch_sql is not None
    if section.sql is None:
        raise MappingError(
            "batch_sql needs sql: the one-encounter query stays the reference it is checked against",
            file=path,
            section=name,
        )
    used = query_parameters(section.batch_sql)
    unknown = sorted(used - BATCH_PARAMETERS)
    if unknown:
        raise MappingError(
            f"batch_sql: unknown parameter :{unknown[0]}; allowed: "
            f"{', '.join(':' + p for p in sorted(BATCH_PARAMETERS))}",
            file=path,
            section=name,
        )
    if BATCH_KEYS not in used:
        raise MappingError(
            f"batch_sql must select the encounters' rows with IN :{BATCH_KEYS}", file=path, section=name
        )
    if _PARENTHESISED_KEYS.search(section.batch_sql):
        raise MappingError(
            f"batch_sql: write IN :{BATCH_KEYS} without parentheses (the key list brings its own)",
            file=path,
            section=name,
        )
