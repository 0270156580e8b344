"""Test material for the signing tests: realistic unsigned documents (from the payload builder) and a test PKI."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.his.demo.synthetic import Kind, make_encounter
from adapters.signers.testpki import Issued, TestPkiFiles, create_test_pki, generate_ca
from schemas import PayloadOptions, build_claim
from schemas import build_checkin as build_checkin_payload
from schemas.domain import Encounter
from schemas.domain.values import VIETNAM_TZ
from worker.config import SignerSettings

KEY_SIZES = (2048, 3072)


def sample_encounter(seed: int = 1, kind: Kind = Kind.INPATIENT_REFERRAL) -> Encounter:
    """An invented inpatient visit whose envelope is about 23 KB (inner documents base64 in NOIDUNGFILE)."""
    return make_encounter(
        random.Random(seed),
        his_key=f"{700000 + seed}",
        kind=kind,
        start=datetime(2026, 3, 4, 8, 15, tzinfo=VIETNAM_TZ),
    )


def build_envelope(encounter: Encounter | None = None) -> bytes:
    """The unsigned GIAMDINHHS envelope the payload builder makes: compact, ``<CHUKYDONVI/>`` last."""
    return build_claim(encounter or sample_encounter(), PayloadOptions(), created=date(2026, 3, 4)).document


def build_checkin(encounter: Encounter | None = None) -> bytes:
    """The unsigned XML0 check-in (CHI_TIEU_TRANG_THAI_KCB with ``<CHUKYDONVI/>`` last)."""
    built = build_checkin_payload(encounter or sample_encounter(), PayloadOptions())
    assert built is not None
    return built.document


# ------------------------------------------------------------------------------------------------- PKI


@dataclass(frozen=True)
class PkiSet:
    """One test CA and a hospital certificate per key size, plus bad certificates for the health checks."""

    ca: Issued
    ca_certificate: Path
    by_size: dict[int, TestPkiFiles]
    expired: TestPkiFiles
    expiring: TestPkiFiles  # 10 days left
    not_yet_valid: TestPkiFiles

    def __getitem__(self, key_size: int) -> TestPkiFiles:
        return self.by_size[key_size]


def make_pki_set(directory: Path) -> PkiSet:
    ca = generate_ca(key_size=3072)
    now = datetime.now(UTC)
    by_size = {size: create_test_pki(directory / f"rsa{size}", key_size=size, ca=ca) for size in KEY_SIZES}
    expired = create_test_pki(
        directory / "expired", ca=ca, not_before=now - timedelta(days=400), not_after=now - timedelta(days=35)
    )
    expiring = create_test_pki(
        directory / "expiring",
        ca=ca,
        not_before=now - timedelta(days=355),
        not_after=now + timedelta(days=10),
    )
    not_yet_valid = create_test_pki(
        directory / "future", ca=ca, not_before=now + timedelta(days=2), not_after=now + timedelta(days=400)
    )
    return PkiSet(
        ca=ca,
        ca_certificate=by_size[2048].ca_certificate,
        by_size=by_size,
        expired=expired,
        expiring=expiring,
        not_yet_valid=not_yet_valid,
    )


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiSet:
    return make_pki_set(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def envelope() -> bytes:
    return build_envelope()


@pytest.fixture(scope="session")
def checkin() -> bytes:
    return build_checkin()


def flip_byte(data: bytes, index: int) -> bytes:
    """``data`` with one base64/ASCII letter at ``index`` replaced by another letter."""
    replacement = b"B" if data[index : index + 1] != b"B" else b"C"
    return data[:index] + replacement + data[index + 1 :]


def iter_tamper_points(signed: bytes) -> Iterator[tuple[str, int]]:
    """Offsets of one byte inside signed content: the facility code, an inner document, the last FILEHOSO."""
    yield "MACSKCB", signed.index(b"<MACSKCB>") + len(b"<MACSKCB>") + 1
    first = signed.index(b"<NOIDUNGFILE>") + len(b"<NOIDUNGFILE>")
    yield "NOIDUNGFILE", first + 100
    yield "last NOIDUNGFILE", signed.rindex(b"</NOIDUNGFILE>") - 5


def file_settings(files: TestPkiFiles, **overrides: Any) -> SignerSettings:
    """Settings of the ``file`` key source for one test PKI (PKCS#12 + passphrase, CA as trust store)."""
    values: dict[str, Any] = {
        "source": "file",
        "key_file": files.pkcs12,
        "passphrase": files.passphrase,
        "trust_store": files.ca_certificate,
    }
    values.update(overrides)
    return SignerSettings.model_validate(values)
