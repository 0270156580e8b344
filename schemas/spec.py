"""The QĐ 130/4750 table and code-list specification, loaded from the CSVs shipped in ``schemas/data/spec``.

The CSVs are a copy of ``shared/spec`` (a test keeps them in sync). Everything that depends on field
order, sizes or code lists reads it from here, so a spec change is a data change.
"""

from __future__ import annotations

import csv
from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path

SPEC_ROOT = Path(str(resources.files("schemas"))) / "data" / "spec"

#: Tables the HIS sends inside GIAMDINHHS, in envelope order. XML0 goes alone; XML12 is never sent.
ENVELOPE_TABLES: tuple[str, ...] = (
    "XML1",
    "XML2",
    "XML3",
    "XML4",
    "XML5",
    "XML6",
    "XML7",
    "XML8",
    "XML9",
    "XML10",
    "XML11",
    "XML13",
    "XML14",
    "XML15",
)
ALL_TABLES: tuple[str, ...] = ("XML0", *ENVELOPE_TABLES)


class Profile(StrEnum):
    """Gateway profile: which amendment's field lists the documents follow."""

    QD4750 = "qd4750"
    QD3176 = "qd3176"


class FieldType(StrEnum):
    STRING = "string"
    NUMBER = "number"
    DECIMAL = "decimal"
    DATETIME12 = "datetime12"
    DATE8 = "date8"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    table: str
    order: int
    name: str
    type: FieldType
    max_length: int | None
    required: str  # "yes", "no", "" (not stated) or a condition in words
    format: str
    description_en: str
    rule: str

    @property
    def always_required(self) -> bool:
        return self.required == "yes"

    @property
    def code_list(self) -> str | None:
        """Name of the code list file this field is checked against, if any."""
        marker = "codes/"
        if marker not in self.format:
            return None
        tail = self.format.split(marker, 1)[1]
        return tail.split(".csv", 1)[0]


@dataclass(frozen=True, slots=True)
class TableLayout:
    """Root, list and row element names of one inner document (DOMAIN.md §4)."""

    root: str
    list_element: str | None
    row: str | None


TABLE_LAYOUTS: dict[str, TableLayout] = {
    "XML0": TableLayout("CHI_TIEU_TRANG_THAI_KCB", "DSACH_TRANG_THAI_KCB", "TRANG_THAI_KCB"),
    "XML1": TableLayout("TONG_HOP", None, None),
    "XML2": TableLayout("CHITIEU_CHITIET_THUOC", "DSACH_CHI_TIET_THUOC", "CHI_TIET_THUOC"),
    "XML3": TableLayout("CHITIEU_CHITIET_DVKT_VTYT", "DSACH_CHI_TIET_DVKT", "CHI_TIET_DVKT"),
    "XML4": TableLayout("CHITIEU_CHITIET_DICHVUCANLAMSANG", "DSACH_CHI_TIET_CLS", "CHI_TIET_CLS"),
    "XML5": TableLayout(
        "CHITIEU_CHITIET_DIENBIENLAMSANG", "DSACH_CHI_TIET_DIEN_BIEN_BENH", "CHI_TIET_DIEN_BIEN_BENH"
    ),
    "XML6": TableLayout(
        "CHI_TIEU_HO_SO_BENH_AN_CHAM_SOC_VA_DIEU_TRI_HIV_AIDS",
        "DSACH_HO_SO_BENH_AN_CHAM_SOC_VA_DIEU_TRI_HIV_AIDS",
        "HO_SO_BENH_AN_CHAM_SOC_VA_DIEU_TRI_HIV_AIDS",
    ),
    "XML7": TableLayout("CHI_TIEU_DU_LIEU_GIAY_RA_VIEN", None, None),
    "XML8": TableLayout("CHI_TIEU_DU_LIEU_TOM_TAT_HO_SO_BENH_AN", None, None),
    "XML9": TableLayout("CHI_TIEU_DU_LIEU_GIAY_CHUNG_SINH", "DSACH_GIAYCHUNGSINH", "DU_LIEU_GIAY_CHUNG_SINH"),
    "XML10": TableLayout("CHI_TIEU_DU_LIEU_GIAY_NGHI_DUONG_THAI", None, None),
    "XML11": TableLayout("CHI_TIEU_DU_LIEU_GIAY_CHUNG_NHAN_NGHI_VIEC_HUONG_BAO_HIEM_XA_HOI", None, None),
    "XML13": TableLayout("CHI_TIEU_GIAYCHUYENTUYEN", None, None),
    "XML14": TableLayout("CHI_TIEU_GIAYHEN_KHAMLAI", None, None),
    "XML15": TableLayout(
        "CHI_TIEU_DIEUTRI_BENHLAO", "DSACH_CHITIET_DIEUTRI_BENHLAO", "CHITIET_DIEUTRI_BENHLAO"
    ),
}

