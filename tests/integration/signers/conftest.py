"""Real key sources for the signing integration tests.

- ``softhsm``: a SoftHSM2 token in a temporary directory (own ``SOFTHSM2_CONF``), initialised with
  ``softhsm2-util --init-token``; the test keys and certificates are imported with python-pkcs11
  (``adapters.signers.pkcs11.provision``), so no opensc/pkcs11-tool is needed.
- ``remote``: the reference hash-signing server over HTTP on 127.0.0.1, one per key size.
- ``source_signer``: a signer built through the registry for every (key source, key size).
- ``ca_services``, ``served`` (the test CA on 127.0.0.1 and what it served), ``make_worker`` and ``cli`` (the
  worker as bootstrap wires it, and the CLI on its ledger): for the revocation tests.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from adapters.signers.keyfiles import load_key_material
from adapters.signers.pkcs11.provision import import_key_and_certificate
from adapters.signers.reference_signer.server import ReferenceSigningServer, start_reference_server
from adapters.signers.registry import create_signer
from adapters.signers.xmldsig import EnvelopedSigner
from tests.integration.signers.worker_support import cli, make_worker
from tests.services import require_binary, unavailable
from tests.unit.signers.revocation_support import ca_services
from tests.unit.signers.served_answers import served
from tests.unit.signers.support import KEY_SIZES, PkiSet, checkin, envelope, file_settings, pki
from worker.config import SignerSettings

# Fixtures from the support modules, re-exported for pytest.
__all__ = ["ca_services", "checkin", "cli", "envelope", "make_worker", "pki", "served"]

SOFTHSM_MODULES = (
    Path("/usr/lib/softhsm/libsofthsm2.so"),
    Path("/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"),
    Path("/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so"),
    Path("/usr/local/lib/softhsm/libsofthsm2.so"),
)
SOURCES = ("file-p12", "file-pem", "pkcs11", "remote")


@dataclass(frozen=True)
class SoftHsm:
    module: Path
    token_label: str
    spare_token_label: str  # same key, never kept logged in: for wrong-PIN tests
    pin: str = field(repr=False)

    @staticmethod
    def key_label(key_size: int) -> str:
        return f"hospital-{key_size}"

    @staticmethod
    def key_id(key_size: int) -> bytes:
        return key_size.to_bytes(2, "big")

    def settings(self, key_size: int, **overrides: Any) -> SignerSettings:
        values: dict[str, Any] = {
            "source": "pkcs11",
            "pkcs11_module": self.module,
            "token_label": self.token_label,
            "key_label": self.key_label(key_size),
            "pin": self.pin,
        }
        values.update(overrides)
        return SignerSettings.model_validate(values)


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory, pki: PkiSet) -> Iterator[SoftHsm]:
    util = require_binary("softhsm2-util")
    module = next((path for path in SOFTHSM_MODULES if path.is_file()), None)
    if module is None:
        unavailable("SoftHSM2 PKCS#11 module", "libsofthsm2.so not found; apt-get install softhsm2")
    assert module is not None
    directory = tmp_path_factory.mktemp("softhsm")
    (directory / "tokens").mkdir()
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {directory / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n",
        encoding="utf-8",
    )
    # Read by SoftHSM at C_Initialize, i.e. at the first pkcs11.lib() of this process: set it before.
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    token = SoftHsm(module=module, token_label="vneid-test", spare_token_label="vneid-spare", pin="20260101")
    for label in (token.token_label, token.spare_token_label):
        subprocess.run(
            [util, "--init-token", "--free", "--label", label, "--pin", token.pin, "--so-pin", "87654321"],
            check=True,
            capture_output=True,
        )
    for key_size in KEY_SIZES:
        import_key_and_certificate(
            module,
            token_label=token.token_label,
            pin=token.pin,
            key=pki[key_size].hospital.key,
            certificate=pki[key_size].hospital.certificate,
            label=token.key_label(key_size),
            key_id=token.key_id(key_size),
        )
    import_key_and_certificate(
        module,
        token_label=token.spare_token_label,
        pin=token.pin,
        key=pki[2048].hospital.key,
        certificate=pki[2048].hospital.certificate,
        label=token.key_label(2048),
        key_id=token.key_id(2048),
    )
    yield token
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


@dataclass(frozen=True)
class RemoteSigners:
    servers: dict[int, ReferenceSigningServer]
    token: str = field(repr=False)

    def settings(self, key_size: int, **overrides: Any) -> SignerSettings:
        values: dict[str, Any] = {
            "source": "remote",
            "remote_url": self.servers[key_size].url,
            "remote_token": self.token,
        }
        values.update(overrides)
        return SignerSettings.model_validate(values)


@pytest.fixture(scope="session")
def remote(pki: PkiSet) -> Iterator[RemoteSigners]:
    token = secrets.token_urlsafe(24)
    servers = {
        key_size: start_reference_server(
            load_key_material(pki[key_size].pkcs12, passphrase=pki[key_size].passphrase), token
        )
        for key_size in KEY_SIZES
    }
    yield RemoteSigners(servers=servers, token=token)
    for server in servers.values():
        server.stop()


def source_settings(
    request: pytest.FixtureRequest, pki: PkiSet, source: str, key_size: int
) -> SignerSettings:
    files = pki[key_size]
    if source == "file-p12":
        return file_settings(files)
    if source == "file-pem":
        return file_settings(files, key_file=files.private_key, cert_file=files.certificate)
    if source == "pkcs11":
        hsm: SoftHsm = request.getfixturevalue("softhsm")
        return hsm.settings(key_size)
    servers: RemoteSigners = request.getfixturevalue("remote")
    return servers.settings(key_size)


@pytest.fixture(
    params=[(source, size) for source in SOURCES for size in KEY_SIZES], ids=lambda p: f"{p[0]}-{p[1]}"
)
def source_signer(request: pytest.FixtureRequest, pki: PkiSet) -> Iterator[EnvelopedSigner]:
    """A signer for one (key source, key size), created through the registry like the worker does."""
    source, key_size = request.param
    signer = create_signer(source_settings(request, pki, source, key_size))
    assert isinstance(signer, EnvelopedSigner)
    yield signer
    signer.close()


@dataclass(frozen=True)
class KeySources:
    """The same test keys behind every key source."""

    pki: PkiSet
    softhsm: SoftHsm
    remote: RemoteSigners

    def all_settings(self, key_size: int) -> dict[str, SignerSettings]:
        files = self.pki[key_size]
        return {
            "file p12": file_settings(files),
            "file pem": file_settings(files, key_file=files.private_key, cert_file=files.certificate),
            "pkcs11 by label": self.softhsm.settings(key_size),
            "pkcs11 by id": self.softhsm.settings(
                key_size, key_label=None, key_id=self.softhsm.key_id(key_size).hex()
            ),
            "remote": self.remote.settings(key_size),
        }


@pytest.fixture
def key_sources(pki: PkiSet, softhsm: SoftHsm, remote: RemoteSigners) -> KeySources:
    return KeySources(pki=pki, softhsm=softhsm, remote=remote)
