"""From rows keyed by standard names to the canonical Encounter."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal

import pytest

from adapters.his.assemble import build_encounter, normalise_row, sections
from adapters.his.errors import EncounterDataError
from schemas.domain import BirthDate, DrugLine, Encounter, Patient
from schemas.domain.values import VIETNAM_TZ

VISIT = {"NGAY_VAO": "2026-03-04 08:15:00", "NGAY_RA": datetime(2026, 3, 4, 10, 25), "MA_LOAI_KCB": "01"}
PATIENT = {"MA_BN": "BN1", "NGAY_SINH": "1980-05-12", "GIOI_TINH": 2}


def test_every_section_of_the_encounter_is_known() -> None:
    names = {field.name for field in dataclasses.fields(Encounter)} - {"ma_lk", "his_key", "completed_at"}
    assert set(sections()) == names
    assert sections()["drug_lines"].many
    assert not sections()["visit"].many
    assert sections()["first_cost"].table == "XML0"


def test_rows_build_the_encounter_with_driver_values_normalised() -> None:
    encounter = build_encounter(
        his_key="K1",
        ma_lk="79999-K1",
        completed_at=None,
        rows={
            "patient": [PATIENT],
            "visit": [VISIT],
            "drug_lines": [{"ma_thuoc": "40.152", "so_luong": 10.0, "hiv_restricted": 0, "unknown": "x"}],
        },
        zone=VIETNAM_TZ,
    )
    assert encounter.patient == Patient(ma_bn="BN1", ngay_sinh=BirthDate(1980, 5, 12), gioi_tinh=2)
    assert encounter.visit.ngay_vao == datetime(2026, 3, 4, 8, 15, tzinfo=VIETNAM_TZ)
    assert encounter.drug_lines == (DrugLine(ma_thuoc="40.152", so_luong=Decimal(10)),)
    assert normalise_row(Patient, {"ngay_sinh": b"198005120000", "ho_ten": None}, VIETNAM_TZ) == {
        "NGAY_SINH": "198005120000",
        "HO_TEN": None,
    }


@pytest.mark.parametrize(
    ("rows", "where"),
    [
        ({"patient": [PATIENT], "visit": [VISIT, VISIT]}, "visit: 2 rows where at most one is allowed"),
        ({"visit": [VISIT]}, "patient: no row"),
        ({"patient": [PATIENT], "visit": [{**VISIT, "SO_NGAY_DTRI": "Nguyễn Văn A"}]}, "visit.SO_NGAY_DTRI"),
    ],
)
def test_bad_rows_are_reported_by_section_and_column_never_by_value(
    rows: dict[str, list[dict[str, object]]], where: str
) -> None:
    with pytest.raises(EncounterDataError) as failed:
        build_encounter(his_key="K9", ma_lk="79999-K9", completed_at=None, rows=rows, zone=VIETNAM_TZ)
    assert str(failed.value).startswith(f"encounter K9: {where}")
    assert "Nguyễn" not in str(failed.value)
