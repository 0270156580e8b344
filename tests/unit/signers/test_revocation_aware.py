"""The delivery service knows a signer checked its certificate's revocation status by the port it implements,
``schemas.ports.RevocationAwareSigner``: the revocation guard is one, a plain signer is not (its versions are
recorded ``not_checked``), and what the guard hands over is what the port promises."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from adapters.signers.file.signer import FileKeySigner
from adapters.signers.revocation import RevocationGuardedSigner, RevocationPolicy, RevocationSource
from schemas.ports import RevocationAwareSigner, Signer
from tests.fakes import FakeSigner
from tests.unit.signers import revocation_support
from tests.unit.signers.revocation_support import UNSIGNED, CaServices
from tests.unit.signers.support import PkiSet


def test_the_guard_is_revocation_aware_and_a_plain_signer_is_not(
    ca_services: CaServices, pki: PkiSet, file_signer: FileKeySigner, tmp_path: Path
) -> None:
    certificate = ca_services.issue().certificate
    guard = revocation_support.guarded(ca_services, pki, tmp_path / "cache", certificate)
    plain = FakeSigner(certificate)
    for signer in (guard, plain, file_signer):
        assert isinstance(signer, Signer)
    assert isinstance(guard, RevocationAwareSigner)
    assert not isinstance(plain, RevocationAwareSigner)
    assert not isinstance(file_signer, RevocationAwareSigner)


def test_half_the_port_is_not_the_port() -> None:
    """A signer with a record but no answer (or the reverse) does not pass for a checked one."""

    class RecordOnly:
        def revocation_record(self) -> dict[str, object] | None:
            return {"state": "good"}

    class AnswerOnly:
        def revocation_answer(self) -> None:
            return None

    assert not isinstance(RecordOnly(), RevocationAwareSigner)
    assert not isinstance(AnswerOnly(), RevocationAwareSigner)


def test_what_the_guard_hands_over_is_what_the_port_promises(
    ca_services: CaServices, pki: PkiSet, tmp_path: Path
) -> None:
    certificate = ca_services.issue().certificate
    guard: RevocationGuardedSigner = revocation_support.guarded(
        ca_services, pki, tmp_path / "cache", certificate, RevocationPolicy.REQUIRE
    )
    aware: RevocationAwareSigner = guard
    assert (aware.revocation_record(), aware.revocation_answer()) == (None, None)  # nothing signed yet
    guard.sign(UNSIGNED)
    record = aware.revocation_record()
    answer = aware.revocation_answer()
    assert record is not None
    assert record["state"] == "good"
    assert answer is not None
    assert answer.source is RevocationSource.OCSP
    assert answer.source.value == "ocsp"  # the ledger's kind
    assert answer.url == ca_services.ocsp_url
    assert isinstance(answer.this_update, datetime)
    assert answer.der
