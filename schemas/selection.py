"""Which tables a visit sends, and what the non-BHYT and HIV policies change first (DOMAIN.md §5, §13).

:func:`plan_claim` turns an encounter and the options into a :class:`Plan`: the (possibly adjusted)
encounter, the tables in envelope order with the section rows each one renders, values derived from other
tables, and the issues found on the way (a table the visit type requires but the HIS did not provide, a
section that is dropped because its table does not apply).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TypeVar

from schemas.domain.encounter import NON_INSURED_CATEGORY, Encounter
from schemas.domain.records import (
    BirthCertificate,
    ClsResult,
    DischargePaper,
    DrugLine,
    HivCare,
    RecordSummary,
    ServiceLine,
    SickLeaveCertificate,
)
from schemas.issues import Issue
from schemas.messages import issue
from schemas.options import PayloadOptions
from schemas.spec import ENVELOPE_TABLES

#: MA_LOAI_KCB codes that need XML5 clinical notes (§5): out-patient treatment, in-patient, day-patient…
CLINICAL_NOTE_VISIT_TYPES = frozenset({"02", "03", "04", "05", "06", "08", "09"})
#: MA_LOAI_KCB codes whose visits send XML8 (§5, 4750 note): in-patient, day-patient, commune-station stay.
SUMMARY_VISIT_TYPES = frozenset({"03", "04", "06"})
#: QĐ 1804 codes 10–16 are treated like 01 for table selection (§15 row 10).
EXAM_LIKE_VISIT_TYPES = frozenset({"10", "11", "12", "13", "14", "15", "16"})
#: MA_LOAI_RV values that make a referral (XML13).
REFERRAL_DISCHARGE_TYPES = frozenset({2, 5})

#: Patient fields left empty for a visit not using BHYT (§5, [S] S8; [I] list).
NON_BHYT_PATIENT_FIELDS = (
    "ma_the_bhyt",
    "ma_dkbd",
    "gt_the_tu",
    "gt_the_den",
    "ma_khuvuc",
    "ngay_mien_cct",
    "nam_nam_lien_tuc",
)
#: Sections carrying MA_THE_TAM (a temporary BHYT card number), also emptied for non-BHYT visits.
_TEMP_CARD_SECTIONS = ("discharge_papers", "record_summary", "birth_certificates", "sick_leave")


@dataclass(slots=True)
class Plan:
    encounter: Encounter
    insured: bool
    tables: tuple[str, ...]
    #: Table → the section objects of its rows (``(None,)`` for XML1, built from Patient + Visit).
    rows: dict[str, tuple[object | None, ...]]
    derived: dict[str, object] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    #: Every drug/service line of the visit: XML1 totals describe the whole visit even when the HIV filter
    #: or the non-BHYT table list keeps some lines out of the payload (``lines_withheld``).
    all_drug_lines: tuple[DrugLine, ...] = ()
    all_service_lines: tuple[ServiceLine, ...] = ()
    lines_withheld: bool = False


def visit_type_for_selection(code: str | None) -> str:
    return "01" if code in EXAM_LIKE_VISIT_TYPES else (code or "")


_Line = TypeVar("_Line", DrugLine, ServiceLine)


def _or_zero(value: Decimal | None) -> Decimal:
    return Decimal("0") if value is None else value


def _zero_unset_bhyt_money(line: _Line) -> _Line:
    return replace(
        line,
        thanh_tien_bh=_or_zero(line.thanh_tien_bh),
        t_bncct=_or_zero(line.t_bncct),
        t_bhtt=_or_zero(line.t_bhtt),
        muc_huong=0 if line.muc_huong is None else line.muc_huong,
    )


def non_bhyt_view(encounter: Encounter) -> Encounter:
    """The encounter as sent for a patient not using BHYT (§5): MA_DOITUONG_KCB "9", the BHYT-specific
    fields emptied, and the BHYT money the HIS left unset written as 0 (values it set are checked, not
    changed: a non-zero BHYT amount is a rule error)."""
    visit = encounter.visit
    changes: dict[str, object] = {
        "patient": replace(encounter.patient, **dict.fromkeys(NON_BHYT_PATIENT_FIELDS)),
        "visit": replace(
            visit,
            ma_doituong_kcb=NON_INSURED_CATEGORY,
            t_tongchi_bh=_or_zero(visit.t_tongchi_bh),
            t_bhtt=_or_zero(visit.t_bhtt),
            t_bncct=_or_zero(visit.t_bncct),
            t_bhtt_gdv=_or_zero(visit.t_bhtt_gdv),
        ),
        "drug_lines": tuple(_zero_unset_bhyt_money(line) for line in encounter.drug_lines),
        "service_lines": tuple(_zero_unset_bhyt_money(line) for line in encounter.service_lines),
    }
    for attribute in _TEMP_CARD_SECTIONS:
        value = getattr(encounter, attribute)
        if isinstance(value, tuple):
            changes[attribute] = tuple(_without_temp_card(item) for item in value)
        elif value is not None:
            changes[attribute] = _without_temp_card(value)
    return replace(encounter, **changes)  # type: ignore[arg-type]  # keys are Encounter field names


_TempCardSection = TypeVar(
    "_TempCardSection", DischargePaper, RecordSummary, BirthCertificate, SickLeaveCertificate
)


def _without_temp_card(section: _TempCardSection) -> _TempCardSection:
    return replace(section, ma_the_tam=None) if section.ma_the_tam is not None else section


def hiv_filter_applies(options: PayloadOptions, insured: bool) -> bool:
    if options.hiv_filter == "always":
        return True
    if options.hiv_filter == "never":
        return False
    return not insured  # "sskdt_only": visits sent only for the Sổ SKĐT (§13)


def _names(values: Sequence[str | None]) -> str | None:
    unique = list(dict.fromkeys(value.strip() for value in values if value and value.strip()))
    return ";".join(unique) or None


@dataclass(slots=True)
class _Selection:
    """The tables chosen so far, the tables the policy allows, and what was noticed on the way."""

    allowed: frozenset[str]
    issues: list[Issue]
    rows: dict[str, tuple[object | None, ...]] = field(default_factory=lambda: {"XML1": (None,)})

    def include(self, table: str, sections: tuple[object | None, ...]) -> None:
        """A table sent whenever its section exists."""
        if not sections:
            return
        if table in self.allowed:
            self.rows[table] = sections
        else:
            self.issues.append(issue(table, None, None, "not_for_non_bhyt"))

    def include_when(self, table: str, due: bool, sections: tuple[object | None, ...], trigger: str) -> None:
        """A table the visit type (or discharge type) asks for: its absence is an error; its presence
        without the condition a warning, and the section is not sent."""
        if due and table in self.allowed:
            if sections:
                self.rows[table] = sections
            else:
                self.issues.append(issue(table, None, None, f"missing_for_{trigger}"))
        elif sections:
            self.issues.append(issue(table, None, None, "not_for_non_bhyt" if due else f"not_for_{trigger}"))


@dataclass(frozen=True, slots=True)
class _Visible:
    drugs: tuple[DrugLine, ...]
    services: tuple[ServiceLine, ...]
    cls_results: tuple[ClsResult, ...]
    hiv_care: tuple[HivCare, ...]
    lines_withheld: bool


def _apply_hiv_policy(
    encounter: Encounter, options: PayloadOptions, insured: bool, issues: list[Issue]
) -> _Visible:
    if not hiv_filter_applies(options, insured):
        return _Visible(
            encounter.drug_lines, encounter.service_lines, encounter.cls_results, encounter.hiv_care, False
        )
    if encounter.hiv_care:
        issues.append(issue("XML6", None, None, "hiv_filtered"))
    drugs = tuple(line for line in encounter.drug_lines if not line.hiv_restricted)
    services = tuple(line for line in encounter.service_lines if not line.hiv_restricted)
    cls_results = tuple(line for line in encounter.cls_results if not line.hiv_restricted)
    withheld = (len(drugs), len(services), len(cls_results)) != (
        len(encounter.drug_lines),
        len(encounter.service_lines),
        len(encounter.cls_results),
    )
    return _Visible(drugs, services, cls_results, (), withheld)


def plan_claim(encounter: Encounter, options: PayloadOptions) -> Plan:
    """Apply the non-BHYT and HIV policies, then choose the tables of §5 in envelope order."""
    issues: list[Issue] = []
    insured = encounter.is_insured
    if not insured:
        if encounter.visit.ma_doituong_kcb not in (None, NON_INSURED_CATEGORY):
            issues.append(issue("XML1", None, "MA_DOITUONG_KCB", "treated_as_non_bhyt"))
        encounter = non_bhyt_view(encounter)
    visible = _apply_hiv_policy(encounter, options, insured, issues)

    visit = encounter.visit
    visit_type = visit_type_for_selection(visit.ma_loai_kcb)
    allowed = (
        frozenset(ENVELOPE_TABLES)
        if insured
        else frozenset({*options.non_bhyt_tables, "XML1"}) - {"XML13"}  # never XML13 for non-BHYT (§5)
    )
    chosen = _Selection(allowed, issues)
    chosen.include("XML2", visible.drugs)
    chosen.include("XML3", visible.services)
    chosen.include("XML4", visible.cls_results)
    chosen.include_when(
        "XML5", visit_type in CLINICAL_NOTE_VISIT_TYPES, encounter.clinical_notes, "visit_type"
    )
    chosen.include("XML6", visible.hiv_care)
    if len(encounter.discharge_papers) > 1:
        issues.append(issue("XML7", None, None, "several_papers"))
    chosen.include("XML7", encounter.discharge_papers[:1])
    summary_due = visit_type in SUMMARY_VISIT_TYPES or not insured or options.xml8_for_every_visit
    chosen.include_when("XML8", summary_due, _one(encounter.record_summary), "visit_type")
    chosen.include("XML9", encounter.birth_certificates)
    chosen.include("XML10", _one(encounter.pregnancy_rest))
    chosen.include("XML11", _one(encounter.sick_leave))
    referral_due = visit.ma_loai_rv in REFERRAL_DISCHARGE_TYPES
    chosen.include_when("XML13", referral_due, _one(encounter.referral), "discharge_type")
    chosen.include("XML14", _one(encounter.follow_up))
    chosen.include("XML15", encounter.tb_treatments)

    tables = tuple(table for table in ENVELOPE_TABLES if table in chosen.rows)
    lines_withheld = (
        visible.lines_withheld
        or (bool(visible.drugs) and "XML2" not in tables)
        or (bool(visible.services) and "XML3" not in tables)
    )
    return Plan(
        encounter=encounter,
        insured=insured,
        tables=tables,
        rows={table: chosen.rows[table] for table in tables},
        derived={
            "XML2.TEN_THUOC": _names([line.ten_thuoc for line in visible.drugs]),
            "XML3.TEN_DICH_VU": _names([line.ten_dich_vu for line in visible.services]),
        },
        issues=issues,
        all_drug_lines=encounter.drug_lines,
        all_service_lines=encounter.service_lines,
        lines_withheld=lines_withheld,
    )


def _one(section: object | None) -> tuple[object | None, ...]:
    return (section,) if section is not None else ()
