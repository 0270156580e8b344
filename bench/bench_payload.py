"""Payload layer throughput on a ~25 KB record: build alone, build + validate (build_claim), and the
receiving side's validate_envelope_bytes. Plain script; prints one JSON object on stdout.

    .venv/bin/python bench/bench_payload.py [--target-kb 25] [--rounds 400]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lxml.etree  # after the path tweak, so the script runs from anywhere

from adapters.his.demo.synthetic import Kind, make_encounter
from schemas import PayloadOptions, build_claim, decode_envelope, validate_envelope_bytes
from schemas.builders import render_claim
from schemas.documents import serialise, table_tree
from schemas.domain import DrugLine, Encounter, ServiceLine
from schemas.envelope import build_envelope

CREATED = date(2026, 3, 10)


def _totals(drugs: tuple[DrugLine, ...], services: tuple[ServiceLine, ...]) -> dict[str, Decimal]:
    lines: list[DrugLine | ServiceLine] = [*drugs, *services]

    def total(name: str, chosen: list[DrugLine | ServiceLine]) -> Decimal:
        return sum((getattr(line, name) or Decimal(0) for line in chosen), Decimal("0.00"))

    bh, copay = total("thanh_tien_bh", lines), total("t_bncct", lines)
    return {
        "t_thuoc": total("thanh_tien_bv", list(drugs)),
        "t_tongchi_bv": total("thanh_tien_bv", lines),
        "t_tongchi_bh": bh,
        "t_bntt": total("t_bntt", lines),
        "t_bncct": copay,
        "t_bhtt": bh - copay,
    }


def record_of_size(target_bytes: int) -> tuple[Encounter, int]:
    """An in-patient visit with as many drug lines as it takes for its inner documents to reach the target."""
    base = make_encounter(random.Random(7), his_key="B0001", kind=Kind.INPATIENT_REFERRAL)
    options = PayloadOptions()
    drugs = list(base.drug_lines)
    while True:
        encounter = replace(base, drug_lines=tuple(drugs))
        encounter = replace(
            encounter,
            visit=replace(encounter.visit, **_totals(encounter.drug_lines, encounter.service_lines)),
        )  # type: ignore[arg-type]
        size = sum(
            len(content)
            for content in decode_envelope(build_claim(encounter, options, created=CREATED).document).values()
        )
        if size >= target_bytes:
            return encounter, size
        template = base.drug_lines[len(drugs) % len(base.drug_lines)]
        later = timedelta(hours=len(drugs))
        assert template.ngay_yl is not None
        assert template.ngay_th_yl is not None
        drugs.append(
            replace(template, ngay_yl=template.ngay_yl + later, ngay_th_yl=template.ngay_th_yl + later)
        )


def timed(action: Callable[[], object], rounds: int) -> list[float]:
    for _ in range(min(20, rounds)):
        action()  # warm caches (compiled fields, XSDs)
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return samples


def build_only(encounter: Encounter, options: PayloadOptions) -> bytes:
    """build_claim without the business rules and the XSD: selection, rendering, trees, serialisation."""
    rendered = render_claim(encounter, options)
    inner = [
        (table, serialise(table_tree(table, rows), declaration=options.inner_xml_declaration))
        for table, rows in rendered.documents.items()
    ]
    return build_envelope(options.facility_code, CREATED, inner)


def summary(samples: list[float]) -> dict[str, float]:
    median = statistics.median(samples)
    return {
        "median_ms": round(median * 1000, 3),
        "p95_ms": round(sorted(samples)[int(len(samples) * 0.95) - 1] * 1000, 3),
        "records_per_s": round(1 / median, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target-kb", type=float, default=25.0)
    parser.add_argument("--rounds", type=int, default=400)
    args = parser.parse_args()
    options = PayloadOptions()
    encounter, size = record_of_size(int(args.target_kb * 1024))
    envelope = build_claim(encounter, options, created=CREATED).document
    result = {
        "record": {
            "inner_documents_bytes": size,
            "envelope_bytes": len(envelope),
            "drug_lines": len(encounter.drug_lines),
            "service_lines": len(encounter.service_lines),
            "profile": options.profile.value,
        },
        "build_only": summary(timed(lambda: build_only(encounter, options), args.rounds)),
        "build_and_validate": summary(
            timed(lambda: build_claim(encounter, options, created=CREATED), args.rounds)
        ),
        "validate_envelope_bytes": summary(
            timed(lambda: validate_envelope_bytes(envelope, options.profile), args.rounds)
        ),
        "environment": {
            "python": platform.python_version(),
            "lxml": ".".join(map(str, lxml.etree.LXML_VERSION)),
            "libxml2": ".".join(map(str, lxml.etree.LIBXML_VERSION)),
            "machine": platform.machine(),
        },
    }
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
