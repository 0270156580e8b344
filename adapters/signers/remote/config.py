"""Typed configuration of the ``remote`` key source, taken from ``adapters.signers.settings.SignerSettings``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from adapters.signers.errors import SignerConfigError
from adapters.signers.settings import SignerSettings

#: Seconds for connect/read/write on each call; a signature is a few milliseconds of work for the service.
DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class RemoteSignerConfig:
    url: str  # base URL of the service, e.g. https://signer.hospital.local:8443
    token: SecretStr = field(repr=False)  # bearer token
    cert_file: Path | None  # optional pin: the service must present exactly this certificate
    signature_prefix: str | None
    timeout_s: float = DEFAULT_TIMEOUT_S

    @classmethod
    def from_settings(cls, settings: SignerSettings) -> RemoteSignerConfig:
        missing = [
            name
            for name, value in (
                ("signer.remote_url", settings.remote_url),
                ("signer.remote_token", settings.remote_token),
            )
            if not value
        ]
        if missing:
            raise SignerConfigError(f"signer.source = 'remote' needs {', '.join(missing)}")
        assert settings.remote_url is not None
        assert settings.remote_token is not None
        if not settings.remote_url.startswith(("http://", "https://")):
            raise SignerConfigError("signer.remote_url must be an http:// or https:// URL")
        return cls(
            url=settings.remote_url.rstrip("/"),
            token=settings.remote_token,
            cert_file=settings.cert_file,
            signature_prefix=settings.signature_prefix,
        )
