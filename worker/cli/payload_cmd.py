"""`vneid-sync payload`: Build and validate QĐ 130/4750/3176 payloads."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from adapters.his.demo.synthetic import kinds_mix, make_encounter
from schemas import (
    Issue,
    PayloadValidationError,
    build_claim,
    validate_envelope_bytes,
    validate_table_document,
)
from schemas.domain.values import VIETNAM_TZ
from schemas.envelope import ENVELOPE_ROOT
from schemas.spec import Profile
from schemas.validation import table_of_root
from worker.bootstrap import payload_options
from worker.cli.context import CliError, console, settings

group = typer.Typer(help="Build and validate QĐ 130/4750/3176 payloads.", no_args_is_help=True)

#: First visit of a demo batch; visits follow every few minutes (a fixed start keeps runs reproducible).
DEMO_START = datetime(2026, 3, 4, 7, 30, tzinfo=VIETNAM_TZ)


@group.command("build")
def build(
    ctx: typer.Context,
    demo: Annotated[int, typer.Option("--demo", min=1, help="Build N synthetic encounters.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the envelopes (one <MA_LK>.xml each).")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the synthetic encounters.")] = 1,
    profile: Annotated[
        Profile | None, typer.Option("--profile", help="Override payload.profile.", case_sensitive=False)
    ] = None,
    created: Annotated[
        str | None, typer.Option("--date", help="NGAYLAP as yyyy-mm-dd (default: today in Vietnam).")
    ] = None,
) -> None:
    """Build unsigned envelopes for N synthetic encounters; rejected ones are listed with their rule ids."""
    options = payload_options(settings(ctx).payload)
    if profile is not None:
        options = replace(options, profile=profile)
    try:
        created_on = date.fromisoformat(created) if created else None
    except ValueError as exc:
        raise CliError("--date must be yyyy-mm-dd", exit_code=2) from exc
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)  # noqa: S311  # reproducible synthetic demo data, not security
    rejected = Table("MA_LK", "Rules", title="Rejected by validation (not written)")
    built = 0
    for index in range(demo):
        kind = kinds_mix(rng)
        encounter = make_encounter(
            random.Random(rng.getrandbits(64)),  # noqa: S311  # as above
            his_key=f"{seed}{index + 1:06d}",
            kind=kind,
            start=DEMO_START + timedelta(minutes=7 * index),
            facility_code=options.facility_code,
        )
        try:
            payload = build_claim(encounter, options, created=created_on)
        except PayloadValidationError as exc:
            rejected.add_row(encounter.ma_lk, ", ".join(sorted(exc.rules)))
            continue
        (out / f"{encounter.ma_lk}.xml").write_bytes(payload.document)
        built += 1
    if rejected.row_count:
        console.print(rejected)
    console.print(
        f"{built} envelope(s) written to {out} ({options.profile.value}); {rejected.row_count} rejected.",
        highlight=False,
    )


def _issues_of(path: Path, profile: Profile, business_rules: bool) -> list[Issue]:
    document = path.read_bytes()
    kind = table_of_root(document)
    if kind == ENVELOPE_ROOT:
        return validate_envelope_bytes(document, profile, business_rules=business_rules)
    if kind is None:
        # Not XML, or a root we do not know: let the envelope validator say which.
        return validate_envelope_bytes(document, profile, business_rules=False)
    return validate_table_document(kind, document, profile, business_rules=business_rules)


@group.command("validate")
def validate(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True)],
    profile: Annotated[
        Profile | None, typer.Option("--profile", help="Override payload.profile.", case_sensitive=False)
    ] = None,
    rules: Annotated[bool, typer.Option("--rules/--no-rules", help="Also run the business rules.")] = True,
    language: Annotated[str, typer.Option("--lang", help="Message language: vi or en.")] = "vi",
) -> None:
    """Validate envelopes (GIAMDINHHS), XML0 check-ins or single table documents; exit 1 on errors."""
    chosen = profile or settings(ctx).payload.profile
    table = Table("File", "Severity", "Location", "Rule", "Message", title=f"Findings ({chosen.value})")
    errors = 0
    for path in files:
        issues = _issues_of(path, chosen, rules)
        errors += sum(1 for found in issues if found.is_error)
        for found in issues:
            message = found.message_vi if language == "vi" else found.message_en
            table.add_row(path.name, found.severity.value, found.location, found.rule, message)
    if table.row_count:
        console.print(table)
    console.print(f"{len(files)} file(s) checked: {errors} error(s), {table.row_count - errors} warning(s).")
    if errors:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="payload")
