"""``load_many`` (the pipeline's batched read) against ``load`` one key at a time, on SQLite, PostgreSQL and
MariaDB: the same result for every key — encounters of every kind and defect, encounters no longer completed,
unreadable ones — with one query per section for the whole batch."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from adapters.his import base
from adapters.his.demo import schema
from adapters.his.demo.source import DEMO_MAPPING_FILE, DemoSource
from adapters.his.errors import EncounterDataError, HisUnavailableError
from adapters.his.qd130_tables.source import Qd130TablesSource
from adapters.his.sql_mapping.source import SqlMappingSource
from schemas.domain import Encounter
from schemas.ports import EncounterSource, SourceDataError, SourceUnavailableError
from tests.integration.his import qd130_data
from tests.integration.his.demo_data import FACILITY, demo_source, execute, sample_encounters, write
from worker.config import HisSettings

NEVER_EXISTED = "V9999999"
#: The demo mapping's sections with a query of their own (patient reuses the visit row).
QUERIED_SECTIONS = 11


def _one_by_one(source: EncounterSource, keys: Sequence[str]) -> dict[str, object]:
    outcomes: dict[str, object] = {}
    for key in keys:
        try:
            outcomes[key] = source.load(key)
        except SourceDataError as exc:
            outcomes[key] = exc
    return outcomes


def _comparable(outcome: object) -> object:
    if isinstance(outcome, SourceDataError):
        return (type(outcome), str(outcome), outcome.his_key, outcome.section, outcome.column)
    return outcome


def assert_same_results(source: EncounterSource, keys: Sequence[str]) -> dict[str, object]:
    """``load_many(keys)`` equals ``load`` of each key; returns the per-key outcomes."""
    expected = _one_by_one(source, keys)
    batched = source.load_many(keys)
    assert set(batched) == set(keys)
    differ = [key for key in expected if _comparable(batched[key]) != _comparable(expected[key])]
    assert not differ, differ
    return expected


@contextmanager
def counted_selects(engine: sa.Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def _hide_and_break(url: str, written: Sequence[Encounter]) -> tuple[set[str], dict[str, tuple[str, str]]]:
    """Three encounters no longer completed, three that cannot be read (codes the value maps do not know).
    Returns the hidden keys and, per unreadable key, the (section, column) its error must name."""
    deleted, cancelled, reopened = (encounter.his_key for encounter in written[:3])
    visits = schema.visits
    execute(url, visits.update().where(visits.c.visit_code == deleted).values(deleted_at=sa.func.now()))
    execute(url, visits.update().where(visits.c.visit_code == cancelled).values(status="CANCELLED"))
    execute(
        url,
        visits.update().where(visits.c.visit_code == reopened).values(status="OPEN", discharged_at=None),
    )
    bad_department, bad_sex = written[3].his_key, written[4].his_key
    bad_drug_line = next(encounter.his_key for encounter in written[5:] if encounter.drug_lines)
    execute(url, schema.departments.insert().values(id=9001, code="PHCN", name="Phục hồi chức năng"))
    execute(url, visits.update().where(visits.c.visit_code == bad_department).values(department_id=9001))
    visit_id = sa.select(visits.c.id).where(visits.c.visit_code == bad_drug_line).scalar_subquery()
    execute(
        url,
        schema.prescriptions.update()
        .where(schema.prescriptions.c.visit_id == visit_id, schema.prescriptions.c.line_no == 1)
        .values(department_id=9001),
    )
    patient_id = sa.select(visits.c.patient_id).where(visits.c.visit_code == bad_sex).scalar_subquery()
    execute(url, schema.patients.update().where(schema.patients.c.id == patient_id).values(sex="X"))
    return {deleted, cancelled, reopened}, {
        bad_department: ("visit", "MA_KHOA"),
        bad_drug_line: ("drug_lines", "MA_KHOA"),
        bad_sex: ("patient", "GIOI_TINH"),
    }


def _mapping_without_batches(tmp_path: Path, sections: Sequence[str]) -> Path:
    text = DEMO_MAPPING_FILE.read_text(encoding="utf-8")
    for name in sections:
        text, removed = re.subn(
            rf'(\[sections\.{name}\]\nsql = """.*?"""\n)batch_sql = """.*?"""\n', r"\1", text, flags=re.DOTALL
        )
        assert removed == 1, name
    path = tmp_path / "mapping.toml"
    path.write_text(text, encoding="utf-8")
    return path


@contextmanager
def mapping_source(url: str, mapping: Path) -> Iterator[SqlMappingSource]:
    his = HisSettings(adapter="sql_mapping", mapping_file=mapping)
    source = SqlMappingSource.from_settings(his, url=url, facility_code=FACILITY)
    try:
        yield source
    finally:
        source.close()


# ------------------------------------------------------------------------------------------------- demo


@pytest.mark.parametrize("chunk", [base.KEY_CHUNK, 4])
def test_load_many_gives_for_every_key_what_load_gives(
    his_url: str, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base, "KEY_CHUNK", chunk)  # 4: the batch crosses chunk boundaries
    written = sample_encounters()  # every kind of visit and every synthetic defect
    write(his_url, written)
    hidden, unreadable = _hide_and_break(his_url, written)
    keys = [encounter.his_key for encounter in reversed(written)] + [NEVER_EXISTED]
    with demo_source(his_url) as source:
        expected = assert_same_results(source, keys)
        assert set(source.load_many([*keys[:3], keys[0]])) == set(keys[:3])  # a repeated key is read once
    # What both agreed on is the truth, not a shared mistake:
    assert {key for key, outcome in expected.items() if outcome is None} == {*hidden, NEVER_EXISTED}
    errors = {key: outcome for key, outcome in expected.items() if isinstance(outcome, SourceDataError)}
    assert {key: (error.section, error.column) for key, error in errors.items()} == unreadable
    assert all(isinstance(error, EncounterDataError) for error in errors.values())
    intact = [e for e in written if e.his_key not in hidden and e.his_key not in unreadable]
    assert [expected[encounter.his_key] for encounter in intact] == intact


def test_load_many_reads_each_section_once_for_the_whole_batch(his_url: str) -> None:
    written = sample_encounters()
    write(his_url, written)
    keys = [encounter.his_key for encounter in written]
    with demo_source(his_url) as source:
        with counted_selects(source.engine) as batched:
            source.load_many(keys)
        with counted_selects(source.engine) as single:
            source.load(keys[0])
    assert len(keys) > 10
    assert len(batched) == 1 + QUERIED_SECTIONS  # the encounters, then one query per section
    assert len(single) == 1 + QUERIED_SECTIONS
    assert all(" IN (" in statement.upper() for statement in batched)


def test_sections_without_a_batch_query_are_read_per_encounter_in_the_same_batch(
    his_url: str, tmp_path: Path
) -> None:
    written = sample_encounters()
    write(his_url, written)
    _hide_and_break(his_url, written)
    keys = [encounter.his_key for encounter in written]
    mapping = _mapping_without_batches(tmp_path, ["visit", "drug_lines"])
    with mapping_source(his_url, mapping) as source:
        assert_same_results(source, keys)
        with counted_selects(source.engine) as statements:
            results = source.load_many(keys)
    listed = sum(not isinstance(outcome, type(None)) for outcome in results.values())
    assert len(statements) == 1 + (QUERIED_SECTIONS - 2) + 2 * listed


def test_batch_rows_whose_key_matches_no_requested_key_are_read_again_per_encounter(
    his_url: str, tmp_path: Path
) -> None:
    written = sample_encounters()
    write(his_url, written)
    keys = [encounter.his_key for encounter in written]
    text = DEMO_MAPPING_FILE.read_text(encoding="utf-8")
    batch_key = "SELECT v.visit_code AS HIS_KEY,\n       rx.drug_code AS MA_THUOC"
    assert batch_key in text
    mapping = tmp_path / "mapping.toml"
    # Another form of the key (as a case-insensitive collation would match it): never guessed at.
    mapping.write_text(
        text.replace(batch_key, batch_key.replace("v.visit_code", "LOWER(v.visit_code)")), encoding="utf-8"
    )
    with mapping_source(his_url, mapping) as source:
        expected = assert_same_results(source, keys)
        report = source.check(sample=50)
    assert any(isinstance(outcome, Encounter) and outcome.drug_lines for outcome in expected.values())
    errors = [
        f"{finding.where}: {finding.message}" for finding in report.findings if finding.level == "error"
    ]
    assert errors == [
        "drug_lines.batch_sql: returns rows whose HIS_KEY is none of the sampled encounters' keys"
    ]


def test_two_encounter_rows_for_one_key_fail_only_that_encounter(his_url: str, tmp_path: Path) -> None:
    written = sample_encounters()
    write(his_url, written)
    keys = [encounter.his_key for encounter in written]
    text = DEMO_MAPPING_FILE.read_text(encoding="utf-8")
    join = "LEFT JOIN departments d ON d.id = v.department_id\nWHERE v.deleted_at IS NULL"
    assert join in text
    mapping = tmp_path / "mapping.toml"
    # A careless join in the encounters query: one row per clinical note.
    careless = join.replace("WHERE", "LEFT JOIN clinical_notes cn ON cn.visit_id = v.id\nWHERE")
    mapping.write_text(text.replace(join, careless), encoding="utf-8")
    with mapping_source(his_url, mapping) as source:
        expected = assert_same_results(source, keys)
    noted = {encounter.his_key for encounter in written if len(encounter.clinical_notes) > 1}
    assert 0 < len(noted) < len(keys)
    errors = {key: outcome for key, outcome in expected.items() if isinstance(outcome, SourceDataError)}
    assert {key: error.section for key, error in errors.items()} == dict.fromkeys(noted, "encounters")
    intact = [encounter for encounter in written if encounter.his_key not in noted]
    assert [expected[encounter.his_key] for encounter in intact] == intact


def test_an_unreachable_his_fails_the_whole_batch() -> None:
    his = HisSettings(options={"retry_attempts": 2, "retry_initial_wait_s": 0.01})
    source = DemoSource.from_settings(
        his, url="postgresql+psycopg://nobody@127.0.0.1:9/his", facility_code=FACILITY
    )
    try:
        with pytest.raises(HisUnavailableError) as failed:
            source.load_many(["V0000001", "V0000002"])
    finally:
        source.close()
    assert isinstance(failed.value, SourceUnavailableError)
    assert source.load_many([]) == {}


# ------------------------------------------------------------------------------------------- qd130_tables


def test_qd130_load_many_gives_for_every_key_what_load_gives(his_url: str) -> None:
    written = sample_encounters()
    engine = sa.create_engine(his_url)
    try:
        tables = qd130_data.create_tables(engine)
        qd130_data.write(engine, tables, written)
        xml1, xml8 = tables["XML1"], tables["XML8"]
        gone, reopened, twice, bad_birth = (encounter.ma_lk for encounter in written[:4])
        with_summary = next(e.ma_lk for e in written[4:] if e.record_summary is not None)
        with engine.begin() as conn:
            conn.execute(xml1.delete().where(gone == xml1.c.MA_LK))
            conn.execute(xml1.update().where(reopened == xml1.c.MA_LK).values(NGAY_RA=None))
            copy = conn.execute(sa.select(xml1).where(twice == xml1.c.MA_LK)).mappings().one()
            conn.execute(xml1.insert().values(dict(copy)))
            conn.execute(xml1.update().where(bad_birth == xml1.c.MA_LK).values(NGAY_SINH="19xx"))
            summary = conn.execute(sa.select(xml8).where(with_summary == xml8.c.MA_LK)).mappings().one()
            conn.execute(xml8.insert().values(dict(summary)))
    finally:
        engine.dispose()
    keys = [encounter.ma_lk for encounter in written] + ["79999-NONE"]
    source = Qd130TablesSource.from_settings(HisSettings(), url=his_url, facility_code=FACILITY)
    try:
        expected = assert_same_results(source, keys)
        with counted_selects(source.engine) as statements:
            source.load_many(keys)
    finally:
        source.close()
    assert {key for key, outcome in expected.items() if outcome is None} == {gone, reopened, "79999-NONE"}
    errors = {key: outcome for key, outcome in expected.items() if isinstance(outcome, SourceDataError)}
    assert {key: (error.section, error.column) for key, error in errors.items()} == {
        twice: ("XML1", None),
        bad_birth: ("patient", "NGAY_SINH"),
        with_summary: ("record_summary", None),
    }
    assert sum(isinstance(outcome, Encounter) for outcome in expected.values()) == len(written) - 5
    assert len(statements) == len(qd130_data.table_ids())  # XML1, then one query per other table
