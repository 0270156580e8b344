"""One client with several requests in flight (as a batch sends them) against the real simulator: every
file gets its own receipt, nothing is lost or doubled, and the simulator inspects files on one thread."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor

from adapters.gateway.simulator import SimulatorAdmin
from schemas.ports import DocumentKind, Outcome
from tests.unit.gateway.conftest import GatewayFactory
from tests.unit.gateway.support import XmlsecSigner


def test_overlapping_requests_each_get_their_own_receipt(
    make_gateway: GatewayFactory, admin: SimulatorAdmin, signer: XmlsecSigner, ma_lk: str
) -> None:
    gateway = make_gateway(max_connections=8)
    files = [signer.claim(f"{ma_lk}-{index:02d}") for index in range(40)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        receipts = list(pool.map(lambda signed: gateway.submit(signed, DocumentKind.CLAIM), files))
    assert {receipt.outcome for receipt in receipts} == {Outcome.ACCEPTED}
    assert not any(receipt.duplicate for receipt in receipts)
    assert len({receipt.ma_giao_dich for receipt in receipts}) == len(files)
    recorded = {record["ma_giao_dich"]: record["file_sha256"] for record in admin.accepted()}
    for signed, receipt in zip(files, receipts, strict=True):
        assert recorded[receipt.ma_giao_dich] == hashlib.sha256(signed).hexdigest()
    inspectors = [thread for thread in threading.enumerate() if thread.name.startswith("simulator-inspect")]
    assert len(inspectors) == 1
