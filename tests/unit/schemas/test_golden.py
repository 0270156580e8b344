"""Golden files: the exact bytes built for hand-made encounters (tests/golden/payload/<case>/).

Each case stores its qd4750 inner documents, the envelope and the XML0 check-in; ``qd3176/`` holds only the
files that differ under the QĐ 3176 profile (a test checks that all others are byte-identical). After an
intended change, regenerate with ``VNEID_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/schemas/test_golden.py``
and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from schemas import (
    PayloadOptions,
    PayloadValidationError,
    build_checkin,
    build_claim,
    decode_envelope,
    validate_document,
    validate_envelope_bytes,
)
from schemas.spec import Profile
from tests.unit.schemas.cases import CREATED, VALID_CASES, newborn

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "payload"
UPDATE = os.environ.get("VNEID_UPDATE_GOLDEN") == "1"


def _files_for(case: str, profile: Profile) -> dict[str, bytes]:
    options = PayloadOptions(profile=profile)
    encounter = VALID_CASES[case]()
    built = build_claim(encounter, options, created=CREATED)
    files = {f"{table}.xml": content for table, content in decode_envelope(built.document).items()}
    files["envelope.xml"] = built.document
    checkin = build_checkin(encounter, options)
    if checkin is not None:
        files["checkin.xml"] = checkin.document
    return files


def expected_files(case: str) -> dict[str, bytes]:
    base = _files_for(case, Profile.QD4750)
    variant = _files_for(case, Profile.QD3176)
    assert variant.keys() == base.keys()
    differing = {f"qd3176/{name}": content for name, content in variant.items() if content != base[name]}
    return {**base, **differing}


@pytest.mark.parametrize("case", sorted(VALID_CASES))
def test_built_bytes_equal_the_golden_files(case: str) -> None:
    folder = GOLDEN / case
    produced = expected_files(case)
    if UPDATE:
        if folder.exists():
            for stale in folder.rglob("*.xml"):
                stale.unlink()
        for name, content in produced.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(content)
    stored = {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*.xml")}
    assert sorted(stored) == sorted(produced), (
        "golden file set differs; regenerate with VNEID_UPDATE_GOLDEN=1"
    )
    for name, content in produced.items():
        assert stored[name] == content, f"{case}/{name} differs from the golden file"


@pytest.mark.parametrize("case", sorted(VALID_CASES))
@pytest.mark.parametrize("profile", list(Profile))
def test_every_golden_document_validates_against_its_xsd(case: str, profile: Profile) -> None:
    folder = GOLDEN / case
    for path in sorted(folder.glob("XML*.xml")):
        override = folder / profile.value / path.name
        content = override.read_bytes() if override.exists() else path.read_bytes()
        assert validate_document(path.stem, content, profile) == [], path.name
    envelope = folder / profile.value / "envelope.xml"
    document = (envelope if envelope.exists() else folder / "envelope.xml").read_bytes()
    assert validate_envelope_bytes(document, profile) == []
    if (folder / "checkin.xml").exists():
        assert validate_document("XML0", (folder / "checkin.xml").read_bytes(), profile) == []


def test_only_the_referral_differs_between_profiles() -> None:
    """QĐ 3176 changes XML13 only (DOMAIN.md §15 row 18): so does the envelope carrying it."""
    variants = sorted(path.relative_to(GOLDEN).as_posix() for path in GOLDEN.glob("*/qd3176/*.xml"))
    assert variants == ["inpatient_referral/qd3176/XML13.xml", "inpatient_referral/qd3176/envelope.xml"]


def test_newborn_without_birth_time_is_rejected_and_the_fixed_one_is_golden() -> None:
    with pytest.raises(PayloadValidationError) as caught:
        build_claim(newborn(birth_time_known=False), PayloadOptions(), created=CREATED)
    assert caught.value.rules == {"XML1.NGAY_SINH.newborn_time"}
    assert (GOLDEN / "newborn" / "XML1.xml").read_bytes().count(b"<NGAY_SINH>202603020315</NGAY_SINH>") == 1
