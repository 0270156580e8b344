"""The standard and the kernel, the bottom floor: it imports nothing else of this project.

- ``schemas.domain``: the canonical encounter model and its value types;
- ``schemas.ports``: the contracts between the worker and the adapters (Protocols and the values they pass);
- the payload layer: QĐ 130/4750/3176 table specs and code lists (``spec``), builders, rules, XSDs, the
  GIAMDINHHS envelope and validation. Its public API (``from schemas import build_claim, …``): ``__all__``.
"""

from __future__ import annotations

from schemas.builders import BuiltPayload, build_checkin, build_claim
from schemas.envelope import EnvelopeFormatError, content_hash_of_envelope, decode_envelope
from schemas.issues import Issue, PayloadValidationError, Severity
from schemas.options import PayloadOptions
from schemas.validation import validate_document, validate_envelope_bytes, validate_table_document

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
