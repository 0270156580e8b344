"""The committed XSDs are what the generator makes from the spec, and they say what the spec says."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from schemas.codegen import xsd as codegen
from schemas.constraints import is_required
from schemas.spec import TABLE_LAYOUTS, Profile, table_fields
from schemas.validation import validate_document
from schemas.xsd_validation import XSD_ROOT

XS = "{http://www.w3.org/2001/XMLSchema}"


def test_committed_xsds_equal_a_fresh_generation(tmp_path: Path) -> None:
    written = codegen.generate(tmp_path)
    fresh = {path.relative_to(tmp_path).as_posix(): path.read_bytes() for path in written}
    committed = {path.relative_to(XSD_ROOT).as_posix(): path.read_bytes() for path in XSD_ROOT.rglob("*.xsd")}
    assert sorted(committed) == sorted(fresh), "run: python -m schemas.codegen.xsd"
    stale = [name for name, content in fresh.items() if committed[name] != content]
    assert stale == [], "run: python -m schemas.codegen.xsd"


def _record_elements(schema: etree._Element, table: str) -> list[etree._Element]:
    layout = TABLE_LAYOUTS[table]
    if layout.row is None:
        root = schema.find(f"{XS}element[@name='{layout.root}']")
        assert root is not None
        sequence = root.find(f"{XS}complexType/{XS}sequence")
    else:
        sequence = schema.find(f"{XS}complexType[@name='Record']/{XS}sequence")
    assert sequence is not None
    return [
        element
        for element in sequence
        if element.tag == f"{XS}element" and element.get("name") != "CHUKYDONVI"
    ]


@pytest.mark.parametrize("profile", list(Profile))
@pytest.mark.parametrize("table", codegen.XSD_TABLES)
def test_xsd_element_order_and_required_flags_follow_the_csv(profile: Profile, table: str) -> None:
    schema = etree.parse(str(XSD_ROOT / profile.value / f"{table}.xsd")).getroot()
    elements = _record_elements(schema, table)
    specs = table_fields(table, profile)
    assert [element.get("name") for element in elements] == [spec.name for spec in specs]
    for element, spec in zip(elements, specs, strict=True):
        assert (element.get("minOccurs") != "0") == is_required(spec), spec.name
        max_length = element.find(f".//{XS}maxLength")
        assert (max_length.get("value") if max_length is not None else None) == (
            str(spec.max_length) if spec.max_length is not None else None
        ), spec.name


def test_profiles_differ_only_in_the_referral_table() -> None:
    different = sorted(
        path.name
        for path in (XSD_ROOT / "qd4750").glob("*.xsd")
        if path.read_bytes().replace(b"qd4750", b"qd3176") != (XSD_ROOT / "qd3176" / path.name).read_bytes()
    )
    assert different == ["XML13.xsd"]


def _single_record(table: str, profile: Profile, **values: str) -> bytes:
    layout = TABLE_LAYOUTS[table]
    fields = "".join(
        f"<{spec.name}>{values.get(spec.name, '')}</{spec.name}>" for spec in table_fields(table, profile)
    )
    return f"<{layout.root}>{fields}</{layout.root}>".encode()


def test_xsd_rejects_an_impossible_time_and_an_empty_required_element_but_accepts_empty_optionals() -> None:
    required = {spec.name: "x" for spec in table_fields("XML8", Profile.QD4750) if is_required(spec)}
    good = {
        **required,
        "MA_LOAI_KCB": "03",
        "NGAY_VAO": "202603040815",
        "NGAY_RA": "202603061415",
        "KET_QUA_DTRI": "1",
        "NGAY_CT": "20260306",
    }
    assert validate_document("XML8", _single_record("XML8", Profile.QD4750, **good), Profile.QD4750) == []
    bad_time = validate_document(
        "XML8", _single_record("XML8", Profile.QD4750, **{**good, "NGAY_RA": "202613061415"}), Profile.QD4750
    )
    assert [(issue.field, issue.rule) for issue in bad_time] == [("NGAY_RA", "XML8.NGAY_RA.xsd")]
    assert "202613061415" not in bad_time[0].message_en
    missing = validate_document(
        "XML8", _single_record("XML8", Profile.QD4750, **{**good, "QT_BENHLY": ""}), Profile.QD4750
    )
    assert [issue.rule for issue in missing] == ["XML8.QT_BENHLY.xsd"]
