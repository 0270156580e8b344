"""The qd130_tables adapter against QĐ 130 tables on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.his.errors import AdapterConfigError
from adapters.his.qd130_tables.source import Qd130TablesSource
from schemas.domain import Encounter, derive_ma_lk
from schemas.domain.values import VIETNAM_TZ
from schemas.ports import Cursor
from tests.integration.his import qd130_data
from tests.integration.his.demo_data import FACILITY, sample_encounters
from worker.config import HisSettings

RANGE = (datetime(2026, 1, 1, tzinfo=VIETNAM_TZ), datetime(2026, 6, 1, tzinfo=VIETNAM_TZ))


@contextmanager
def qd130_source(url: str, **his: Any) -> Iterator[Qd130TablesSource]:
    source = Qd130TablesSource.from_settings(HisSettings(**his), url=url, facility_code=FACILITY)
    try:
        yield source
    finally:
        source.close()


@pytest.fixture
def writer(his_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(his_url)
    yield engine
    engine.dispose()


def _as_written(loaded: Encounter | None, original: Encounter) -> Encounter | None:
    """The qd130 HIS key is the MA_LK; compare everything else with what was written."""
    return replace(loaded, his_key=original.his_key) if loaded is not None else None


def test_loads_exactly_what_the_tables_hold(his_url: str, writer: sa.Engine) -> None:
    written = sample_encounters()
    tables = qd130_data.create_tables(writer)
    qd130_data.write(writer, tables, written)
    with qd130_source(his_url, options={"changed_at_column": qd130_data.CHANGED_COLUMN}) as source:
        for encounter in written:
            loaded = source.load(encounter.ma_lk)
            assert _as_written(loaded, encounter) == encounter, encounter.his_key
            assert loaded is not None
            assert loaded.his_key == loaded.ma_lk == encounter.ma_lk


def test_renamed_tables_and_columns_reordered_money_and_text_times(his_url: str, writer: sa.Engine) -> None:
    written = sample_encounters()
    tables = qd130_data.create_tables(
        writer,
        names={"XML1": "V_TONG_HOP", "XML3": "v_dvkt"},
        renames={"XML1": {"NGAY_TTOAN": "NGAY_THANH_TOAN"}, "XML2": {"DON_GIA": "GIA"}},
        reversed_tables=("XML2", "XML3"),  # THANH_TIEN_BH before THANH_TIEN_BV and so on
        text_times=True,
        skip=("XML0",),
    )
    qd130_data.write(writer, tables, written, text_times=True)
    options = {
        "tables": {"XML1": "V_TONG_HOP", "XML3": "V_DVKT", "XML0": ""},
        "columns": {"XML1": {"NGAY_TTOAN": "NGAY_THANH_TOAN"}, "XML2": {"DON_GIA": "gia"}},
        "time_format": "yyyyMMddHHmm",
        "completion": "payment",
        "ma_lk": "derive",
    }
    with qd130_source(his_url, options=options, page_size=4) as source:
        refs = list(source.list_completed(*RANGE))
        assert sorted(ref.his_key for ref in refs) == sorted(encounter.ma_lk for encounter in written)
        assert all(ref.completed_at == ref.changed_at for ref in refs)  # no change column: completion time
        # Coverage's key listing names the same encounters, and refs describes them as list_completed does.
        assert sorted(source.completed_keys(*RANGE)) == sorted(ref.his_key for ref in refs)
        assert sorted(source.refs([ref.his_key for ref in refs] + ["NO-SUCH-KEY"]), key=str) == sorted(
            refs, key=str
        )
        for encounter in written:
            loaded = source.load(encounter.ma_lk)
            expected = replace(encounter, first_cost=None, ma_lk=derive_ma_lk(FACILITY, encounter.ma_lk))
            assert _as_written(loaded, encounter) == expected, encounter.his_key


def test_discovery_sweep_updates_and_deletions(his_url: str, writer: sa.Engine) -> None:
    written = sample_encounters()
    tables = qd130_data.create_tables(writer)
    qd130_data.write(writer, tables, written)
    xml1, xml2 = tables["XML1"], tables["XML2"]
    options = {"changed_at_column": qd130_data.CHANGED_COLUMN}
    with qd130_source(his_url, options=options, page_size=3, watermark_overlap_minutes=0) as source:
        refs = list(source.discover(None))
        assert [ref.his_key for ref in refs] == [
            e.ma_lk for e in sorted(written, key=lambda e: e.visit.ngay_ra)
        ]
        watermark = max(Cursor(ref.changed_at, ref.his_key) for ref in refs)

        late = sample_encounters(first=700)[0]
        qd130_data.write(writer, tables, [late], changed_at=watermark.changed_at - timedelta(hours=3))
        assert late.ma_lk not in {ref.his_key for ref in source.discover(watermark)}
        assert late.visit.ngay_ra is not None
        day = late.visit.ngay_ra.replace(hour=0, minute=0)
        assert late.ma_lk in {ref.his_key for ref in source.list_completed(day, day + timedelta(days=1))}

        target = next(encounter for encounter in written if encounter.drug_lines)
        later = (watermark.changed_at + timedelta(hours=1)).astimezone(VIETNAM_TZ).replace(tzinfo=None)
        with writer.begin() as conn:
            conn.execute(
                xml1.update()
                .where(target.ma_lk == xml1.c.MA_LK)
                .values(CHAN_DOAN_RV="Đã sửa", NGAY_CAP_NHAT=later)
            )
            conn.execute(
                xml2.update().where(target.ma_lk == xml2.c.MA_LK, xml2.c.STT == 1).values(SO_LUONG=77)
            )
        assert [ref.his_key for ref in source.discover(watermark)] == [watermark.his_key, target.ma_lk]
        loaded = source.load(target.ma_lk)
        assert loaded is not None
        assert loaded.visit.chan_doan_rv == "Đã sửa"
        assert loaded.drug_lines[0].so_luong == 77

        gone, reopened = written[0].ma_lk, written[1].ma_lk
        with writer.begin() as conn:
            conn.execute(xml1.delete().where(gone == xml1.c.MA_LK))
            conn.execute(xml1.update().where(reopened == xml1.c.MA_LK).values(NGAY_RA=None))
        assert source.load(gone) is None
        assert source.load(reopened) is None
        assert {gone, reopened}.isdisjoint(ref.his_key for ref in source.list_completed(*RANGE))


def test_missing_xml1_or_columns_is_a_configuration_error(his_url: str, writer: sa.Engine) -> None:
    qd130_data.create_tables(writer, skip=("XML1",))
    with qd130_source(his_url) as source, pytest.raises(AdapterConfigError, match="XML1"):
        list(source.discover(None))
    with qd130_source(his_url, options={"tables": {"XML1": "XML2"}}) as source:
        with pytest.raises(AdapterConfigError, match="NGAY_RA"):
            source.load("x")
        report = source.check()
    assert not report.ok


def test_tables_in_another_schema(his_url: str, writer: sa.Engine) -> None:
    if writer.dialect.name == "sqlite":
        pytest.skip("SQLite has no schemas of this kind (only attached files)")
    schema = f"bhyt_{uuid.uuid4().hex[:6]}"
    create = "CREATE SCHEMA" if writer.dialect.name == "postgresql" else "CREATE DATABASE"
    drop = (
        f"DROP SCHEMA {schema} CASCADE" if writer.dialect.name == "postgresql" else f"DROP DATABASE {schema}"
    )
    with writer.begin() as conn:
        conn.exec_driver_sql(f"{create} {schema}")
    try:
        written = sample_encounters()[:3]
        tables = qd130_data.create_tables(writer, schema=schema)
        qd130_data.write(writer, tables, written)
        with qd130_source(his_url) as unqualified, pytest.raises(AdapterConfigError, match="XML1"):
            unqualified.load(written[0].ma_lk)  # not on the default schema / database
        with qd130_source(his_url, options={"db_schema": schema}) as source:
            assert [_as_written(source.load(e.ma_lk), e) for e in written] == written
    finally:
        with writer.begin() as conn:
            conn.exec_driver_sql(drop)
