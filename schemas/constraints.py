"""What the payload layer enforces per field: ``schemas.spec`` plus the documented corrections, in one place.

The XSD generator and the business rules both read this module, so a field is required, sized and
patterned the same way in both layers. Corrections of the CSVs are data here, each with its reason, so a
confirmed portal XSD can overturn them by editing one entry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache

from schemas.spec import FieldSpec, FieldType, Profile, table_fields

Row = Mapping[str, str]

#: Fields holding a date of birth with possibly unknown parts ("0000", DOMAIN.md §7).
BIRTH_FIELDS = frozenset({"NGAY_SINH"})

#: DOMAIN.md §15 row 12: the appendix keeps XML15 SO_CCCD as a number; it is serialised as the XML1 string.
TYPE_OVERRIDES: dict[tuple[str, str], FieldType] = {("XML15", "SO_CCCD"): FieldType.STRING}

#: Identity numbers checked with the S2 pattern (DOMAIN.md §7).
IDENTITY_NUMBER_FIELDS = frozenset({"SO_CCCD", "SO_CCCD_NND"})
IDENTITY_NUMBER = re.compile(r"\d{9}|\d{12}|[A-Z]\d{7}")

#: ICD-10 code shape: letter, two digits, optional dot and up to four characters (A15.0, I10, S52.50).
ICD10 = re.compile(r"[A-Z]\d{2}(\.[0-9A-Z]{1,4})?")
ICD10_FIELDS = frozenset({"MA_BENH_CHINH", "MA_BENH_KT"})
MAX_SECONDARY_DIAGNOSES = 12

#: MA_KHOA syntax of QĐ 1804 (DOMAIN.md §7): K01, joint K0809, deeper K16.1, unit K02.D35.
DEPARTMENT_CODE = re.compile(r"K(\d{2})+(\.\d|\.D\d{2})?")
DEPARTMENT_FIELDS = frozenset({"MA_KHOA", "MA_KHOA_RV"})

#: 10-digit BHXH numbers (S2).
BHXH_NUMBER = re.compile(r"\d{10}")
BHXH_NUMBER_FIELDS = frozenset({"MA_TTDV"})

DATETIME12_PATTERN = r"\d{4}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])([01]\d|2[0-3])[0-5]\d"
DATE8_PATTERN = r"\d{4}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])"
#: NGAY_SINH: unknown day+month and unknown hour+minute are each written "0000".
BIRTH12_PATTERN = r"\d{4}((0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])|0000)([01]\d|2[0-3])[0-5]\d"

#: String fields whose format column fixes a syntax the XSD can check.
STRING_PATTERNS: dict[str, str] = {
    "CAN_NANG": r"\d{1,3}(\.\d{1,2})?",  # kg, "." separator, up to 2 decimals
    "NGAY_TAI_KHAM": rf"{DATE8_PATTERN}(;{DATE8_PATTERN})*",
}


@dataclass(frozen=True, slots=True)
class Condition:
    """A requirement that depends on other fields of the same row."""

    applies: Callable[[Row], bool]
    text_en: str
    text_vi: str


def _filled(name: str) -> Callable[[Row], bool]:
    return lambda row: bool(row.get(name))


def _equals(name: str, *values: str) -> Callable[[Row], bool]:
    return lambda row: row.get(name, "") in values


def _not_equals(name: str, *values: str) -> Callable[[Row], bool]:
    return lambda row: bool(row.get(name)) and row.get(name, "") not in values


def _contains_code(name: str, code: str) -> Callable[[Row], bool]:
    return lambda row: code in row.get(name, "").split(";")


def _empty(*names: str) -> Callable[[Row], bool]:
    return lambda row: not any(row.get(name) for name in names)


_GROUPS_WITH_PERFORMER = ("1", "2", "3", "8", "18")

#: The CSV ``required`` conditions, as predicates (a test checks that every condition in the CSVs is here).
CONDITIONAL_REQUIREMENTS: dict[tuple[str, str], Condition] = {
    ("XML0", "LY_DO_VNT"): Condition(_filled("NGAY_VAO_NOI_TRU"), "NGAY_VAO_NOI_TRU is set", "có NGAY_VAO_NOI_TRU"),
    ("XML0", "MA_DICH_VU"): Condition(_empty("MA_THUOC", "MA_VAT_TU"), "MA_THUOC and MA_VAT_TU are empty", "MA_THUOC và MA_VAT_TU trống"),
    ("XML0", "TEN_DICH_VU"): Condition(_filled("MA_DICH_VU"), "MA_DICH_VU is set", "có MA_DICH_VU"),
    ("XML0", "MA_THUOC"): Condition(_empty("MA_DICH_VU", "MA_VAT_TU"), "MA_DICH_VU and MA_VAT_TU are empty", "MA_DICH_VU và MA_VAT_TU trống"),
    ("XML0", "TEN_THUOC"): Condition(_filled("MA_THUOC"), "MA_THUOC is set", "có MA_THUOC"),
    ("XML0", "MA_VAT_TU"): Condition(_empty("MA_DICH_VU", "MA_THUOC"), "MA_DICH_VU and MA_THUOC are empty", "MA_DICH_VU và MA_THUOC trống"),
    ("XML0", "TEN_VAT_TU"): Condition(_filled("MA_VAT_TU"), "MA_VAT_TU is set", "có MA_VAT_TU"),
    ("XML2", "TT_THAU"): Condition(_not_equals("MA_NHOM", "7", "17"), "MA_NHOM is not 7 or 17", "MA_NHOM khác 7 và 17"),
    ("XML3", "MA_XANG_DAU"): Condition(_equals("MA_NHOM", "12"), "MA_NHOM is 12", "MA_NHOM là 12"),
    ("XML3", "TT_THAU"): Condition(_equals("MA_NHOM", "10"), "MA_NHOM is 10", "MA_NHOM là 10"),
    ("XML3", "NGUOI_THUC_HIEN"): Condition(_equals("MA_NHOM", *_GROUPS_WITH_PERFORMER), "MA_NHOM is 1, 2, 3, 8 or 18", "MA_NHOM là 1, 2, 3, 8 hoặc 18"),
    ("XML3", "NGAY_TH_YL"): Condition(_equals("MA_NHOM", *_GROUPS_WITH_PERFORMER), "MA_NHOM is 1, 2, 3, 8 or 18", "MA_NHOM là 1, 2, 3, 8 hoặc 18"),
    ("XML4", "NGAY_KQ"): Condition(_filled("GIA_TRI"), "GIA_TRI is set", "có GIA_TRI"),
    ("XML6", "PHACDO_DTRI_LAO"): Condition(_not_equals("LOAI_DTRI_LAO", "0"), "LOAI_DTRI_LAO is not 0", "LOAI_DTRI_LAO khác 0"),
    ("XML6", "NGAYBD_DTRI_LAO"): Condition(_not_equals("LOAI_DTRI_LAO", "0"), "LOAI_DTRI_LAO is not 0", "LOAI_DTRI_LAO khác 0"),
    # NGAYKT_DTRI_LAO: the CSV says "unless LOAI_DTRI_LAO = 0" but also "empty while treatment continues",
    # so it can only be required once treatment has ended, which the row cannot tell. Not enforced.
    ("XML6", "LAN_XN_PCR"): Condition(_contains_code("MA_TINH_TRANG_DK", "1"), "MA_TINH_TRANG_DK includes 1", "MA_TINH_TRANG_DK có mã 1"),
    ("XML6", "NGAY_XN_PCR"): Condition(_contains_code("MA_TINH_TRANG_DK", "1"), "MA_TINH_TRANG_DK includes 1", "MA_TINH_TRANG_DK có mã 1"),
    ("XML6", "NGAY_KQ_XN_PCR"): Condition(_contains_code("MA_TINH_TRANG_DK", "1"), "MA_TINH_TRANG_DK includes 1", "MA_TINH_TRANG_DK có mã 1"),
    ("XML6", "MA_KQ_XN_PCR"): Condition(_contains_code("MA_TINH_TRANG_DK", "1"), "MA_TINH_TRANG_DK includes 1", "MA_TINH_TRANG_DK có mã 1"),
    ("XML6", "NGAY_BAT_DAU_XU_TRI"): Condition(_contains_code("MA_XU_TRI", "1"), "MA_XU_TRI includes 1", "MA_XU_TRI có mã 1"),
    ("XML6", "NGAY_KET_THUC_XU_TRI"): Condition(_contains_code("MA_XU_TRI", "1"), "MA_XU_TRI includes 1", "MA_XU_TRI có mã 1"),
    ("XML6", "SO_NGAY_CAP_THUOC_ARV"): Condition(_contains_code("MA_XU_TRI", "1"), "MA_XU_TRI includes 1", "MA_XU_TRI có mã 1"),
    ("XML6", "MA_BAC_PHAC_DO"): Condition(_equals("MA_PHAC_DO_DIEU_TRI", "KHAC"), "MA_PHAC_DO_DIEU_TRI is KHAC", "MA_PHAC_DO_DIEU_TRI là KHAC"),
    ("XML7", "NGUYENNHAN_DINHCHI"): Condition(_equals("MA_DINH_CHI_THAI", "1"), "MA_DINH_CHI_THAI is 1", "MA_DINH_CHI_THAI là 1"),
    ("XML7", "THOIGIAN_DINHCHI"): Condition(_equals("MA_DINH_CHI_THAI", "1"), "MA_DINH_CHI_THAI is 1", "MA_DINH_CHI_THAI là 1"),
    ("XML7", "TUOI_THAI"): Condition(_equals("MA_DINH_CHI_THAI", "1"), "MA_DINH_CHI_THAI is 1", "MA_DINH_CHI_THAI là 1"),
    ("XML11", "NGUYENNHAN_DINHCHI"): Condition(_equals("MA_DINH_CHI_THAI", "1"), "MA_DINH_CHI_THAI is 1", "MA_DINH_CHI_THAI là 1"),
    ("XML11", "TUOI_THAI"): Condition(_equals("MA_DINH_CHI_THAI", "1"), "MA_DINH_CHI_THAI is 1", "MA_DINH_CHI_THAI là 1"),
    # [I] corrections of "required: yes" cells that cannot hold for every row (see RELAXED_REQUIREMENTS).
    ("XML15", "BDDT_ARV"): Condition(_equals("PHANLOAI_LAO_HIV", "1"), "PHANLOAI_LAO_HIV is 1 (TB/HIV+)", "PHANLOAI_LAO_HIV là 1 (Lao/HIV+)"),
    ("XML15", "NGAY_BAT_DAU_DT_CTX"): Condition(_equals("PHANLOAI_LAO_HIV", "1"), "PHANLOAI_LAO_HIV is 1 (TB/HIV+)", "PHANLOAI_LAO_HIV là 1 (Lao/HIV+)"),
    ("XML15", "KET_QUA_DTRI_LAO"): Condition(_filled("NGAYKT_DTRI_LAO"), "NGAYKT_DTRI_LAO is set (treatment ended)", "có NGAYKT_DTRI_LAO (đã kết thúc điều trị)"),
}  # fmt: skip

#: CSV "required: yes" cells this layer does not enforce as errors, and why. [I] — confirm on the training host.
RELAXED_REQUIREMENTS: dict[tuple[str, str], str] = {
    ("XML1", "MAHUYEN_CU_TRU"): "districts were abolished in 2025 and BHXH has not said how to fill it (§15 row 9)",
    ("XML9", "MAHUYEN_CU_TRU"): "districts were abolished in 2025 and BHXH has not said how to fill it (§15 row 9)",
    ("XML15", "BDDT_ARV"): "an ARV start date exists only for TB/HIV+ patients: required when PHANLOAI_LAO_HIV = 1",
    ("XML15", "NGAY_BAT_DAU_DT_CTX"): "cotrimoxazole is given to TB/HIV+ patients: required when PHANLOAI_LAO_HIV = 1",
    ("XML15", "KET_QUA_DTRI_LAO"): "an outcome exists once treatment has ended: required when NGAYKT_DTRI_LAO is set",
}  # fmt: skip


def effective_type(spec: FieldSpec) -> FieldType:
    return TYPE_OVERRIDES.get((spec.table, spec.name), spec.type)


def is_required(spec: FieldSpec) -> bool:
    """Required in every row: the CSV says "yes" and no documented relaxation applies."""
    return spec.always_required and (spec.table, spec.name) not in RELAXED_REQUIREMENTS


def is_multi_valued(spec: FieldSpec) -> bool:
    return 'separated by ";"' in spec.format


def decimal_places(spec: FieldSpec) -> int:
    """Quantities and unit prices (SO_LUONG, DON_GIA, DON_GIA_BV, DON_GIA_BH) carry 3 decimals, amounts
    (THANH_TIEN_*, T_*) carry 2 (DOMAIN.md §7). Read from the CSV format column ("rounded to N places")."""
    match = re.search(r"rounded to (\d) places", spec.format)
    return int(match.group(1)) if match else 2


def xsd_pattern(spec: FieldSpec) -> str | None:
    """The lexical pattern of a field's content, if the spec fixes one (without the "empty allowed" part)."""
    kind = effective_type(spec)
    if spec.name in BIRTH_FIELDS and kind is FieldType.DATETIME12:
        return BIRTH12_PATTERN
    if kind is FieldType.DATETIME12:
        return DATETIME12_PATTERN
    if kind is FieldType.DATE8:
        return DATE8_PATTERN
    if kind is FieldType.DECIMAL:
        return rf"-?\d+(\.\d{{1,{decimal_places(spec)}}})?"
    if kind is FieldType.NUMBER:
        return r"\d+"
    return STRING_PATTERNS.get(spec.name)


@cache
def element_names(table: str, profile: Profile) -> tuple[str, ...]:
    return tuple(spec.name for spec in table_fields(table, profile))
