"""The ``remote`` key source and the reference hash-signing server, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import socket

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from adapters.signers.errors import CertificateNotUsableError, SignerConfigError, SignerUnavailableError
from adapters.signers.keyfiles import KeyMaterial
from adapters.signers.reference_signer.server import start_reference_server
from adapters.signers.remote import protocol
from adapters.signers.remote.signer import RemoteSigner
from tests.integration.signers.conftest import RemoteSigners
from tests.unit.signers.support import PkiSet


def material(pki: PkiSet, key_size: int) -> KeyMaterial:
    files = pki[key_size]
    return KeyMaterial(private_key=files.hospital.key, certificate=files.hospital.certificate, chain=())


def test_one_keep_alive_connection_for_many_signatures(pki: PkiSet, envelope: bytes) -> None:
    token = "k" * 32
    with start_reference_server(material(pki, 2048), token) as server:
        settings = RemoteSigners(servers={2048: server}, token=token).settings(2048)
        with RemoteSigner.from_settings(settings) as signer:
            for _ in range(5):
                signer.sign(envelope)
        assert server.stats.signatures == 5
        assert server.stats.connections == 1  # certificate + 5 signatures on one connection


def test_wrong_token_is_a_configuration_error(remote: RemoteSigners) -> None:
    server = remote.servers[2048]
    before = server.stats.rejected
    with pytest.raises(SignerConfigError, match="rejected the bearer token \\(HTTP 401\\)") as caught:
        RemoteSigner.from_settings(remote.settings(2048, remote_token="not-the-right-token-at-all"))
    assert "not-the-right-token" not in str(caught.value)
    assert server.stats.rejected == before + 1


def test_unreachable_service_is_transient(remote: RemoteSigners) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SignerUnavailableError, match="unreachable"):
        RemoteSigner.from_settings(remote.settings(2048, remote_url=f"http://127.0.0.1:{port}"))


def test_pinned_certificate(remote: RemoteSigners, pki: PkiSet) -> None:
    with RemoteSigner.from_settings(remote.settings(2048, cert_file=pki[2048].certificate)) as signer:
        assert signer.certificate == pki[2048].hospital.certificate
    with pytest.raises(CertificateNotUsableError, match="not the pinned"):
        RemoteSigner.from_settings(remote.settings(2048, cert_file=pki[3072].certificate))


def test_service_signing_with_another_key_is_caught(pki: PkiSet, envelope: bytes) -> None:
    wrong = KeyMaterial(
        private_key=pki[3072].hospital.key, certificate=pki[2048].hospital.certificate, chain=()
    )
    token = "w" * 32
    with start_reference_server(wrong, token) as server:
        settings = RemoteSigners(servers={2048: server}, token=token).settings(2048)
        with RemoteSigner.from_settings(settings) as signer:
            assert signer.key_matches_certificate() is False
            with pytest.raises(CertificateNotUsableError, match="DigestInfo"):
                signer.sign(envelope)


def test_reference_server_protocol(remote: RemoteSigners, pki: PkiSet) -> None:
    server = remote.servers[2048]
    authorised = {"Authorization": f"Bearer {remote.token}"}
    digest = base64.b64encode(hashlib.sha256(b"x").digest()).decode()
    with httpx.Client(base_url=server.url) as client:
        assert client.get(protocol.HEALTH_PATH).json() == {"status": "ok"}
        unauthorised = client.get(protocol.CERTIFICATE_PATH)
        assert unauthorised.status_code == 401
        assert unauthorised.headers["WWW-Authenticate"] == "Bearer"
        body = client.get(protocol.CERTIFICATE_PATH, headers=authorised).json()
        certificate = pki[2048].hospital.certificate.public_bytes(serialization.Encoding.DER)
        assert base64.b64decode(body["certificate"]) == certificate
        signed = client.post(
            protocol.SIGN_HASH_PATH, headers=authorised, json={"hash_algorithm": "SHA-256", "hash": digest}
        )
        assert signed.status_code == 200
        assert signed.json()["signature_algorithm"] == "RSASSA-PKCS1-v1_5"
        assert len(base64.b64decode(signed.json()["signature"])) == 256
        for bad in (
            {"hash_algorithm": "SHA-256", "hash": base64.b64encode(b"short").decode()},
            {"hash_algorithm": "SHA-1", "hash": digest},
            {"hash": digest},
        ):
            assert client.post(protocol.SIGN_HASH_PATH, headers=authorised, json=bad).status_code == 400
        assert client.post(protocol.SIGN_HASH_PATH, headers=authorised, content=b"{").status_code == 400
        assert (
            client.post(
                protocol.SIGN_HASH_PATH, json={"hash_algorithm": "SHA-256", "hash": digest}
            ).status_code
            == 401
        )
        assert (
            client.post(protocol.SIGN_HASH_PATH, headers=authorised, content=b"x" * 20_000).status_code == 413
        )
        assert client.get("/v1/other", headers=authorised).status_code == 404
        assert client.put(protocol.SIGN_HASH_PATH, headers=authorised).status_code == 405


def test_short_tokens_are_refused(pki: PkiSet) -> None:
    with pytest.raises(ValueError, match="at least 16"):
        start_reference_server(material(pki, 2048), "short")
