"""The worker process's own Prometheus metrics, served by ``start_worker_metrics_server``: what only the
process that did the work knows — each submission's outcome and latency (``PrometheusDeliveryObserver``, the
pipeline's delivery observer) and the token calls (``record_token_request``, the gateway clients' callback).

With Celery's prefork pool the tasks run in child processes, so these values are shared through
prometheus-client's multiprocess mode: ``enable_multiprocess(directory)`` must run in the worker's main
process before ``prometheus_client`` is first imported and before the pool forks — which is why this module
(and the other metrics modules) import ``prometheus_client`` inside functions, never at the top. Without it,
a prefork worker serves only its main process's numbers — which has no submissions — and
``start_worker_metrics_server`` logs a warning saying so; the ``solo`` and ``threads`` pools need no
multiprocess mode.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from schemas.ports import GatewayReceipt
from worker.config import Settings
from worker.logging import get_logger
from worker.monitoring.exposition import MetricsServer, code_label, serve

if TYPE_CHECKING:
    from prometheus_client import Counter, Histogram
    from prometheus_client.registry import CollectorRegistry

log = get_logger(__name__)

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Submission latency buckets (seconds): a send is ~0.1-2 s; the in-call retries can stretch it to a minute.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)


def enable_multiprocess(directory: Path) -> bool:
    """Turn on prometheus-client's multiprocess mode (prefork workers share their numbers through files in
    ``directory``). Call in the worker's main process, before the pool forks and before anything imports
    ``prometheus_client``; the directory is emptied (numbers of a previous run must not be added).
    Returns False, and changes nothing, when it is too late (``prometheus_client`` already imported)."""
    if "prometheus_client.values" in sys.modules:
        from prometheus_client import values  # noqa: PLC0415  # already imported: just look

        return bool(getattr(values.ValueClass, "_multiprocess", False))
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, mode=0o700)
    os.environ[MULTIPROCESS_ENV] = str(directory)
    return True


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROCESS_ENV))


@dataclass(frozen=True, slots=True)
class _Instruments:
    registry: CollectorRegistry
    submissions: Counter
    latency: Histogram
    tokens: Counter


@cache
def _instruments() -> _Instruments:
    """Created on first use, so that ``enable_multiprocess`` can still run before (see the module docstring)."""
    from prometheus_client import CollectorRegistry, Counter, Histogram  # noqa: PLC0415  # see the module docstring

    registry = CollectorRegistry(auto_describe=True)
    return _Instruments(
        registry=registry,
        submissions=Counter(
            "vneid_worker_submissions",
            "Gateway submissions made by this worker, by classified outcome and maKetQua.",
            ["destination", "outcome", "code"],
            registry=registry,
        ),
        latency=Histogram(
            "vneid_worker_submission_seconds",
            "Duration of one gateway submission (token, send and in-call retries), by outcome.",
            ["destination", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        tokens=Counter(
            "vneid_worker_token_requests",
            "Token calls made by this worker, by result (ok, or the failure class) and maKetQua.",
            ["destination", "result", "code"],
            registry=registry,
        ),
    )


class PrometheusDeliveryObserver:
    """The pipeline's ``DeliveryObserver`` (``worker.pipeline.observer``), wired by ``worker.bootstrap``: each
    submission counted by outcome and maKetQua, and its duration observed."""

    def submitted(self, destination: str, receipt: GatewayReceipt) -> None:
        metrics = _instruments()
        outcome = receipt.outcome.value
        metrics.submissions.labels(destination, outcome, code_label(receipt.ma_ket_qua)).inc()
        metrics.latency.labels(destination, outcome).observe(max(receipt.elapsed_ms / 1000, 0.0))


def record_token_request(destination: str, result: str, ma_ket_qua: str | None) -> None:
    """One token call: ``result`` is ``ok`` or the failure's outcome (``config``, ``transient`` …). The
    gateway clients' ``on_token_request`` callback, wired by ``worker.bootstrap``."""
    _instruments().tokens.labels(destination, str(result), code_label(ma_ket_qua)).inc()


def worker_registry() -> CollectorRegistry:
    """What the worker serves: every process's numbers in multiprocess mode, else this process's."""
    if not multiprocess_enabled():
        return _instruments().registry
    from prometheus_client import CollectorRegistry  # noqa: PLC0415  # see the module docstring
    from prometheus_client.multiprocess import MultiProcessCollector  # noqa: PLC0415  # idem

    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # prometheus-client leaves it unannotated
    return registry


def start_worker_metrics_server(
    settings: Settings, *, port: int | None = None, pool: str | None = None
) -> MetricsServer | None:
    """Serve the worker's own metrics on ``metrics.host:metrics.port`` (call once, in the main process).

    Returns None when metrics are disabled or the port is taken (logged; the worker keeps running).
    ``pool`` is Celery's pool name, used only to warn when a prefork worker lacks multiprocess mode.
    """
    if not settings.metrics.enabled:
        return None
    if pool in (None, "prefork") and not multiprocess_enabled():
        log.warning(
            "metrics.per_process_only",
            hint="prefork children's submissions are not visible: call enable_multiprocess() before the pool "
            "starts, or set PROMETHEUS_MULTIPROC_DIR",
        )
    _instruments()  # create the families up front so a scrape before the first submission shows them
    chosen = settings.metrics.port if port is None else port
    started = time.monotonic()
    try:
        server = serve(worker_registry(), settings.metrics.host, chosen)
    except OSError as exc:
        log.warning("metrics.server_not_started", host=settings.metrics.host, port=chosen, error=str(exc))
        return None
    log.info(
        "metrics.server_started",
        url=server.url,
        multiprocess=multiprocess_enabled(),
        elapsed_ms=round((time.monotonic() - started) * 1000, 1),
    )
    return server
