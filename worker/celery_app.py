"""The Celery application: broker from settings (Redis in production, an embedded SQLite broker by default).

Reliability settings follow from "the ledger is the truth": late acks and reject-on-worker-lost so a killed
worker's message is redelivered, a visibility timeout longer than any retry countdown, prefetch 1 so a dead
worker holds at most one batch, and no result backend (results live in the ledger).
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.schedules import crontab

from worker.config import Settings, load_settings
from worker.logging import get_logger

log = get_logger(__name__)

DISCOVERY_QUEUE = "discovery"
SUBMISSION_QUEUE = "submission"
BACKFILL_QUEUE = "backfill"


def celery_config(settings: Settings) -> dict[str, Any]:
    delivery = settings.delivery
    broker_url = settings.broker_url
    transport_options: dict[str, Any] = {}
    if broker_url.startswith(("redis", "rediss")):
        # Redis redelivers an unacked message after the visibility timeout: it must outlast any countdown.
        transport_options = {"visibility_timeout": settings.broker.visibility_timeout_s, "socket_timeout": 10,
                             "socket_connect_timeout": 5, "retry_on_timeout": True}  # fmt: skip
    elif broker_url.startswith("sqla+sqlite"):
        # The embedded broker shares one SQLite file between processes: wait for its lock instead of failing.
        transport_options = {"connect_args": {"timeout": 30}}
    beat_schedule: dict[str, dict[str, Any]] = {
        "discover": {"task": "vneid.discover", "schedule": float(delivery.discovery_interval_s)},
        "dispatch-due": {"task": "vneid.dispatch_due", "schedule": 30.0},
        "sweep": {"task": "vneid.sweep", "schedule": float(delivery.sweep_interval_s)},
        "alerts": {"task": "vneid.check_alerts", "schedule": 300.0},
        "hubs": {"task": "vneid.deliver_hubs", "schedule": 60.0},
    }
    if delivery.evidence_retention_days is not None:
        # Nightly, local time (the app's timezone), away from the 01:30 backup and the 02:30 backfill.
        beat_schedule["evidence-purge"] = {
            "task": "vneid.purge_evidence",
            "schedule": crontab(hour=4, minute=0),
        }
    if settings.audit.anchors_enabled:
        # The chain's head, sent off the server (audit verify --anchors): daily by default.
        beat_schedule["audit-anchor"] = {
            "task": "vneid.publish_audit_anchor",
            "schedule": settings.audit.anchor_every_h * 3600.0,
        }
    return {
        "broker_url": broker_url,
        "broker_transport_options": transport_options,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_time_limit": 600,
        "task_soft_time_limit": 540,
        "task_default_queue": SUBMISSION_QUEUE,
        "task_routes": {
            "vneid.discover": {"queue": DISCOVERY_QUEUE},
            "vneid.sweep": {"queue": DISCOVERY_QUEUE},
            "vneid.dispatch_due": {"queue": DISCOVERY_QUEUE},
            "vneid.check_alerts": {"queue": DISCOVERY_QUEUE},
            "vneid.deliver_hubs": {"queue": DISCOVERY_QUEUE},
            "vneid.process_batch": {"queue": SUBMISSION_QUEUE},
            "vneid.purge_evidence": {"queue": DISCOVERY_QUEUE},
            "vneid.publish_audit_anchor": {"queue": DISCOVERY_QUEUE},
        },
        "beat_schedule": beat_schedule,
        "timezone": "Asia/Ho_Chi_Minh",
        "enable_utc": True,
    }


def queued_messages(app: Celery, queues: tuple[str, ...] = (SUBMISSION_QUEUE, BACKFILL_QUEUE)) -> int | None:
    """Messages waiting in the broker's batch queues, or ``None`` when the broker cannot say (then the
    dispatcher falls back to treating every long-waiting version as lost, which only costs duplicates)."""
    try:
        with app.connection_for_write() as connection, connection.channel() as channel:
            total = 0
            for name in queues:
                # Not passive: an empty Redis queue has no key, and a passive declare would call it missing.
                _, count, _ = channel.queue_declare(queue=name, durable=True, auto_delete=False)
                total += int(count)
            return total
    except Exception as exc:  # any broker error means "unknown": the dispatch itself must go on
        log.warning("broker queue depth unknown", error=type(exc).__name__)
        return None


def create_celery(settings: Settings | None = None) -> Celery:
    app = Celery("vneid_sync", include=["worker.tasks"])
    app.conf.update(celery_config(settings or load_settings()))
    return app


app = create_celery()
