"""Many files under faults: every visit ends up recorded exactly once, whatever went wrong on the way."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from adapters.gateway.bhxh.client import BhxhGateway
from adapters.gateway.bhxh.token_cache import TokenCache
from adapters.gateway.simulator import (
    RunningSimulator,
    SimulatorAdmin,
    SimulatorConfig,
    start_simulator_in_thread,
)
from schemas.ports import DocumentKind, GatewayReceipt, Outcome
from tests.unit.gateway.conftest import gateway_config
from tests.unit.gateway.support import XmlsecSigner


@pytest.fixture
def simulator() -> Iterator[RunningSimulator]:
    with start_simulator_in_thread(SimulatorConfig(structure_check="minimal")) as running:
        yield running


def test_concurrent_sends_of_the_same_file_store_it_once(
    simulator: RunningSimulator, signer: XmlsecSigner, ma_lk: str
) -> None:
    signed = signer.claim(ma_lk)
    with (
        BhxhGateway(gateway_config(simulator.url, max_connections=8), token_cache=TokenCache()) as gateway,
        ThreadPoolExecutor(max_workers=8) as pool,
    ):
        receipts = list(pool.map(lambda _: gateway.submit(signed, DocumentKind.CLAIM), range(8)))
    assert {receipt.outcome for receipt in receipts} == {Outcome.ACCEPTED}
    assert len({receipt.ma_giao_dich for receipt in receipts}) == 1
    assert sum(not receipt.duplicate for receipt in receipts) == 1
    with SimulatorAdmin(simulator.url) as admin:
        assert len(admin.accepted(ma_lk=ma_lk)) == 1
        assert admin.stats()["tokens"]["issued"] == 1  # eight threads, one login


def test_seeded_chaos_ends_with_exactly_one_record_per_visit(
    simulator: RunningSimulator, signer: XmlsecSigner, ma_lk: str
) -> None:
    """The caller's loop stands in for the Celery retry: resend the identical bytes on TRANSIENT/UNKNOWN."""
    files = {f"{ma_lk}-{number:02d}": signer.claim(f"{ma_lk}-{number:02d}") for number in range(24)}
    with SimulatorAdmin(simulator.url) as admin:
        admin.set_faults(
            seed=20260304,
            http_5xx=0.15,
            http_429=0.05,
            result_500=0.05,
            malformed=0.05,
            lost_response=0.1,
            timeout=0.05,
            timeout_s=1.0,
            token_storm=0.05,
            max_faults=60,
        )
        final: dict[str, GatewayReceipt] = {}
        seen: set[Outcome] = set()
        with BhxhGateway(gateway_config(simulator.url, timeout_s=0.5), token_cache=TokenCache()) as gateway:
            for key, signed in files.items():
                for _attempt in range(10):
                    receipt = gateway.submit(signed, DocumentKind.CLAIM)
                    seen.add(receipt.outcome)
                    if receipt.outcome not in (Outcome.TRANSIENT, Outcome.UNKNOWN):
                        break
                final[key] = receipt
        assert {receipt.outcome for receipt in final.values()} == {Outcome.ACCEPTED}
        assert Outcome.UNKNOWN in seen  # the faults really happened
        records = {record["ma_lk"]: record for record in admin.accepted()}
        assert sorted(records) == sorted(files)
        assert len(admin.accepted()) == len(files)
        for key, receipt in final.items():
            assert records[key]["ma_giao_dich"] == receipt.ma_giao_dich
        stats = admin.stats()
        assert stats["faults"]  # several kinds were injected
        assert stats["accepted"] == len(files)
