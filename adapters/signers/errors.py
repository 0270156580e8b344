"""What can go wrong while signing or verifying, as a small hierarchy callers can classify.

Messages carry paths, labels, serial numbers and hashes only: never key material, PINs, passphrases, tokens or
document content.
"""

from __future__ import annotations


class SignerError(RuntimeError):
    """Base class: the document was not signed."""


class SignerConfigError(SignerError):
    """The key source is misconfigured (missing setting, unreadable or unsafe key file, wrong PIN or token).

    Not retryable: an operator has to fix the configuration.
    """


class CertificateNotUsableError(SignerError):
    """The signing certificate is expired, not yet valid, or does not belong to the key."""


class SignerUnavailableError(SignerError):
    """The key source is temporarily unreachable (remote service down, token session lost): retry later."""


class UnsignableDocumentError(SignerError, ValueError):
    """The input is not a document this profile can sign (no empty trailing ``CHUKYDONVI``, DTD, encoding)."""


class InvalidSignatureError(SignerError, ValueError):
    """Verification failed: the signature, the reference digest, the profile or the certificate chain."""
