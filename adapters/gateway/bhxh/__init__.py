"""Client of the BHXH gateway API (DOMAIN.md §9): token, check-in and send calls, classified per §12.1."""

from adapters.gateway.bhxh.client import BhxhGateway
from adapters.gateway.bhxh.config import BhxhGatewayConfig

__all__ = ["BhxhGateway", "BhxhGatewayConfig"]
