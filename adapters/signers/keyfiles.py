"""Loading a software key and its certificate from PKCS#12 (.p12/.pfx) or PEM files, safely.

Used by the ``file`` key source and by the reference remote signing server. The key file must not be
accessible by group or others unless the operator says otherwise; a wrong or missing passphrase is reported
without echoing anything from the file.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from pydantic import SecretStr

from adapters.signers.errors import SignerConfigError

_PEM_MARKER = b"-----BEGIN "


@dataclass(frozen=True, slots=True, repr=False)
class KeyMaterial:
    """A private RSA key, the certificate that belongs to it, and any other certificates found with it."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]

    def __repr__(self) -> str:  # never show the key
        return f"KeyMaterial(certificate_serial={self.certificate.serial_number:x})"


def _passphrase_bytes(passphrase: SecretStr | str | bytes | None) -> bytes | None:
    if passphrase is None:
        return None
    if isinstance(passphrase, SecretStr):
        passphrase = passphrase.get_secret_value()
    if isinstance(passphrase, str):
        passphrase = passphrase.encode("utf-8")
    return passphrase or None


def check_key_file_permissions(path: Path, *, allow_group_readable: bool) -> None:
    """Refuse a key file that group or others can access (the setting name says how to override)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        raise SignerConfigError(f"key file not found: {path}") from None
    if mode & 0o077 and not allow_group_readable:
        raise SignerConfigError(
            f"key file {path} is accessible by group/others (mode {mode:04o}); run `chmod 600` on it "
            "or set signer.allow_group_readable_key = true"
        )


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SignerConfigError(f"{what} not found: {path}") from None
    except PermissionError:
        raise SignerConfigError(f"{what} is not readable by this user: {path}") from None


def _public_numbers_match(key: rsa.RSAPrivateKey, certificate: x509.Certificate) -> bool:
    public = certificate.public_key()
    return (
        isinstance(public, rsa.RSAPublicKey) and public.public_numbers() == key.public_key().public_numbers()
    )


def load_key_material(
    key_file: Path,
    *,
    cert_file: Path | None = None,
    passphrase: SecretStr | str | bytes | None = None,
    allow_group_readable: bool = False,
) -> KeyMaterial:
    """Load an RSA key and its certificate from a PKCS#12 file, or a PEM key (+ PEM certificates).

    The certificate is the one whose public key matches the private key; when none does, the first
    certificate is kept so that ``cert check`` can report the mismatch (signing refuses it).
    """
    check_key_file_permissions(key_file, allow_group_readable=allow_group_readable)
    data = _read(key_file, "key file")
    password = _passphrase_bytes(passphrase)
    certificates: list[x509.Certificate]
    if _PEM_MARKER in data:
        try:
            key = serialization.load_pem_private_key(data, password)
        except (TypeError, ValueError):
            raise SignerConfigError(
                f"could not load the private key in {key_file}: wrong or missing passphrase, or not a PEM key"
            ) from None
        cert_data = _read(cert_file, "certificate file") if cert_file is not None else data
        try:
            certificates = x509.load_pem_x509_certificates(cert_data)
        except ValueError:
            raise SignerConfigError(
                f"no PEM certificate in {cert_file or key_file}; set signer.cert_file to the certificate chain"
            ) from None
    else:
        try:
            loaded_key, leaf, extra = pkcs12.load_key_and_certificates(data, password)
        except ValueError:
            raise SignerConfigError(
                f"could not open PKCS#12 file {key_file}: wrong or missing passphrase, or not a PKCS#12 file"
            ) from None
        if loaded_key is None:
            raise SignerConfigError(f"PKCS#12 file {key_file} holds no private key")
        key = loaded_key
        certificates = ([leaf] if leaf is not None else []) + list(extra)
        if cert_file is not None:
            certificates = (
                x509.load_pem_x509_certificates(_read(cert_file, "certificate file")) + certificates
            )
        if not certificates:
            raise SignerConfigError(f"PKCS#12 file {key_file} holds no certificate; set signer.cert_file")
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SignerConfigError(
            f"the key in {key_file} is {type(key).__name__}; the profile needs an RSA key"
        )
    leaf_certificate = next((c for c in certificates if _public_numbers_match(key, c)), certificates[0])
    chain = tuple(c for c in certificates if c is not leaf_certificate)
    return KeyMaterial(private_key=key, certificate=leaf_certificate, chain=chain)


def load_certificates(path: Path) -> list[x509.Certificate]:
    """PEM (one or more) or DER certificate file."""
    data = _read(path, "certificate file")
    try:
        if _PEM_MARKER in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise SignerConfigError(f"{path} holds no readable X.509 certificate") from None
