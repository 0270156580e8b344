"""The ``User-Agent`` the adapters send to the gateway and the remote signer: vneid-sync and its version."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("vneid-sync")
except PackageNotFoundError:  # running from a source tree without an install
    VERSION = "0.0.0+source"

USER_AGENT = f"vneid-sync/{VERSION}"
