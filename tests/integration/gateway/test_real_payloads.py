"""Real files end to end: payload-layer envelopes and check-ins, signed by the file key source, sent by the
client to a simulator that validates them against the XSDs and business rules and verifies the signature
with xmlsec1 against the test CA. The simulator's content hash is the payload layer's."""

from __future__ import annotations

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
from adapters.his.demo.synthetic import Kind
from adapters.signers.file.signer import FileKeySigner
from adapters.signers.testpki import TestPkiFiles, create_test_pki
from schemas import PayloadOptions, build_checkin, build_claim
from schemas.ports import DocumentKind, Outcome
from schemas.spec import Profile
from tests.factories import encounter
from tests.services import require_binary
from tests.unit.gateway.conftest import gateway_config
from worker.config import SignerSettings


@pytest.fixture(scope="module")
def hospital_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPkiFiles:
    return create_test_pki(tmp_path_factory.mktemp("hospital-pki"), ca_key_size=2048)


@pytest.fixture(scope="module")
def file_signer(hospital_pki: TestPkiFiles) -> Iterator[FileKeySigner]:
    settings = SignerSettings.model_validate(
        {"source": "file", "key_file": hospital_pki.pkcs12, "passphrase": hospital_pki.passphrase}
    )
    with FileKeySigner.from_settings(settings) as signer:
        yield signer


@pytest.fixture(scope="module")
def strict_simulator(hospital_pki: TestPkiFiles) -> Iterator[RunningSimulator]:
    require_binary("xmlsec1")
    config = SimulatorConfig(structure_check="schemas", trust_store=hospital_pki.ca_certificate)
    with start_simulator_in_thread(config) as running:
        yield running


@pytest.mark.parametrize(("variant", "profile"), [("3176", Profile.QD3176), ("4750", Profile.QD4750)])
@pytest.mark.parametrize("kind", [Kind.OUTPATIENT_EXAM, Kind.INPATIENT_REFERRAL, Kind.NON_INSURED])
def test_signed_payloads_are_accepted_and_hash_alike(
    variant: str, profile: Profile, kind: Kind, strict_simulator: RunningSimulator, file_signer: FileKeySigner
) -> None:
    options = PayloadOptions(profile=profile, checkin_for_non_bhyt=True)
    visit = encounter(kind)
    claim = build_claim(visit, options)
    checkin = build_checkin(visit, options)
    with (
        SimulatorAdmin(strict_simulator.url) as admin,
        BhxhGateway(
            gateway_config(strict_simulator.url, variant=variant), token_cache=TokenCache()
        ) as gateway,
    ):
        admin.reset()
        assert admin.health()["structure_check"] == "schemas"
        receipt = gateway.submit(file_signer.sign(claim.document), DocumentKind.CLAIM)
        assert (receipt.outcome, receipt.ma_ket_qua) == (Outcome.ACCEPTED, "200"), receipt.thong_diep
        if checkin is not None:
            checkin_receipt = gateway.submit(file_signer.sign(checkin.document), DocumentKind.CHECKIN)
            assert checkin_receipt.outcome is Outcome.ACCEPTED, checkin_receipt.thong_diep
        records = admin.accepted(ma_lk=visit.ma_lk)
    claim_record = next(record for record in records if record["loai_ho_so"] == "130")
    assert claim_record["content_hash"] == claim.content_hash
    assert claim_record["tables"] == ",".join(claim.tables)
    assert claim_record["signature_verified"] is True


def test_a_payload_with_a_schema_error_is_a_data_error(
    strict_simulator: RunningSimulator, file_signer: FileKeySigner
) -> None:
    visit = encounter(Kind.OUTPATIENT_EXAM)
    document = build_claim(visit, PayloadOptions()).document
    broken = document.replace(b"<SOLUONGHOSO>1</SOLUONGHOSO>", b"<SOLUONGHOSO>one</SOLUONGHOSO>")
    assert broken != document
    with BhxhGateway(gateway_config(strict_simulator.url), token_cache=TokenCache()) as gateway:
        receipt = gateway.submit(file_signer.sign(broken), DocumentKind.CLAIM)
    assert (receipt.outcome, receipt.ma_ket_qua) == (Outcome.DATA_ERROR, "413")
    assert receipt.thong_diep
    assert visit.patient.ho_ten not in receipt.thong_diep  # findings never quote the file
