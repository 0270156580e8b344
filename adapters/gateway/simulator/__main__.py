"""``python -m adapters.gateway.simulator``: serve the gateway simulator (used by tests as a child process).

``vneid-sync simulator serve`` is the same server with the worker's configuration (accounts from the
configured destinations); this entry point needs no configuration at all.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog

from adapters.gateway.simulator.config import Account, resolve_config
from adapters.gateway.simulator.serving import serve, server_tls_context

FAULT_OPTIONS = {
    "--fault-5xx": "http_5xx",
    "--fault-429": "http_429",
    "--fault-result-500": "result_500",
    "--fault-malformed": "malformed",
    "--fault-timeout": "timeout",
    "--fault-lost-response": "lost_response",
    "--fault-token-storm": "token_storm",
    "--fault-slow": "slow",
    "--timeout-s": "timeout_s",
    "--slow-s": "slow_s",
}


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m adapters.gateway.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0: a free port (announced on stdout)")
    parser.add_argument("--config", type=Path, help="simulator configuration (JSON or TOML)")
    parser.add_argument("--faults", type=Path, help="fault configuration (JSON or TOML)")
    parser.add_argument("--trust-store", type=Path, help="PEM CA bundle: verify signatures against it")
    parser.add_argument("--state", type=Path, help="directory of the SQLite record (default: in memory)")
    parser.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", type=Path, help="private key of --tls-cert (PEM)")
    parser.add_argument("--token-lifetime", type=float, help="token lifetime in seconds")
    parser.add_argument(
        "--account",
        action="append",
        default=[],
        help="USERNAME:PASSWORD:FACILITY (repeatable; default: demo)",
    )
    parser.add_argument("--seed", type=int, help="seed of the fault RNG")
    parser.add_argument("--max-faults", type=int, help="stop injecting faults after this many")
    for option, name in FAULT_OPTIONS.items():
        parser.add_argument(option, dest=name, type=float)
    return parser.parse_args(argv)


def parse_account(text: str) -> Account:
    username, password, facility = text.split(":", 2)
    return Account.with_password(username, password, facility)


def configure_simulator_logging() -> None:
    """JSON lines at INFO to stderr: stdout carries the listening announcement only. The simulator logs ids
    and outcomes, never a payload, so it needs none of the worker's redaction."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    structlog.configure(
        processors=[
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
    )


def main(argv: Sequence[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    configure_simulator_logging()
    overrides = {
        name: getattr(arguments, name)
        for name in (*FAULT_OPTIONS.values(), "seed", "max_faults")
        if getattr(arguments, name) is not None
    }
    config = resolve_config(
        config_file=arguments.config,
        faults_file=arguments.faults,
        trust_store=arguments.trust_store,
        token_lifetime_s=arguments.token_lifetime,
        accounts=tuple(parse_account(item) for item in arguments.account) or None,
        fault_overrides=overrides,
    )
    if (arguments.tls_cert is None) != (arguments.tls_key is None):
        raise SystemExit("--tls-cert and --tls-key go together")
    context = server_tls_context(arguments.tls_cert, arguments.tls_key) if arguments.tls_cert else None
    serve(config, host=arguments.host, port=arguments.port, state_dir=arguments.state, ssl_context=context)


if __name__ == "__main__":
    main()
