"""Builds one ``schemas.ports.Gateway`` per enabled ``[destinations.<name>]`` section."""

from __future__ import annotations

from collections.abc import Mapping

from adapters.gateway.bhxh.client import BhxhGateway, TokenRequestCallback
from adapters.gateway.bhxh.config import BhxhGatewayConfig
from adapters.gateway.bhxh.token_cache import TokenCache, shared_token_cache
from adapters.gateway.settings import DestinationSettings
from schemas.ports import Gateway


def create_gateways(
    destinations: Mapping[str, DestinationSettings],
    *,
    default_facility_code: str,
    token_cache: TokenCache | None = None,
    on_token_request: TokenRequestCallback | None = None,
) -> dict[str, Gateway]:
    """``{destination name: gateway}`` for every enabled destination, in configuration order.

    Every destination speaks the BHXH API today (DOMAIN.md §9.8: BHXH, or a hub compatible with it); a hub
    with its own API gets its own adapter here. Tokens live in the process-wide cache unless one is given.
    ``on_token_request`` is told about every token call (the worker's metrics). The caller closes the gateways.
    """
    cache = token_cache or shared_token_cache()
    gateways: dict[str, Gateway] = {}
    for name, destination in destinations.items():
        if not destination.enabled:
            continue
        config = BhxhGatewayConfig.from_settings(
            name, destination, default_facility_code=default_facility_code
        )
        gateways[name] = BhxhGateway(config, token_cache=cache, on_token_request=on_token_request)
    return gateways
