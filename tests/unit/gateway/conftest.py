"""Fixtures of the gateway tests: one simulator per module on 127.0.0.1 (reset before each test), signed
test files, and a client factory with short timeouts and no waiting between in-call retries."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from adapters.gateway.bhxh.client import BhxhGateway
from adapters.gateway.bhxh.config import BhxhGatewayConfig
from adapters.gateway.bhxh.token_cache import TokenCache
from adapters.gateway.simulator import (
    RunningSimulator,
    SimulatorAdmin,
    SimulatorConfig,
    start_simulator_in_thread,
)
from tests.unit.gateway.support import Pki, XmlsecSigner, make_pki

DEMO_USERNAME = "79999_BV"
DEMO_PASSWORD = "demo-password"
FACILITY = "79999"

GatewayFactory = Callable[..., BhxhGateway]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def signer(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> XmlsecSigner:
    return XmlsecSigner(pki, tmp_path_factory.mktemp("signed"))


_ma_lk_numbers = itertools.count(1)


@pytest.fixture
def ma_lk() -> str:
    """A fresh MA_LK per test (invented, no meaning)."""
    return f"LK{next(_ma_lk_numbers):08d}"


@pytest.fixture(scope="module")
def simulator() -> Iterator[RunningSimulator]:
    # The tiny test envelopes are checked structurally only: the XSD check belongs to payload-built files.
    with start_simulator_in_thread(SimulatorConfig(structure_check="minimal")) as running:
        yield running


@pytest.fixture
def admin(simulator: RunningSimulator) -> Iterator[SimulatorAdmin]:
    with SimulatorAdmin(simulator.url) as client:
        client.reset()
        yield client


def gateway_config(base_url: str, **overrides: Any) -> BhxhGatewayConfig:
    values: dict[str, Any] = {
        "name": "bhxh",
        "base_url": base_url,
        "username": DEMO_USERNAME,
        "password": SecretStr(DEMO_PASSWORD),
        "facility_code": FACILITY,
        "province_code": FACILITY[:2],
        "timeout_s": 2.0,
        "connect_timeout_s": 1.0,
        "rate_per_s": 1000.0,
        "retry_initial_wait_s": 0.0,
        "retry_max_wait_s": 0.0,
        "trust_env": False,  # loopback only, whatever proxy the environment names
    }
    return BhxhGatewayConfig(**(values | overrides))


@pytest.fixture
def make_gateway(simulator: RunningSimulator, admin: SimulatorAdmin) -> Iterator[GatewayFactory]:
    """``make_gateway(**config overrides, token_cache=…)``; every gateway is closed after the test."""
    created: list[BhxhGateway] = []

    def factory(*, token_cache: TokenCache | None = None, **overrides: Any) -> BhxhGateway:
        overrides.setdefault("base_url", simulator.url)
        gateway = BhxhGateway(gateway_config(**overrides), token_cache=token_cache or TokenCache())
        created.append(gateway)
        return gateway

    yield factory
    for gateway in created:
        gateway.close()


@pytest.fixture
def tmp_state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@dataclass(frozen=True)
class GatewayEnv:
    """The usual fixtures of a client-against-simulator test, in one parameter."""

    make_gateway: GatewayFactory
    admin: SimulatorAdmin
    signer: XmlsecSigner
    ma_lk: str


@pytest.fixture
def env(make_gateway: GatewayFactory, admin: SimulatorAdmin, signer: XmlsecSigner, ma_lk: str) -> GatewayEnv:
    return GatewayEnv(make_gateway, admin, signer, ma_lk)
