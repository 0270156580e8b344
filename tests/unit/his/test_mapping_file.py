"""Loading and validating sql_mapping files: every error names the file, the section and the column."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from adapters.his.demo.source import DEMO_MAPPING_FILE
from adapters.his.errors import MappingError
from adapters.his.sql_mapping.mapping import UnmappedCodeError, ValueMap, load_mapping, query_parameters

MINIMAL = """
[encounters]
sql = "SELECT v.code AS HIS_KEY, v.changed AS CHANGED_AT, v.ended AS NGAY_RA FROM visits v"

[sections.visit]
sql = "SELECT v.ended AS NGAY_RA, v.sex AS GIOI_TINH FROM visits v WHERE v.code = :his_key"

[sections.patient]
same_row_as = "visit"
maps = { GIOI_TINH = "sex" }

[value_maps.sex]
values = { M = 1, F = 2 }
"""


BATCH = "SELECT v.code AS HIS_KEY, v.ended AS NGAY_RA FROM visits v WHERE v.code IN :his_keys"


def _write(tmp_path: Path, text: str, name: str = "mapping.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_demo_mapping_and_its_yaml_twin_load_the_same(tmp_path: Path) -> None:
    mapping = load_mapping(DEMO_MAPPING_FILE)
    assert {"patient", "visit", "drug_lines", "service_lines", "first_cost"} <= set(mapping.sections)
    as_yaml = _write(tmp_path, yaml.safe_dump(mapping.model_dump(), allow_unicode=True), "mapping.yaml")
    assert load_mapping(as_yaml) == mapping


@pytest.mark.parametrize(
    ("change", "section", "column", "message"),
    [
        (
            ('maps = { GIOI_TINH = "sex" }', 'maps = { GIOI_TINHH = "sex" }'),
            "patient",
            "GIOI_TINHH",
            "not a field",
        ),
        (
            ('maps = { GIOI_TINH = "sex" }', 'maps = { GIOI_TINH = "gender" }'),
            "patient",
            "GIOI_TINH",
            "unknown value map",
        ),
        (("[sections.patient]", "[sections.patients]"), "patients", None, "unknown section"),
        (("WHERE v.code = :his_key", "WHERE v.code = :key"), "visit", None, "unknown parameter :key"),
        (("WHERE v.code = :his_key", ""), "visit", None, "must select one encounter's rows with :his_key"),
        (('same_row_as = "visit"', 'same_row_as = "drug_lines"'), "patient", None, "same_row_as"),
        (
            ('same_row_as = "visit"', 'sql = "SELECT 1 WHERE 1 = :his_key"\nsame_row_as = "visit"'),
            "patient",
            None,
            "exactly one",
        ),
        (
            ("values = { M = 1, F = 2 }", 'values = { M = 1, F = 2 }\nunmapped = "drop"'),
            "value_maps.sex",
            None,
            "unmapped",
        ),
        (("[sections.visit]", "[sections.visit]\nsqll = 'x'"), "visit", None, "unknown key"),
        (
            ("[sections.patient]", f"[sections.patient]\nbatch_sql = {BATCH!r}"),
            "patient",
            None,
            "batch_sql needs sql",
        ),
        (
            ("[sections.visit]", '[sections.visit]\nbatch_sql = "SELECT 1 AS HIS_KEY"'),
            "visit",
            None,
            "batch_sql must select the encounters' rows with IN :his_keys",
        ),
        (
            (
                "[sections.visit]",
                f"[sections.visit]\nbatch_sql = {BATCH.replace('IN :his_keys', 'IN (:his_keys)')!r}",
            ),
            "visit",
            None,
            "without parentheses",
        ),
        (
            ("[sections.visit]", f"[sections.visit]\nbatch_sql = {BATCH + ' OR v.code = :his_key'!r}"),
            "visit",
            None,
            "batch_sql: unknown parameter :his_key",
        ),
    ],
)
def test_errors_name_file_section_and_column(
    tmp_path: Path, change: tuple[str, str], section: str, column: str | None, message: str
) -> None:
    assert change[0] in MINIMAL
    path = _write(tmp_path, MINIMAL.replace(change[0], change[1], 1))
    with pytest.raises(MappingError) as failed:
        load_mapping(path)
    assert failed.value.file == str(path)
    assert failed.value.section == section
    assert failed.value.column == column
    assert message in str(failed.value)
    assert str(path) in str(failed.value)


def test_a_section_may_add_a_batch_query(tmp_path: Path) -> None:
    text = MINIMAL.replace("[sections.visit]", f"[sections.visit]\nbatch_sql = {BATCH!r}", 1)
    mapping = load_mapping(_write(tmp_path, text))
    assert mapping.sections["visit"].batch_sql == BATCH
    assert mapping.sections["patient"].batch_sql is None
    assert all(
        section.batch_sql for section in load_mapping(DEMO_MAPPING_FILE).sections.values() if section.sql
    )


def test_missing_required_section_and_broken_syntax(tmp_path: Path) -> None:
    without_patient = (
        MINIMAL.split("[sections.patient]", maxsplit=1)[0] + "[value_maps.sex]\nvalues = { M = 1 }\n"
    )
    with pytest.raises(MappingError, match="section patient: required section is missing"):
        load_mapping(_write(tmp_path, without_patient))
    with pytest.raises(MappingError, match="not valid TOML"):
        load_mapping(_write(tmp_path, "[encounters\nsql = 1"))
    with pytest.raises(MappingError, match="not valid YAML"):
        load_mapping(_write(tmp_path, "encounters: [", "m.yml"))
    with pytest.raises(MappingError, match="cannot read the mapping file"):
        load_mapping(tmp_path / "absent.toml")


def test_query_parameters_ignore_casts_and_times() -> None:
    sql = "SELECT x::text, '10:30' AS t FROM v WHERE v.k = :his_key AND v.d >= :since"
    assert query_parameters(sql) == {"his_key", "since"}


def test_value_maps_translate_codes() -> None:
    strict = ValueMap(values={"M": 1, "F": 2})
    assert strict.translate("sex", " M ") == 1
    assert strict.translate("sex", None) is None
    with pytest.raises(UnmappedCodeError) as unmapped:
        strict.translate("sex", "X")
    assert unmapped.value.code == "X"
    assert "X" not in str(unmapped.value)
    assert ValueMap(values={"M": 1}, unmapped="keep").translate("sex", "X") == "X"
    assert ValueMap(values={"M": 1}, unmapped="empty").translate("sex", "X") is None
    several = ValueMap(values={"NOI": "K03", "NGOAI": "K19"}, separator=",")
    assert several.translate("department", "NOI, NGOAI") == "K03;K19"  # the standard separator is ';'
    assert ValueMap.model_validate({"values": {1: "1", 2: "2"}}).translate("sex", 2) == "2"  # YAML int keys
