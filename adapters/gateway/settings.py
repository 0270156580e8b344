"""The ``[destinations.<name>]`` settings section: one gateway that receives the signed files."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from adapters.settings import Section


class DestinationSettings(Section):
    """One gateway that receives the signed files (BHXH, or a provincial hub)."""

    base_url: str = Field("http://127.0.0.1:8765", description="Gateway base URL.")
    variant: Literal["3176", "4750"] = Field("3176", description="Endpoint family (gateway_variant).")
    username: str = Field("79999_BV", description="Gateway account.")
    password: SecretStr = Field(SecretStr("demo-password"), description="Gateway password (secret).")
    facility_code: str | None = Field(None, description="maCSKCB; default: payload.facility_code.")
    province_code: str | None = Field(None, description="maTinh; default: first 2 characters of maCSKCB.")
    enabled: bool = Field(True, description="Send to this destination at all.")
    primary: bool = Field(
        True, description="A failure at a non-primary destination never blocks the primary."
    )
    takes_checkin: bool = Field(True, description="Send XML0 check-ins to this destination.")
    verify_tls: bool = Field(True, description="Verify the gateway's TLS certificate. Keep on.")
    ca_bundle: Path | None = Field(
        None,
        description="CA bundle for the gateway's TLS certificate (default: the system's trust store, or "
        "SSL_CERT_FILE).",
    )
    timeout_s: float = Field(30.0, gt=0, description="HTTP timeout of one gateway call, in seconds.")
    rate_per_s: float = Field(20.0, gt=0, description="At most this many requests per second.")
