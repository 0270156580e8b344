"""Signing with every key source, and failing to, never logs key material, PINs, passphrases, tokens or
document content — neither in log lines (DEBUG, httpx included) nor in error messages."""

from __future__ import annotations

import base64
import io
import logging
import sys
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

from adapters.signers.errors import SignerError
from adapters.signers.registry import create_signer
from tests.integration.signers.conftest import KeySources
from tests.unit.signers.support import PkiSet, file_settings
from worker.logging import configure_logging


@pytest.fixture
def log_buffer() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    configure_logging("DEBUG", "json", stream=buffer)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.DEBUG)
    yield buffer
    configure_logging("INFO", "console", stream=sys.stderr)


def document_secrets(envelope: bytes) -> list[str]:
    """Strings from the document: a base64 chunk of an inner table, and the patient's name and CCCD."""
    noidungfile = etree.fromstring(envelope).findtext(".//NOIDUNGFILE") or ""
    inner = etree.fromstring(base64.b64decode(noidungfile))
    values = [noidungfile[200:260], inner.findtext(".//HO_TEN") or "", inner.findtext(".//SO_CCCD") or ""]
    assert all(len(value) >= 8 for value in values)
    return values


def key_secrets(pki: PkiSet) -> list[str]:
    secrets = []
    for key_size in (2048, 3072):
        key = pki[key_size].hospital.key
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        secrets.append(pem.splitlines()[5])
        secrets.append(format(key.private_numbers().d, "x")[:40])
        secrets.append(pki[key_size].passphrase)
    return secrets


def test_secrets_never_reach_logs_or_errors(
    log_buffer: io.StringIO, key_sources: KeySources, envelope: bytes, checkin: bytes
) -> None:
    pki, softhsm, remote = key_sources.pki, key_sources.softhsm, key_sources.remote
    files = pki[2048]
    sources = [*key_sources.all_settings(2048).values(), *key_sources.all_settings(3072).values()]
    for settings in sources:
        signer = create_signer(settings)
        signer.sign(envelope)
        signer.sign(checkin)
        signer.close()  # type: ignore[attr-defined]
    wrong = {
        "passphrase": "Wrong-Passphrase-7731",
        "pin": "99887766",
        "token": "Wrong-Bearer-Token-7731-xyz",
    }
    errors = []
    for bad in (
        file_settings(files, passphrase=wrong["passphrase"]),
        softhsm.settings(2048, token_label=softhsm.spare_token_label, pin=wrong["pin"]),
        remote.settings(2048, remote_token=wrong["token"]),
    ):
        with pytest.raises(SignerError) as caught:
            create_signer(bad)
        errors.append(str(caught.value))
    logged = log_buffer.getvalue()
    assert logged.count('"event": "signer.signed"') == 2 * len(sources)  # the capture works
    assert "signer.remote.connected" in logged
    forbidden = [
        *key_secrets(pki),
        softhsm.pin,
        remote.token,
        *wrong.values(),
        *document_secrets(envelope),
    ]
    for text in (logged, *errors):
        for secret in forbidden:
            assert secret not in text
