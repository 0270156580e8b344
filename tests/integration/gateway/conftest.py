"""The gateway unit tests' fixtures (throwaway PKI, xmlsec1-signed files, fresh MA_LK), shared here."""

from __future__ import annotations

from tests.unit.gateway.conftest import ma_lk, pki, signer  # noqa: F401 - pytest fixtures, used by name
