"""Layer 2 of validation: the business rules of DOMAIN.md §5–§8 over rendered documents.

The rules read element texts (table → rows of element name → text), exactly what is sent, so the same
checks run on a payload being built and on an envelope received by the CLI or the gateway simulator.
Each finding has a stable rule id (``XML1.SO_CCCD.format``); see ``schemas.messages`` for the texts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache

from schemas.constraints import (
    BHXH_NUMBER,
    BHXH_NUMBER_FIELDS,
    CONDITIONAL_REQUIREMENTS,
    DEPARTMENT_CODE,
    DEPARTMENT_FIELDS,
    ICD10,
    ICD10_FIELDS,
    IDENTITY_NUMBER,
    IDENTITY_NUMBER_FIELDS,
    MAX_SECONDARY_DIAGNOSES,
    Condition,
    is_multi_valued,
    is_required,
)
from schemas.documents import is_single_record
from schemas.domain.values import compact_moment
from schemas.issues import Issue
from schemas.messages import issue
from schemas.spec import Profile, codes_valid_on, table_fields

Row = Mapping[str, str]
Documents = Mapping[str, Sequence[Row]]

NON_INSURED_CATEGORY = "9"
#: MA_LOAI_KCB → how SO_NGAY_DTRI is counted (DOMAIN.md §7); other types are not checked.
ZERO_DAY_VISIT_TYPES = frozenset({"01", "07", "09"})
COUNTED_DAY_VISIT_TYPES = frozenset({"02", "03", "04", "06"})
NEWBORN_MAX_AGE_DAYS = 28
LATE_RESULT_DAYS = 7
#: XML1 BHYT money that must be 0 for a non-BHYT visit, and the line fields likewise ([I] §5).
NON_BHYT_ZERO_TOTALS = ("T_TONGCHI_BH", "T_BHTT", "T_BNCCT", "T_BHTT_GDV")
NON_BHYT_ZERO_LINES = ("THANH_TIEN_BH", "T_BNCCT", "T_BHTT", "MUC_HUONG")
OTHER_SOURCES = ("T_NGUONKHAC_NSNN", "T_NGUONKHAC_VTNN", "T_NGUONKHAC_VTTN", "T_NGUONKHAC_CL")
_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class RuleContext:
    profile: Profile
    #: The sending facility (envelope MACSKCB); ``None`` skips the comparison.
    facility_code: str | None = None
    #: From the canonical BirthDate when known: ``0000`` in NGAY_SINH cannot tell 00:00 from "unknown".
    birth_time_known: bool | None = None
    #: Every XML2/XML3 row of the visit when policy withheld some (HIV filter, non-BHYT table list): the XML1
    #: totals describe the whole visit, so they are checked against these.
    unfiltered_lines: tuple[Sequence[Row], Sequence[Row]] | None = None
    #: False when the documents are not all the tables of the visit (one file checked on its own): the XML1
    #: totals cannot be compared with lines that are not there.
    whole_visit: bool = True


@dataclass(frozen=True, slots=True)
class _FieldCheck:
    name: str
    required: bool
    condition: Condition | None
    max_length: int | None
    code_list: str | None
    multi: bool
    facility: bool


@cache
def _field_checks(table: str, profile: Profile) -> tuple[_FieldCheck, ...]:
    return tuple(
        _FieldCheck(
            name=spec.name,
            required=is_required(spec),
            condition=CONDITIONAL_REQUIREMENTS.get((table, spec.name)),
            max_length=spec.max_length,
            code_list=spec.code_list,
            multi=is_multi_valued(spec),
            facility="5-character facility code" in spec.format,
        )
        for spec in table_fields(table, profile)
    )


def _parts(value: str, multi: bool) -> list[str]:
    return [part.strip() for part in value.split(";")] if multi else [value]


def _moment(text: str) -> datetime | None:
    """A ``yyyyMMddHHmm`` or ``yyyyMMdd`` text as a naive local time; None if it is not one."""
    if len(text) not in (8, 12):
        return None
    try:
        return compact_moment(text)
    except ValueError:
        return None


def _day(text: str) -> date | None:
    moment = _moment(text[:8]) if len(text) >= 8 else None
    return moment.date() if moment else None


def _money(text: str) -> Decimal | None:
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _r2(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def _sum(rows: Sequence[Row], name: str, *, where: str | None = None) -> Decimal:
    total = Decimal("0")
    for row in rows:
        if where is not None and not row.get(where):
            continue
        total += _money(row.get(name, "")) or Decimal("0")
    return total


@dataclass(slots=True)
class _Findings:
    items: list[Issue] = field(default_factory=list)

    def at(self, table: str, row: int | None) -> _Place:
        return _Place(self, table, row)


@dataclass(frozen=True, slots=True)
class _Place:
    """One row of one table: where findings are recorded."""

    findings: _Findings
    table: str
    row: int | None

    def add(self, name: str | None, kind: str, **params: object) -> None:
        self.findings.items.append(issue(self.table, self.row, name, kind, **params))

    def wrong_format(self, name: str, expected_vi: str, expected_en: str) -> None:
        self.add(name, "format", expected_vi=expected_vi, expected_en=expected_en)


def end_date(documents: Documents) -> date | None:
    """The visit end date (DOMAIN.md §8): XML1 NGAY_RA, else NGAY_VAO."""
    summary = documents.get("XML1") or documents.get("XML0")
    if not summary:
        return None
    return _day(summary[0].get("NGAY_RA", "")) or _day(summary[0].get("NGAY_VAO", ""))


def _numbered(table: str, rows: Sequence[Row]) -> Iterator[tuple[int | None, Row]]:
    single = is_single_record(table)
    for index, row in enumerate(rows, start=1):
        yield (None if single else index), row


def check_documents(documents: Documents, context: RuleContext) -> list[Issue]:
    """Every business rule over the rendered documents of one visit (or of one check-in)."""
    found = _Findings()
    day = end_date(documents)
    for table, rows in documents.items():
        checks = _field_checks(table, context.profile)
        for row_number, row in _numbered(table, rows):
            _check_fields(found.at(table, row_number), row, checks, day)
    xml1 = documents["XML1"][0] if documents.get("XML1") else None
    _check_keys(found, documents, xml1, context)
    if xml1 is not None:
        _check_visit(found, xml1, context)
        _check_money(found, documents, xml1, context)
        _check_results(found, documents, xml1)
    for table, rows in documents.items():
        for row_number, row in _numbered(table, rows):
            _check_row_rules(found.at(table, row_number), row, xml1)
    return found.items


def _check_fields(place: _Place, row: Row, checks: Sequence[_FieldCheck], day: date | None) -> None:
    for check in checks:
        value = row.get(check.name, "")
        if not value:
            if check.required:
                place.add(check.name, "required")
            elif check.condition is not None and check.condition.applies(row):
                condition = check.condition
                place.add(
                    check.name, "required_if", condition_en=condition.text_en, condition_vi=condition.text_vi
                )
            continue
        if check.max_length is not None and len(value) > check.max_length:
            place.add(check.name, "max_length", max=check.max_length)
            continue
        _check_format(place, check, value, day)


def _check_format(place: _Place, check: _FieldCheck, value: str, day: date | None) -> None:
    name = check.name
    if name in IDENTITY_NUMBER_FIELDS and not IDENTITY_NUMBER.fullmatch(value):
        place.wrong_format(
            name,
            "9 hoặc 12 chữ số, hoặc 1 chữ in hoa và 7 chữ số (hộ chiếu)",
            "9 or 12 digits, or a capital letter and 7 digits (passport)",
        )
    elif name in ICD10_FIELDS:
        codes = _parts(value, check.multi)
        if name == "MA_BENH_KT" and len(codes) > MAX_SECONDARY_DIAGNOSES:
            place.add(name, "count", max=MAX_SECONDARY_DIAGNOSES)
        elif not all(ICD10.fullmatch(code) for code in codes):
            place.wrong_format(name, "mã ICD-10 (ví dụ A15.0)", "an ICD-10 code (e.g. A15.0)")
    elif name in BHXH_NUMBER_FIELDS and not BHXH_NUMBER.fullmatch(value):
        place.wrong_format(name, "10 chữ số (mã số BHXH)", "10 digits (BHXH number)")
    elif check.facility and len(value) != 5:
        place.wrong_format(name, "mã cơ sở KBCB 5 ký tự", "a 5-character facility code")
    elif name == "MATINH_CU_TRU" and len(value) != 2:
        place.wrong_format(name, "2 ký tự cuối của mã tỉnh", "the last 2 characters of the province code")
    elif name == "MAU_SO" and value != "CT07":
        place.wrong_format(name, '"CT07" hoặc để trống', '"CT07" or empty')
    elif check.code_list is not None and day is not None:
        _check_code(place, check, value, day)


def _check_code(place: _Place, check: _FieldCheck, value: str, day: date) -> None:
    assert check.code_list is not None
    valid = codes_valid_on(check.code_list, day)
    if not valid:
        return  # no version of the list is known for that date (e.g. MA_KHOA before 2026-08-01)
    codes = _parts(value, check.multi)
    if check.name in DEPARTMENT_FIELDS:
        if not all(DEPARTMENT_CODE.fullmatch(code) for code in codes):
            place.wrong_format(
                check.name,
                "mã khoa dạng K01, K0809, K16.1, K02.D35",
                "a department code such as K01, K0809, K16.1, K02.D35",
            )
            return
        if not all(_department_listed(code, valid) for code in codes):
            place.add(check.name, "code", code_list=check.code_list)
    elif any(code not in valid for code in codes):
        place.add(check.name, "code", code_list=check.code_list)


def _department_listed(code: str, valid: frozenset[str]) -> bool:
    """QĐ 1804: a joint code is a run of listed base codes; a ``.Dnn`` unit hangs off any listed base code;
    a deeper split (``K16.1``) must be listed itself."""
    base, _, suffix = code.partition(".")
    pairs = [f"K{base[i : i + 2]}" for i in range(1, len(base), 2)]
    if suffix and not suffix.startswith("D") and code not in valid:
        return False
    return all(pair in valid for pair in pairs)


def _check_keys(found: _Findings, documents: Documents, xml1: Row | None, context: RuleContext) -> None:
    reference = (xml1 or {}).get("MA_LK") or next(
        (rows[0].get("MA_LK", "") for rows in documents.values() if rows), ""
    )
    for table, rows in documents.items():
        for row_number, row in _numbered(table, rows):
            if row.get("MA_LK", "") != reference:
                found.at(table, row_number).add("MA_LK", "consistent")
                break
    if xml1 is None:
        return
    summary = found.at("XML1", None)
    ma_lk = xml1.get("MA_LK", "")
    if any(
        len(number) >= 8 and number in ma_lk
        for number in (xml1.get("SO_CCCD", ""), xml1.get("MA_THE_BHYT", ""))
    ):
        summary.add("MA_LK", "personal_data")
    facility = xml1.get("MA_CSKCB", "")
    if context.facility_code is not None and facility and facility != context.facility_code:
        summary.add("MA_CSKCB", "facility")


def _order(place: _Place, row: Row, later: str, earlier: str) -> None:
    """``later`` must not be before ``earlier``; compared on the common precision (date8 vs datetime12)."""
    first, second = row.get(earlier, ""), row.get(later, "")
    if not first or not second:
        return
    size = min(len(first), len(second))
    a, b = _moment(first[:size]), _moment(second[:size])
    if a is not None and b is not None and b < a:
        place.add(later, "order", other=earlier)


def _check_visit(found: _Findings, xml1: Row, context: RuleContext) -> None:
    summary = found.at("XML1", None)
    _order(summary, xml1, "NGAY_VAO_NOI_TRU", "NGAY_VAO")
    _order(summary, xml1, "NGAY_RA", "NGAY_VAO")
    _order(summary, xml1, "NGAY_RA", "NGAY_VAO_NOI_TRU")
    birth_text = xml1.get("NGAY_SINH", "")
    birth = _day(birth_text) if birth_text[4:8] != "0000" else None
    admitted = _moment(xml1.get("NGAY_VAO", ""))
    if birth is not None and admitted is not None:
        age = (admitted.date() - birth).days
        if age < 0:
            summary.add("NGAY_SINH", "after_visit")
        elif age <= NEWBORN_MAX_AGE_DAYS:
            known = context.birth_time_known
            if known is False or (known is None and birth_text[8:12] == "0000"):
                summary.add("NGAY_SINH", "newborn_time")
    _check_treatment_days(summary, xml1)
    month = xml1.get("THANG_QT", "")
    if month.isdigit() and not 1 <= int(month) <= 12:
        summary.add("THANG_QT", "range", expected_vi="1–12", expected_en="1–12")


def _check_treatment_days(summary: _Place, xml1: Row) -> None:
    visit_type, days = xml1.get("MA_LOAI_KCB", ""), xml1.get("SO_NGAY_DTRI", "")
    if not days.isdigit():
        return
    expected: int | None = None  # 05: days of medication, 08: days with services, 10–16: no rule
    if visit_type in ZERO_DAY_VISIT_TYPES:
        expected = 0
    elif visit_type in COUNTED_DAY_VISIT_TYPES:
        start, end = _day(xml1.get("NGAY_VAO", "")), _day(xml1.get("NGAY_RA", ""))
        expected = (end - start).days + 1 if start and end and end >= start else None
    if expected is not None and int(days) != expected:
        summary.add("SO_NGAY_DTRI", "days")


def _formula_holds(amount: Decimal | None, *factors: Decimal | None) -> bool:
    """``amount = ROUND(Π factors / 100, 2)``; true when any value is missing (reported elsewhere)."""
    if amount is None or any(factor is None for factor in factors):
        return True
    product = Decimal(1)
    for factor in factors:
        assert factor is not None
        product *= factor
    return _r2(product / 100) == amount


def _check_line_money(place: _Place, row: Row) -> None:
    values = {name: _money(text) for name, text in row.items()}
    quantity = values.get("SO_LUONG")
    if place.table == "XML2":
        bv_ok = _formula_holds(values.get("THANH_TIEN_BV"), quantity, values.get("DON_GIA"), Decimal(100))
        bh_ok = _formula_holds(
            values.get("THANH_TIEN_BH"), quantity, values.get("DON_GIA"), values.get("TYLE_TT_BH")
        )
        formula_bv, formula_bh = (
            "ROUND(SO_LUONG × DON_GIA, 2)",
            "ROUND(SO_LUONG × DON_GIA × TYLE_TT_BH / 100, 2)",
        )
    else:
        bv_ok = _formula_holds(
            values.get("THANH_TIEN_BV"), quantity, values.get("DON_GIA_BV"), values.get("TYLE_TT_DV")
        )
        bh_ok = _formula_holds(
            values.get("THANH_TIEN_BH"), quantity, values.get("DON_GIA_BH"), values.get("TYLE_TT_BH")
        )
        formula_bv = "ROUND(SO_LUONG × DON_GIA_BV × TYLE_TT_DV / 100, 2)"
        formula_bh = "ROUND(SO_LUONG × DON_GIA_BH × TYLE_TT_BH / 100, 2)"
    if not bv_ok:
        place.add("THANH_TIEN_BV", "formula", formula=formula_bv)
    if not bh_ok:
        place.add("THANH_TIEN_BH", "formula", formula=formula_bh)
    other = values.get("T_NGUONKHAC")
    parts = [values.get(name) for name in OTHER_SOURCES]
    if (
        other is not None
        and None not in parts
        and sum((part for part in parts if part is not None), Decimal(0)) != other
    ):
        place.add("T_NGUONKHAC", "formula", formula=" + ".join(OTHER_SOURCES))


def _check_money(found: _Findings, documents: Documents, xml1: Row, context: RuleContext) -> None:
    drugs, services = documents.get("XML2", ()), documents.get("XML3", ())
    for table, rows in (("XML2", drugs), ("XML3", services)):
        for row_number, row in _numbered(table, rows):
            _check_line_money(found.at(table, row_number), row)
    summary = found.at("XML1", None)
    if context.unfiltered_lines is not None:
        summary.add(None, "totals_cover_withheld_lines")
        drugs, services = context.unfiltered_lines
    if context.whole_visit:
        _check_totals(summary, xml1, drugs, services)
    if xml1.get("MA_DOITUONG_KCB") == NON_INSURED_CATEGORY:
        _check_non_bhyt_money(found, documents, xml1)


def _check_totals(summary: _Place, xml1: Row, drugs: Sequence[Row], services: Sequence[Row]) -> None:
    lines = [*drugs, *services]
    both = "(XML2 + XML3)"
    totals = {
        "T_TONGCHI_BV": (_sum(lines, "THANH_TIEN_BV"), f"Σ THANH_TIEN_BV {both}"),
        "T_TONGCHI_BH": (_sum(lines, "THANH_TIEN_BH"), f"Σ THANH_TIEN_BH {both}"),
        "T_BNTT": (_sum(lines, "T_BNTT"), f"Σ T_BNTT {both}"),
        "T_BNCCT": (_sum(lines, "T_BNCCT"), f"Σ T_BNCCT {both}"),
        "T_NGUONKHAC": (_sum(lines, "T_NGUONKHAC"), f"Σ T_NGUONKHAC {both}"),
        "T_THUOC": (_sum(drugs, "THANH_TIEN_BV"), "Σ THANH_TIEN_BV (XML2)"),
    }
    for name, (expected, formula) in totals.items():
        actual = _money(xml1.get(name, ""))
        if actual is not None and actual != expected:
            summary.add(name, "total", formula=formula)
    claimed, total_bh = _money(xml1.get("T_BHTT", "")), _money(xml1.get("T_TONGCHI_BH", ""))
    copay = _money(xml1.get("T_BNCCT", ""))
    if claimed is not None and total_bh is not None and copay is not None and claimed != total_bh - copay:
        summary.add("T_BHTT", "total", formula="T_TONGCHI_BH − T_BNCCT")
    supplies = _money(xml1.get("T_VTYT", ""))
    if supplies is not None and supplies != _sum(services, "THANH_TIEN_BV", where="MA_VAT_TU"):
        summary.add("T_VTYT", "total_unsure", formula="Σ THANH_TIEN_BV (XML3, MA_VAT_TU)")


def _check_non_bhyt_money(found: _Findings, documents: Documents, xml1: Row) -> None:
    summary = found.at("XML1", None)
    for name in NON_BHYT_ZERO_TOTALS:
        value = _money(xml1.get(name, ""))
        if value is not None and value != 0:
            summary.add(name, "non_bhyt_zero")
    for table in ("XML2", "XML3"):
        for row_number, row in _numbered(table, documents.get(table, ())):
            for name in NON_BHYT_ZERO_LINES:
                value = _money(row.get(name, ""))
                if value is not None and value != 0:
                    found.at(table, row_number).add(name, "non_bhyt_zero")


def _check_results(found: _Findings, documents: Documents, xml1: Row) -> None:
    discharged = _moment(xml1.get("NGAY_RA", ""))
    if discharged is None:
        return
    for table in ("XML3", "XML4"):
        for row_number, row in _numbered(table, documents.get(table, ())):
            result = _moment(row.get("NGAY_KQ", ""))
            if result is None or result <= discharged:
                continue
            late = result - discharged > timedelta(days=LATE_RESULT_DAYS)
            found.at(table, row_number).add("NGAY_KQ", "late_result" if late else "after_discharge")


def _check_row_rules(place: _Place, row: Row, xml1: Row | None) -> None:
    table = place.table
    if table == "XML0":
        _order(place, row, "NGAY_VAO_NOI_TRU", "NGAY_VAO")
        if sum(1 for name in ("MA_DICH_VU", "MA_THUOC", "MA_VAT_TU") if row.get(name)) > 1:
            place.add(None, "exactly_one")
    elif table in ("XML2", "XML3"):
        _order(place, row, "NGAY_TH_YL", "NGAY_YL")
        has_service = row.get("MA_DICH_VU") and row.get("TEN_DICH_VU")
        has_supply = row.get("MA_VAT_TU") and row.get("TEN_VAT_TU")
        if table == "XML3" and not has_service and not has_supply:
            place.add(None, "line_item")
    elif table in ("XML7", "XML11"):
        weeks = row.get("TUOI_THAI", "")
        if weeks.isdigit() and not 1 <= int(weeks) <= 42:
            place.add("TUOI_THAI", "range", expected_vi="1–42 tuần", expected_en="1–42 weeks")
        group = ("SO_NGAY_NGHI", "NGOAITRU_TUNGAY", "NGOAITRU_DENNGAY")
        missing = [name for name in group if not row.get(name)]
        if table == "XML7" and 0 < len(missing) < len(group):
            place.add(missing[0], "all_or_none", other=", ".join(group))
    elif table == "XML14" and xml1 is not None:
        merged = {**row, "XML1 NGAY_RA": xml1.get("NGAY_RA", ""), "XML1 NGAY_VAO": xml1.get("NGAY_VAO", "")}
        _order(place, merged, "NGAY_HEN_KL", "XML1 NGAY_RA")
        _order(place, merged, "NGAY_CT", "XML1 NGAY_VAO")
