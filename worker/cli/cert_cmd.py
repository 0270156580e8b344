"""`vneid-sync cert`: signing certificate health, and a throwaway test PKI for the demo and training host.

``cert check`` exit codes: 0 ok; 3 warning (expires within signer.expiry_warning_days, or the revocation status
is unknown under signer.revocation = "warn"); 4 failure (expired, not yet valid, key does not match, weak key,
KeyUsage forbids signing, status unknown under "require"); 5 revoked by the CA; 1/2 the check could not run
(key source unreachable / misconfigured).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509

from adapters.signers.certcheck import CertificateReport, check_certificate, check_signer
from adapters.signers.errors import SignerConfigError, SignerError
from adapters.signers.keyfiles import load_certificates
from adapters.signers.registry import create_signer
from adapters.signers.revocation import (
    RevocationPolicy,
    RevocationState,
    RevocationStatus,
    revocation_status,
    signer_chain,
)
from adapters.signers.testpki import create_test_pki
from worker.cli.context import CliError, console, settings

group = typer.Typer(help="Signing certificate health.", no_args_is_help=True)


def _print_report(report: CertificateReport) -> None:
    rows = report.as_dict()
    console.print(f"status      {report.status.value.upper()}", markup=False, highlight=False)
    for name in (
        "subject",
        "issuer",
        "serial",
        "not_before",
        "not_after",
        "days_left",
        "key_type",
        "key_size",
    ):
        console.print(f"{name:<12}{rows[name]}", markup=False, highlight=False)
    console.print(f"{'key_usage':<12}{', '.join(report.key_usage) or '-'}", markup=False, highlight=False)
    matches = {True: "yes", False: "NO", None: "not checked"}[report.key_matches]
    console.print(f"{'key_matches':<12}{matches}", markup=False, highlight=False)
    revocation = report.revocation
    summary = "not checked" if revocation is None else revocation.summary()
    # soft_wrap: URLs stay whole for copying, whatever the terminal width.
    console.print(f"{'revocation':<12}{summary}", markup=False, highlight=False, soft_wrap=True)
    if revocation is not None and revocation.state is not RevocationState.UNKNOWN:
        for note in revocation.problems:  # sources that failed before the one that answered
            console.print(f"{'note':<12}{note}", markup=False, highlight=False, soft_wrap=True)
    for problem in report.problems:
        console.print(f"problem     {problem}", markup=False, highlight=False)


@group.command("check")
def check(
    ctx: typer.Context,
    warning_days: Annotated[
        int | None, typer.Option("--warning-days", min=0, help="Default: signer.expiry_warning_days.")
    ] = None,
    cert: Annotated[
        Path | None,
        typer.Option(
            "--cert", exists=True, dir_okay=False, help="Check this certificate file only (no key probe)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    no_revocation: Annotated[
        bool, typer.Option("--no-revocation", help="Skip the OCSP/CRL revocation check.")
    ] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Ask the CA even when a cached answer is still fresh.")
    ] = False,
) -> None:
    """Check the signing certificate: validity, days left, key size and usage, that the key matches, and
    whether the CA revoked it (OCSP, else CRL; per signer.revocation).

    Exit 0 ok, 3 warning (expiring soon, revocation status unknown), 4 failure (expired / not yet valid / key
    mismatch / unusable key / status unknown under signer.revocation = require), 5 revoked.
    """
    loaded = settings(ctx)
    config = loaded.signer
    days = config.expiry_warning_days if warning_days is None else warning_days
    policy = RevocationPolicy(config.revocation)

    def revocation(
        certificate: x509.Certificate, chain: tuple[x509.Certificate, ...]
    ) -> RevocationStatus | None:
        if no_revocation:
            return None
        return revocation_status(config, loaded.data_dir, certificate, chain=chain, refresh=refresh)

    if cert is not None:
        leaf, *others = load_certificates(cert)
        report = check_certificate(
            leaf,
            warning_days=days,
            revocation=revocation(leaf, tuple(others)),
            revocation_policy=policy,
        )
    else:
        try:
            signer = create_signer(config)
        except SignerConfigError as exc:
            raise CliError(str(exc), exit_code=2) from None
        except SignerError as exc:
            raise CliError(str(exc), exit_code=1) from None
        try:
            report = check_signer(
                signer,
                warning_days=days,
                revocation=revocation(signer.certificate, signer_chain(signer)),
                revocation_policy=policy,
            )
        except SignerError as exc:
            raise CliError(f"key probe failed: {exc}", exit_code=1) from None
        finally:
            close = getattr(signer, "close", None)
            if callable(close):
                close()
    if as_json:
        typer.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        _print_report(report)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


@group.command("test-pki")
def make_test_pki(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Option("--out", "-o", file_okay=False, help="Directory to write the files to.")
    ],
    key_size: Annotated[int, typer.Option("--key-size", help="Hospital RSA key size: 2048 or 3072.")] = 2048,
    days: Annotated[int, typer.Option("--days", min=1, help="Validity of the hospital certificate.")] = 365,
    facility_code: Annotated[
        str | None, typer.Option("--facility-code", help="MACSKCB; default payload.facility_code.")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing test PKI.")] = False,
) -> None:
    """Generate a TEST CA and hospital certificate (PKCS#12 + PEM). Never for production signatures."""
    if key_size not in (2048, 3072, 4096):
        raise CliError("--key-size must be 2048, 3072 or 4096", exit_code=2)
    if (out / "hospital.p12").exists() and not overwrite:
        raise CliError(f"{out} already holds a test PKI (use --overwrite)")
    code = facility_code or settings(ctx).payload.facility_code
    files = create_test_pki(out, key_size=key_size, valid_days=days, facility_code=code)
    passphrase_file = out / "hospital.pass"
    descriptor = os.open(passphrase_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(files.passphrase + "\n")
    console.print(f"TEST PKI written to {out} (not for production)", markup=False, highlight=False)
    console.print(
        "\n".join(
            (
                "configure the file key source with, in the TOML configuration:",
                "  [signer]",
                '  source = "file"',
                f'  key_file = "{files.pkcs12.resolve()}"',
                f'  trust_store = "{files.ca_certificate.resolve()}"',
                "and the passphrase as a secret file in the environment:",
                f"  VNEID_SIGNER__PASSPHRASE_FILE={passphrase_file.resolve()}",
            )
        ),
        markup=False,
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="cert")
