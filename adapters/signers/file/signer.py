"""``FileKeySigner``: the profile of ``adapters.signers.xmldsig`` with a software key loaded once."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from adapters.signers.file.config import FileKeyConfig
from adapters.signers.keyfiles import KeyMaterial, load_key_material
from adapters.signers.settings import SignerSettings
from adapters.signers.xmldsig import EnvelopedSigner


class FileKey:
    """A private key held in process memory (loaded once from its file)."""

    name = "file"

    def __init__(self, material: KeyMaterial) -> None:
        self._material = material

    @classmethod
    def load(cls, config: FileKeyConfig) -> FileKey:
        return cls(
            load_key_material(
                config.key_file,
                cert_file=config.cert_file,
                passphrase=config.passphrase,
                allow_group_readable=config.allow_group_readable_key,
            )
        )

    @property
    def certificate(self) -> x509.Certificate:
        return self._material.certificate

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        return self._material.chain

    def sign_pkcs1v15_sha256(self, data: bytes) -> bytes:
        return self._material.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def close(self) -> None:
        """Nothing to release: the key lives as long as the process."""

    def __repr__(self) -> str:
        return f"FileKey(certificate_serial={self.certificate.serial_number:x})"


class FileKeySigner(EnvelopedSigner):
    """Signs with a PKCS#12 or PEM key file (``signer.source = "file"``)."""

    source_name = "file"

    @classmethod
    def from_settings(cls, settings: SignerSettings) -> FileKeySigner:
        config = FileKeyConfig.from_settings(settings)
        return cls(FileKey.load(config), signature_prefix=config.signature_prefix)