#: Profile differences are data, in one place (DOMAIN.md §15 row 18): table → CSV under data/spec/tables/<profile>/.
PROFILE_VARIANTS: dict[Profile, frozenset[str]] = {
    Profile.QD4750: frozenset(),
    Profile.QD3176: frozenset({"XML13"}),
}


def _read_table_csv(path: Path, table: str) -> tuple[FieldSpec, ...]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return tuple(
        FieldSpec(
            table=table,
            order=int(row["order"]),
            name=row["name"],
            type=FieldType(row["type"]),
            max_length=int(row["max_length"]) if row["max_length"] else None,
            required=row.get("required", "") or "",
            format=row.get("format", "") or "",
            description_en=row.get("description_en", "") or "",
            rule=row.get("rule", "") or "",
        )
        for row in rows
    )


@cache
def base_fields(table: str) -> tuple[FieldSpec, ...]:
    """Fields of a table as in the QĐ 4750 appendix (the base of both profiles)."""
    return _read_table_csv(SPEC_ROOT / "tables" / f"{table}.csv", table)


@cache
def table_fields(table: str, profile: Profile = Profile.QD4750) -> tuple[FieldSpec, ...]:
    """Fields of a table, in element order, under the given profile."""
    if table in PROFILE_VARIANTS[profile]:
        variant = _read_table_csv(SPEC_ROOT / "tables" / profile.value / f"{table}.csv", table)
        base = {spec.name: spec for spec in base_fields(table)}
        # The variant CSVs carry only name/type/size; keep the base text where the field exists there.
        return tuple(
            FieldSpec(
                table=table,
                order=spec.order,
                name=spec.name,
                type=spec.type,
                max_length=spec.max_length,
                required=spec.required or (base[spec.name].required if spec.name in base else ""),
                format=spec.format or (base[spec.name].format if spec.name in base else ""),
                description_en=spec.description_en
                or (base[spec.name].description_en if spec.name in base else ""),
                rule=spec.rule or (base[spec.name].rule if spec.name in base else ""),
            )
            for spec in variant
        )
    return base_fields(table)


@dataclass(frozen=True, slots=True)
class Code:
    code: str
    meaning_vi: str
    meaning_en: str
    valid_from: date | None
    valid_to: date | None

    def valid_on(self, day: date) -> bool:
        if self.valid_from is not None and day < self.valid_from:
            return False
        return not (self.valid_to is not None and day > self.valid_to)


@cache
def code_list(name: str) -> tuple[Code, ...]:
    path = SPEC_ROOT / "codes" / f"{name}.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        return tuple(
            Code(
                code=row["code"].strip(),
                meaning_vi=row["meaning_vi"],
                meaning_en=row["meaning_en"],
                valid_from=date.fromisoformat(row["valid_from"]) if row["valid_from"] else None,
                valid_to=date.fromisoformat(row["valid_to"]) if row["valid_to"] else None,
            )
            for row in csv.DictReader(handle)
        )


@cache
def known_code_lists() -> frozenset[str]:
    return frozenset(path.stem for path in (SPEC_ROOT / "codes").glob("*.csv"))


def codes_valid_on(name: str, day: date) -> frozenset[str]:
    """The codes of a list that are valid on ``day`` (the visit end date)."""
    starts, valid = _validity_periods(name)
    return valid[bisect_right(starts, day)]


@cache
def _validity_periods(name: str) -> tuple[list[date], list[frozenset[str]]]:
    """A list's valid codes change only on a ``valid_from`` or the day after a ``valid_to``: the sets between
    those days, made once. (Scanning the list for every code checked was an eighth of building a claim.)
    ``valid[i]`` holds from ``starts[i - 1]`` (included) to ``starts[i]`` (excluded)."""
    codes = code_list(name)
    starts = sorted(
        {code.valid_from for code in codes if code.valid_from is not None}
        | {code.valid_to + timedelta(days=1) for code in codes if code.valid_to is not None}
    )
    # One day inside each period decides it: the day before the first change, then each change day.
    days = [starts[0] - timedelta(days=1) if starts and starts[0] > date.min else date.min, *starts]
    valid = [frozenset(code.code for code in codes if code.valid_on(day)) for day in days]
    return starts, valid
