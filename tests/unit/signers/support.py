"""Test material for the signing tests: realistic unsigned documents and a test PKI.

The payload builder (schemas/) is written in parallel; until it is wired in, ``build_envelope`` serialises a
synthetic encounter (worker.synthetic) per DOMAIN.md §3.2/§4 — inner table documents in appendix field order,
base64 in NOIDUNGFILE, compact, ``<CHUKYDONVI/>`` last — padded with drug lines to about 25 KB.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from adapters.signers.testpki import Issued, TestPkiFiles, create_test_pki, generate_ca
from schemas.spec import TABLE_LAYOUTS, table_fields
from worker.config import SignerSettings
from worker.domain import Encounter
from worker.synthetic import Kind, make_encounter

XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSD = "http://www.w3.org/2001/XMLSchema"
NSMAP = {"xsi": XSI, "xsd": XSD}
DECLARATION = b'<?xml version="1.0" encoding="utf-8"?>'
KEY_SIZES = (2048, 3072)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y%m%d%H%M")
    if isinstance(value, date):
        return value.strftime("%Y%m%d")
    if hasattr(value, "format12"):  # BirthDate
        return str(value.format12())
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _row(
    parent: etree._Element, table: str, sources: Iterable[Any], overrides: dict[str, str] | None = None
) -> None:
    objects = [source for source in sources if source is not None]
    for spec in table_fields(table):
        element = etree.SubElement(parent, spec.name)
        if overrides and spec.name in overrides:
            element.text = overrides[spec.name]
            continue
        for source in objects:
            if hasattr(source, spec.name.lower()):
                element.text = _text(getattr(source, spec.name.lower()))
                break


def inner_document(table: str, rows: list[list[Any]], ma_lk: str) -> bytes:
    """One inner table document (DOMAIN.md §4), UTF-8 with its XML declaration."""
    layout = TABLE_LAYOUTS[table]
    root = etree.Element(layout.root, nsmap=NSMAP)
    if layout.list_element is None:
        _row(root, table, rows[0], {"MA_LK": ma_lk, "STT": "1"})
    else:
        listing = etree.SubElement(root, layout.list_element)
        for number, sources in enumerate(rows, start=1):
            assert layout.row is not None
            _row(etree.SubElement(listing, layout.row), table, sources, {"MA_LK": ma_lk, "STT": str(number)})
    return DECLARATION + etree.tostring(root, encoding="utf-8")


def sample_encounter(seed: int = 1, kind: Kind = Kind.INPATIENT_REFERRAL) -> Encounter:
    return make_encounter(
        random.Random(seed),
        his_key=f"{700000 + seed}",
        kind=kind,
        start=datetime(2026, 3, 4, 8, 15, tzinfo=UTC),
    )


def build_envelope(
    encounter: Encounter | None = None, *, facility_code: str = "79999", target_bytes: int = 25_000
) -> bytes:
    """A compact unsigned GIAMDINHHS envelope of about ``target_bytes`` with an empty trailing CHUKYDONVI."""
    encounter = encounter or sample_encounter()
    base = [encounter.patient, encounter.visit]
    drug_rows = [[line, *base] for line in encounter.drug_lines] or [base]
    tables: list[tuple[str, list[list[Any]]]] = [
        ("XML1", [[encounter.visit, encounter.patient, encounter.first_cost]]),
        ("XML2", drug_rows),
        ("XML3", [[line, *base] for line in encounter.service_lines] or [base]),
        ("XML4", [[result, *base] for result in encounter.cls_results] or [base]),
        ("XML5", [[note, *base] for note in encounter.clinical_notes] or [base]),
    ]
    while True:
        envelope = _envelope(encounter.ma_lk, tables, facility_code)
        if len(envelope) >= target_bytes:
            return envelope
        tables[1] = ("XML2", tables[1][1] + drug_rows)


def _envelope(ma_lk: str, tables: list[tuple[str, list[list[Any]]]], facility_code: str) -> bytes:
    root = etree.Element("GIAMDINHHS", nsmap=NSMAP)
    etree.SubElement(etree.SubElement(root, "THONGTINDONVI"), "MACSKCB").text = facility_code
    info = etree.SubElement(root, "THONGTINHOSO")
    etree.SubElement(info, "NGAYLAP").text = "20260304"
    etree.SubElement(info, "SOLUONGHOSO").text = "1"
    record = etree.SubElement(etree.SubElement(info, "DANHSACHHOSO"), "HOSO")
    for table, rows in tables:
        file = etree.SubElement(record, "FILEHOSO")
        etree.SubElement(file, "LOAIHOSO").text = table
        etree.SubElement(file, "NOIDUNGFILE").text = base64.b64encode(
            inner_document(table, rows, ma_lk)
        ).decode()
    etree.SubElement(root, "CHUKYDONVI")
    return DECLARATION + etree.tostring(root, encoding="utf-8")


def build_checkin(encounter: Encounter | None = None) -> bytes:
    """An unsigned XML0 check-in (DOMAIN.md §3.3): CHI_TIEU_TRANG_THAI_KCB with CHUKYDONVI last."""
    encounter = encounter or sample_encounter()
    layout = TABLE_LAYOUTS["XML0"]
    root = etree.Element(layout.root, nsmap=NSMAP)
    assert layout.list_element is not None
    assert layout.row is not None
    row = etree.SubElement(etree.SubElement(root, layout.list_element), layout.row)
    _row(row, "XML0", [encounter.visit, encounter.patient], {"MA_LK": encounter.ma_lk, "STT": "1"})
    etree.SubElement(root, "CHUKYDONVI")
    return DECLARATION + etree.tostring(root, encoding="utf-8")


def noidungfile_values(envelope: bytes) -> list[str]:
    return [element.text or "" for element in etree.fromstring(envelope).iter("NOIDUNGFILE")]


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
