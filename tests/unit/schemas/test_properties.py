"""Property: for any generated encounter, build_claim returns an XSD-valid envelope or raises
PayloadValidationError — never anything else — and what it returns is valid, ordered and NFC."""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import replace
from datetime import datetime, timedelta

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from lxml import etree

from adapters.his.demo.synthetic import Defect, Kind, make_encounter
from schemas import (
    PayloadOptions,
    PayloadValidationError,
    build_checkin,
    build_claim,
    content_hash_of_envelope,
    decode_envelope,
    validate_envelope_bytes,
)
from schemas.domain import Encounter
from schemas.domain.values import VIETNAM_TZ
from schemas.spec import TABLE_LAYOUTS, Profile, table_fields

#: Text that stresses escaping and normalisation: markup, quotes, Vietnamese (composed and decomposed),
#: emoji, and characters that must be rejected (C0/C1 controls, a lone surrogate, U+FFFE).
TRICKY = st.lists(
    st.sampled_from(
        [
            "<",
            ">",
            "&",
            '"',
            "'",
            ";",
            " ",
            "a",
            "Đ",
            "ệ",
            "e\u0302\u0301",
            "😀",
            "\t",
            "\n",
            "\x07",
            "\x85",
            "\ufffe",
            "\ud800",
        ]
    ),
    max_size=12,
).map("".join)

TEXT_TARGETS = ("ghi_chu", "ly_do_vv", "chan_doan_rv", "ho_ten", "dia_chi", "ten_thuoc")


def _with_text(encounter: Encounter, target: str, value: str) -> Encounter:
    if target in ("ho_ten", "dia_chi"):
        return replace(encounter, patient=replace(encounter.patient, **{target: value}))  # type: ignore[arg-type]
    if target == "ten_thuoc":
        lines = (replace(encounter.drug_lines[0], ten_thuoc=value), *encounter.drug_lines[1:])
        return replace(encounter, drug_lines=lines)
    return replace(encounter, visit=replace(encounter.visit, **{target: value}))  # type: ignore[arg-type]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Encounter, PayloadOptions]:
    kind = draw(st.sampled_from(list(Kind)))
    defect = draw(st.none() | st.sampled_from(list(Defect)))
    start = datetime(2026, 7, 25, 8, 0, tzinfo=VIETNAM_TZ) + timedelta(hours=draw(st.integers(0, 24 * 14)))
    encounter = make_encounter(
        random.Random(draw(st.integers(0, 2**32))),
        his_key=str(draw(st.integers(1, 10**9))),
        kind=kind,
        start=start,
        defect=defect,
    )
    if draw(st.booleans()):
        encounter = _with_text(encounter, draw(st.sampled_from(TEXT_TARGETS)), draw(TRICKY))
    options = PayloadOptions(
        profile=draw(st.sampled_from(list(Profile))),
        xml8_for_every_visit=draw(st.booleans()),
        checkin_for_non_bhyt=draw(st.booleans()),
        inner_xml_declaration=draw(st.booleans()),
        hiv_filter=draw(st.sampled_from(["sskdt_only", "always", "never"])),
    )
    return encounter, options


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_build_returns_a_valid_envelope_or_a_validation_error(
    scenario: tuple[Encounter, PayloadOptions],
) -> None:
    encounter, options = scenario
    rejection: PayloadValidationError | None = None
    try:
        built = build_claim(encounter, options)
    except PayloadValidationError as exc:
        rejection = exc
    if rejection is not None:
        event("rejected")
        assert rejection.errors, "raised without an error"
        rule_id = r"(XML\d+|GIAMDINHHS)\.([A-Z0-9_]+\.)?[a-z0-9_]+"
        assert all(re.fullmatch(rule_id, issue.rule) for issue in rejection.issues)
    else:
        event("built")
        assert [
            issue for issue in validate_envelope_bytes(built.document, options.profile) if issue.is_error
        ] == []
        assert content_hash_of_envelope(built.document) == built.content_hash
        for table, content in decode_envelope(built.document).items():
            root = etree.fromstring(content)
            layout = TABLE_LAYOUTS[table]
            records = [root] if layout.row is None else root.findall(f"{layout.list_element}/{layout.row}")
            expected = [spec.name for spec in table_fields(table, options.profile)]
            for record in records:
                assert [child.tag for child in record] == expected
                for child in record:
                    assert child.text is None or unicodedata.is_normalized("NFC", child.text)
    try:
        checkin = build_checkin(encounter, options)
    except PayloadValidationError:
        return  # a rejection is an allowed outcome; anything else propagates and fails the test
    if checkin is not None:
        assert etree.fromstring(checkin.document)[-1].tag == "CHUKYDONVI"
