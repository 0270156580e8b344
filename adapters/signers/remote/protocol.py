"""The wire protocol between the ``remote`` key source and a hash-signing service (v1).

Decision — bare hash, not DigestInfo: the worker sends the bare 32-byte SHA-256 of the canonical
``SignedInfo`` (base64) with ``hash_algorithm = "SHA-256"``; the service returns the RSASSA-PKCS1-v1_5
signature over it, i.e. it wraps the hash in the SHA-256 DigestInfo itself before the raw RSA operation. That is
what hash-signing services expose in practice (VNPT SmartCA ``sign_type: "hash"`` takes the hex hash; a
PKCS#11-backed service prepends the DigestInfo and uses ``CKM_RSA_PKCS``), and it keeps the algorithm choice
explicit on the wire. The worker checks every returned value against the certificate before using it, so a
service that expects a DigestInfo (or signs with another key) fails loudly instead of producing a bad file.

Endpoints (JSON, ``Authorization: Bearer <token>`` on everything but the health check):

- ``GET  /healthz`` → ``{"status": "ok"}``
- ``GET  /v1/certificate`` → ``{"certificate": <base64 DER>, "chain": [<base64 DER>, …]}``
- ``POST /v1/sign-hash`` ``{"hash_algorithm": "SHA-256", "hash": <base64, 32 bytes>}``
  → ``{"signature": <base64>, "signature_algorithm": "RSASSA-PKCS1-v1_5"}``
- errors: ``{"error": <short reason>}`` with 400 (bad request), 401 (token), 404, 405, 413, 500.
"""

from __future__ import annotations

HEALTH_PATH = "/healthz"
CERTIFICATE_PATH = "/v1/certificate"
SIGN_HASH_PATH = "/v1/sign-hash"
HASH_ALGORITHM = "SHA-256"
SIGNATURE_ALGORITHM = "RSASSA-PKCS1-v1_5"
HASH_LENGTH = 32
MAX_REQUEST_BYTES = 8 * 1024
