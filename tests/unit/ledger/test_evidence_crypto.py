"""The evidence key ring (AES-256-GCM): blob format, binding to row and column, key ids, key files, and the
settings that build the ring (configured key files, the demo's generated key, production's refusal)."""

from __future__ import annotations

import base64
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from worker.bootstrap import evidence_keys
from worker.config import load_settings, masked_dump
from worker.ledger.evidence_crypto import (
    KEY_BYTES,
    EvidenceKeyError,
    EvidenceKeys,
    EvidenceKind,
    EvidenceUnreadableError,
    UnknownEvidenceKeyError,
    decode_keys,
    encode_key,
    key_id,
    load_or_create_key_file,
    new_key,
)

DOCUMENT = b"<GIAMDINHHS><HO_TEN>TRAN VAN B</HO_TEN></GIAMDINHHS>"


def test_a_sealed_blob_is_format_nonce_ciphertext_tag_and_opens_in_its_place_only() -> None:
    keys = EvidenceKeys.generate()
    sealed = keys.seal(DOCUMENT, version_id=7, kind=EvidenceKind.SIGNED_DOCUMENT)
    again = keys.seal(DOCUMENT, version_id=7, kind=EvidenceKind.SIGNED_DOCUMENT)
    assert sealed.key_id == keys.active_id
    assert sealed.blob[:1] == b"\x01"
    assert len(sealed.blob) == len(DOCUMENT) + 1 + 12 + 16
    assert sealed.blob[1:13] != again.blob[1:13], "a fresh nonce per seal"
    assert b"TRAN VAN B" not in sealed.blob
    assert (
        keys.open(sealed.blob, key_id=sealed.key_id, version_id=7, kind=EvidenceKind.SIGNED_DOCUMENT)
        == DOCUMENT
    )
    with pytest.raises(EvidenceUnreadableError, match="signed_document of version 8"):
        keys.open(sealed.blob, key_id=sealed.key_id, version_id=8, kind=EvidenceKind.SIGNED_DOCUMENT)
    with pytest.raises(EvidenceUnreadableError, match="receipt of version 7"):
        keys.open(sealed.blob, key_id=sealed.key_id, version_id=7, kind=EvidenceKind.RECEIPT)
    with pytest.raises(EvidenceUnreadableError, match="not a sealed blob"):
        keys.open(
            b"\x78\x9c" + sealed.blob, key_id=sealed.key_id, version_id=7, kind=EvidenceKind.SIGNED_DOCUMENT
        )


def test_every_flipped_bit_is_refused() -> None:
    keys = EvidenceKeys.generate()
    blob = keys.seal(DOCUMENT, version_id=1, kind=EvidenceKind.RECEIPT).blob
    for position in range(1, len(blob)):  # byte 0 is the format: refused as "not a sealed blob"
        tampered = bytearray(blob)
        tampered[position] ^= 0x80
        with pytest.raises(EvidenceUnreadableError):
            keys.open(bytes(tampered), key_id=keys.active_id, version_id=1, kind=EvidenceKind.RECEIPT)


def test_the_ring_seals_with_the_active_key_and_opens_with_any() -> None:
    old, new = new_key(), new_key()
    before, after = EvidenceKeys(old), EvidenceKeys(new, [old])
    sealed_before = before.seal(DOCUMENT, version_id=3, kind=EvidenceKind.SIGNED_DOCUMENT)
    sealed_after = after.seal(DOCUMENT, version_id=3, kind=EvidenceKind.SIGNED_DOCUMENT)
    assert (sealed_before.key_id, sealed_after.key_id) == (key_id(old), key_id(new))
    assert after.retired_ids == (key_id(old),)
    assert after.open(sealed_before.blob, key_id=sealed_before.key_id, version_id=3,
                      kind=EvidenceKind.SIGNED_DOCUMENT) == DOCUMENT  # fmt: skip
    with pytest.raises(
        UnknownEvidenceKeyError, match=f"evidence key {key_id(new)} is not in the key ring"
    ) as raised:
        before.open(
            sealed_after.blob, key_id=sealed_after.key_id, version_id=3, kind=EvidenceKind.SIGNED_DOCUMENT
        )
    assert raised.value.key_id == key_id(new)
    assert before.missing([key_id(old), key_id(new)]) == [key_id(new)]


