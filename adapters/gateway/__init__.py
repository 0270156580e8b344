"""Gateway adapters (DOMAIN.md §9): the BHXH client and the gateway simulator used by tests and the demo.

``registry.create_gateways(settings)`` builds one :class:`schemas.ports.Gateway` per enabled destination.
"""
