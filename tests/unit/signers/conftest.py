"""Fixtures of the signing unit tests: a test PKI (RSA-2048 and RSA-3072), sample documents, a file signer, the
test CA's status services (``ca_services``) and the answers they served (``served``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.signers.file.signer import FileKeySigner
from tests.unit.signers.revocation_support import ca_services
from tests.unit.signers.served_answers import served
from tests.unit.signers.support import PkiSet, checkin, envelope, file_settings, pki

# Fixtures from the support modules, re-exported for pytest.
__all__ = ["ca_services", "checkin", "envelope", "file_signer", "pki", "served"]


@pytest.fixture(scope="session")
def file_signer(pki: PkiSet) -> Iterator[FileKeySigner]:
    with FileKeySigner.from_settings(file_settings(pki[2048])) as signer:
        yield signer
