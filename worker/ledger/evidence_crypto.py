"""Encryption at rest of the evidence (the signed files and the gateway's receipts): AES-256-GCM, a key ring.

**Sealed blob** (what the ``evidence`` columns hold): ``0x01 ‖ nonce (12 random bytes) ‖ ciphertext ‖ tag
(16 bytes)`` — 29 bytes more than the plaintext. ``0x01`` names the format (AES-256-GCM, random 96-bit
nonce); the key that sealed it is named by the row (``document_key_id`` / ``receipt_key_id``), not the blob.

**Associated data** binds a blob to its place: ``"vneid-sync evidence" ‖ 0x00 ‖ format ‖ kind ‖ 0x00 ‖
version id``. A blob copied to another row, or from the document column to the receipt column, fails to open
exactly like a tampered one: a row's evidence cannot be swapped for another version's.

**Key ring**: one active key seals; the active and every retired key open. A key is 32 random bytes, written
base64 in a secret file. Its id is derived from the key itself (:func:`key_id`), so a wrong file can never
pass for the right key: a row whose key id is not in the ring names exactly which key is missing.

Random nonces stay safe for 2³² seals per key (NIST SP 800-38D); a hospital seals two per visit, so a yearly
rotation keeps every key many orders of magnitude below that.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
FORMAT_AES256GCM = b"\x01"
_AAD_LABEL = b"vneid-sync evidence\x00"
_KEY_ID_LABEL = b"vneid-sync evidence key id\x00"


class EvidenceKind(StrEnum):
    """Which column a sealed blob belongs to: part of the associated data."""

    SIGNED_DOCUMENT = "signed_document"
    RECEIPT = "receipt"


class EvidenceKeyError(RuntimeError):
    """Evidence that cannot be sealed or opened with the configured keys (one line, names ids only)."""


class UnknownEvidenceKeyError(EvidenceKeyError):
    """A row names a key id that is not in the key ring."""

    def __init__(self, key_id: str, *, subject: str) -> None:
        super().__init__(
            f"evidence key {key_id} is not in the key ring, yet {subject} sealed with it: add that key to "
            f"evidence.retired_keys (VNEID_EVIDENCE__RETIRED_KEYS_FILE); without it that evidence cannot be read"
        )
        self.key_id = key_id


class EvidenceUnreadableError(EvidenceKeyError):
    """The blob does not open: altered, moved from another row or column, or not a sealed blob at all."""


def key_id(key: bytes) -> str:
    """A key's public name: 16 hex digits of SHA-256 over a label and the key (reveals nothing of it)."""
    return hashlib.sha256(_KEY_ID_LABEL + key).hexdigest()[:16]


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def encode_key(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


def decode_keys(text: str, *, setting: str) -> list[bytes]:
    """Keys written base64, separated by white space (one per line in a retired-keys file).

    Errors name the setting and the position, never the text: it is a secret."""
    keys = []
    for position, word in enumerate(text.split(), start=1):
        try:
            key = base64.b64decode(word, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{setting}: key {position} is not base64") from None
        if len(key) != KEY_BYTES:
            raise ValueError(f"{setting}: key {position} is {len(key)} bytes, not {KEY_BYTES}")
        keys.append(key)
    return keys


def _aad(kind: EvidenceKind, version_id: int) -> bytes:
    return (
        _AAD_LABEL + FORMAT_AES256GCM + kind.value.encode("ascii") + b"\x00" + str(version_id).encode("ascii")
    )


@dataclass(frozen=True, slots=True)
class Sealed:
    key_id: str
    blob: bytes


class EvidenceKeys:
    """The key ring: ``seal`` with the active key, ``open`` with whichever key the row names."""

    def __init__(self, active: bytes, retired: Sequence[bytes] = (), *, generated_file: Path | None = None):
        for key in (active, *retired):
            if len(key) != KEY_BYTES:
                raise ValueError(f"an evidence key is {KEY_BYTES} bytes, not {len(key)}")
        self.active_id = key_id(active)
        self._ciphers = {key_id(key): AESGCM(key) for key in (*retired, active)}
        self.retired_ids = tuple(sorted(set(self._ciphers) - {self.active_id}))
        #: Where the active key was generated (no key configured): it must be backed up like a secret.
        self.generated_file = generated_file

    @classmethod
    def generate(cls) -> EvidenceKeys:
        """A ring of one fresh key that lives in memory only: tests and benchmarks."""
        return cls(new_key())

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(self._ciphers)

    def missing(self, key_ids: Iterable[str]) -> list[str]:
        """The ids among ``key_ids`` this ring cannot open, sorted."""
        return sorted(set(key_ids) - set(self._ciphers))

    def seal(self, plaintext: bytes, *, version_id: int, kind: EvidenceKind) -> Sealed:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.active_id].encrypt(nonce, plaintext, _aad(kind, version_id))
        return Sealed(self.active_id, FORMAT_AES256GCM + nonce + sealed)

    def open(self, blob: bytes, *, key_id: str, version_id: int, kind: EvidenceKind) -> bytes:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownEvidenceKeyError(key_id, subject=f"the {kind.value} of version {version_id} is")
        if blob[:1] != FORMAT_AES256GCM or len(blob) < 1 + NONCE_BYTES + 16:
            raise EvidenceUnreadableError(f"the {kind.value} of version {version_id} is not a sealed blob")
        nonce, sealed = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
        try:
            return cipher.decrypt(nonce, sealed, _aad(kind, version_id))
        except InvalidTag:
            raise EvidenceUnreadableError(
                f"the {kind.value} of version {version_id} does not open with key {key_id}: it was altered "
                f"or belongs to another row"
            ) from None


def write_key_file(path: Path, key: bytes) -> None:
    """Write a key (base64, 0600) where no file exists yet; never replaces one (that would lose a key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(encode_key(key) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def load_or_create_key_file(path: Path) -> tuple[bytes, bool]:
    """The key in ``path``, created once (0600) when absent; ``True`` when this call created it.

    Several processes start at once (the demo's workers): the key is written to a private file first and
    linked into place, so a reader never sees a half-written key and exactly one creator wins."""
    created = False
    if not path.exists():
        scratch = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        write_key_file(scratch, new_key())
        try:
            os.link(scratch, path)
            created = True
        except FileExistsError:
            pass  # another process created it first: use that one
        finally:
            scratch.unlink()
    keys = decode_keys(path.read_text(encoding="ascii"), setting=str(path))
    if len(keys) != 1:
        raise ValueError(f"{path}: holds {len(keys)} keys, expected one")
    return keys[0], created
