"""Builds one ``worker.ports.Gateway`` per enabled destination of the settings."""

from __future__ import annotations

from adapters.gateway.bhxh.client import BhxhGateway
from adapters.gateway.bhxh.config import BhxhGatewayConfig
from adapters.gateway.bhxh.token_cache import TokenCache, shared_token_cache
from worker.config import Settings
from worker.ports import Gateway


def create_gateways(settings: Settings, *, token_cache: TokenCache | None = None) -> dict[str, Gateway]:
    """``{destination name: gateway}`` for every enabled destination, in configuration order.

    Every destination speaks the BHXH API today (DOMAIN.md §9.8: BHXH, or a hub compatible with it); a hub
    with its own API gets its own adapter here. Tokens live in the process-wide cache unless one is given.
    The caller closes the gateways.
    """
    cache = token_cache or shared_token_cache()
    gateways: dict[str, Gateway] = {}
    for name, destination in settings.destinations.items():
        if not destination.enabled:
            continue
        config = BhxhGatewayConfig.from_settings(
            name, destination, default_facility_code=settings.payload.facility_code
        )
        gateways[name] = BhxhGateway(config, token_cache=cache)
    return gateways
