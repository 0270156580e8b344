"""The payload layer: QĐ 130/4750/3176 table documents, the GIAMDINHHS envelope and their validation.

Public API (``from schemas import build_claim, …``): see ``__all__``. Names are resolved lazily so that
``schemas.spec`` — imported by the settings and by the domain-model generator — does not pull in lxml or
the canonical model.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from schemas.builders import BuiltPayload, build_checkin, build_claim
    from schemas.envelope import EnvelopeFormatError, content_hash_of_envelope, decode_envelope
    from schemas.issues import Issue, PayloadValidationError, Severity
    from schemas.options import PayloadOptions
    from schemas.validation import validate_document, validate_envelope_bytes, validate_table_document

_EXPORTS = {
    "BuiltPayload": "schemas.builders",
    "build_checkin": "schemas.builders",
    "build_claim": "schemas.builders",
    "EnvelopeFormatError": "schemas.envelope",
    "content_hash_of_envelope": "schemas.envelope",
    "decode_envelope": "schemas.envelope",
    "Issue": "schemas.issues",
    "PayloadValidationError": "schemas.issues",
    "Severity": "schemas.issues",
    "PayloadOptions": "schemas.options",
    "validate_document": "schemas.validation",
    "validate_envelope_bytes": "schemas.validation",
    "validate_table_document": "schemas.validation",
}

__all__ = [
    "BuiltPayload",
    "EnvelopeFormatError",
    "Issue",
    "PayloadOptions",
    "PayloadValidationError",
    "Severity",
    "build_checkin",
    "build_claim",
    "content_hash_of_envelope",
    "decode_envelope",
    "validate_document",
    "validate_envelope_bytes",
    "validate_table_document",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'schemas' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
