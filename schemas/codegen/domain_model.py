"""Generate ``schemas/domain/records.py`` — the typed sections of the canonical encounter — from the spec CSVs.

The canonical model speaks the standard's vocabulary (QĐ 130/4750 field names in snake case), so that the
HIS adapters, the builders and the validators share one set of names. Run ``python -m schemas.codegen.domain_model``
after a spec change; ``tests/unit/test_codegen_in_sync.py`` fails when the committed file drifts.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from schemas.spec import FieldSpec, FieldType, base_fields

#: ruff's line length (pyproject.toml).
LINE_LENGTH = 110
TARGET = Path(__file__).resolve().parents[1] / "domain" / "records.py"

#: XML1 fields about the person (administrative data); the rest of XML1 is the visit summary.
PATIENT_FIELDS = (
    "MA_BN",
    "HO_TEN",
    "SO_CCCD",
    "NGAY_SINH",
    "GIOI_TINH",
    "NHOM_MAU",
    "MA_QUOCTICH",
    "MA_DANTOC",
    "MA_NGHE_NGHIEP",
    "DIA_CHI",
    "MATINH_CU_TRU",
    "MAHUYEN_CU_TRU",
    "MAXA_CU_TRU",
    "DIEN_THOAI",
    "MA_THE_BHYT",
    "MA_DKBD",
    "GT_THE_TU",
    "GT_THE_DEN",
    "NGAY_MIEN_CCT",
    "MA_KHUVUC",
    "NAM_NAM_LIEN_TUC",
)
#: Fields every document derives (key and row counter) instead of carrying them.
DERIVED_FIELDS = frozenset({"MA_LK", "STT"})
#: Tables whose XML1-named fields are line-level values, not copies of the visit summary.
LINE_LEVEL_TABLES = frozenset({"XML2", "XML3", "XML9"})
#: Lines that can carry HIV/ARV-restricted content (DOMAIN.md §13): they get a ``hiv_restricted`` flag.
RESTRICTABLE_TABLES = frozenset({"XML2", "XML3", "XML4"})


@dataclass(frozen=True)
class Section:
    class_name: str
    table: str
    doc: str


SECTIONS = (
    Section("FirstCost", "XML0", "The first cost of the visit, reported by the XML0 check-in."),
    Section("DrugLine", "XML2", "One drug, oxygen, blood or blood-product line (XML2 row)."),
    Section("ServiceLine", "XML3", "One service, examination, bed-day, supply or transport line (XML3 row)."),
    Section("ClsResult", "XML4", "One paraclinical (lab/imaging) result index (XML4 row)."),
    Section("ClinicalNote", "XML5", "One clinical progress note (XML5 row)."),
    Section("HivCare", "XML6", "HIV/AIDS care and treatment record (XML6 row); restricted data."),
    Section("DischargePaper", "XML7", "Discharge paper (giấy ra viện), one per baby for multiple births."),
    Section("RecordSummary", "XML8", "Medical-record summary (tóm tắt hồ sơ bệnh án)."),
    Section("BirthCertificate", "XML9", "Birth certificate, one per baby (XML9 row)."),
    Section("PregnancyRestCertificate", "XML10", "Pregnancy-rest certificate (giấy nghỉ dưỡng thai)."),
    Section("SickLeaveCertificate", "XML11", "Social-insurance sick-leave certificate (CT07)."),
    Section("Referral", "XML13", "Referral paper (giấy chuyển tuyến)."),
    Section("FollowUp", "XML14", "Follow-up appointment (giấy hẹn khám lại)."),
    Section("TbTreatment", "XML15", "Tuberculosis treatment record (XML15 row)."),
)

_PY_TYPES = {
    FieldType.STRING: "str",
    FieldType.NUMBER: "int",
    FieldType.DECIMAL: "Decimal",
    FieldType.DATETIME12: "datetime",
    FieldType.DATE8: "date",
}


def inherited_fields(table: str) -> frozenset[str]:
    """Names a table copies from the encounter's patient/visit instead of carrying its own value."""
    if table in LINE_LEVEL_TABLES:
        return frozenset()
    xml1 = {spec.name for spec in base_fields("XML1")} - DERIVED_FIELDS - {"DU_PHONG"}
    return frozenset(spec.name for spec in base_fields(table) if spec.name in xml1)


