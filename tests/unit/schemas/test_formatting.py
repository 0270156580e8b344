"""Element texts: dates in Vietnam time, decimals, text normalisation and rejected characters (DOMAIN.md §7)."""

from __future__ import annotations

import unicodedata
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from schemas import PayloadOptions, PayloadValidationError, build_claim, decode_envelope
from schemas.constraints import decimal_places
from schemas.domain.values import VIETNAM_TZ
from schemas.formatting import ValueFormatError, date8, datetime12, decimal_text, text
from schemas.spec import ALL_TABLES, FieldType, Profile, table_fields
from tests.unit.schemas.cases import CREATED, outpatient_exam


def test_times_are_written_in_vietnam_local_time_without_zone() -> None:
    utc = datetime(2026, 3, 4, 17, 5, tzinfo=UTC)  # 00:05 next day in Vietnam
    assert datetime12(utc) == "202603050005"
    assert date8(utc) == "20260305"
    assert datetime12(datetime(2026, 3, 4, 8, 15, tzinfo=VIETNAM_TZ)) == "202603040815"
    assert date8(date(2026, 1, 2)) == "20260102"


@pytest.mark.parametrize(
    ("value", "places", "expected"),
    [
        (Decimal("261100"), 2, "261100.00"),
        (Decimal("0.005"), 2, "0.01"),  # half-up, not banker's rounding
        (Decimal("0.015"), 2, "0.02"),
        (Decimal("499.9995"), 3, "500.000"),
        (Decimal("1E+3"), 2, "1000.00"),  # never an exponent
        (Decimal("1.23E-7"), 3, "0.000"),
        (Decimal("-0.001"), 2, "0.00"),  # no negative zero
        (12, 3, "12.000"),
    ],
)
def test_decimals_are_fixed_point_and_rounded_half_up(
    value: Decimal | int, places: int, expected: str
) -> None:
    assert decimal_text(value, places) == expected


def test_non_finite_decimals_are_refused() -> None:
    with pytest.raises(ValueFormatError):
        decimal_text(Decimal("NaN"), 2)
    with pytest.raises(ValueFormatError):
        decimal_text(Decimal("Infinity"), 2)


def test_quantities_and_unit_prices_carry_three_decimals_amounts_two() -> None:
    three = {
        spec.name
        for table in ALL_TABLES
        for spec in table_fields(table, Profile.QD4750)
        if spec.type is FieldType.DECIMAL and decimal_places(spec) == 3
    }
    two = {
        spec.name
        for table in ALL_TABLES
        for spec in table_fields(table, Profile.QD4750)
        if spec.type is FieldType.DECIMAL and decimal_places(spec) == 2
    }
    assert three == {"SO_LUONG", "DON_GIA", "DON_GIA_BV", "DON_GIA_BH"}
    assert two
    assert all(name.startswith(("THANH_TIEN_", "T_")) for name in two)


def test_text_is_nfc_and_stripped() -> None:
    decomposed = unicodedata.normalize("NFD", "  Nguyễn Thị Hạnh ")
    assert text(decomposed) == "Nguyễn Thị Hạnh"
    assert unicodedata.is_normalized("NFC", text(decomposed))


@pytest.mark.parametrize(
    ("char", "kind"),
    [
        ("\x00", "invalid_char"),
        ("\x07", "invalid_char"),
        ("\x1b", "invalid_char"),
        ("\ud800", "invalid_char"),
        ("\ufffe", "invalid_char"),
        ("\x7f", "control_char"),
        ("\x85", "control_char"),
    ],
)
def test_characters_xml_cannot_carry_are_rejected_not_dropped(char: str, kind: str) -> None:
    with pytest.raises(ValueFormatError) as caught:
        text(f"Ghi chú{char}x")
    assert caught.value.kind == kind
    assert "position 8" in caught.value.detail


def _xml1(encounter_changes: dict[str, object]) -> bytes:
    encounter = outpatient_exam()
    encounter = replace(encounter, visit=replace(encounter.visit, **encounter_changes))  # type: ignore[arg-type]
    built = build_claim(encounter, PayloadOptions(profile=Profile.QD4750), created=CREATED)
    return decode_envelope(built.document)["XML1"]


def test_markup_quotes_diacritics_and_emoji_are_escaped_correctly() -> None:
    note = 'Uống <sáng> & "tối"; tái khám 😀'
    document = _xml1({"ghi_chu": note})
    assert '<GHI_CHU>Uống &lt;sáng&gt; &amp; "tối"; tái khám 😀</GHI_CHU>'.encode() in document


def test_a_control_character_fails_the_build_with_a_rule_id_and_no_value() -> None:
    with pytest.raises(PayloadValidationError) as caught:
        _xml1({"ghi_chu": "Tái khám\x0bsau 2 tuần"})
    (error,) = caught.value.errors
    assert error.rule == "XML1.GHI_CHU.invalid_char"
    assert "U+000B" in error.message_en
    assert "Tái khám" not in error.message_en + error.message_vi + error.hint


def test_an_unrounded_amount_is_rounded_half_up_with_a_warning() -> None:
    encounter = outpatient_exam()
    line = replace(encounter.drug_lines[0], t_nguonkhac_cl=Decimal("0.004"))  # sends as 0.00: sums still hold
    built = build_claim(replace(encounter, drug_lines=(line,)), PayloadOptions(), created=CREATED)
    assert [issue.rule for issue in built.warnings] == ["XML2.T_NGUONKHAC_CL.rounded"]
    assert b"<T_NGUONKHAC_CL>0.00</T_NGUONKHAC_CL>" in decode_envelope(built.document)["XML2"]
