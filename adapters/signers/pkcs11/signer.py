"""``Pkcs11Signer``: the profile of ``adapters.signers.xmldsig`` with the key on a PKCS#11 token or HSM.

One logged-in session per process, opened at construction and reused (a lock serialises signatures: PKCS#11
sessions are not for concurrent use). After ``fork`` the child re-initialises the library and opens its own
session. The token signs the canonical ``SignedInfo`` with ``CKM_SHA256_RSA_PKCS``; a token that only offers
raw ``CKM_RSA_PKCS`` gets the SHA-256 DigestInfo built here (same signature value).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from typing import Any, Literal

import pkcs11
from cryptography import x509
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11
from structlog import get_logger

from adapters.signers.errors import SignerConfigError, SignerUnavailableError
from adapters.signers.keyfiles import load_certificates
from adapters.signers.pkcs11.config import Pkcs11Config
from adapters.signers.settings import SignerSettings
from adapters.signers.xmldsig import EnvelopedSigner

log = get_logger(__name__)

#: DER prefix of DigestInfo(SHA-256, <32-byte hash>) for tokens without CKM_SHA256_RSA_PKCS (RFC 8017 §9.2).
SHA256_DIGEST_INFO_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")

MechanismChoice = Literal["auto", "sha256_rsa_pkcs", "rsa_pkcs"]

#: Errors after which a fresh session may succeed (token re-plugged, session dropped by the middleware).
_SESSION_LOST = (
    p11.SessionHandleInvalid,
    p11.SessionClosed,
    p11.DeviceRemoved,
    p11.TokenNotPresent,
    p11.UserNotLoggedIn,
    p11.DeviceError,
    p11.KeyHandleInvalid,
    p11.ObjectHandleInvalid,
    p11.GeneralError,
)


class Pkcs11Key:
    """A private key that never leaves the token."""

    name = "pkcs11"

    def __init__(self, config: Pkcs11Config, *, mechanism: MechanismChoice = "auto") -> None:
        self._config = config
        self._mechanism_choice = mechanism
        self._lock = threading.Lock()
        self._session: Any = None
        self._key: Any = None
        self._raw_rsa = False
        self._pid = os.getpid()
        with self._lock:
            self._certificate = self._open()

    # -- session -----------------------------------------------------------------------------------------
    def _library(self) -> Any:
        try:
            library = pkcs11.lib(str(self._config.module))
        except (OSError, RuntimeError, p11.PKCS11Error) as exc:
            raise SignerConfigError(
                f"cannot load PKCS#11 module {self._config.module}: {type(exc).__name__}"
            ) from None
        if os.getpid() != self._pid:  # forked: the parent's Cryptoki state is not ours
            library.reinitialize()
            self._pid = os.getpid()
        return library

    def _open(self) -> x509.Certificate:
        config = self._config
        library = self._library()
        try:
            token = library.get_token(token_label=config.token_label)
        except p11.NoSuchToken:
            raise SignerConfigError(f"no PKCS#11 token labelled {config.token_label!r} is present") from None
        except p11.MultipleTokensReturned:
            raise SignerConfigError(f"several tokens are labelled {config.token_label!r}") from None
        session = self._login(token)
        try:
            key = session.get_key(
                object_class=ObjectClass.PRIVATE_KEY,
                key_type=KeyType.RSA,
                label=config.key_label,
                id=config.key_id,
            )
        except p11.NoSuchKey:
            session.close()
            raise SignerConfigError(
                f"no RSA private key ({config.key_description}) on token {config.token_label!r}"
            ) from None
        except p11.MultipleObjectsReturned:
            session.close()
            raise SignerConfigError(
                f"several private keys match ({config.key_description}) on token {config.token_label!r}; "
                "set signer.key_id"
            ) from None
        certificate = self._certificate_for(session, key)
        self._raw_rsa = self._use_raw_rsa(token)
        self._session, self._key = session, key
        log.info(
            "signer.pkcs11.session_opened",
            token_label=config.token_label,
            key=config.key_description,
            mechanism="CKM_RSA_PKCS" if self._raw_rsa else "CKM_SHA256_RSA_PKCS",
        )
        return certificate

    def _login(self, token: Any) -> Any:
        label = self._config.token_label
        try:
            return token.open(user_pin=self._config.pin.get_secret_value())
        except p11.UserAlreadyLoggedIn:
            # Cryptoki login state is per application and token: another session of this process has
            # already logged in with the PIN, and this one shares it.
            return token.open()
        except p11.PinIncorrect:
            raise SignerConfigError(f"token {label!r} rejected the PIN (check signer.pin)") from None
        except p11.PinLocked:
            raise SignerConfigError(
                f"the PIN of token {label!r} is locked; unlock it with the SO PIN"
            ) from None
        except (p11.PinExpired, p11.PinInvalid, p11.PinLenRange) as exc:
            raise SignerConfigError(f"token {label!r} refused the PIN ({type(exc).__name__})") from None

    def _certificate_for(self, session: Any, key: Any) -> x509.Certificate:
        config = self._config
        if config.cert_file is not None:
            return load_certificates(config.cert_file)[0]
        key_id = key[Attribute.ID] if config.key_id is None else config.key_id
        searches: list[dict[Attribute, Any]] = []
        if key_id:
            searches.append({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.ID: bytes(key_id)})
        if config.key_label:
            searches.append({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.LABEL: config.key_label})
        for attributes in searches:
            for found in session.get_objects(attributes):
                return x509.load_der_x509_certificate(bytes(found[Attribute.VALUE]))
        session.close()
        raise SignerConfigError(
            f"no certificate for key ({config.key_description}) on token {config.token_label!r}; "
            "import it with the key's CKA_ID or set signer.cert_file"
        )

    def _use_raw_rsa(self, token: Any) -> bool:
        if self._mechanism_choice != "auto":
            return self._mechanism_choice == "rsa_pkcs"
        try:
            mechanisms = token.slot.get_mechanisms()
        except p11.PKCS11Error:
            return False
        return Mechanism.SHA256_RSA_PKCS not in mechanisms and Mechanism.RSA_PKCS in mechanisms

    def _reopen(self) -> None:
        self._close_session()
        self._certificate = self._open()

    def _close_session(self) -> None:
        session, self._session, self._key = self._session, None, None
        if session is not None:
            # The session may be gone already (token removed, library re-initialised).
            with contextlib.suppress(p11.PKCS11Error):
                session.close()

    # -- KeySource ---------------------------------------------------------------------------------------
    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    @property
    def uses_raw_rsa(self) -> bool:
        return self._raw_rsa

    def _sign_once(self, data: bytes) -> bytes:
        if self._raw_rsa:
            digest_info = SHA256_DIGEST_INFO_PREFIX + hashlib.sha256(data).digest()
            return bytes(self._key.sign(digest_info, mechanism=Mechanism.RSA_PKCS))
        return bytes(self._key.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS))

    def sign_pkcs1v15_sha256(self, data: bytes) -> bytes:
        with self._lock:
            if os.getpid() != self._pid:
                # Forked child: abandon the parent's handles without closing them (that is the parent's job);
                # ``_library`` re-initialises Cryptoki for this process.
                self._session = self._key = None
            if self._key is None:
                self._certificate = self._open()
            try:
                return self._sign_once(data)
            except _SESSION_LOST as first:
                log.warning(
                    "signer.pkcs11.session_lost",
                    token_label=self._config.token_label,
                    error=type(first).__name__,
                )
                try:
                    self._reopen()
                    return self._sign_once(data)
                except (SignerConfigError, p11.PKCS11Error) as exc:
                    raise SignerUnavailableError(
                        f"PKCS#11 token {self._config.token_label!r} unavailable ({type(exc).__name__})"
                    ) from None

    def close(self) -> None:
        with self._lock:
            self._close_session()

    def __repr__(self) -> str:
        return f"Pkcs11Key(token={self._config.token_label!r}, {self._config.key_description})"


class Pkcs11Signer(EnvelopedSigner):
    """Signs with a key on a PKCS#11 token or HSM (``signer.source = "pkcs11"``)."""

    source_name = "pkcs11"

    @classmethod
    def from_settings(cls, settings: SignerSettings) -> Pkcs11Signer:
        config = Pkcs11Config.from_settings(settings)
        return cls(Pkcs11Key(config), signature_prefix=config.signature_prefix)
