"""Putting a software key and its certificate on a PKCS#11 token (SoftHSM2 for tests, demos, training).

Production tokens come with their key generated on the device by the CA; this is for the cases where a test
key has to be placed on a token so that the ``pkcs11`` key source can be exercised for real.
"""

from __future__ import annotations

from pathlib import Path

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pkcs11 import Attribute
from pkcs11.util.rsa import decode_rsa_private_key
from pkcs11.util.x509 import decode_x509_certificate


def import_key_and_certificate(
    module: Path,
    *,
    token_label: str,
    pin: str,
    key: rsa.RSAPrivateKey,
    certificate: x509.Certificate,
    label: str,
    key_id: bytes,
) -> None:
    """Create a non-extractable, sensitive private key object and its certificate (same label and CKA_ID)."""
    token = pkcs11.lib(str(module)).get_token(token_label=token_label)
    der_key = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    key_attributes = decode_rsa_private_key(der_key)
    key_attributes.update(
        {
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.LABEL: label,
            Attribute.ID: key_id,
        }
    )
    certificate_attributes = decode_x509_certificate(certificate.public_bytes(serialization.Encoding.DER))
    certificate_attributes.update({Attribute.TOKEN: True, Attribute.LABEL: label, Attribute.ID: key_id})
    try:
        session = token.open(rw=True, user_pin=pin)
    except pkcs11.exceptions.UserAlreadyLoggedIn:  # this process is logged in already (login is per token)
        session = token.open(rw=True)
    with session:
        session.create_object(key_attributes)
        session.create_object(certificate_attributes)
