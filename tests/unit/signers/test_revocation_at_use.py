"""A kept OCSP response or CRL judged at the time a signature relied on it, not today: one whose nextUpdate has
passed since but had not when it was used is valid at the time of use; one used after its nextUpdate is stale
at use. Real answers signed by the test CA (``cryptography`` builders), read back from their DER."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509

from adapters.signers.revocation import RevocationCheckError, crl, ocsp
from adapters.signers.revocation.at_use import LATE_USE, AtUse, held_at_use, judge
from adapters.signers.testpki import Issued, RevokedEntry, certificate_revocation_list, ocsp_response
from tests.unit.signers.revocation_support import ocsp_request_for_serial
from tests.unit.signers.support import PkiSet

#: When the signatures relied on the answers: a month ago. Whole seconds, as OCSP and CRL times.
USED = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
THIS_UPDATE = USED - timedelta(hours=1)
NEXT_UPDATE = USED + timedelta(days=3)  # past today, not at the time of use


def ocsp_der(
    ca: Issued,
    serial: int,
    *,
    revoked: RevokedEntry | None = None,
    next_update: datetime | None = NEXT_UPDATE,
) -> bytes:
    return ocsp_response(
        ocsp_request_for_serial(ca.certificate, serial),
        signer=ca,
        revoked={serial: revoked} if revoked else None,
        this_update=THIS_UPDATE,
        next_update=next_update,
    )


def crl_der(ca: Issued, revoked: dict[int, RevokedEntry] | None = None) -> bytes:
    return certificate_revocation_list(ca, revoked, last_update=THIS_UPDATE, next_update=NEXT_UPDATE)


@pytest.fixture(params=["ocsp", "crl"])
def kept(request: pytest.FixtureRequest, pki: PkiSet) -> tuple[str, bytes, int]:
    """(kind, DER, serial) of a good answer about the hospital certificate, as the ledger keeps it."""
    serial = pki[2048].hospital.certificate.serial_number
    der = ocsp_der(pki.ca, serial) if request.param == "ocsp" else crl_der(pki.ca)
    return request.param, der, serial


def test_an_answer_past_its_next_update_today_was_valid_at_its_time_of_use(
    kept: tuple[str, bytes, int], pki: PkiSet
) -> None:
    kind, der, serial = kept
    found = judge(kind, der, first_use=USED, serial=serial)
    assert found.verdict is AtUse.VALID
    assert (found.this_update, found.next_update) == (THIS_UPDATE, NEXT_UPDATE)
    assert found.summary() == (
        f"valid at the time of use: thisUpdate {THIS_UPDATE.isoformat()}, nextUpdate {NEXT_UPDATE.isoformat()}; "
        f"used on {USED.isoformat()}"
    )
    assert held_at_use(kind, der, cert_serial=f"{serial:x}", first_use=USED, last_use=USED) is None

    # The worker's own check, which judges an answer for signing now, would call it stale today, and accepts
    # it (signature included) at the time it was used: the date is all that differs.
    hospital = pki[2048].hospital.certificate
    verify = ocsp.verify_response if kind == "ocsp" else crl.verify_crl
    with pytest.raises(RevocationCheckError, match="stale"):
        verify(der, certificate=hospital, issuer=pki.ca.certificate, now=datetime.now(UTC), url="kept")
    verify(der, certificate=hospital, issuer=pki.ca.certificate, now=USED, url="kept")


def test_an_answer_used_after_its_next_update_is_stale_at_use(kept: tuple[str, bytes, int]) -> None:
    kind, der, serial = kept
    late = NEXT_UPDATE + timedelta(days=1)
    found = judge(kind, der, first_use=USED, last_use=late, serial=serial)
    assert found.verdict is AtUse.STALE
    assert found.summary() == (
        f"stale at use: thisUpdate {THIS_UPDATE.isoformat()}, nextUpdate {NEXT_UPDATE.isoformat()}; "
        f"used on {late.isoformat()}, after its nextUpdate"
    )
    assert held_at_use(kind, der, cert_serial=f"{serial:x}", first_use=USED, last_use=late) == found.summary()


def test_the_last_use_the_workers_rules_allow_and_the_first_they_do_not(kept: tuple[str, bytes, int]) -> None:
    """Taken up to CLOCK_SKEW past nextUpdate, kept MIN_RECHECK, recorded after the batch: LATE_USE."""
    kind, der, serial = kept
    edge = NEXT_UPDATE + LATE_USE
    assert judge(kind, der, first_use=USED, last_use=edge, serial=serial).verdict is AtUse.VALID
    after = edge + timedelta(seconds=1)
    assert judge(kind, der, first_use=USED, last_use=after, serial=serial).verdict is AtUse.STALE


def test_an_answer_used_before_its_this_update_is_not_yet_valid(kept: tuple[str, bytes, int]) -> None:
    kind, der, serial = kept
    early = THIS_UPDATE - timedelta(hours=1)
    found = judge(kind, der, first_use=early, last_use=USED, serial=serial)
    assert found.verdict is AtUse.NOT_YET_VALID
    assert found.summary().startswith("not yet valid at use: ")


def test_without_next_update_an_ocsp_answer_speaks_for_an_hour(pki: PkiSet) -> None:
    der = ocsp_der(pki.ca, 0xAB, next_update=None)
    within = THIS_UPDATE + timedelta(hours=1)
    assert judge("ocsp", der, first_use=within, serial=0xAB).verdict is AtUse.VALID
    found = judge("ocsp", der, first_use=within + LATE_USE + timedelta(seconds=1), serial=0xAB)
    assert found.verdict is AtUse.STALE
    assert found.reason.endswith("after its thisUpdate + 1 h (no nextUpdate)")


def test_an_answer_that_lists_the_certificate_revoked_before_the_use_says_so(pki: PkiSet) -> None:
    revoked_on = THIS_UPDATE - timedelta(days=1)
    entry: RevokedEntry = (revoked_on, x509.ReasonFlags.key_compromise)
    for kind, der in (
        ("ocsp", ocsp_der(pki.ca, 0xAB, revoked=entry)),
        ("crl", crl_der(pki.ca, {0xAB: entry})),
    ):
        found = judge(kind, der, first_use=USED, serial=0xAB)
        assert found.verdict is AtUse.REVOKED, kind
        assert found.reason.endswith(
            f"says certificate serial ab was revoked on {revoked_on.isoformat()}, before its use on "
            f"{USED.isoformat()}"
        )
    # Another certificate's entry, or one taken off hold, says nothing against ours.
    other = crl_der(pki.ca, {0xAC: entry})
    assert judge("crl", other, first_use=USED, serial=0xAB).verdict is AtUse.VALID
    unheld = crl_der(pki.ca, {0xAB: (revoked_on, x509.ReasonFlags.remove_from_crl)})
    assert judge("crl", unheld, first_use=USED, serial=0xAB).verdict is AtUse.VALID


def test_an_ocsp_answer_about_another_certificate_proves_nothing_for_this_one(pki: PkiSet) -> None:
    der = ocsp_der(pki.ca, 0xAC)
    found = judge("ocsp", der, first_use=USED, serial=0xAB)
    assert found.verdict is AtUse.NOT_COVERED
    assert found.reason == "the OCSP response does not cover certificate serial ab"
    assert judge("ocsp", der, first_use=USED).verdict is AtUse.VALID  # one certificate: no serial needed
    said = held_at_use("ocsp", der, cert_serial="zz", first_use=USED, last_use=USED)
    assert said == "not about the certificate used: the signed events name certificate serial 'zz', not hex"


@pytest.mark.parametrize("kind", ["ocsp", "crl", "ldap"])
def test_bytes_that_are_no_answer_are_unreadable(kind: str) -> None:
    found = judge(kind, b"\x30\x03\x0a\x01\x00", first_use=USED, serial=0xAB)
    assert found.verdict is AtUse.UNREADABLE
    assert not found.held