def test_key_ids_are_derived_stable_and_reveal_nothing() -> None:
    key = new_key()
    assert key_id(key) == key_id(bytes(key))
    assert key_id(key) != key_id(new_key())
    assert len(key_id(key)) == 16
    assert key.hex()[:16] not in key_id(key)
    assert encode_key(key) not in key_id(key)


def test_key_text_errors_never_echo_the_secret() -> None:
    short = base64.b64encode(b"x" * 16).decode()
    with pytest.raises(ValueError, match=r"evidence.key: key 2 is 16 bytes, not 32") as raised:
        decode_keys(f"{encode_key(new_key())}\n{short}\n", setting="evidence.key")
    assert short not in str(raised.value)
    with pytest.raises(ValueError, match="key 1 is not base64") as not_base64:
        decode_keys("not-a-key!", setting="evidence.retired_keys")
    assert "not-a-key" not in str(not_base64.value)
    two = [new_key(), new_key()]
    assert decode_keys(f"  {encode_key(two[0])}\n\n{encode_key(two[1])}  \n", setting="x") == two


def test_a_key_file_is_created_once_with_mode_0600_by_racing_creators(tmp_path: Path) -> None:
    path = tmp_path / "state" / "evidence.key"
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: load_or_create_key_file(path), range(16)))
    assert len({key for key, _ in results}) == 1, "every creator ends up with the same key"
    assert sum(created for _, created in results) == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["evidence.key"], "no scratch files left"
    assert len(results[0][0]) == KEY_BYTES
    assert load_or_create_key_file(path) == (results[0][0], False)


# ------------------------------------------------------------------------------------------- settings


@pytest.fixture
def no_vneid_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("VNEID_"):
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("no_vneid_environment")
def test_configured_key_files_build_the_ring_and_stay_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    active, retired = new_key(), [new_key(), new_key()]
    (tmp_path / "evidence-key").write_text(encode_key(active) + "\n", encoding="ascii")
    (tmp_path / "retired").write_text("".join(encode_key(k) + "\n" for k in retired), encoding="ascii")
    monkeypatch.setenv("VNEID_EVIDENCE__KEY_FILE", str(tmp_path / "evidence-key"))
    monkeypatch.setenv("VNEID_EVIDENCE__RETIRED_KEYS_FILE", str(tmp_path / "retired"))
    settings = load_settings(data_dir=tmp_path / "data", evidence={"generate_key": False})
    keys = evidence_keys(settings)
    assert keys.active_id == key_id(active)
    assert keys.retired_ids == tuple(sorted(key_id(k) for k in retired))
    assert keys.generated_file is None
    assert not (tmp_path / "data" / "evidence.key").exists()
    shown = str(masked_dump(settings))
    assert encode_key(active) not in shown
    assert masked_dump(settings)["evidence"]["key"] == "**********"


@pytest.mark.usefixtures("no_vneid_environment")
def test_without_a_key_the_demo_generates_one_and_production_refuses(tmp_path: Path) -> None:
    demo = load_settings(data_dir=tmp_path)
    first, second = evidence_keys(demo), evidence_keys(demo)
    assert first.active_id == second.active_id, "generated once, then reused"
    assert first.generated_file == tmp_path / "evidence.key"
    assert stat.S_IMODE((tmp_path / "evidence.key").stat().st_mode) == 0o600
    production = load_settings(data_dir=tmp_path / "prod", evidence={"generate_key": False})
    with pytest.raises(EvidenceKeyError, match="no evidence key: set VNEID_EVIDENCE__KEY_FILE"):
        evidence_keys(production)
    assert not (tmp_path / "prod").exists()


@pytest.mark.usefixtures("no_vneid_environment")
def test_two_keys_in_the_active_key_setting_are_refused(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path, evidence={"key": f"{encode_key(new_key())} {encode_key(new_key())}"}
    )
    with pytest.raises(ValueError, match=r"evidence\.key holds 2 keys"):
        evidence_keys(settings)
