"""Choosing the adapter from the settings; the engine URL handling."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from adapters.his.demo.source import DemoSource
from adapters.his.engine import _read_only_sqlite_url, his_url
from adapters.his.errors import AdapterConfigError
from adapters.his.qd130_tables.source import Qd130TablesSource
from adapters.his.registry import create_source, known_adapters
from schemas.ports import EncounterSource
from worker.config import HisSettings


def test_known_adapters_and_creation_by_name(tmp_path: Path) -> None:
    assert known_adapters() == ("demo", "qd130_tables", "sql_mapping")
    url = f"sqlite:///{tmp_path / 'his.sqlite3'}"
    demo = create_source(HisSettings(), "79999", url=url)
    qd130 = create_source(HisSettings(adapter="qd130_tables", url=url), facility_code="79999")
    try:
        assert isinstance(demo, DemoSource)
        assert isinstance(demo, EncounterSource)
        assert isinstance(qd130, Qd130TablesSource)
        assert isinstance(qd130, EncounterSource)
    finally:
        demo.close()
        qd130.close()


def test_configuration_errors_are_clear() -> None:
    with pytest.raises(
        AdapterConfigError, match="unknown HIS adapter 'oracle'; known: demo, qd130_tables, sql_mapping"
    ):
        create_source(HisSettings(adapter="oracle"), "79999", url="sqlite://")
    with pytest.raises(AdapterConfigError, match="no HIS database URL"):
        create_source(HisSettings(), "79999")
    with pytest.raises(AdapterConfigError, match=r"needs his\.mapping_file"):
        create_source(HisSettings(adapter="sql_mapping"), "79999", url="sqlite://")


def test_password_from_settings_and_read_only_sqlite_urls() -> None:
    his = HisSettings(password=SecretStr("s3cret"))
    assert his_url("postgresql+psycopg://ro@db/his", his).password == "s3cret"
    assert his_url("postgresql+psycopg://ro:inurl@db/his", his).password == "inurl"
    file_url = _read_only_sqlite_url(his_url("sqlite:////var/his.sqlite3", HisSettings()))
    assert file_url.database == "file:/var/his.sqlite3"
    assert dict(file_url.query) == {"uri": "true", "mode": "ro"}
    assert _read_only_sqlite_url(his_url("sqlite://", HisSettings())).database is None
