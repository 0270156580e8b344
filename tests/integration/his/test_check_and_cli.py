"""`vneid-sync adapters check|list` and `vneid-sync demo seed`, run in-process against SQLite HIS files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from adapters.his.demo import schema
from adapters.his.demo.source import DEMO_MAPPING_FILE
from adapters.his.errors import EncounterDataError
from adapters.his.sql_mapping.source import SqlMappingSource
from tests.integration.his.demo_data import FACILITY, sample_encounters, write
from worker.cli.app import main
from worker.config import HisSettings


@pytest.fixture
def his_file(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'his.sqlite3'}"
    write(url, sample_encounters())
    return url


def _config(tmp_path: Path, url: str, mapping: Path | None = None) -> Path:
    lines = ["[his]", f'url = "{url}"']
    if mapping is not None:
        lines += ['adapter = "sql_mapping"', f'mapping_file = "{mapping}"']
    path = tmp_path / "vneid.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _broken_mapping(tmp_path: Path, *replacements: tuple[str, str]) -> Path:
    text = DEMO_MAPPING_FILE.read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "mapping.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _check(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    code = main(["--config", str(config), "adapters", "check", "--sample", "50", "--json"])
    return code, json.loads(capsys.readouterr().out)


def _errors(report: dict[str, object]) -> list[str]:
    findings = report["findings"]
    assert isinstance(findings, list)
    return [f"{item['where']}: {item['message']}" for item in findings if item["level"] == "error"]


def test_check_passes_on_the_demo_his(
    tmp_path: Path, his_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = _check(_config(tmp_path, his_file), capsys)
    assert code == 0, report
    assert report["ok"] is True
    assert report["sampled"] == report["loaded"] == len(sample_encounters())


def test_check_names_bad_sql_typos_and_unmapped_codes(
    tmp_path: Path, his_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = _broken_mapping(
        tmp_path,
        ("FROM prescriptions rx", "FROM prescriptionz rx"),  # bad SQL
        (
            "rx.drug_code AS MA_THUOC,",
            "rx.drug_code AS MA_THUOC,\n       rx.unit AS DONVI_TINH,",
        ),  # alias typo
        ('NOI = "K03", ', ""),  # a local department the map does not know
    )
    code, report = _check(_config(tmp_path, his_file, mapping), capsys)
    errors = _errors(report)
    assert code == 1
    assert any(
        error.startswith("drug_lines: query failed: no such table: prescriptionz") for error in errors
    ), errors
    assert not any("DONVI_TINH" in error for error in errors)  # that query never ran; its typo shows below
    assert any(
        error.startswith("visit.MA_KHOA: value map 'department' has no entry for 'NOI'") for error in errors
    )
    assert any(error.startswith("load: sql_mapping.load <key>: query failed") for error in errors), errors

    typo = _broken_mapping(tmp_path, ("so.unit AS DON_VI_TINH", "so.unit AS DONVI_TINH"))
    code, report = _check(_config(tmp_path, his_file, typo), capsys)
    assert code == 1
    assert "service_lines.DONVI_TINH: not a standard field of this section" in " ".join(_errors(report))


def test_check_names_a_section_whose_batch_query_disagrees_with_its_query(
    tmp_path: Path, his_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = _broken_mapping(
        tmp_path,
        ("ORDER BY v.visit_code, rx.line_no", "ORDER BY v.visit_code, rx.line_no DESC"),  # other order
        ("SELECT v.visit_code AS HIS_KEY,\n       lr.service_code", "SELECT lr.service_code"),  # whose row?
        (
            "SELECT v.visit_code AS HIS_KEY,\n       fu.slip_no",
            "SELECT v.visit_code AS HIS_KEY, fu.id,\n fu.slip_no",
        ),
    )
    code, report = _check(_config(tmp_path, his_file, mapping), capsys)
    with_several_drugs = sum(len(encounter.drug_lines) > 1 for encounter in sample_encounters())
    sampled = len(sample_encounters())
    assert code == 1
    assert _errors(report) == [
        f"drug_lines.batch_sql: not the same rows as sql for {with_several_drugs} of {sampled} sampled "
        "encounter(s), e.g. V0000001",
        "cls_results.batch_sql: no HIS_KEY column: the rows cannot be given to their encounters",
        "follow_up.batch_sql: not the same columns as sql: ID",
        f"load_many: the batch load differs from load for {with_several_drugs} of {sampled} sampled, e.g. V0000001",
    ]


def test_check_reports_a_missing_completion_column(
    tmp_path: Path, his_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = _broken_mapping(tmp_path, ("v.discharged_at AS NGAY_RA,\n       v.paid_at", "v.paid_at"))
    code, report = _check(_config(tmp_path, his_file, mapping), capsys)
    assert code == 1
    assert _errors(report) == ["encounters.NGAY_RA: column missing (needed as NGAY_RA)"]


def test_load_rejects_an_unmapped_code_naming_section_and_column_not_the_value(
    tmp_path: Path, his_file: str
) -> None:
    mapping = _broken_mapping(tmp_path, ("M = 1, F = 2, U = 3", "F = 2, U = 3"))
    his = HisSettings(adapter="sql_mapping", mapping_file=mapping)
    source = SqlMappingSource.from_settings(his, url=his_file, facility_code=FACILITY)
    male = next(encounter for encounter in sample_encounters() if encounter.patient.gioi_tinh == 1)
    try:
        with pytest.raises(EncounterDataError) as rejected:
            source.load(male.his_key)
    finally:
        source.close()
    assert rejected.value.section == "patient"
    assert rejected.value.column == "GIOI_TINH"
    assert (
        str(rejected.value)
        == f"encounter {male.his_key}: patient.GIOI_TINH: value map 'sex' has no entry for this code"
    )


def test_adapters_list_names_every_adapter(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["adapters", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("demo", "qd130_tables", "sql_mapping"):
        assert name in out


def test_demo_seed_appends_encounters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'demo.sqlite3'}"
    arguments = ["demo", "seed", "--encounters", "40", "--url", url, "--seed", "7", "--until", "2026-02-28"]
    assert main(arguments) == 0
    assert main([*arguments[:-4], "--bad-share", "0", "--until", "2026-02-28"]) == 0
    out = capsys.readouterr().out
    assert "seeded 40 encounters" in out
    assert "V0000041" in out
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        codes = (
            conn.execute(sa.select(schema.visits.c.visit_code).order_by(schema.visits.c.id)).scalars().all()
        )
        latest = conn.execute(sa.select(sa.func.max(schema.visits.c.admitted_at))).scalar_one()
    engine.dispose()
    assert codes == [f"V{number:07d}" for number in range(1, 81)]
    assert str(latest) < "2026-03-01"
