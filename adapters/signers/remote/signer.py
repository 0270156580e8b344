"""``RemoteSigner``: the profile of ``adapters.signers.xmldsig`` with the key held by a hash-signing service.

The worker computes the reference digest, builds ``SignedInfo`` in its final place and canonicalises it there
(``EnvelopedSigner``); only the SHA-256 of the canonical ``SignedInfo`` crosses the network (wire format and the
bare-hash decision: ``protocol``). One keep-alive HTTP client per signer; the certificate is fetched once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from structlog import get_logger

from adapters.signers.errors import (
    CertificateNotUsableError,
    SignerConfigError,
    SignerError,
    SignerUnavailableError,
)
from adapters.signers.keyfiles import load_certificates
from adapters.signers.remote import protocol
from adapters.signers.remote.config import RemoteSignerConfig
from adapters.signers.settings import SignerSettings
from adapters.signers.xmldsig import EnvelopedSigner
from adapters.user_agent import USER_AGENT

log = get_logger(__name__)


class RemoteKey:
    """A key held by a remote service that signs SHA-256 hashes."""

    name = "remote"

    def __init__(self, config: RemoteSignerConfig, *, transport: httpx.BaseTransport | None = None) -> None:
        self._config = config
        self._host = urlsplit(config.url).netloc.rpartition("@")[2]
        self._client = httpx.Client(
            base_url=config.url,
            headers={
                "Authorization": f"Bearer {config.token.get_secret_value()}",
                "User-Agent": USER_AGENT,
            },
            timeout=config.timeout_s,
            transport=transport,
        )
        try:
            self._certificate = self._fetch_certificate()
        except BaseException:
            self._client.close()
            raise

    def _request(self, method: str, path: str, payload: dict[str, str] | None = None) -> dict[str, Any]:
        try:
            response = self._client.request(method, path, json=payload)
        except httpx.TransportError as exc:
            raise SignerUnavailableError(
                f"remote signer {self._host} unreachable ({type(exc).__name__})"
            ) from None
        if response.status_code in (401, 403):
            raise SignerConfigError(
                f"remote signer {self._host} rejected the bearer token (HTTP {response.status_code}); "
                "check signer.remote_token"
            )
        if response.status_code >= 500 or response.status_code == 429:
            raise SignerUnavailableError(f"remote signer {self._host} answered HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise SignerUnavailableError(
                f"remote signer {self._host} sent a non-JSON answer (HTTP {response.status_code})"
            )
        if response.status_code != 200:
            reason = str(body.get("error", ""))[:200]
            raise SignerError(
                f"remote signer {self._host} refused {path}: HTTP {response.status_code} {reason}"
            )
        return body

    def _fetch_certificate(self) -> x509.Certificate:
        body = self._request("GET", protocol.CERTIFICATE_PATH)
        try:
            certificate = x509.load_der_x509_certificate(
                base64.b64decode(str(body["certificate"]), validate=True)
            )
        except (KeyError, ValueError, binascii.Error):
            raise SignerError(f"remote signer {self._host} sent no readable certificate") from None
        if self._config.cert_file is not None:
            pinned = load_certificates(self._config.cert_file)[0]
            if pinned != certificate:
                raise CertificateNotUsableError(
                    f"remote signer {self._host} presents certificate serial {certificate.serial_number:x}, "
                    f"not the pinned {pinned.serial_number:x} from {self._config.cert_file}"
                )
        log.info(
            "signer.remote.connected",
            host=self._host,
            certificate_serial=format(certificate.serial_number, "x"),
        )
        return certificate

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    def sign_pkcs1v15_sha256(self, data: bytes) -> bytes:
        digest = hashlib.sha256(data).digest()
        body = self._request(
            "POST",
            protocol.SIGN_HASH_PATH,
            {"hash_algorithm": protocol.HASH_ALGORITHM, "hash": base64.b64encode(digest).decode("ascii")},
        )
        try:
            return base64.b64decode(str(body["signature"]), validate=True)
        except (KeyError, ValueError, binascii.Error):
            raise SignerError(f"remote signer {self._host} sent no readable signature") from None

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"RemoteKey(host={self._host!r})"


class RemoteSigner(EnvelopedSigner):
    """Signs through a remote hash-signing service (``signer.source = "remote"``)."""

    source_name = "remote"

    @classmethod
    def from_settings(cls, settings: SignerSettings) -> RemoteSigner:
        config = RemoteSignerConfig.from_settings(settings)
        return cls(RemoteKey(config), signature_prefix=config.signature_prefix)
