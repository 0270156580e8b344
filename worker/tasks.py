"""Celery tasks: thin wrappers over the pipeline services. Ids in, state re-read from the ledger.

``LedgerTask`` owns what every task needs: the per-process pipeline (ledger engine, adapters), retries on a
ledger outage, and a log context bound with the task id. Task bodies only call a service and enqueue.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import structlog
from celery import Task
from celery.signals import worker_init, worker_process_init
from sqlalchemy.exc import DBAPIError

from schemas.ports import SourceUnavailableError
from worker.bootstrap import build_pipeline
from worker.celery_app import app, queued_messages
from worker.config import load_settings
from worker.ledger import evidence_store
from worker.ledger import repository as repo
from worker.ledger.db import utcnow
from worker.logging import configure_logging, get_logger
from worker.monitoring import audit_anchors
from worker.monitoring.alert_machine import evaluate_and_notify
from worker.monitoring.notification import notifiers_from_settings
from worker.monitoring.worker_metrics import start_worker_metrics_server
from worker.pipeline import delivery, discovery, hubs
from worker.pipeline.context import Pipeline
from worker.single_instance import AlreadyRunningError, single_instance

log = get_logger(__name__)
_pipeline: Pipeline | None = None


def current_pipeline() -> Pipeline:
    global _pipeline  # noqa: PLW0603  # one pipeline per worker process, created after fork
    if _pipeline is None:
        settings = load_settings()
        configure_logging(settings.logging.level, settings.logging.format)
        _pipeline = build_pipeline(settings)
    return _pipeline


@worker_process_init.connect
def _fresh_pipeline_after_fork(**_: Any) -> None:
    """Connections must not be shared across a fork: each child builds its own pipeline lazily."""
    global _pipeline  # noqa: PLW0603  # see current_pipeline
    _pipeline = None


_metrics_pool: list[str] = []


def serve_worker_metrics_on_start(pool: str) -> None:
    """Ask the worker's main process to serve its metrics once it starts (``metrics.worker_port``)."""
    _metrics_pool[:] = [pool]


@worker_init.connect
def _start_metrics_server(**_: Any) -> None:
    if not _metrics_pool:
        return
    settings = load_settings()
    if settings.metrics.worker_port:
        start_worker_metrics_server(settings, port=settings.metrics.worker_port, pool=_metrics_pool[0])


class LedgerTask(Task):  # type: ignore[misc]  # Celery's Task is untyped
    acks_late = True
    reject_on_worker_lost = True
    ignore_result = True
    # A ledger outage (PostgreSQL restart) is transient: retry the task; the ledger keeps the state.
    autoretry_for = (DBAPIError, ConnectionError, SourceUnavailableError)
    retry_backoff = 2
    retry_backoff_max = 120
    retry_jitter = True
    max_retries = 50

    @property
    def pipeline(self) -> Pipeline:
        return current_pipeline()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        structlog.contextvars.bind_contextvars(task_id=self.request.id, task=self.name)
        try:
            return super().__call__(*args, **kwargs)
        finally:
            structlog.contextvars.clear_contextvars()


def enqueue_batches(
    pipeline: Pipeline, version_ids: list[int], *, queue: str | None = None, pace_s: float = 0.0
) -> int:
    """Mark versions enqueued, then send one message per batch (the dispatcher covers a lost send).

    ``queue``: where the messages go (default: the task's route, the submission queue). ``pace_s``: seconds
    to wait per version sent, so a long backfill hands work over at a steady rate."""
    if not version_ids:
        return 0
    with pipeline.engine.begin() as conn:
        repo.mark_enqueued(conn, version_ids)
    batches = list(discovery.chunked(version_ids, pipeline.settings.delivery.batch_size))
    for batch in batches:
        if queue is None:
            process_batch.delay(batch)
        else:
            process_batch.apply_async((batch,), queue=queue)
        if pace_s:
            time.sleep(pace_s * len(batch))
    return len(batches)


