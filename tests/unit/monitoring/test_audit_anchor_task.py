"""The scheduled audit anchor: the beat task sends the chain's head to the ``[audit]`` recipients (a real
webhook receiver and SMTP session on 127.0.0.1), alerts once through ``[alerts]`` when it cannot, and does
nothing when no anchor recipient is configured."""

from __future__ import annotations

import email
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from tests.unit.monitoring.support import EVIDENCE_SETTINGS, smtp_sink, webhook_receiver
from worker import tasks
from worker.celery_app import celery_config
from worker.config import load_settings
from worker.ledger import audit
from worker.ledger.audit import AuditEvent
from worker.monitoring import alert_machine, audit_anchors

NOW = datetime(2026, 3, 20, 3, 0, tzinfo=UTC)


def _events(engine: Engine, count: int) -> None:
    with engine.begin() as conn:
        audit.append(conn, [AuditEvent("attempt", ma_lk=f"79999-{i}", version_id=i) for i in range(count)])


@pytest.fixture
def task_env(sqlite_ledger: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The worker's own settings come from the environment: point them at this test's ledger, and give the task
    a pipeline built from them (as a worker process would), disposed afterwards."""
    for key in [key for key in os.environ if key.startswith("VNEID_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("VNEID_LEDGER__DATABASE_URL", sqlite_ledger.url.render_as_string(hide_password=False))
    monkeypatch.setenv("VNEID_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VNEID_EVIDENCE__KEY", EVIDENCE_SETTINGS["key"])
    monkeypatch.setattr(tasks, "_pipeline", None)
    yield sqlite_ledger
    if tasks._pipeline is not None:
        tasks._pipeline.engine.dispose()


def test_the_beat_task_posts_the_chain_head_to_the_anchor_webhook(
    task_env: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _events(task_env, 5)
    with webhook_receiver() as anchors, webhook_receiver() as alerts_hook:
        monkeypatch.setenv("VNEID_AUDIT__ANCHOR_WEBHOOK_URL", anchors.url)
        monkeypatch.setenv("VNEID_AUDIT__ANCHOR_WEBHOOK_TOKEN", "anchor-secret")
        monkeypatch.setenv("VNEID_ALERTS__WEBHOOK_URL", alerts_hook.url)
        monkeypatch.setenv("VNEID_ALERTS__WEBHOOK_TOKEN", "alerts-secret")
        result = tasks.publish_audit_anchor.apply().get()

    with task_env.connect() as conn:
        head = audit.chain_head(conn, facility_code="79999", software=audit.software(), at=NOW)
    assert head is not None
    assert result == {"event_id": head.event_id, "sent": 1, "failed": 0}
    [message] = anchors.messages
    assert message.authorization == "Bearer anchor-secret", "the anchor webhook's own token, not the alerts'"
    assert message.body["condition"] == "audit_anchor"
    assert message.body["status"] == "info"
    assert message.body["facility_code"] == "79999"
    anchor = audit.parse_anchor(json.dumps(message.body["detail"]))
    assert (anchor.event_id, anchor.row_hash, anchor.events) == (head.event_id, head.row_hash, 5)
    with task_env.connect() as conn:
        assert audit.check_anchors(conn, [(1, anchor)]) == ()
    assert alerts_hook.messages == [], "a delivered anchor raises no alert"


def test_no_anchor_setting_means_the_task_does_nothing(
    task_env: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _events(task_env, 2)
    with webhook_receiver() as alerts_hook:
        monkeypatch.setenv("VNEID_ALERTS__WEBHOOK_URL", alerts_hook.url)  # alerts on: not an anchor recipient
        assert tasks.publish_audit_anchor.apply().get() == {"event_id": 0, "sent": 0, "failed": 0}
    assert alerts_hook.messages == []
    assert "audit-anchor" not in celery_config(load_settings())["beat_schedule"]


def test_the_anchor_is_scheduled_on_the_discovery_queue_only_when_configured() -> None:
    config = celery_config(load_settings(audit={"anchor_email_to": ["giamdoc@benhvien.local"]}))
    entry = config["beat_schedule"]["audit-anchor"]
    assert entry["task"] == "vneid.publish_audit_anchor"
    assert entry["schedule"] == 24 * 3600.0
    assert config["task_routes"]["vneid.publish_audit_anchor"] == {"queue": "discovery"}
    hourly = celery_config(
        load_settings(audit={"anchor_webhook_url": "http://127.0.0.1:9/x", "anchor_every_h": 1})
    )
    assert hourly["beat_schedule"]["audit-anchor"]["schedule"] == 3600.0
    assert "vneid.publish_audit_anchor" in tasks.app.tasks


def test_a_failed_anchor_is_alerted_once_and_resolved_when_one_gets_through(sqlite_ledger: Engine) -> None:
    _events(sqlite_ledger, 3)
    with webhook_receiver() as anchors, webhook_receiver() as alerts_hook:
        cfg = load_settings(
            audit={"anchor_webhook_url": anchors.url},
            alerts={"webhook_url": alerts_hook.url},
            evidence=EVIDENCE_SETTINGS,
        )
        anchors.status = 500  # the receiving system is down
        for hours in (0, 24):
            delivery = audit_anchors.publish_audit_anchor(sqlite_ledger, cfg, NOW + timedelta(hours=hours))
            assert delivery is not None
            assert delivery.sent == ()
            assert delivery.failed == ("webhook: HTTP 500",)
        assert alerts_hook.statuses() == [("audit_anchor_unsent", "firing")], "once, not every day"
        assert "webhook: HTTP 500" in alerts_hook.messages[0].body["summary"]
        assert [f.condition for f in alert_machine.firing_conditions(sqlite_ledger)] == [
            "audit_anchor_unsent"
        ]

        anchors.status = 204
        delivery = audit_anchors.publish_audit_anchor(sqlite_ledger, cfg, NOW + timedelta(hours=48))
        assert delivery is not None
        assert delivery.sent == ("webhook",)
    assert alerts_hook.statuses() == [("audit_anchor_unsent", "firing"), ("audit_anchor_unsent", "resolved")]
    assert len(anchors.messages) == 1
    assert alert_machine.firing_conditions(sqlite_ledger) == []


def test_the_anchor_email_carries_the_line_to_keep(sqlite_ledger: Engine) -> None:
    _events(sqlite_ledger, 4)
    with smtp_sink(None) as sink:
        cfg = load_settings(
            audit={"anchor_email_to": ["giamdoc@benhvien.local"]},
            alerts={
                "smtp_host": sink.host,
                "smtp_port": sink.port,
                "email_from": "vneid-sync@benhvien.local",
                "email_to": ["cntt@benhvien.local"],
            },
            evidence=EVIDENCE_SETTINGS,
        )
        delivery = audit_anchors.publish_audit_anchor(sqlite_ledger, cfg, NOW)
    assert delivery is not None
    assert delivery.anchor is not None
    assert delivery.sent == ("email",)
    [session] = sink.delivered
    assert session.recipients == ["giamdoc@benhvien.local"], "the anchor recipient, not the alerts'"
    parsed: Message = email.message_from_bytes(session.data)
    assert "INFO: audit_anchor" in str(parsed["Subject"])
    body = str(parsed.get_payload(decode=True), "utf-8")
    assert delivery.anchor.line() in body.splitlines(), "one line to paste into the anchors file"


def test_an_anchor_email_without_an_smtp_server_fails_and_alerts(sqlite_ledger: Engine) -> None:
    _events(sqlite_ledger, 1)
    with webhook_receiver() as alerts_hook:
        cfg = load_settings(
            audit={"anchor_email_to": ["giamdoc@benhvien.local"]},
            alerts={"webhook_url": alerts_hook.url},
            evidence=EVIDENCE_SETTINGS,
        )
        delivery = audit_anchors.publish_audit_anchor(sqlite_ledger, cfg, NOW)
    assert delivery is not None
    assert delivery.failed == ("email: alerts.smtp_host and alerts.email_from are not set",)
    assert alerts_hook.statuses() == [("audit_anchor_unsent", "firing")]


def test_an_empty_chain_sends_nothing(sqlite_ledger: Engine) -> None:
    with webhook_receiver() as anchors:
        cfg = load_settings(audit={"anchor_webhook_url": anchors.url}, evidence=EVIDENCE_SETTINGS)
        delivery = audit_anchors.publish_audit_anchor(sqlite_ledger, cfg, NOW)
    assert delivery == audit_anchors.AnchorDelivery(None)
    assert anchors.messages == []
