"""The simulator verifies signatures against its trust store: trusted → accepted, anything else → 414."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest

from adapters.gateway.bhxh.client import BhxhGateway
from adapters.gateway.bhxh.token_cache import TokenCache
from adapters.gateway.simulator import (
    RunningSimulator,
    SimulatorAdmin,
    SimulatorConfig,
    start_simulator_in_thread,
)
from schemas.ports import DocumentKind, Outcome
from tests.unit.gateway.conftest import gateway_config
from tests.unit.gateway.support import Pki, XmlsecSigner, make_pki

VERIFIERS = ["xmlsec1"]
if importlib.util.find_spec("adapters.signers.verification") is not None:
    VERIFIERS.append("signers")


@pytest.fixture(scope="module", params=VERIFIERS)
def verifying_simulator(request: pytest.FixtureRequest, pki: Pki) -> Iterator[RunningSimulator]:
    config = SimulatorConfig(
        structure_check="minimal", trust_store=pki.ca_pem, signature_verifier=request.param
    )
    with start_simulator_in_thread(config) as running:
        yield running


@pytest.fixture
def gateway(verifying_simulator: RunningSimulator) -> Iterator[BhxhGateway]:
    SimulatorAdmin(verifying_simulator.url).reset()
    with BhxhGateway(gateway_config(verifying_simulator.url), token_cache=TokenCache()) as client:
        yield client


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> XmlsecSigner:
    """A signer whose CA the simulator does not trust."""
    directory = tmp_path_factory.mktemp("stranger")
    return XmlsecSigner(make_pki(directory / "pki", label="OTHER"), directory)


def test_trusted_signature_is_accepted_and_recorded_as_verified(
    gateway: BhxhGateway, verifying_simulator: RunningSimulator, signer: XmlsecSigner, ma_lk: str
) -> None:
    assert gateway.submit(signer.claim(ma_lk), DocumentKind.CLAIM).outcome is Outcome.ACCEPTED
    assert gateway.submit(signer.checkin(ma_lk), DocumentKind.CHECKIN).outcome is Outcome.ACCEPTED
    records = SimulatorAdmin(verifying_simulator.url).accepted(ma_lk=ma_lk)
    assert [record["signature_verified"] for record in records] == [True, True]


def test_untrusted_signer_is_rejected(gateway: BhxhGateway, stranger: XmlsecSigner, ma_lk: str) -> None:
    receipt = gateway.submit(stranger.claim(ma_lk), DocumentKind.CLAIM)
    assert (receipt.outcome, receipt.ma_ket_qua) == (Outcome.DATA_ERROR, "414")


def test_a_file_changed_after_signing_is_rejected(
    gateway: BhxhGateway, signer: XmlsecSigner, ma_lk: str
) -> None:
    signed = signer.claim(ma_lk)
    tampered = signed.replace(b"<NGAYLAP>20260304</NGAYLAP>", b"<NGAYLAP>20260305</NGAYLAP>")
    assert tampered != signed
    receipt = gateway.submit(tampered, DocumentKind.CLAIM)
    assert (receipt.outcome, receipt.ma_ket_qua) == (Outcome.DATA_ERROR, "414")
