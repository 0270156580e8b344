"""TLS: the client verifies the gateway's certificate, against ca_bundle when given; a failure is transient."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.gateway.bhxh.client import BhxhGateway
from adapters.gateway.bhxh.token_cache import TokenCache
from adapters.gateway.simulator import RunningSimulator, SimulatorConfig, start_simulator_in_thread
from adapters.gateway.simulator.serving import server_tls_context
from schemas.ports import DocumentKind, Outcome
from tests.unit.gateway.conftest import gateway_config
from tests.unit.gateway.support import Pki, XmlsecSigner, make_pki


@pytest.fixture(scope="module")
def server_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("tls"), label="GATEWAY", server_ip="127.0.0.1")


@pytest.fixture(scope="module")
def https_simulator(server_pki: Pki) -> Iterator[RunningSimulator]:
    context = server_tls_context(server_pki.cert_pem, server_pki.key_pem)
    with start_simulator_in_thread(
        SimulatorConfig(structure_check="minimal"), ssl_context=context
    ) as running:
        assert running.url.startswith("https://127.0.0.1:")
        yield running


def _submit(url: str, signed: bytes, **overrides: object) -> tuple[Outcome, str | None]:
    with BhxhGateway(
        gateway_config(url, transient_attempts=1, **overrides), token_cache=TokenCache()
    ) as client:
        receipt = client.submit(signed, DocumentKind.CLAIM)
    return receipt.outcome, receipt.ma_giao_dich


def test_gateway_certificate_verified_against_the_ca_bundle(
    https_simulator: RunningSimulator, server_pki: Pki, signer: XmlsecSigner, ma_lk: str
) -> None:
    outcome, ma_giao_dich = _submit(https_simulator.url, signer.claim(ma_lk), ca_bundle=server_pki.ca_pem)
    assert outcome is Outcome.ACCEPTED
    assert ma_giao_dich


def test_unknown_gateway_certificate_is_a_transient_failure(
    https_simulator: RunningSimulator, signer: XmlsecSigner, ma_lk: str
) -> None:
    outcome, ma_giao_dich = _submit(https_simulator.url, signer.claim(ma_lk))  # public CAs only
    assert (outcome, ma_giao_dich) == (Outcome.TRANSIENT, None)


def test_certificate_of_another_ca_is_refused(
    https_simulator: RunningSimulator, tmp_path: Path, signer: XmlsecSigner, ma_lk: str
) -> None:
    other = make_pki(tmp_path / "other", label="OTHER", server_ip="127.0.0.1")
    outcome, _ = _submit(https_simulator.url, signer.claim(ma_lk), ca_bundle=other.ca_pem)
    assert outcome is Outcome.TRANSIENT
