"""Fixtures shared by the pipeline service tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from sqlalchemy.engine import Engine

from tests.fakes import FakeGateway, FakeSigner, FakeSource
from worker.bootstrap import payload_options
from worker.config import Settings
from worker.ledger.evidence_crypto import EvidenceKeys
from worker.pipeline.context import Pipeline

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def certificate() -> x509.Certificate:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bệnh viện thử nghiệm")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(T0 - timedelta(days=1))
        .not_valid_after(T0 + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )


def fake_pipeline(
    engine: Engine, settings: Settings, source: FakeSource, signer: FakeSigner, gateway: FakeGateway
) -> Pipeline:
    """The delivery services over a real ledger with the fakes of every port, wired as bootstrap would."""
    return Pipeline(
        settings=settings,
        engine=engine,
        source_factory=lambda: source,
        signer_factory=lambda: signer,
        gateways_factory=lambda: {"bhxh": gateway},
        payload_options=payload_options(settings.payload),
        evidence_keys=EvidenceKeys.generate(),
    )