class _PageEnqueuer:
    """``on_opened`` of discovery and sweep: each committed page's versions go to the workers at once."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.batches = 0

    def __call__(self, version_ids: list[int]) -> None:
        self.batches += enqueue_batches(self.pipeline, version_ids)


@app.task(base=LedgerTask, bind=True, name="vneid.process_batch")
def process_batch(self: LedgerTask, version_ids: list[int]) -> dict[str, int]:
    result = delivery.process_versions(self.pipeline, version_ids, owner=self.request.id or "local")
    if result.retry_ids and result.retry_at is not None:
        with self.pipeline.engine.begin() as conn:
            repo.mark_enqueued(conn, result.retry_ids, at=result.retry_at)
        countdown = max((result.retry_at - utcnow()).total_seconds(), 0.0)
        process_batch.apply_async((result.retry_ids,), countdown=countdown)
    summary = {key: value for key, value in vars(result).items() if isinstance(value, int)}
    log.info("batch processed", **summary)
    return summary


#: A discovery task stops at a page boundary after this share of the soft time limit and sends its own
#: continuation (a first discovery of 1M visits took 15 minutes in the scale run; the limit is 9).
DISCOVERY_BUDGET_SHARE = 0.8


@app.task(base=LedgerTask, bind=True, name="vneid.discover")
def discover(self: LedgerTask) -> dict[str, int]:
    pipeline = self.pipeline
    enqueue = _PageEnqueuer(pipeline)
    budget = (self.soft_time_limit or app.conf.task_soft_time_limit or 540) * DISCOVERY_BUDGET_SHARE
    try:
        # One discovery at a time: the beat's next tick while a long one runs would read the same pages again.
        with single_instance(pipeline.engine, "discovery", pipeline.settings.data_dir):
            found = discovery.discover(pipeline, on_opened=enqueue, budget_s=budget)
    except AlreadyRunningError:
        log.info("discovery already running: skipped")
        return {"seen": 0, "opened": 0, "batches": 0, "skipped": 1}
    if not found.complete:
        discover.apply_async()  # the rest, from the watermark the committed pages advanced
    return {
        "seen": found.seen,
        "opened": found.opened,
        "batches": enqueue.batches,
        "continued": int(not found.complete),
    }


@app.task(base=LedgerTask, bind=True, name="vneid.sweep")
def sweep(self: LedgerTask, days: int | None = None) -> dict[str, int]:
    end = utcnow() + timedelta(minutes=1)
    start = end - timedelta(days=days or self.pipeline.settings.delivery.sweep_days)
    enqueue = _PageEnqueuer(self.pipeline)
    found = discovery.sweep(self.pipeline, start, end, on_opened=enqueue)
    return {"seen": found.seen, "opened": found.opened, "hidden": found.hidden, "batches": enqueue.batches}


@app.task(base=LedgerTask, bind=True, name="vneid.dispatch_due")
def dispatch_due(self: LedgerTask) -> dict[str, int]:
    batches = discovery.due_batches(self.pipeline, queued_messages=queued_messages(app))
    for batch in batches:
        process_batch.delay(batch)
    return {"batches": len(batches), "versions": sum(len(batch) for batch in batches)}


@app.task(base=LedgerTask, bind=True, name="vneid.check_alerts")
def check_alerts(self: LedgerTask) -> dict[str, int]:
    """Fire or clear alert conditions (once per change; state in the ledger)."""
    pipeline = self.pipeline
    transitions = evaluate_and_notify(
        pipeline.engine,
        pipeline.settings,
        notifiers_from_settings(pipeline.settings),
        utcnow(),
        source=pipeline.source(),
    )
    return {"transitions": len(transitions)}


@app.task(base=LedgerTask, bind=True, name="vneid.deliver_hubs")
def deliver_hubs(self: LedgerTask) -> dict[str, int]:
    """Send what the primary destination accepted to the extra destinations (provincial hubs)."""
    return vars(hubs.deliver_due(self.pipeline))


@app.task(base=LedgerTask, bind=True, name="vneid.purge_evidence")
def purge_evidence(self: LedgerTask) -> dict[str, int]:
    """Retention: clear the evidence of accepted versions whose visit is older than the retention period."""
    days = self.pipeline.settings.delivery.evidence_retention_days
    if days is None:
        return {"purged": 0, "remaining": 0}
    with self.pipeline.engine.begin() as conn:
        result = evidence_store.purge_expired(conn, retention_days=days, now=utcnow())
    log.info("evidence purged", purged=result.purged, remaining=result.remaining, retention_days=days)
    return {"purged": result.purged, "remaining": result.remaining}


@app.task(base=LedgerTask, bind=True, name="vneid.publish_audit_anchor")
def publish_audit_anchor(self: LedgerTask) -> dict[str, int]:
    """Send the audit chain's head to the ``[audit]`` recipients; nothing when anchors are off. A failed send
    is logged and alerted by the service, never retried here (the next run sends a newer head)."""
    pipeline = self.pipeline
    delivery = audit_anchors.publish_audit_anchor(pipeline.engine, pipeline.settings, utcnow())
    if delivery is None or delivery.anchor is None:
        return {"event_id": 0, "sent": 0, "failed": 0}
    return {"event_id": delivery.anchor.event_id, "sent": len(delivery.sent), "failed": len(delivery.failed)}
