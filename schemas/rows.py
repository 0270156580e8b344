"""Where each element of each table takes its value from, and the rendering of one row to element texts.

A field of table T is resolved, in order: MA_LK from ``encounter.ma_lk``; STT as the row counter (1..n per
table); the table's own section; else the encounter's Patient/Visit when ``INHERITED_FIELDS`` says so.
``FIELD_SOURCES`` lists the exceptions as data — the QĐ 3176 renames of XML13 and the documented fallbacks —
so that a confirmed XSD can correct them in one place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from operator import attrgetter

from schemas import formatting
from schemas.constraints import decimal_places, effective_type
from schemas.domain.encounter import Encounter
from schemas.domain.records import (
    INHERITED_FIELDS,
    BirthCertificate,
    ClinicalNote,
    ClsResult,
    DischargePaper,
    DrugLine,
    FirstCost,
    FollowUp,
    HivCare,
    Patient,
    PregnancyRestCertificate,
    RecordSummary,
    Referral,
    ServiceLine,
    SickLeaveCertificate,
    TbTreatment,
    Visit,
)
from schemas.domain.values import BirthDate
from schemas.formatting import ValueFormatError
from schemas.spec import FieldType, Profile, table_fields

#: Table → (Encounter attribute holding its rows, section class). XML1 is built from Patient + Visit.
SECTIONS: dict[str, tuple[str, type]] = {
    "XML0": ("first_cost", FirstCost),
    "XML2": ("drug_lines", DrugLine),
    "XML3": ("service_lines", ServiceLine),
    "XML4": ("cls_results", ClsResult),
    "XML5": ("clinical_notes", ClinicalNote),
    "XML6": ("hiv_care", HivCare),
    "XML7": ("discharge_papers", DischargePaper),
    "XML8": ("record_summary", RecordSummary),
    "XML9": ("birth_certificates", BirthCertificate),
    "XML10": ("pregnancy_rest", PregnancyRestCertificate),
    "XML11": ("sick_leave", SickLeaveCertificate),
    "XML13": ("referral", Referral),
    "XML14": ("follow_up", FollowUp),
    "XML15": ("tb_treatments", TbTreatment),
}

#: Value computed from other tables of the visit (see ``derived_values``).
DERIVED = "derived:"
#: The facility code of the options, used when the HIS leaves MA_CSKCB empty.
FACILITY = "options:facility_code"

#: (table, element) → sources tried in order; a source is a standard field name (section first, then
#: Patient/Visit), ``DERIVED + name`` or ``FACILITY``. Anything not listed resolves from its own name.
FIELD_SOURCES: dict[tuple[str, str], tuple[str, ...]] = {
    # QĐ 3176 XML13 renames (DOMAIN.md §15 row 18) — the 4750 field the value comes from.
    ("XML13", "MA_CSKCB_DI"): ("MA_NOI_DI",),
    ("XML13", "MA_CSKCB_DEN"): ("MA_NOI_DEN",),
    ("XML13", "TINH_TRANG_CT"): ("PP_DIEU_TRI",),
    # §15 row 12: XML13 PP_DIEUTRI "from Bảng 1", which only has PP_DIEU_TRI.
    ("XML13", "PP_DIEUTRI"): ("PP_DIEU_TRI", "PP_DIEUTRI"),
    # [P] XML13 TEN_THUOC is "taken from XML2 TEN_THUOC"; [I] TEN_DICH_VU likewise from XML3.
    ("XML13", "TEN_THUOC"): ("TEN_THUOC", DERIVED + "XML2.TEN_THUOC"),
    ("XML13", "TEN_DICH_VU"): ("TEN_DICH_VU", DERIVED + "XML3.TEN_DICH_VU"),
    # [P] XML3 MA_BENH: "empty means the main disease" — written out, since S2 marks it required.
    ("XML3", "MA_BENH"): ("MA_BENH", "MA_BENH_CHINH"),
    # [P] XML7 MA_YTE is "the patient code MA_BN of XML1".
    ("XML7", "MA_YTE"): ("MA_YTE", "MA_BN"),
}
for _table in ("XML0", "XML1", "XML6", "XML13", "XML14", "XML15"):
    FIELD_SOURCES[(_table, "MA_CSKCB")] = ("MA_CSKCB", FACILITY)


@dataclass(frozen=True, slots=True)
class RowContext:
    encounter: Encounter
    section: object | None
    stt: int
    facility_code: str
    derived: Mapping[str, object] = field(default_factory=dict)


Getter = Callable[[RowContext], object]
_PATIENT_FIELDS = frozenset(f.name for f in dataclasses.fields(Patient))
_VISIT_FIELDS = frozenset(f.name for f in dataclasses.fields(Visit))


def _encounter_getter(snake: str) -> Getter | None:
    if snake in _PATIENT_FIELDS:
        get_patient = attrgetter(snake)
        return lambda ctx: get_patient(ctx.encounter.patient)
    if snake in _VISIT_FIELDS:
        get_visit = attrgetter(snake)
        return lambda ctx: get_visit(ctx.encounter.visit)
    return None


def _source_getter(table: str, source: str, *, explicit: bool) -> Getter | None:
    if source == FACILITY:
        return lambda ctx: ctx.facility_code
    if source.startswith(DERIVED):
        key = source.removeprefix(DERIVED)
        return lambda ctx: ctx.derived.get(key)
    snake = source.lower()
    section_cls = SECTIONS.get(table, (None, None))[1]
    if section_cls is not None and snake in {f.name for f in dataclasses.fields(section_cls)}:
        get_section = attrgetter(snake)
        return lambda ctx: get_section(ctx.section) if ctx.section is not None else None
    if table == "XML1" or explicit or source in INHERITED_FIELDS.get(table, frozenset()):
        return _encounter_getter(snake)
    return None


def _first_filled(getters: Sequence[Getter]) -> Getter:
    if len(getters) == 1:
        return getters[0]

    def get(ctx: RowContext) -> object:
        for getter in getters:
            value = getter(ctx)
            if value is not None and value != "":
                return value
        return None

    return get


def _getter(table: str, name: str) -> Getter:
    if name == "MA_LK":
        return lambda ctx: ctx.encounter.ma_lk
    if name == "STT":
        return lambda ctx: ctx.stt
    sources = FIELD_SOURCES.get((table, name))
    explicit = sources is not None
    getters = [
        getter
        for source in (sources or (name,))
        if (getter := _source_getter(table, source, explicit=explicit)) is not None
    ]
    if not getters:
        return lambda ctx: None  # a field the canonical model does not carry (e.g. a profile-only field)
    return _first_filled(getters)


#: Where a plainly resolved field lives in :func:`render_row`'s holder tuple.
SECTION, PATIENT, VISIT, COMPUTED = 0, 1, 2, -1


@dataclass(frozen=True, slots=True)
class CompiledField:
    """One element of a table: its name, how its text is formed, and where its value comes from — a plain
    attribute of the section/Patient/Visit (``holder``/``attr``, the fast path) or a ``get`` function."""

    name: str
    kind: FieldType
    places: int
    holder: int
    attr: str
    get: Getter | None


def _plain_source(table: str, name: str) -> tuple[int, str] | None:
    """(holder, attribute) when the field is simply one attribute, else None."""
    if name in ("MA_LK", "STT") or (table, name) in FIELD_SOURCES:
        return None
    snake = name.lower()
    section_cls = SECTIONS.get(table, (None, None))[1]
    if section_cls is not None and snake in {f.name for f in dataclasses.fields(section_cls)}:
        return SECTION, snake
    if table == "XML1" or name in INHERITED_FIELDS.get(table, frozenset()):
        if snake in _PATIENT_FIELDS:
            return PATIENT, snake
        if snake in _VISIT_FIELDS:
            return VISIT, snake
    return None


def _compile(table: str, spec_name: str, kind: FieldType, places: int) -> CompiledField:
    plain = _plain_source(table, spec_name)
    if plain is not None:
        return CompiledField(spec_name, kind, places, plain[0], plain[1], None)
    return CompiledField(spec_name, kind, places, COMPUTED, "", _getter(table, spec_name))


@cache
def compiled_fields(table: str, profile: Profile) -> tuple[CompiledField, ...]:
    """The fields of a table under a profile, in element order, each knowing where its value comes from."""
    return tuple(
        _compile(table, spec.name, effective_type(spec), decimal_places(spec))
        for spec in table_fields(table, profile)
    )


@dataclass(frozen=True, slots=True)
class RenderProblem:
    field: str
    kind: str
    detail: str = ""


def render_value(value: object, compiled: CompiledField) -> str:
    """One canonical value → element text ("" for no value). Raises :class:`ValueFormatError`."""
    if value is None:
        return ""
    if isinstance(value, str):
        return formatting.text(value)
    if isinstance(value, BirthDate):
        return formatting.birth_text(value)
    if isinstance(value, datetime):
        if compiled.kind is FieldType.DATE8:
            return formatting.date8(value)
        return formatting.datetime12(value)
    if isinstance(value, date):
        return formatting.date8(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal):
        if compiled.kind is FieldType.NUMBER:
            if value != value.to_integral_value():
                raise ValueFormatError("not_integer")
            return str(int(value))
        return formatting.decimal_text(value, compiled.places)
    if isinstance(value, int):
        if compiled.kind is FieldType.DECIMAL:
            return formatting.decimal_text(value, compiled.places)
        return str(value)
    raise ValueFormatError("unsupported_type", type(value).__name__)


def render_row(
    fields: Sequence[CompiledField], ctx: RowContext
) -> tuple[dict[str, str], list[RenderProblem]]:
    """Element name → text for one row, plus what could not be rendered (those elements are left empty).

    The loop is the hot path of the builder (~1000 fields per large record): plain attributes are read
    with ``getattr`` and the common types (text, decimals) are formatted inline.
    """
    holders = (ctx.section, ctx.encounter.patient, ctx.encounter.visit)
    row: dict[str, str] = {}
    problems: list[RenderProblem] = []
    decimal_kind, number_kind, quanta = FieldType.DECIMAL, FieldType.NUMBER, formatting.QUANTUM
    for compiled in fields:
        if compiled.get is None:
            holder = holders[compiled.holder]
            value = getattr(holder, compiled.attr) if holder is not None else None
        else:
            value = compiled.get(ctx)
        if value is None:
            row[compiled.name] = ""
            continue
        value_type = type(value)
        try:
            if value_type is str:
                row[compiled.name] = formatting.text(value)
            elif value_type is Decimal and compiled.kind is decimal_kind:
                exact: Decimal = value
                row[compiled.name] = formatting.decimal_text(exact, compiled.places)
                if exact != exact.quantize(quanta[compiled.places]):
                    problems.append(RenderProblem(compiled.name, "rounded", str(compiled.places)))
            elif value_type is int and compiled.kind is number_kind:
                row[compiled.name] = str(value)
            else:
                row[compiled.name] = render_value(value, compiled)
        except ValueFormatError as problem:
            row[compiled.name] = ""
            problems.append(RenderProblem(compiled.name, problem.kind, problem.detail))
    return row, problems
