"""The ``[signer]`` settings section: where the signing key lives and how its certificate is checked."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from adapters.settings import Section


class SignerSettings(Section):
    source: Literal["file", "pkcs11", "remote"] = Field("file", description="Where the signing key lives.")
    key_file: Path | None = Field(None, description="PKCS#12 (.p12/.pfx) or PEM private key.")
    cert_file: Path | None = Field(None, description="PEM certificate (chain) when key_file is a PEM key.")
    passphrase: SecretStr | None = Field(None, description="Key file passphrase (secret).")
    allow_group_readable_key: bool = Field(False, description="Accept a key file readable by group/others.")
    pkcs11_module: Path | None = Field(None, description="PKCS#11 module (.so) of the token/HSM.")
    token_label: str | None = Field(None, description="PKCS#11 token label.")
    key_label: str | None = Field(None, description="PKCS#11 label of the signing key.")
    key_id: str | None = Field(None, description="Hex CKA_ID of the key on the token.")
    pin: SecretStr | None = Field(None, description="Token PIN (secret).")
    remote_url: str | None = Field(None, description="Remote signing service base URL.")
    remote_token: SecretStr | None = Field(None, description="Remote signing service bearer token (secret).")
    trust_store: Path | None = Field(None, description="CA bundle that verifies our own signatures.")
    expiry_warning_days: int = Field(30, ge=0, description="Warn when the certificate expires within this.")
    signature_prefix: str | None = Field(None, description="Namespace prefix of ds:Signature; default none.")
    verify_before_send: bool = Field(
        False, description="Verify every signed file in-process before it is stored and sent (test/staging)."
    )
    revocation: Literal["off", "warn", "require"] = Field(
        "warn",
        description="Certificate revocation check before signing (OCSP, then CRL; NĐ 23/2025). A revoked "
        "certificate never signs; an unknown status (CA unreachable) signs with `warn`, stops with `require`.",
    )
    ocsp_url: str | None = Field(
        None, description="OCSP responder to ask instead of the one named in the certificate (AIA)."
    )
    crl_url: str | None = Field(
        None, description="CRL to download instead of the certificate's CRL distribution points."
    )
    crl_file: Path | None = Field(
        None, description="Local CRL (DER or PEM) kept current by other means; tried after OCSP and CRL URLs."
    )
    revocation_timeout_s: float = Field(5.0, gt=0, description="HTTP timeout of one OCSP/CRL request.")
    revocation_refresh_h: float = Field(
        24.0,
        gt=0,
        description="Ask the CA again after this long even if its answer is still fresh (never past nextUpdate).",
    )
    revocation_cache: bool = Field(
        True,
        description="Keep the last good answer under data_dir/revocation/ for restarts and other processes.",
    )
