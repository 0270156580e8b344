"""A small real world for coverage and backfill: the demo HIS (SQLite file) and the PostgreSQL ledger.

The ledger states come from the real pipeline code (sweep, delivery) run with a test signer and a scripted
gateway, so every coverage column (accepted, pending, rejected, quarantined, dead, hidden, missing) is real.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from sqlalchemy.engine import Engine

from adapters.his.demo import schema
from adapters.his.demo.seed import DemoWriter, generate_with_defects, writer_engine
from adapters.his.demo.synthetic import Defect, Kind, make_encounter
from adapters.his.registry import create_source
from schemas.domain import Encounter
from schemas.domain.values import VIETNAM_TZ
from tests.fakes import FakeGateway, FakeSigner
from worker.bootstrap import evidence_keys, payload_options
from worker.config import Settings, load_settings
from worker.pipeline.context import Pipeline

FACILITY = "79999"


@pytest.fixture(scope="session")
def certificate() -> x509.Certificate:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bệnh viện thử nghiệm")])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365)).sign(key, hashes.SHA256())
    )  # fmt: skip


@dataclass
class World:
    config: Path
    his_url: str
    settings: Settings
    pipeline: Pipeline
    gateway: FakeGateway

    def his(self) -> Engine:
        return writer_engine(self.his_url)

    def write(self, encounters: Sequence[Encounter], *, changed_at: datetime | None = None) -> None:
        engine = self.his()
        try:
            with engine.begin() as conn:
                DemoWriter(conn, facility_code=FACILITY).write(encounters, changed_at=changed_at)
        finally:
            engine.dispose()

    def next_number(self) -> int:
        engine = self.his()
        try:
            with engine.connect() as conn:
                return (
                    int(
                        conn.execute(
                            sa.select(sa.func.coalesce(sa.func.max(schema.visits.c.id), 0))
                        ).scalar_one()
                    )
                    + 1
                )
        finally:
            engine.dispose()


def encounters_between(
    count: int, first: date, last: date, *, first_number: int, seed: int
) -> list[Encounter]:
    rng = random.Random(seed)
    return [
        encounter
        for encounter, _ in generate_with_defects(
            count, rng=rng, first_number=first_number, since=first, until=last, bad_share=0.0
        )
    ]


def bad_encounter(number: int, start: datetime, defect: Defect) -> Encounter:
    return make_encounter(random.Random(number), his_key=f"V{number:07d}", kind=Kind.OUTPATIENT_EXAM,
                          start=start, defect=defect)  # fmt: skip


@pytest.fixture
def world(tmp_path: Path, pg_ledger: Engine, certificate: x509.Certificate) -> Iterator[World]:
    his_url = f"sqlite:///{tmp_path / 'his.sqlite3'}"
    engine = writer_engine(his_url)
    schema.create_schema(engine)
    engine.dispose()
    config = tmp_path / "config.toml"
    config.write_text(
        f'data_dir = "{tmp_path}"\n[his]\nadapter = "demo"\nurl = "{his_url}"\n'
        f'[ledger]\ndatabase_url = "{pg_ledger.url.render_as_string(hide_password=False)}"\n'
        '[logging]\nlevel = "WARNING"\nformat = "json"\n',
        encoding="utf-8",
    )
    settings = load_settings(config, delivery={"max_attempts": 1, "batch_size": 50, "backoff_base_s": 0.2,
                                               "backoff_cap_s": 0.4, "stuck_after_s": 5})  # fmt: skip
    gateway = FakeGateway()
    signer = FakeSigner(certificate)
    pipeline = Pipeline(
        settings=settings, engine=pg_ledger,
        source_factory=lambda: create_source(settings.his, FACILITY, url=settings.his_url),
        signer_factory=lambda: signer, gateways_factory=lambda: {"bhxh": gateway},
        payload_options=payload_options(settings.payload),
        evidence_keys=evidence_keys(settings),  # the key the CLI processes of these tests use too
    )  # fmt: skip
    yield World(config=config, his_url=his_url, settings=settings, pipeline=pipeline, gateway=gateway)
    pipeline.source().close()  # not pipeline.close(): the ledger engine belongs to the session fixture


def local(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=VIETNAM_TZ)
