"""Everything one BHXH-API destination needs, resolved from ``adapters.gateway.settings.DestinationSettings``."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Self

from pydantic import SecretStr

from adapters.gateway.bhxh import protocol
from adapters.gateway.settings import DestinationSettings


@dataclass(frozen=True, slots=True)
class BhxhGatewayConfig:
    name: str
    base_url: str
    username: str
    password: SecretStr = field(repr=False)
    facility_code: str  # maCSKCB
    province_code: str  # maTinh
    variant: protocol.Variant = "3176"
    verify_tls: bool = True
    ca_bundle: Path | None = None
    timeout_s: float = 30.0
    connect_timeout_s: float = 10.0
    rate_per_s: float = 20.0
    max_connections: int = 4
    trust_env: bool = True  # honour HTTPS_PROXY/NO_PROXY and SSL_CERT_FILE, as hospital networks may need
    # Retries inside one submit call, for transient failures only: few and short. The caller's task retry
    # (Celery, with backoff up to an hour) does the long waiting.
    transient_attempts: int = 3
    retry_initial_wait_s: float = 0.5
    retry_max_wait_s: float = 4.0
    retry_budget_s: float = 60.0  # no further in-call retry once this much time has gone
    token_refresh_margin_s: float = 180.0

    @classmethod
    def from_settings(
        cls, name: str, destination: DestinationSettings, *, default_facility_code: str, **overrides: Any
    ) -> Self:
        """``default_facility_code`` is ``payload.facility_code``, used when the destination names none."""
        facility = destination.facility_code or default_facility_code
        config = cls(
            name=name,
            base_url=destination.base_url.rstrip("/"),
            username=destination.username,
            password=destination.password,
            facility_code=facility,
            province_code=destination.province_code or facility[:2],
            variant=destination.variant,
            verify_tls=destination.verify_tls,
            ca_bundle=destination.ca_bundle,
            timeout_s=destination.timeout_s,
            connect_timeout_s=min(10.0, destination.timeout_s),
            rate_per_s=destination.rate_per_s,
            retry_budget_s=max(2 * destination.timeout_s, 10.0),
        )
        return replace(config, **overrides) if overrides else config

    @property
    def token_path(self) -> str:
        return protocol.TOKEN_PATH

    @property
    def checkin_path(self) -> str:
        return protocol.checkin_path(self.variant)

    @property
    def send_path(self) -> str:
        return protocol.send_path(self.variant)
