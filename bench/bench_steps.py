"""The floor and the small per-record steps around signing, each alone, in CPU and wall time.

Run: ``.venv/bin/python -m bench.bench_steps [--calls 500] [--rounds 5]``; prints JSON on stdout.

- ``raw_rsa2048_sign``: one RSASSA-PKCS1-v1_5 / SHA-256 signature with ``cryptography``, key loaded once, over
  about 1 KB (the size of a canonical SignedInfo). Every ratio in docs/benchmarks.md is against this floor.
- ``envelope``: ``schemas.envelope.build_envelope`` over the already serialised inner documents of the ~25 KB
  record of bench_payload (base64 of each table + the GIAMDINHHS wrapper).
- ``gateway_form_encoding``: what the gateway client does to a signed file before the HTTP call
  (``protocol.encode_file`` + ``protocol.encode_form``, as implemented now), next to the same bytes produced by
  replacing base64's three reserved characters directly (the lower bound; checked to give identical bytes —
  urllib's ``urlencode`` took about 0.8 ms here before the client got its fast path).
- ``evidence_compression``: ``zlib.compress(signed, 6)`` as ``repository.record_signed`` stores evidence.
"""

from __future__ import annotations

import argparse
import base64
import zlib

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from adapters.gateway.bhxh import protocol
from bench.bench_payload import CREATED, record_of_size
from bench.bench_sign import sample_envelope
from bench.common import emit, machine_description, per_call
from schemas import PayloadOptions
from schemas.builders import render_claim
from schemas.documents import serialise, table_tree
from schemas.envelope import build_envelope


def step(cpu_ms: float, wall_ms: float, **extra: object) -> dict[str, object]:
    return {
        "cpu_ms": round(cpu_ms, 4),
        "wall_ms": round(wall_ms, 4),
        "records_per_s_cpu": round(1000 / cpu_ms, 1) if cpu_ms else None,
        **extra,
    }


def direct_form(fields: dict[str, str]) -> bytes:
    """Form encoding of values made of base64 and URL-safe characters only (the lower bound)."""
    parts = []
    for name, value in fields.items():
        encoded = value.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
        parts.append(f"{name}={encoded}")
    return "&".join(parts).encode("ascii")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    calls, rounds = args.calls, args.rounds

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signed_info = b"<SignedInfo>" + b"x" * 1000
    rsa_cpu, rsa_wall = per_call(
        lambda: key.sign(signed_info, padding.PKCS1v15(), hashes.SHA256()), calls * 2, rounds
    )

    options = PayloadOptions()
    encounter, inner_size = record_of_size(25 * 1024)
    rendered = render_claim(encounter, options)
    inner = [
        (table, serialise(table_tree(table, rows), declaration=options.inner_xml_declaration))
        for table, rows in rendered.documents.items()
    ]
    env_cpu, env_wall = per_call(lambda: build_envelope(options.facility_code, CREATED, inner), calls, rounds)

    envelope = sample_envelope()  # bench_sign's ~23.5 KB envelope; a signature adds about 2 KB
    fields = {
        protocol.FIELD_USERNAME: "79999_BV",
        protocol.FIELD_LOAI_HO_SO: protocol.LOAI_HO_SO_CLAIM,
        protocol.FIELD_MA_TINH: "79",
        protocol.FIELD_MA_CSKCB: "79999",
        protocol.FIELD_FILE: base64.b64encode(envelope).decode("ascii"),
    }
    form_cpu, form_wall = per_call(
        lambda: protocol.encode_form({**fields, protocol.FIELD_FILE: protocol.encode_file(envelope)}),
        calls,
        rounds,
    )
    identical = direct_form(fields) == protocol.encode_form(fields)
    fast_cpu, fast_wall = per_call(
        lambda: direct_form({**fields, protocol.FIELD_FILE: protocol.encode_file(envelope)}), calls, rounds
    )
    zip_cpu, zip_wall = per_call(lambda: zlib.compress(envelope, 6), calls, rounds)

    emit(
        {
            "benchmark": "steps",
            "machine": machine_description(),
            "calls_per_round": calls,
            "rounds": rounds,
            "raw_rsa2048_sign": step(
                rsa_cpu, rsa_wall, what="cryptography, PKCS#1 v1.5, SHA-256, key loaded once"
            ),
            "envelope": step(env_cpu, env_wall, inner_documents_bytes=inner_size, tables=len(inner)),
            "gateway_form_encoding": step(
                form_cpu, form_wall, envelope_bytes=len(envelope), how="protocol.encode_form as implemented"
            ),
            "gateway_form_encoding_direct": step(
                fast_cpu, fast_wall, identical_bytes=identical, how="str.replace of + / = (lower bound)"
            ),
            "evidence_compression": step(zip_cpu, zip_wall, how="zlib level 6", envelope_bytes=len(envelope)),
        }
    )


if __name__ == "__main__":
    main()
