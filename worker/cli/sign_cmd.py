"""`vneid-sync sign`, `vneid-sync verify` and `vneid-sync remote-signer serve`.

Exit codes of ``sign``: 0 all signed; 1 a file could not be signed (not an envelope, I/O); 2 the key source is
misconfigured (key file, passphrase, PIN, token, remote token); 4 the certificate is expired, not yet valid, does
not match the key, or its revocation status is unknown under ``signer.revocation = "require"``; 5 its CA revoked
it (as ``cert check``). ``sign`` applies ``signer.revocation`` through the worker's own guard
(``adapters.signers.revocation.guard_signer``): the status is asked once before the first file, so a refused
certificate signs nothing. ``verify``: 0 every file verified, 1 otherwise.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from adapters.signers.certcheck import EXIT_FAILURE, EXIT_REVOKED
from adapters.signers.errors import (
    CertificateNotUsableError,
    InvalidSignatureError,
    SignerConfigError,
    SignerError,
)
from adapters.signers.keyfiles import load_key_material
from adapters.signers.reference_signer.server import ReferenceSigningServer
from adapters.signers.registry import create_signer
from adapters.signers.revocation import (
    CertificateRevokedError,
    RevocationGuardedSigner,
    RevocationState,
    guard_signer,
)
from adapters.signers.verification import verify, xmlsec1_verify
from schemas.ports import Signer
from worker.cli.context import CliError, console, err_console, settings

remote_signer = typer.Typer(
    help="The reference hash-signing service (for the remote key source).", no_args_is_help=True
)


def _signer_error(exc: SignerError) -> CliError:
    if isinstance(exc, SignerConfigError):
        return CliError(str(exc), exit_code=2)
    if isinstance(exc, CertificateRevokedError):
        # Only a new certificate helps, not a configuration change: its own code, as in `cert check`.
        return CliError(str(exc), exit_code=EXIT_REVOKED)
    if isinstance(exc, CertificateNotUsableError):
        return CliError(str(exc), exit_code=EXIT_FAILURE)
    return CliError(str(exc), exit_code=1)


def _write_atomically(target: Path, data: bytes) -> None:
    descriptor, scratch = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(scratch, target)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise


def _check_revocation(signer: Signer) -> None:
    """Ask the certificate's status once, before the first file: raises when ``signer.revocation`` forbids
    signing (revoked; unknown under ``require``); under ``warn`` an unknown status is said on stderr."""
    if not isinstance(signer, RevocationGuardedSigner):
        return  # signer.revocation = "off": nothing is checked
    status = signer.ensure_signable()
    if status.state is RevocationState.UNKNOWN:
        err_console.print(
            f"warning: signing certificate status {status.summary()}; signing anyway (signer.revocation = warn)",
            markup=False,
            highlight=False,
        )


def sign(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="Unsigned XML files.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", file_okay=False, help="Directory for the signed files.")
    ],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing files in --out.")] = False,
    check: Annotated[
        bool,
        typer.Option("--verify/--no-verify", help="Verify each signed file in process (signer.trust_store)."),
    ] = True,
) -> None:
    """Sign GIAMDINHHS envelopes / XML0 check-ins with the configured key source (signer.*).

    The certificate's revocation status is checked first, as the worker does (signer.revocation): a revoked
    certificate, or an unknown status under "require", signs nothing; under "warn" an unknown status is a
    warning on stderr. Exit codes: 0 all signed; 1 a file could not be signed; 2 the key source is
    misconfigured; 4 the certificate is unusable (expired, not yet valid, not the key's, or its status is
    unknown under signer.revocation = require); 5 the CA revoked it."""
    cfg = settings(ctx)
    config = cfg.signer
    try:
        key_source = create_signer(config)
    except SignerError as exc:
        raise _signer_error(exc) from None
    # The worker's own guard (worker/bootstrap.py), so a file signed by hand meets the same policy.
    signer = guard_signer(key_source, config, cfg.data_dir)
    try:
        try:
            _check_revocation(signer)
        except SignerError as exc:
            raise _signer_error(exc) from None
        out.mkdir(parents=True, exist_ok=True)
        for source in files:
            target = out / source.name
            if target.resolve() == source.resolve():
                raise CliError(f"{source}: --out would overwrite the input file")
            if target.exists() and not overwrite:
                raise CliError(f"{target} exists (use --overwrite)")
            try:
                signed = signer.sign(source.read_bytes())
                if check:
                    verify(signed, config.trust_store)
            except SignerError as exc:
                raise _signer_error(exc) from None
            _write_atomically(target, signed)
            console.print(
                f"signed {source.name} -> {target} sha256={hashlib.sha256(signed).hexdigest()}",
                markup=False,
                highlight=False,
            )
    finally:
        close = getattr(key_source, "close", None)
        if callable(close):
            close()


def verify_files(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="Signed XML files.")],
    trust_store: Annotated[
        Path | None,
        typer.Option(
            "--trust-store", exists=True, dir_okay=False, help="CA bundle (PEM); default signer.trust_store."
        ),
    ] = None,
    with_xmlsec1: Annotated[
        bool,
        typer.Option("--xmlsec1", help="Also run the reference verifier, xmlsec1 (needs a trust store)."),
    ] = False,
    at: Annotated[
        datetime | None,
        typer.Option("--at", help="Check certificates as of this time (files signed earlier)."),
    ] = None,
) -> None:
    """Verify signed files: the profile, the digest, the signature value and the certificate chain."""
    store = trust_store or settings(ctx).signer.trust_store
    if with_xmlsec1 and store is None:
        raise CliError("--xmlsec1 needs a trust store (--trust-store or signer.trust_store)", exit_code=2)
    failed = 0
    for path in files:
        try:
            result = verify(path.read_bytes(), store, at=at)
        except InvalidSignatureError as exc:
            failed += 1
            console.print(f"INVALID {path}: {exc}", markup=False, highlight=False)
            continue
        trust = "trusted" if result.trusted else "NOT checked against a trust store"
        line = f"valid   {path}: serial {result.serial}, {result.subject} ({trust})"
        if with_xmlsec1 and store is not None:
            reference = xmlsec1_verify(path, trusted_pem=store, at=at)
            line += "; xmlsec1 " + ("OK" if reference.ok else f"FAILED (exit {reference.returncode})")
            failed += 0 if reference.ok else 1
        console.print(line, markup=False, highlight=False)
    if failed:
        raise CliError(f"{failed} of {len(files)} files did not verify")


@remote_signer.command("serve")
def serve(
    ctx: typer.Context,
    key: Annotated[
        Path, typer.Option("--key", exists=True, dir_okay=False, help="PKCS#12 or PEM private key.")
    ],
    cert: Annotated[
        Path | None,
        typer.Option("--cert", exists=True, dir_okay=False, help="PEM certificate for a PEM key."),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to bind; keep loopback unless fronted by TLS.")
    ] = ("127.0.0.1"),
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="TCP port; 0 picks a free one.")
    ] = 8790,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            exists=True,
            dir_okay=False,
            help="Bearer token file; default signer.remote_token.",
        ),
    ] = None,
    passphrase_file: Annotated[
        Path | None,
        typer.Option(
            "--passphrase-file",
            exists=True,
            dir_okay=False,
            help="Key passphrase file; default signer.passphrase.",
        ),
    ] = None,
    allow_group_readable_key: Annotated[bool, typer.Option("--allow-group-readable-key")] = False,
) -> None:
    """Serve the reference hash-signing API (GET /v1/certificate, POST /v1/sign-hash) until interrupted."""
    config = settings(ctx).signer
    token = token_file.read_text(encoding="utf-8").strip() if token_file else None
    if token is None and config.remote_token is not None:
        token = config.remote_token.get_secret_value()
    if not token:
        raise CliError("no bearer token: give --token-file or set signer.remote_token", exit_code=2)
    passphrase = passphrase_file.read_text(encoding="utf-8").strip() if passphrase_file else config.passphrase
    try:
        material = load_key_material(
            key, cert_file=cert, passphrase=passphrase, allow_group_readable=allow_group_readable_key
        )
        server = ReferenceSigningServer(material, token, host=host, port=port)
    except SignerError as exc:
        raise _signer_error(exc) from None
    except ValueError as exc:
        raise CliError(str(exc), exit_code=2) from None
    typer.echo(f"reference signer listening on {server.url}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        err_console.print("stopped")


def register(app: typer.Typer) -> None:
    app.command("sign")(sign)
    app.command("verify")(verify_files)
    app.add_typer(remote_signer, name="remote-signer")
