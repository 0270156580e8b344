"""Choosing the key source: entry points of group ``vneid_sync.signers`` (declared in pyproject.toml).

Each entry point names a class with a ``from_settings(settings: SignerSettings)`` classmethod returning a
``Signer``. Third parties can add key sources by declaring an entry point in their own package.
"""

from __future__ import annotations

import os
import threading
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from adapters.signers.errors import SignerConfigError
from adapters.signers.settings import SignerSettings
from schemas.ports import Signer

ENTRY_POINT_GROUP = "vneid_sync.signers"


def available_signers() -> dict[str, EntryPoint]:
    """Installed key sources by name."""
    return {entry.name: entry for entry in entry_points(group=ENTRY_POINT_GROUP)}


def signer_class(name: str) -> Any:
    """The class registered under ``name``; a clear error naming the known sources otherwise."""
    known = available_signers()
    if name not in known:
        listed = ", ".join(sorted(known)) or "none (is vneid-sync installed? `uv sync` / `pip install -e .`)"
        raise SignerConfigError(f"unknown signer source {name!r}; known: {listed}")
    return known[name].load()


def create_signer(settings: SignerSettings) -> Signer:
    """A signer for ``settings.source`` with its key and certificate loaded (once: keep the instance)."""
    cls = signer_class(settings.source)
    signer = cls.from_settings(settings)
    if not isinstance(signer, Signer):
        raise SignerConfigError(f"signer source {settings.source!r} did not produce a Signer ({cls!r})")
    return signer


_process_signers: dict[tuple[int, SignerSettings], Signer] = {}
_process_lock = threading.Lock()


def process_signer(settings: SignerSettings) -> Signer:
    """One signer per process and settings: keys load once, and a forked child (Celery prefork) builds its
    own, since PKCS#11 sessions and HTTP connections do not survive ``fork``."""
    key = (os.getpid(), settings)
    with _process_lock:
        signer = _process_signers.get(key)
        if signer is None:
            signer = _process_signers[key] = create_signer(settings)
        return signer
