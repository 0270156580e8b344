"""Typed configuration of the ``file`` key source, taken from ``adapters.signers.settings.SignerSettings``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from adapters.signers.errors import SignerConfigError
from adapters.signers.settings import SignerSettings


@dataclass(frozen=True, slots=True)
class FileKeyConfig:
    key_file: Path  # PKCS#12 (.p12/.pfx) or PEM private key
    cert_file: Path | None  # PEM certificate (chain) when key_file is a PEM key without its certificate
    passphrase: SecretStr | None = field(repr=False)
    allow_group_readable_key: bool
    signature_prefix: str | None

    @classmethod
    def from_settings(cls, settings: SignerSettings) -> FileKeyConfig:
        if settings.key_file is None:
            raise SignerConfigError(
                "signer.source = 'file' needs signer.key_file (a .p12/.pfx file, or a PEM key + signer.cert_file)"
            )
        return cls(
            key_file=settings.key_file,
            cert_file=settings.cert_file,
            passphrase=settings.passphrase,
            allow_group_readable_key=settings.allow_group_readable_key,
            signature_prefix=settings.signature_prefix,
        )
