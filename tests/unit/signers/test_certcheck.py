"""Certificate health: ok / warning / failure and the facts reported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.signers.certcheck import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_REVOKED,
    EXIT_WARNING,
    Health,
    check_certificate,
    check_signer,
    days_left,
)
from adapters.signers.file.signer import FileKeySigner
from adapters.signers.revocation import RevocationPolicy, RevocationSource, RevocationState, RevocationStatus
from adapters.signers.testpki import issue_signing_certificate
from tests.unit.signers.support import PkiSet, file_settings


def test_healthy_signer(pki: PkiSet, file_signer: FileKeySigner) -> None:
    report = check_signer(file_signer, warning_days=30)
    assert report.status is Health.OK
    assert report.exit_code == EXIT_OK
    assert report.problems == ()
    assert report.key_matches is True
    assert report.key_size == 2048
    assert report.key_type == "RSA"
    assert set(report.key_usage) == {"digital_signature", "content_commitment"}
    assert "MACSKCB:79999" in report.subject
    assert "TEST CA" in report.issuer
    assert report.serial == format(pki[2048].hospital.certificate.serial_number, "x")
    assert 360 < report.days_left < 366
    assert report.as_dict()["status"] == "ok"


def test_expiring_soon_is_a_warning(pki: PkiSet) -> None:
    report = check_certificate(pki.expiring.hospital.certificate, warning_days=30)
    assert report.status is Health.WARNING
    assert report.exit_code == EXIT_WARNING
    assert 9 < report.days_left <= 10
    assert "in 10 days (threshold 30)" in report.problems[0]
    assert check_certificate(pki.expiring.hospital.certificate, warning_days=5).status is Health.OK


@pytest.mark.parametrize(
    ("which", "message"), [("expired", "expired on"), ("not_yet_valid", "not valid before")]
)
def test_outside_validity_is_a_failure(pki: PkiSet, which: str, message: str) -> None:
    report = check_certificate(getattr(pki, which).hospital.certificate, warning_days=30)
    assert report.status is Health.FAILURE
    assert report.exit_code == EXIT_FAILURE
    assert message in report.problems[0]


def test_expired_days_left_is_negative(pki: PkiSet) -> None:
    assert -36 < days_left(pki.expired.hospital.certificate) <= -35
    later = datetime.now(UTC) + timedelta(days=20)
    assert days_left(pki.expiring.hospital.certificate, later) < 0


def test_key_mismatch_is_a_failure(pki: PkiSet) -> None:
    files = pki[2048]
    settings = file_settings(files, key_file=files.private_key, cert_file=pki[3072].certificate)
    with FileKeySigner.from_settings(settings) as signer:
        report = check_signer(signer, warning_days=30)
    assert report.status is Health.FAILURE
    assert report.key_matches is False
    assert "the private key does not belong to this certificate" in report.problems


def test_certificate_not_for_signing_is_a_failure(pki: PkiSet) -> None:
    encryption_only = issue_signing_certificate(pki.ca, key=pki[2048].hospital.key, digital_signature=False)
    report = check_certificate(encryption_only.certificate, warning_days=30)
    assert report.status is Health.FAILURE
    assert "neither digitalSignature nor nonRepudiation" in report.problems[0]


# ------------------------------------------------------------------------------------------ revocation


def _status(
    state: RevocationState, *, sources: tuple[str, ...] = ("http://ocsp.ca.test",)
) -> RevocationStatus:
    now = datetime.now(UTC)
    answered = state is not RevocationState.UNKNOWN
    return RevocationStatus(
        state=state,
        source=RevocationSource.OCSP if answered else RevocationSource.NONE,
        checked_at=now,
        url=sources[0] if answered else None,
        revoked_at=now - timedelta(days=1) if state is RevocationState.REVOKED else None,
        reason="keyCompromise" if state is RevocationState.REVOKED else None,
        sources=sources,
        problems=() if answered else ("OCSP http://ocsp.ca.test: unreachable (ConnectError)",),
    )


@pytest.mark.parametrize(
    ("state", "sources", "policy", "health", "exit_code"),
    [
        (RevocationState.GOOD, ("http://ocsp.ca.test",), RevocationPolicy.REQUIRE, Health.OK, EXIT_OK),
        (
            RevocationState.REVOKED,
            ("http://ocsp.ca.test",),
            RevocationPolicy.WARN,
            Health.FAILURE,
            EXIT_REVOKED,
        ),
        (
            RevocationState.UNKNOWN,
            ("http://ocsp.ca.test",),
            RevocationPolicy.WARN,
            Health.WARNING,
            EXIT_WARNING,
        ),
        (
            RevocationState.UNKNOWN,
            ("http://ocsp.ca.test",),
            RevocationPolicy.REQUIRE,
            Health.FAILURE,
            EXIT_FAILURE,
        ),
        # Nothing to ask (test certificates): reported, but only "require" makes it a failure.
        (RevocationState.UNKNOWN, (), RevocationPolicy.WARN, Health.OK, EXIT_OK),
        (RevocationState.UNKNOWN, (), RevocationPolicy.REQUIRE, Health.FAILURE, EXIT_FAILURE),
    ],
)
def test_revocation_verdict_and_exit_code(
    pki: PkiSet,
    *,
    state: RevocationState,
    sources: tuple[str, ...],
    policy: RevocationPolicy,
    health: Health,
    exit_code: int,
) -> None:
    revocation = _status(state, sources=sources)
    report = check_certificate(
        pki[2048].hospital.certificate, warning_days=30, revocation=revocation, revocation_policy=policy
    )
    assert report.status is health
    assert report.exit_code == exit_code
    assert report.as_dict()["revocation"]["state"] == state.value
    assert report.revoked is (state is RevocationState.REVOKED)


def test_revoked_beats_every_other_exit_code(pki: PkiSet) -> None:
    report = check_certificate(
        pki.expired.hospital.certificate, warning_days=30, revocation=_status(RevocationState.REVOKED)
    )
    assert report.exit_code == EXIT_REVOKED
    assert any("revoked on" in problem and "keyCompromise" in problem for problem in report.problems)
    assert EXIT_REVOKED not in (EXIT_OK, EXIT_WARNING, EXIT_FAILURE, 1, 2)  # 1/2: the check could not run
