"""Record the bytes the test CA's server sends (OCSP responses, CRLs), so tests can compare what the worker
kept with what the CA actually served. Wraps ``CaServices`` per test (the ``served`` fixture, re-exported by the
signers' conftests, wraps ``ca_services``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from tests.unit.signers.revocation_support import CaServices


@dataclass
class Served:
    """The bodies of the successful (HTTP 200) answers, in the order they were sent."""

    ocsp: list[bytes] = field(default_factory=list)
    crl: list[bytes] = field(default_factory=list)


def record_served(services: CaServices, monkeypatch: pytest.MonkeyPatch) -> Served:
    served = Served()
    answer_ocsp: Callable[[bytes], tuple[int, bytes]] = services.answer_ocsp
    answer_crl: Callable[[], tuple[int, bytes]] = services.answer_crl

    def ocsp(body: bytes) -> tuple[int, bytes]:
        status, der = answer_ocsp(body)
        if status == 200:
            served.ocsp.append(der)
        return status, der

    def crl() -> tuple[int, bytes]:
        status, der = answer_crl()
        if status == 200:
            served.crl.append(der)
        return status, der

    # Instance attributes shadow the methods: the server's handler calls services.answer_ocsp(body).
    monkeypatch.setattr(services, "answer_ocsp", ocsp)
    monkeypatch.setattr(services, "answer_crl", crl)
    return served


@pytest.fixture
def served(ca_services: CaServices, monkeypatch: pytest.MonkeyPatch) -> Served:
    """What this test's CA served, answer by answer."""
    return record_served(ca_services, monkeypatch)
