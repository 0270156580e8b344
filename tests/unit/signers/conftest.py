"""Fixtures of the signing unit tests: a test PKI (RSA-2048 and RSA-3072), sample documents, a file signer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.signers.file.signer import FileKeySigner
from tests.unit.signers.support import PkiSet, checkin, envelope, file_settings, pki

__all__ = ["checkin", "envelope", "file_signer", "pki"]  # fixtures from support, re-exported for pytest


@pytest.fixture(scope="session")
def file_signer(pki: PkiSet) -> Iterator[FileKeySigner]:
    with FileKeySigner.from_settings(file_settings(pki[2048])) as signer:
        yield signer
