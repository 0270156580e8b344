"""Revocation checking against a test CA served over real HTTP on 127.0.0.1: OCSP, CRL fallback, forgeries,
staleness, the cache and its request counts, delegated responders, and what the guard does to signing."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from adapters.signers.errors import CertificateNotUsableError
from adapters.signers.revocation import (
    CertificateRevokedError,
    CertificateStatusUnknownError,
    RevocationChecker,
    RevocationConfig,
    RevocationGuardedSigner,
    RevocationPolicy,
    RevocationSource,
    RevocationState,
)
from adapters.signers.revocation.checker import MIN_RECHECK, UNKNOWN_RECHECK
from adapters.signers.testpki import (
    Issued,
    generate_ca,
    issue_ocsp_responder,
    ocsp_response,
)
from tests.fakes import FakeSigner
from tests.unit.signers.revocation_support import (
    CA_ISSUERS_PATH,
    CRL_PATH,
    OCSP_PATH,
    CaServices,
    Clock,
    dead_url,
    serve_ca,
)
from tests.unit.signers.support import PkiSet

UNSIGNED = b"<GIAMDINHHS><CHUKYDONVI/></GIAMDINHHS>"


@dataclass
class World:
    """The test CA serving its status over HTTP, the shared clock, and checkers configured like the worker."""

    services: CaServices
    clock: Clock
    pki: PkiSet
    directory: Path

    def checker(
        self, *, policy: str = "warn", cache: str = "revocation", **overrides: Any
    ) -> RevocationChecker:
        values: dict[str, Any] = {
            "policy": RevocationPolicy(policy),
            "cache_dir": self.directory / cache,
            "trust_store": self.pki.ca_certificate,
        }
        values.update(overrides)
        return RevocationChecker(RevocationConfig(**values), clock=self.clock)

    def revoke(
        self, certificate: x509.Certificate, reason: x509.ReasonFlags | None, ago: timedelta
    ) -> datetime:
        when = self.clock.now - ago
        self.services.revoke(certificate, reason, at=when)
        return when


@pytest.fixture
def world(pki: PkiSet, tmp_path: Path) -> Iterator[World]:
    clock = Clock()
    with serve_ca(pki.ca, clock) as services:
        yield World(services, clock, pki, tmp_path)


@pytest.fixture(scope="module")
def other_ca() -> Issued:
    return generate_ca(key_size=2048, common_name="another TEST CA")


def impostor(ca: Issued) -> Issued:
    """A CA certificate with the real CA's name and another key: answers in the CA's name nobody should trust."""
    [common_name] = ca.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    forged = generate_ca(common_name=str(common_name.value), key_size=2048)
    assert forged.certificate.subject == ca.certificate.subject
    return forged


def forge_ocsp_in_the_cas_name(world: World) -> None:
    world.services.ocsp_signer = impostor(world.pki.ca)
    world.services.ocsp_responder_id = ocsp.OCSPResponderEncoding.NAME


# ------------------------------------------------------------------------------------------- answers


def test_good_answer_from_the_issuing_ca_by_ocsp(world: World) -> None:
    certificate = world.services.issue().certificate
    status = world.checker().status(certificate)
    assert status.state is RevocationState.GOOD
    assert status.source is RevocationSource.OCSP
    assert status.url == world.services.ocsp_url
    assert not status.from_cache
    assert status.next_update == world.clock.now + world.services.ocsp_validity
    assert status.problems == ()
    assert ocsp.load_der_ocsp_response(status.response).serial_number == certificate.serial_number
    assert world.services.requests == {OCSP_PATH: 1}  # OCSP answered: the CRL was not needed


@pytest.mark.parametrize("source", ["ocsp", "crl"])
@pytest.mark.parametrize(
    ("reason", "name"),
    [
        (x509.ReasonFlags.key_compromise, "keyCompromise"),
        (x509.ReasonFlags.cessation_of_operation, "cessationOfOperation"),
        (None, "unspecified"),
    ],
)
def test_revoked_with_time_and_reason(
    world: World, source: str, reason: x509.ReasonFlags | None, name: str
) -> None:
    certificate = world.services.issue(ocsp_url=None if source == "crl" else "").certificate
    revoked_at = world.revoke(certificate, reason, timedelta(hours=3))
    status = world.checker().status(certificate)
    assert status.state is RevocationState.REVOKED
    assert status.source is RevocationSource(source)
    assert status.revoked_at == revoked_at
    assert status.reason == name
    assert f"revoked on {revoked_at.isoformat()} ({name})" in status.summary()


def test_revoked_certificate_never_signs(world: World) -> None:
    certificate = world.services.issue().certificate
    world.revoke(certificate, x509.ReasonFlags.key_compromise, timedelta(minutes=5))
    inner = FakeSigner(certificate)
    for policy in (RevocationPolicy.WARN, RevocationPolicy.REQUIRE):
        guarded = RevocationGuardedSigner(inner, world.checker(cache=policy.value), policy)
        with pytest.raises(CertificateRevokedError, match="keyCompromise") as caught:
            guarded.sign(UNSIGNED)
        assert isinstance(caught.value, CertificateNotUsableError)  # the worker's "cannot sign" class
        assert guarded.last_status is not None
        assert guarded.last_status.state is RevocationState.REVOKED
    assert inner.signed == 0


# ------------------------------------------------------------------------------------------- fallback


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        ("connection refused", "unreachable (ConnectError"),
        ("HTTP 503", "HTTP 503"),
        ("tryLater", "responder answered TRY_LATER"),
        ("certStatus unknown", "does not know serial"),
    ],
)
def test_ocsp_failure_falls_back_to_the_crl(world: World, failure: str, expected: str) -> None:
    services = world.services
    certificate = services.issue(
        ocsp_url=dead_url(OCSP_PATH) if failure == "connection refused" else ""
    ).certificate
    if failure == "HTTP 503":
        services.ocsp_http_status = 503
    elif failure == "tryLater":
        services.ocsp_error = ocsp.OCSPResponseStatus.TRY_LATER
    elif failure == "certStatus unknown":  # e.g. a responder whose database lags behind the CRL
        services.known_serials = frozenset()
        services.ocsp_revoked = {}
    world.revoke(certificate, x509.ReasonFlags.superseded, timedelta(days=1))
    status = world.checker().status(certificate)
    assert (status.state, status.source, status.url) == (
        RevocationState.REVOKED,
        RevocationSource.CRL,
        services.crl_url,
    )
    assert status.reason == "superseded"
    [problem] = status.problems
    assert expected in problem
    assert services.requests[CRL_PATH] == 1


def test_both_down_is_unknown_and_the_policy_decides(world: World) -> None:
    certificate = world.services.issue(ocsp_url=dead_url(OCSP_PATH), crl_url=dead_url(CRL_PATH)).certificate
    inner = FakeSigner(certificate)
    warn = RevocationGuardedSigner(inner, world.checker(cache="warn"), RevocationPolicy.WARN)
    assert b"FakeSignature" in warn.sign(UNSIGNED)
    unknown = warn.last_status
    assert unknown is not None
    assert unknown.state is RevocationState.UNKNOWN
    assert not unknown.no_source
    assert len(unknown.problems) == 2
    assert all("unreachable" in problem for problem in unknown.problems)

    require = RevocationGuardedSigner(inner, world.checker(cache="require"), RevocationPolicy.REQUIRE)
    with pytest.raises(CertificateStatusUnknownError, match=r"signer\.revocation = require"):
        require.sign(UNSIGNED)
    assert inner.signed == 1  # only the "warn" signature


def test_a_certificate_naming_no_service_is_unknown_without_a_request(world: World) -> None:
    certificate = world.services.issue(ocsp_url=None, crl_url=None).certificate
    status = world.checker().status(certificate)
    assert status.state is RevocationState.UNKNOWN
    assert status.no_source
    assert "names no OCSP responder or CRL" in status.summary()
    assert world.services.requests == {}


def test_configured_sources_replace_the_certificates(world: World) -> None:
    services = world.services
    certificate = services.issue(ocsp_url=None, crl_url=dead_url(CRL_PATH)).certificate
    status = world.checker(ocsp_url=services.ocsp_url).status(certificate)
    assert (status.state, status.source) == (RevocationState.GOOD, RevocationSource.OCSP)
    world.revoke(certificate, x509.ReasonFlags.affiliation_changed, timedelta(hours=1))
    by_crl = world.checker(cache="crl", crl_url=services.crl_url).status(certificate)
    assert (by_crl.state, by_crl.source, by_crl.reason) == (
        RevocationState.REVOKED,
        RevocationSource.CRL,
        "affiliationChanged",
    )
    assert services.requests == {OCSP_PATH: 1, CRL_PATH: 1}


def test_local_crl_file_for_networks_that_cannot_reach_the_ca(world: World) -> None:
    certificate = world.services.issue(ocsp_url=dead_url(OCSP_PATH), crl_url=dead_url(CRL_PATH)).certificate
    world.revoke(certificate, x509.ReasonFlags.key_compromise, timedelta(hours=2))
    crl_file = world.directory / "ca.crl.pem"
    crl_file.write_bytes(
        x509.load_der_x509_crl(world.services.crl()).public_bytes(serialization.Encoding.PEM)
    )
    status = world.checker(crl_file=crl_file).status(certificate)
    assert (status.state, status.source, status.url) == (
        RevocationState.REVOKED,
        RevocationSource.CRL,
        str(crl_file),
    )
    assert len(status.problems) == 2  # the OCSP responder and the CRL URL, both refused


# ------------------------------------------------------------------------------------------ forgeries


def test_forged_ocsp_answer_is_rejected_and_the_crl_still_tells_the_truth(world: World) -> None:
    certificate = world.services.issue().certificate
    without_crl = world.services.issue(crl_url=None).certificate
    for revoked in (certificate, without_crl):
        world.revoke(revoked, x509.ReasonFlags.key_compromise, timedelta(hours=1))
    forge_ocsp_in_the_cas_name(world)
    world.services.ocsp_revoked = {}  # the forged answers say "good"
    status = world.checker().status(certificate)
    assert (status.state, status.source) == (RevocationState.REVOKED, RevocationSource.CRL)
    assert "OCSP" in status.problems[0]
    assert "signature does not verify" in status.problems[0]
    alone = world.checker().status(without_crl)
    assert alone.state is RevocationState.UNKNOWN  # a forged "good" is never taken for good


def test_forged_crl_is_rejected(world: World) -> None:
    certificate = world.services.issue(ocsp_url=None).certificate
    world.services.crl_signer = impostor(world.pki.ca)
    status = world.checker().status(certificate)
    assert status.state is RevocationState.UNKNOWN
    assert status.problems[0].startswith(f"CRL {world.services.crl_url}")
    assert "signature does not verify" in status.problems[0]


def test_crl_of_another_ca_is_rejected(world: World, other_ca: Issued) -> None:
    certificate = world.services.issue(ocsp_url=None).certificate
    world.services.crl_signer = other_ca
    status = world.checker().status(certificate)
    assert status.state is RevocationState.UNKNOWN
    assert "published by another issuer" in status.problems[0]


def test_replayed_ocsp_answer_with_another_nonce_is_rejected(world: World) -> None:
    certificate = world.services.issue(crl_url=None).certificate
    world.services.forged_nonce = b"\x01" * 32
    status = world.checker().status(certificate)
    assert status.state is RevocationState.UNKNOWN
    assert "nonce mismatch" in status.problems[0]
    world.services.forged_nonce = None
    world.services.echo_nonce = False  # a responder serving pre-produced answers sends no nonce: allowed
    assert world.checker(cache="again").status(certificate).state is RevocationState.GOOD


# ------------------------------------------------------------------------------------------ freshness


def test_stale_ocsp_answer_is_rejected_and_the_crl_answers(world: World) -> None:
    certificate = world.services.issue().certificate
    world.services.ocsp_age = timedelta(days=2)  # thisUpdate two days ago, nextUpdate one day ago
    status = world.checker().status(certificate)
    assert (status.state, status.source) == (RevocationState.GOOD, RevocationSource.CRL)
    assert "stale, nextUpdate" in status.problems[0]


def test_stale_crl_and_future_ocsp_answer_are_unknown(world: World) -> None:
    certificate = world.services.issue().certificate
    world.services.ocsp_age = -timedelta(hours=2)  # produced "in the future": a clock problem on one side
    world.services.crl_age = timedelta(days=8)  # nextUpdate a day ago
    status = world.checker().status(certificate)
    assert status.state is RevocationState.UNKNOWN
    assert "is in the future" in status.problems[0]
    assert status.problems[1].startswith("CRL")
    assert "stale" in status.problems[1]


# ---------------------------------------------------------------------------------------------- cache


def test_answer_is_cached_until_next_update(world: World) -> None:
    certificate = world.services.issue().certificate
    world.services.ocsp_validity = timedelta(hours=6)
    checker = world.checker()
    first = checker.status(certificate)
    assert not first.from_cache
    world.clock.advance(timedelta(hours=5, minutes=59))
    again = [checker.status(certificate) for _ in range(50)]  # e.g. every file of a batch
    assert all(status.from_cache and status.state is RevocationState.GOOD for status in again)
    # Another process (metrics, alerts, a restarted worker) reads the cache file instead of asking.
    other_process = world.checker().status(certificate)
    assert other_process.from_cache
    assert other_process.next_update == first.next_update
    assert world.services.requests == {OCSP_PATH: 1}
    world.clock.advance(timedelta(minutes=2))  # past nextUpdate
    renewed = checker.status(certificate)
    assert not renewed.from_cache
    assert renewed.next_update == world.clock.now + timedelta(hours=6)
    assert world.services.requests == {OCSP_PATH: 2}


def test_refresh_interval_then_the_last_answer_holds_until_next_update(world: World) -> None:
    certificate = world.services.issue().certificate
    world.services.ocsp_validity = timedelta(hours=6)
    checker = world.checker(refresh=timedelta(hours=1))
    checker.status(certificate)
    world.clock.advance(timedelta(minutes=61))
    refreshed = checker.status(certificate)
    assert not refreshed.from_cache  # asked again although nextUpdate is 5 h away
    assert world.services.requests == {OCSP_PATH: 2}

    world.services.ocsp_http_status = world.services.crl_http_status = 503  # the CA becomes unreachable
    world.clock.advance(timedelta(minutes=61))
    kept = checker.status(certificate)
    assert (kept.state, kept.from_cache, kept.next_update) == (
        RevocationState.GOOD,
        True,
        refreshed.next_update,
    )
    assert len(kept.problems) == 2
    assert checker.status(certificate) == kept  # no new try before UNKNOWN_RECHECK
    assert world.services.requests == {OCSP_PATH: 3, CRL_PATH: 1}

    world.clock.advance(timedelta(hours=5))  # past the nextUpdate of the refreshed answer (7 h 01 in)
    expired = checker.status(certificate)
    assert expired.state is RevocationState.UNKNOWN
    assert any("expired at" in problem for problem in expired.problems)
    world.clock.advance(UNKNOWN_RECHECK - timedelta(seconds=1))
    assert checker.status(certificate) == expired  # an unreachable CA costs one try per UNKNOWN_RECHECK
    assert world.services.requests == {OCSP_PATH: 4, CRL_PATH: 2}
    world.clock.advance(timedelta(seconds=2))
    checker.status(certificate)
    assert world.services.requests == {OCSP_PATH: 5, CRL_PATH: 3}


def test_answer_at_the_edge_of_its_next_update_is_not_asked_for_every_file(world: World) -> None:
    certificate = world.services.issue().certificate
    world.services.ocsp_age = world.services.ocsp_validity + timedelta(minutes=2)  # within the clock skew
    checker = world.checker()
    statuses = [checker.status(certificate) for _ in range(20)]
    assert {status.state for status in statuses} == {RevocationState.GOOD}
    assert world.services.requests == {OCSP_PATH: 1}
    world.clock.advance(MIN_RECHECK)
    checker.status(certificate)
    assert world.services.requests == {OCSP_PATH: 2}


def test_tampered_cache_file_cannot_make_a_revoked_certificate_good(world: World) -> None:
    certificate = world.services.issue().certificate
    world.revoke(certificate, x509.ReasonFlags.key_compromise, timedelta(hours=1))
    assert world.checker().status(certificate).state is RevocationState.REVOKED
    [cache_file] = (world.directory / "revocation").iterdir()
    record = json.loads(cache_file.read_text(encoding="utf-8"))
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(
            certificate, world.pki.ca.certificate, hashes.SHA1()
        )  # the OCSP CertID hash (RFC 5019)
        .build()
    )
    forged_good = ocsp_response(
        request,
        signer=impostor(world.pki.ca),
        responder_id=ocsp.OCSPResponderEncoding.NAME,
        this_update=world.clock.now,
        next_update=world.clock.now + timedelta(days=1),
    )
    record["answer"] = base64.b64encode(forged_good).decode("ascii")
    cache_file.write_text(json.dumps(record), encoding="utf-8")
    status = world.checker().status(certificate)
    assert (status.state, status.from_cache) == (RevocationState.REVOKED, False)  # asked the CA again
    assert world.services.requests == {OCSP_PATH: 2}


# ------------------------------------------------------------------------------------------ responders


def test_delegated_responder_with_the_ocsp_signing_eku(world: World) -> None:
    certificate = world.services.issue(crl_url=None).certificate
    world.services.ocsp_signer = issue_ocsp_responder(world.pki.ca)
    world.services.include_signer_certificate = True
    status = world.checker().status(certificate)
    assert (status.state, status.source) == (RevocationState.GOOD, RevocationSource.OCSP)


@pytest.mark.parametrize(
    ("responder", "message"),
    [
        ("without EKU", "lacks the OCSP-signing EKU"),
        ("issued by another CA", "was not issued by the certificate's CA"),
        ("not included", "neither the issuing CA nor a certificate it includes"),
    ],
)
def test_delegated_responder_must_be_authorised_by_the_ca(
    world: World, other_ca: Issued, responder: str, message: str
) -> None:
    certificate = world.services.issue(crl_url=None).certificate
    world.services.ocsp_signer = {
        "without EKU": lambda: issue_ocsp_responder(world.pki.ca, ocsp_signing=False),
        "issued by another CA": lambda: issue_ocsp_responder(other_ca),
        "not included": lambda: issue_ocsp_responder(world.pki.ca),
    }[responder]()
    world.services.include_signer_certificate = responder != "not included"
    status = world.checker().status(certificate)
    assert status.state is RevocationState.UNKNOWN
    assert message in status.problems[0]


# -------------------------------------------------------------------------------------------- issuer


def test_issuer_fetched_from_ca_issuers_when_not_configured(world: World) -> None:
    certificate = world.services.issue(ca_issuers_url=world.services.ca_issuers_url).certificate
    status = world.checker(trust_store=None).status(certificate)
    assert status.state is RevocationState.GOOD
    assert world.services.requests == {CA_ISSUERS_PATH: 1, OCSP_PATH: 1}


def test_issuer_from_the_key_sources_chain(world: World, other_ca: Issued) -> None:
    certificate = world.services.issue().certificate
    checker = world.checker(trust_store=None)
    status = checker.status(certificate, chain=(other_ca.certificate, world.pki.ca.certificate))
    assert status.state is RevocationState.GOOD


def test_without_the_issuer_nothing_can_be_verified(world: World, other_ca: Issued) -> None:
    certificate = world.services.issue().certificate
    status = world.checker(trust_store=None).status(certificate, chain=(other_ca.certificate,))
    assert status.state is RevocationState.UNKNOWN
    assert "issuing CA's certificate was not found" in status.problems[-1]
    assert world.services.requests == {}  # nothing asked that could not be verified
