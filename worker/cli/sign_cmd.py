"""`vneid-sync sign` and `vneid-sync verify`: sign envelopes with the configured key source and check them."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Filled by the signing work (issue 4)."""
