"""The same encounters read from SQLite, PostgreSQL and MariaDB give the same canonical model."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import sqlalchemy as sa

from adapters.his.qd130_tables.source import Qd130TablesSource
from schemas.domain import Encounter
from tests.integration.his import demo_data, qd130_data
from tests.integration.his.databases import mariadb_database, postgresql_schema
from worker.config import HisSettings


@pytest.fixture
def three_urls(pg_url: str, mariadb_url: str, tmp_path: Path) -> Iterator[list[str]]:
    with ExitStack() as stack:
        yield [
            f"sqlite:///{tmp_path / 'his.sqlite3'}",
            stack.enter_context(postgresql_schema(pg_url)),
            stack.enter_context(mariadb_database(mariadb_url)),
        ]


def _load_demo(url: str, keys: list[str]) -> list[Encounter | None]:
    with demo_data.demo_source(url) as source:
        return [source.load(key) for key in keys]


def _load_qd130(url: str, keys: list[str]) -> list[Encounter | None]:
    source = Qd130TablesSource.from_settings(HisSettings(), url=url, facility_code=demo_data.FACILITY)
    try:
        return [source.load(key) for key in keys]
    finally:
        source.close()


def test_demo_adapter_reads_the_same_model_on_every_database(three_urls: list[str]) -> None:
    written = demo_data.sample_encounters()
    keys = [encounter.his_key for encounter in written]
    loaded = []
    for url in three_urls:
        demo_data.write(url, written)
        loaded.append(_load_demo(url, keys))
    sqlite, postgresql, mariadb = loaded
    assert sqlite == postgresql == mariadb == written


def test_qd130_adapter_reads_the_same_model_on_every_database(three_urls: list[str]) -> None:
    written = demo_data.sample_encounters()
    keys = [encounter.ma_lk for encounter in written]
    loaded = []
    for url in three_urls:
        engine = sa.create_engine(url)
        qd130_data.write(engine, qd130_data.create_tables(engine), written)
        engine.dispose()
        loaded.append(_load_qd130(url, keys))
    sqlite, postgresql, mariadb = loaded
    assert all(encounter is not None for encounter in sqlite)
    assert sqlite == postgresql == mariadb
