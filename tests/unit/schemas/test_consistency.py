"""The payload layer's data agrees with the spec CSVs and with the worker's settings."""

from __future__ import annotations

import dataclasses

import pytest

from schemas.constraints import CONDITIONAL_REQUIREMENTS, RELAXED_REQUIREMENTS
from schemas.domain import Encounter
from schemas.messages import CATALOGUE, issue
from schemas.options import PayloadOptions
from schemas.rows import FIELD_SOURCES, SECTIONS
from schemas.spec import ALL_TABLES, Profile, known_code_lists, table_fields
from worker.config import PayloadSettings

#: CSV conditions deliberately not enforced, with the reason next to the data in schemas/constraints.py.
NOT_ENFORCED = {("XML6", "NGAYKT_DTRI_LAO")}


def test_every_csv_condition_is_enforced_or_documented() -> None:
    conditional = {
        (spec.table, spec.name)
        for table in ALL_TABLES
        if table != "XML12"
        for spec in table_fields(table, Profile.QD4750)
        if spec.required not in ("yes", "no", "")
    }
    assert conditional - set(CONDITIONAL_REQUIREMENTS) == NOT_ENFORCED
    for key in RELAXED_REQUIREMENTS:
        spec = next(spec for spec in table_fields(key[0]) if spec.name == key[1])
        assert spec.required == "yes", key


def test_every_referenced_code_list_is_shipped() -> None:
    used = {
        spec.code_list
        for table in ALL_TABLES
        for profile in Profile
        for spec in table_fields(table, profile)
        if spec.code_list is not None
    }
    assert used <= known_code_lists()


def test_field_sources_name_real_fields() -> None:
    for (table, element), sources in FIELD_SOURCES.items():
        assert any(element in {spec.name for spec in table_fields(table, profile)} for profile in Profile)
        for source in sources:
            if ":" not in source:
                assert source.isupper(), source
    encounter_fields = {field.name for field in dataclasses.fields(Encounter)}
    for table, (attribute, section) in SECTIONS.items():
        assert attribute in encounter_fields, table
        assert table == section.TABLE  # type: ignore[attr-defined]  # generated sections carry their table


def test_options_mirror_the_payload_settings() -> None:
    settings = PayloadSettings()
    options = PayloadOptions()
    names = [field.name for field in dataclasses.fields(PayloadOptions)]
    assert names == list(PayloadSettings.model_fields)
    for name in names:
        assert getattr(options, name) == getattr(settings, name), name


def test_options_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="5 characters"):
        PayloadOptions(facility_code="123")
    with pytest.raises(ValueError, match="unknown tables"):
        PayloadOptions(non_bhyt_tables=("XML12",))


@pytest.mark.parametrize("kind", sorted(CATALOGUE))
def test_every_catalogue_text_formats_in_both_languages(kind: str) -> None:
    params = {
        "max": 10,
        "detail": "U+0007 at position 3",
        "condition_en": "A is set",
        "condition_vi": "có A",
        "expected_en": "x",
        "expected_vi": "x",
        "code_list": "GIOI_TINH",
        "other": "NGAY_VAO",
        "formula": "Σ",
        "reason_en": "wrong format",
        "reason_vi": "sai định dạng",
    }
    found = issue("XML1", None, "HO_TEN", kind, **params)
    assert found.message_vi
    assert found.message_en
    assert found.hint
    assert found.rule == f"XML1.HO_TEN.{kind}"
    assert "{" not in found.message_vi + found.message_en + found.hint
