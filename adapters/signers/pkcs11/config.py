"""Typed configuration of the ``pkcs11`` key source, taken from ``adapters.signers.settings.SignerSettings``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from adapters.signers.errors import SignerConfigError
from adapters.signers.settings import SignerSettings


@dataclass(frozen=True, slots=True)
class Pkcs11Config:
    module: Path  # the token's PKCS#11 library (.so), e.g. /usr/lib/softhsm/libsofthsm2.so
    token_label: str
    key_label: str | None
    key_id: bytes | None  # CKA_ID; at least one of key_label / key_id
    pin: SecretStr = field(repr=False)
    cert_file: Path | None  # certificate from a file instead of the token
    signature_prefix: str | None

    @property
    def key_description(self) -> str:
        """How errors name the key: label and/or hex id, never the PIN."""
        parts = [f"label={self.key_label!r}"] if self.key_label else []
        if self.key_id is not None:
            parts.append(f"id={self.key_id.hex()}")
        return ", ".join(parts)

    @classmethod
    def from_settings(cls, settings: SignerSettings) -> Pkcs11Config:
        missing = [
            name
            for name, value in (
                ("signer.pkcs11_module", settings.pkcs11_module),
                ("signer.token_label", settings.token_label),
                ("signer.pin", settings.pin),
            )
            if not value
        ]
        if not (settings.key_label or settings.key_id):
            missing.append("signer.key_label or signer.key_id")
        if missing:
            raise SignerConfigError(f"signer.source = 'pkcs11' needs {', '.join(missing)}")
        assert settings.pkcs11_module is not None
        assert settings.token_label is not None
        assert settings.pin is not None
        if not settings.pkcs11_module.is_file():
            raise SignerConfigError(f"PKCS#11 module not found: {settings.pkcs11_module}")
        key_id: bytes | None = None
        if settings.key_id:
            try:
                key_id = bytes.fromhex(settings.key_id.replace(":", ""))
            except ValueError:
                raise SignerConfigError("signer.key_id must be hexadecimal (the token's CKA_ID)") from None
        return cls(
            module=settings.pkcs11_module,
            token_label=settings.token_label,
            key_label=settings.key_label,
            key_id=key_id,
            pin=settings.pin,
            cert_file=settings.cert_file,
            signature_prefix=settings.signature_prefix,
        )