def _python_type(spec: FieldSpec) -> str:
    if spec.name == "NGAY_SINH":
        return "BirthDate"
    return _PY_TYPES[spec.type]


def _field_line(spec: FieldSpec) -> str:
    declaration = f"    {spec.name.lower()}: {_python_type(spec)} | None = None  # "
    room = LINE_LENGTH - len(declaration)  # stay within the formatter's line length, so it never reflows
    comment = spec.description_en.strip().split(". ")[0].rstrip(".")
    if len(comment) > room:
        comment = comment[: room - 1].rstrip() + "…"
    return declaration + comment


def _class(name: str, table: str, doc: str, specs: list[FieldSpec], extra: list[str]) -> str:
    lines = [
        "@dataclass(frozen=True, slots=True, kw_only=True)",
        f"class {name}:",
        f'    """{doc}"""',
        "",
        f'    TABLE: ClassVar[str] = "{table}"',
        "",
    ]
    lines += [_field_line(spec) for spec in specs]
    lines += extra
    return "\n".join(lines)


def render() -> str:
    xml1 = [spec for spec in base_fields("XML1") if spec.name not in DERIVED_FIELDS]
    patient = [spec for spec in xml1 if spec.name in PATIENT_FIELDS]
    visit = [spec for spec in xml1 if spec.name not in PATIENT_FIELDS]
    classes = [
        _class(
            "Patient", "XML1", "Administrative data of the person (the XML1 patient fields).", patient, []
        ),
        _class(
            "Visit",
            "XML1",
            "Visit summary: dates, diagnoses, outcome and totals (the rest of XML1).",
            visit,
            [],
        ),
    ]
    for section in SECTIONS:
        skip = DERIVED_FIELDS | inherited_fields(section.table)
        specs = [spec for spec in base_fields(section.table) if spec.name not in skip]
        extra = (
            ["    hiv_restricted: bool = False  # HIV/ARV-restricted line (filtered for Sổ SKĐT-only sends)"]
            if section.table in RESTRICTABLE_TABLES
            else []
        )
        classes.append(_class(section.class_name, section.table, section.doc, specs, extra))
    header = textwrap.dedent(
        '''\
        """Typed sections of the canonical encounter, generated from the QĐ 4750 table CSVs.

        GENERATED by ``python -m schemas.codegen.domain_model`` — do not edit by hand.
        Field names are the standard's element names in snake case; every field is optional here and the
        validators decide what is required. Times are timezone-aware; money and quantities are ``Decimal``.
        """

        from __future__ import annotations

        from dataclasses import dataclass
        from datetime import date, datetime
        from decimal import Decimal
        from typing import ClassVar

        from schemas.domain.values import BirthDate
        '''
    )
    inherited = ",\n".join(
        f'    "{section.table}": frozenset({sorted(inherited_fields(section.table))!r})'
        for section in SECTIONS
        if inherited_fields(section.table)
    )
    footer = (
        "#: Per table, the fields a document takes from the encounter's Patient/Visit rather than its own section.\n"
        f"INHERITED_FIELDS: dict[str, frozenset[str]] = {{\n{inherited},\n}}\n"
    )
    return header + "\n\n" + "\n\n\n".join(classes) + "\n\n\n" + footer


def render_formatted() -> str:
    """``render()`` passed through ``ruff format``, so the committed file is exactly what the formatter keeps."""
    completed = subprocess.run(  # noqa: S603  # our interpreter running ruff on our own text
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(TARGET), "-"],
        input=render(),
        capture_output=True,
        text=True,
        check=True,
    )
    return completed.stdout


def main() -> int:
    TARGET.write_text(render_formatted(), encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
