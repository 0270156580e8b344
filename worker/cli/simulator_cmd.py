"""`vneid-sync simulator`: the gateway simulator (for tests, demos and staging).

``serve`` runs a real HTTP server speaking the BHXH API (adapters.gateway.simulator); by default its accounts
are the configured destinations' (username, password, facility), so ``demo run`` works against it unchanged,
and signatures are verified against ``signer.trust_store`` when that is set. ``stats``, ``reset`` and
``faults`` steer a running simulator through its control API.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from adapters.gateway.simulator import SimulatorAdmin
from adapters.gateway.simulator.config import Account, load_faults, resolve_config
from adapters.gateway.simulator.faults import FaultConfig
from adapters.gateway.simulator.serving import serve, server_tls_context
from worker.cli.context import CliError, console, settings
from worker.config import Settings

group = typer.Typer(help="Gateway simulator (for tests, demos and staging).", no_args_is_help=True)

DEFAULT_URL = "http://127.0.0.1:8765"
_UrlOption = Annotated[str, typer.Option("--url", help="Base URL of a running simulator.")]


def _accounts_from_settings(config: Settings) -> tuple[Account, ...]:
    accounts: dict[str, Account] = {}
    for destination in config.destinations.values():
        facility = destination.facility_code or config.payload.facility_code
        account = Account.with_password(
            destination.username, destination.password.get_secret_value(), facility
        )
        if destination.province_code:
            account = Account(
                account.username, account.password_md5, facility, province_code=destination.province_code
            )
        accounts.setdefault(account.username, account)
    return tuple(accounts.values())


def _fault_overrides(**options: Any) -> dict[str, Any]:
    return {name: value for name, value in options.items() if value is not None}


@group.command("serve")
def serve_command(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to bind. Keep loopback: the control API is open.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one (announced on stdout).")] = 8765,
    faults: Annotated[
        Path | None,
        typer.Option("--faults", exists=True, dir_okay=False, help="Fault configuration (JSON/TOML)."),
    ] = None,
    sim_config: Annotated[
        Path | None,
        typer.Option(
            "--sim-config", exists=True, dir_okay=False, help="Full simulator configuration (JSON/TOML)."
        ),
    ] = None,
    trust_store: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="PEM CA bundle to verify signatures; default signer.trust_store.",
        ),
    ] = None,
    state: Annotated[
        Path | None, typer.Option(help="Directory of the SQLite record; default in memory.")
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="Serve HTTPS: certificate.")
    ] = (None),
    tls_key: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="Serve HTTPS: private key.")
    ] = None,
    token_lifetime: Annotated[
        float | None, typer.Option(help="Token lifetime in seconds (default 3600).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the fault RNG (reproducible faults).")] = None,
    max_faults: Annotated[int | None, typer.Option(help="Stop injecting faults after this many.")] = None,
    fault_5xx: Annotated[float | None, typer.Option(help="Rate of HTTP 5xx answers.")] = None,
    fault_429: Annotated[float | None, typer.Option(help="Rate of HTTP 429 answers.")] = None,
    fault_result_500: Annotated[float | None, typer.Option(help="Rate of maKetQua 500 answers.")] = None,
    fault_malformed: Annotated[float | None, typer.Option(help="Rate of non-JSON answers.")] = None,
    fault_timeout: Annotated[
        float | None, typer.Option(help="Rate of answers delayed past --timeout-s.")
    ] = None,
    fault_lost_response: Annotated[
        float | None, typer.Option(help="Rate of files stored but answered by a dropped connection.")
    ] = None,
    fault_token_storm: Annotated[
        float | None, typer.Option(help="Rate of 'revoke every token' events.")
    ] = None,
    fault_slow: Annotated[float | None, typer.Option(help="Rate of answers slowed by --slow-s.")] = None,
    timeout_s: Annotated[
        float | None, typer.Option(help="Delay of a timeout fault (seconds, ≤ 120).")
    ] = None,
    slow_s: Annotated[float | None, typer.Option(help="Delay of a slow answer (seconds, ≤ 120).")] = None,
) -> None:
    """Run the gateway simulator in the foreground until Ctrl-C / SIGTERM."""
    config = settings(ctx)
    if (tls_cert is None) != (tls_key is None):
        raise CliError("--tls-cert and --tls-key go together", exit_code=2)
    try:
        simulator_config = resolve_config(
            config_file=sim_config,
            faults_file=faults,
            trust_store=trust_store or config.signer.trust_store,
            token_lifetime_s=token_lifetime,
            accounts=None if sim_config is not None else _accounts_from_settings(config),
            fault_overrides=_fault_overrides(
                seed=seed,
                max_faults=max_faults,
                http_5xx=fault_5xx,
                http_429=fault_429,
                result_500=fault_result_500,
                malformed=fault_malformed,
                timeout=fault_timeout,
                lost_response=fault_lost_response,
                token_storm=fault_token_storm,
                slow=fault_slow,
                timeout_s=timeout_s,
                slow_s=slow_s,
            ),
        )
    except (ValueError, TypeError) as exc:
        raise CliError(f"invalid simulator configuration: {exc}", exit_code=2) from None
    context = server_tls_context(tls_cert, tls_key) if tls_cert is not None and tls_key is not None else None
    serve(simulator_config, host=host, port=port, state_dir=state, ssl_context=context)


def _admin(url: str) -> SimulatorAdmin:
    return SimulatorAdmin(url)


def _call(url: str, action: str) -> dict[str, Any]:
    try:
        with _admin(url) as admin:
            if action == "stats":
                return admin.stats()
            admin.reset()
            return {"ok": True}
    except httpx.HTTPError as exc:
        raise CliError(f"simulator at {url} not reachable: {type(exc).__name__}") from None


@group.command("stats")
def stats_command(url: _UrlOption = DEFAULT_URL) -> None:
    """Print the counters of a running simulator (accepted, duplicates, rejected per code, faults)."""
    console.print_json(json.dumps(_call(url, "stats")))


@group.command("reset")
def reset_command(url: _UrlOption = DEFAULT_URL) -> None:
    """Forget everything a running simulator received; faults back to its start configuration."""
    _call(url, "reset")
    console.print("simulator reset")


@group.command("faults")
def faults_command(
    file: Annotated[
        Path | None, typer.Argument(exists=True, dir_okay=False, help="Fault file (JSON/TOML).")
    ] = None,
    url: _UrlOption = DEFAULT_URL,
    clear: Annotated[bool, typer.Option("--clear", help="Switch every fault off.")] = False,
) -> None:
    """Show, replace (from FILE) or clear the fault configuration of a running simulator."""
    try:
        with _admin(url) as admin:
            if clear:
                result = admin.set_faults(FaultConfig())
            elif file is not None:
                result = admin.set_faults(load_faults(file))
            else:
                result = admin.faults()
    except ValueError as exc:
        raise CliError(f"invalid fault configuration: {exc}", exit_code=2) from None
    except httpx.HTTPError as exc:
        raise CliError(f"simulator at {url} not reachable: {type(exc).__name__}") from None
    console.print_json(json.dumps(result))


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="simulator")
