"""validate_envelope_bytes / validate_document on documents made elsewhere (CLI, gateway simulator)."""

from __future__ import annotations

import base64
import re

import pytest

from schemas import PayloadOptions, build_claim, decode_envelope, validate_document, validate_envelope_bytes
from schemas.spec import Profile
from tests.unit.schemas.cases import CREATED, inpatient_referral, outpatient_exam

PROFILE = Profile.QD3176


@pytest.fixture
def envelope() -> bytes:
    return build_claim(outpatient_exam(), PayloadOptions(profile=PROFILE), created=CREATED).document


def _rules(document: bytes, *, business_rules: bool = True) -> set[str]:
    return {
        issue.rule
        for issue in validate_envelope_bytes(document, PROFILE, business_rules=business_rules)
        if issue.is_error
    }


def _replace_inner(envelope: bytes, table: str, content: bytes) -> bytes:
    encoded = base64.b64encode(decode_envelope(envelope)[table])
    return envelope.replace(encoded, base64.b64encode(content))


def test_a_built_envelope_is_clean(envelope: bytes) -> None:
    assert validate_envelope_bytes(envelope, PROFILE) == []


def test_envelope_invariants(envelope: bytes) -> None:
    assert _rules(b"\x00garbage") == {"GIAMDINHHS.parse"}
    assert _rules(b"<TONG_HOP/>") == {"GIAMDINHHS.root"}
    assert _rules(envelope.replace(b"<SOLUONGHOSO>1<", b"<SOLUONGHOSO>2<")) == {
        "GIAMDINHHS.SOLUONGHOSO.hoso_count"
    }
    swapped = envelope.replace(b"<LOAIHOSO>XML2<", b"<LOAIHOSO>TMP<").replace(
        b"<LOAIHOSO>XML3<", b"<LOAIHOSO>XML2<"
    )
    swapped = swapped.replace(b"<LOAIHOSO>TMP<", b"<LOAIHOSO>XML3<")
    assert "GIAMDINHHS.table_order" in _rules(swapped, business_rules=False)
    assert "XML1.duplicate_table" in _rules(envelope.replace(b"<LOAIHOSO>XML2<", b"<LOAIHOSO>XML1<"))
    unknown = _rules(envelope.replace(b"<LOAIHOSO>XML4<", b"<LOAIHOSO>XML12<"))
    assert {"GIAMDINHHS.LOAIHOSO.xsd", "GIAMDINHHS.LOAIHOSO.unknown_table"} & unknown
    broken = re.sub(rb"(<LOAIHOSO>XML2</LOAIHOSO><NOIDUNGFILE>)[^<]{4}", rb"\1@@@@", envelope)
    assert "XML2.base64" in _rules(broken)
    no_xml1 = re.sub(
        rb"<FILEHOSO><LOAIHOSO>XML1</LOAIHOSO><NOIDUNGFILE>[^<]+</NOIDUNGFILE></FILEHOSO>", b"", envelope
    )
    assert "GIAMDINHHS.missing_xml1" in _rules(no_xml1)
    assert "GIAMDINHHS.MACSKCB.xsd" in _rules(envelope.replace(b"<MACSKCB>79999<", b"<MACSKCB>7999<"))


def test_inner_documents_are_checked_against_their_xsd_and_the_rules(envelope: bytes) -> None:
    xml2 = decode_envelope(envelope)["XML2"]
    assert _rules(_replace_inner(envelope, "XML2", b"<CHITIEU_CHITIET_THUOC><oops")) == {"XML2.parse"}
    assert _rules(_replace_inner(envelope, "XML2", b"<TONG_HOP/>")) == {"XML2.root"}
    misplaced = xml2.replace(b"<MA_PP_CHEBIEN/><MA_CSKCB_THUOC/>", b"<MA_CSKCB_THUOC/><MA_PP_CHEBIEN/>")
    assert _rules(_replace_inner(envelope, "XML2", misplaced)) == {"XML2.MA_PP_CHEBIEN.xsd"}
    wrong_amount = xml2.replace(b"<THANH_TIEN_BV>4500.00<", b"<THANH_TIEN_BV>4500.5555<")
    assert "XML2.THANH_TIEN_BV.xsd" in _rules(_replace_inner(envelope, "XML2", wrong_amount))
    other_key = xml2.replace(b"79999-G0001", b"79999-G9999")
    assert _rules(_replace_inner(envelope, "XML2", other_key)) == {"XML2.MA_LK.consistent"}
    assert _rules(_replace_inner(envelope, "XML2", other_key), business_rules=False) == set()


def test_documents_with_a_default_namespace_or_omitted_empty_elements() -> None:
    """Other producers may omit empty optional elements: the XSD allows that, required ones must be there."""
    documents = decode_envelope(
        build_claim(inpatient_referral(), PayloadOptions(profile=PROFILE), created=CREATED).document
    )
    xml13 = documents["XML13"]
    trimmed = re.sub(rb"<(MA_CSKCB_DI|MA_BENH_KT|MA_BENH_YHCT|DU_PHONG)/>", b"", xml13)
    assert validate_document("XML13", trimmed, PROFILE) == []
    without_required = xml13.replace(b"<MA_LYDO_CT>2</MA_LYDO_CT>", b"")
    assert [issue.rule for issue in validate_document("XML13", without_required, PROFILE)] == [
        "XML13.MA_LYDO_CT.xsd"
    ]
    assert validate_document("XML13", xml13, Profile.QD4750) != []  # 3176 names are not 4750 names
