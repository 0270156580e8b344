"""A stopped anchor schedule is noticed: ``audit_anchor_stale`` fires once when no audit anchor has reached an
``[audit]`` recipient for ``audit.anchor_stale_after``, stays quiet while that lasts, resolves once with the
next anchor, and never fires while anchors are off. The same age in ``health`` and in the exporter's gauge.
Real ledgers, real webhook receivers on 127.0.0.1; times are given to the code, never waited for."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from adapters.signers.testpki import generate_ca, issue_signing_certificate
from tests.unit.monitoring.support import EVIDENCE_SETTINGS, WebhookReceiver, monitor_cli, webhook_receiver
from worker.config import Settings, SignerSettings, load_settings
from worker.ledger import audit
from worker.ledger import repository as repo
from worker.ledger.audit import AuditEvent
from worker.ledger.schema import alert_state
from worker.monitoring import (
    alert_machine,
    anchor_age,
    audit_anchors,
    check_result,
    conditions,
    health,
    notification,
)
from worker.monitoring.certificate import CertificateWatch
from worker.monitoring.check_result import Status
from worker.monitoring.ledger_metrics import ledger_registry

#: The scenarios' clock, a day ahead of the real one: the audit rows get the real time when appended, so they
#: are always older than T0, however long the suite takes.
T0 = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
STALE = "audit_anchor_stale"


def hours(value: float) -> datetime:
    return T0 + timedelta(hours=value)


@pytest.fixture(scope="module")
def certificate() -> x509.Certificate:
    """A valid signing certificate: only the anchors can make an alert fire here."""
    return issue_signing_certificate(
        generate_ca(key_size=2048), not_before=T0 - timedelta(days=2), not_after=T0 + timedelta(days=365)
    ).certificate


def events(engine: Engine, count: int = 3) -> None:
    with engine.begin() as conn:
        audit.append(conn, [AuditEvent("attempt", ma_lk=f"79999-{i}", version_id=i) for i in range(count)])


def anchor_settings(alerts_url: str, anchors_url: str | None, **audit_settings: object) -> Settings:
    section: dict[str, object] = {"anchor_webhook_url": anchors_url} if anchors_url else {}
    return load_settings(
        alerts={"webhook_url": alerts_url},
        audit={**section, **audit_settings},
        evidence=EVIDENCE_SETTINGS,
    )


@dataclass
class Scenario:
    engine: Engine
    settings: Settings
    alerts_hook: WebhookReceiver
    anchors: WebhookReceiver
    certificate: x509.Certificate

    def check(self, at: datetime) -> list[tuple[str, str]]:
        """One alert evaluation: the transitions it notified, as (condition, status)."""
        transitions = alert_machine.evaluate_and_notify(
            self.engine,
            self.settings,
            notification.notifiers_from_settings(self.settings),
            at,
            certificate_reader=lambda: self.certificate,
        )
        return [(t.condition, t.status) for t in transitions]

    def publish(self, at: datetime) -> audit_anchors.AnchorDelivery | None:
        return audit_anchors.publish_audit_anchor(self.engine, self.settings, at)

    def stored_stale_detail(self) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(alert_state.c.detail).where(alert_state.c.condition == STALE)
            ).scalar_one_or_none()


@contextmanager
def scenario(engine: Engine, certificate: x509.Certificate, **audit_settings: object) -> Iterator[Scenario]:
    with webhook_receiver() as alerts_hook, webhook_receiver() as anchors:
        settings = anchor_settings(alerts_hook.url, anchors.url, **audit_settings)
        yield Scenario(engine, settings, alerts_hook, anchors, certificate)


def run_stale_scenario(engine: Engine, certificate: x509.Certificate) -> None:
    """Fires once past the limit, quiet while stale (its stored state untouched), resolves once with the
    next anchor that gets out. Shared with the PostgreSQL test."""
    events(engine)
    with scenario(engine, certificate) as s:
        delivery = s.publish(hours(0))
        assert delivery is not None
        assert delivery.sent == ("webhook",)
        assert s.check(hours(1)) == []
        assert s.check(hours(25.9)) == []  # within a period plus 2 hours (the default limit: 26 h)
        assert s.check(hours(26.1)) == [(STALE, "firing")]
        stored = s.stored_stale_detail()
        for later in (26.2, 30, 50, 200):  # the beat is still down: no flood, no rewrite of the stored state
            assert s.check(hours(later)) == []
        assert s.stored_stale_detail() == stored
        events(engine, 1)
        fresh = s.publish(hours(201))  # the beat is back: the anchor run clears it itself
        assert fresh is not None
        assert fresh.sent == ("webhook",)
        assert s.check(hours(202)) == []
        assert s.check(hours(226)) == []
    stale = [status for condition, status in s.alerts_hook.statuses() if condition == STALE]
    assert stale == ["firing", "resolved"]
    assert s.alerts_hook.statuses() == [(STALE, "firing"), (STALE, "resolved")], "nothing else fired"
    [fired, resolved] = s.alerts_hook.messages
    assert "no audit anchor has reached an [audit] recipient since" in fired.body["summary"]
    assert "is the scheduler (`vneid-sync beat`) running?" in fired.body["summary"]
    assert fired.body["detail"]["last_anchor_at"] == hours(0).isoformat()
    assert fired.body["detail"]["limit_h"] == 26
    assert resolved.body["detail"]["last_anchor_at"] == hours(201).isoformat()
    assert [m.body["status"] for m in s.anchors.messages] == ["info", "info"]


def test_stale_anchor_fires_once_stays_quiet_and_resolves_once(
    sqlite_ledger: Engine, certificate: x509.Certificate
) -> None:
    run_stale_scenario(sqlite_ledger, certificate)


def test_the_limit_is_a_setting(sqlite_ledger: Engine, certificate: x509.Certificate) -> None:
    events(sqlite_ledger)
    with scenario(sqlite_ledger, certificate, anchor_every_h=1, anchor_stale_after_h=3) as s:
        s.publish(hours(0))
        assert s.check(hours(2.9)) == []
        assert s.check(hours(3.1)) == [(STALE, "firing")]
    with scenario(sqlite_ledger, certificate, anchor_every_h=1) as s:  # not set: a period plus 2 hours
        assert s.settings.audit.anchor_stale_after == timedelta(hours=3)
    with pytest.raises(
        ValueError, match=r"anchor_stale_after_h \(12\) must be more than .*anchor_every_h \(24\)"
    ):
        load_settings(audit={"anchor_webhook_url": "http://127.0.0.1:9/", "anchor_stale_after_h": 12})


def test_anchors_that_all_fail_go_stale_too(sqlite_ledger: Engine, certificate: x509.Certificate) -> None:
    """A recipient that refuses every anchor: ``audit_anchor_unsent`` at once, the staleness after the limit
    (nothing has left the server since the last anchor that got out)."""
    events(sqlite_ledger)
    with scenario(sqlite_ledger, certificate) as s:
        s.publish(hours(0))
        s.anchors.status = 500
        failed = s.publish(hours(24))
        assert failed is not None
        assert failed.sent == ()
        assert failed.failed
        assert s.check(hours(25)) == []
        assert s.check(hours(27)) == [(STALE, "firing")]
        s.anchors.status = 204
        s.publish(hours(28))
    assert s.alerts_hook.statuses() == [
        ("audit_anchor_unsent", "firing"),
        (STALE, "firing"),
        ("audit_anchor_unsent", "resolved"),
        (STALE, "resolved"),
    ]


def test_a_scheduler_that_never_sent_one_is_noticed_a_limit_after_anchors_were_turned_on(
    sqlite_ledger: Engine, certificate: x509.Certificate
) -> None:
    events(sqlite_ledger)
    with scenario(sqlite_ledger, certificate) as s:
        assert s.check(hours(1)) == []  # the first check with anchors on: one is due from now
        with sqlite_ledger.connect() as conn:
            _, record = repo.read_checkpoint(conn, anchor_age.ANCHOR_CHECKPOINT)
        assert record == {"watched_since": hours(1).isoformat()}
        assert s.check(hours(26.9)) == []
        assert s.check(hours(27.1)) == [(STALE, "firing")]
        assert "yet, though one is due since" in s.alerts_hook.messages[0].body["summary"]
        s.publish(hours(28))
        assert s.check(hours(29)) == []
    assert s.alerts_hook.statuses() == [(STALE, "firing"), (STALE, "resolved")]


def test_an_empty_chain_has_nothing_to_anchor(sqlite_ledger: Engine, certificate: x509.Certificate) -> None:
    with scenario(sqlite_ledger, certificate) as s:
        assert s.check(hours(0)) == []
        assert s.publish(hours(24)) == audit_anchors.AnchorDelivery(None)
        assert s.check(hours(24 * 30)) == []
    assert s.alerts_hook.messages == []


def test_never_fires_while_anchors_are_off(sqlite_ledger: Engine, certificate: x509.Certificate) -> None:
    events(sqlite_ledger)
    with webhook_receiver() as alerts_hook:
        off = anchor_settings(alerts_hook.url, None)
        assert not off.audit.anchors_enabled
        s = Scenario(sqlite_ledger, off, alerts_hook, alerts_hook, certificate)
        for later in (0, 27, 24 * 200):
            assert s.check(hours(later)) == []
        assert s.publish(hours(1)) is None
        with sqlite_ledger.connect() as conn:
            assert repo.read_checkpoint(conn, anchor_age.ANCHOR_CHECKPOINT) == (None, None), (
                "nothing recorded"
            )
        observation = conditions.observe_anchor_age(sqlite_ledger, off, hours(24 * 200))
        assert (observation.firing, observation.summary) == (
            False,
            "audit anchors are off ([audit] names no recipient)",
        )

        with scenario(sqlite_ledger, certificate) as on:  # anchors were on once, long ago…
            on.publish(hours(0))
        assert s.check(hours(24 * 200)) == []  # …and are off now: an old anchor is no alert
    assert alerts_hook.messages == []


# ------------------------------------------------------------------------------- health and gauge


def test_health_shows_the_age_and_warns_when_stale(
    sqlite_ledger: Engine, certificate: x509.Certificate
) -> None:
    events(sqlite_ledger)
    with scenario(sqlite_ledger, certificate) as s:
        assert health.check_audit_anchor(load_settings(), now=hours(0), engine=sqlite_ledger) is None  # off
        before = health.check_audit_anchor(s.settings, now=hours(0), engine=sqlite_ledger)
        assert before == check_result.CheckResult(
            "audit anchor",
            Status.OK,
            "no anchor sent yet (nothing to anchor, or the alert checks have not run yet), limit 26 h",
        )
        delivery = s.publish(hours(0))
        assert delivery is not None
        assert delivery.anchor is not None
        event_id = delivery.anchor.event_id
        fresh = health.check_audit_anchor(s.settings, now=hours(3.5), engine=sqlite_ledger)
        assert fresh is not None
        assert (fresh.status, fresh.detail) == (
            Status.OK,
            f"last anchor 3.5 h ago (event {event_id}, {hours(0):%Y-%m-%d %H:%M} UTC), limit 26 h",
        )
        stale = health.check_audit_anchor(s.settings, now=hours(30), engine=sqlite_ledger)
        assert stale is not None
        assert stale.status is Status.WARN
        assert stale.detail.startswith(f"last anchor 30.0 h ago (event {event_id}")
        assert "is the scheduler (`vneid-sync beat`) running" in stale.detail


def test_health_command_prints_the_anchor_line(
    sqlite_ledger: Engine, certificate: x509.Certificate, tmp_path: Path
) -> None:
    events(sqlite_ledger)
    with scenario(sqlite_ledger, certificate) as s:
        s.publish(datetime.now(UTC))  # the command's clock is the real one
        env = {
            "VNEID_DATA_DIR": str(tmp_path),
            "VNEID_LEDGER__DATABASE_URL": str(sqlite_ledger.url),
            "VNEID_AUDIT__ANCHOR_WEBHOOK_URL": s.anchors.url,
            "COLUMNS": "200",
        }
        skip = [
            arg
            for name in ("his", "broker", "gateway", "certificate", "evidence")
            for arg in ("--skip", name)
        ]
        result = CliRunner().invoke(monitor_cli(), ["health", *skip], env=env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert [line.split()[:3] for line in lines] == [["OK", "ledger", "sqlite:"], ["OK", "audit", "anchor"]]
    assert re.search(r"last anchor \d+\.\d h ago \(event 3, ", lines[1]), lines[1]


def test_gauge_reports_the_age_while_anchors_are_on(
    sqlite_ledger: Engine, certificate: x509.Certificate
) -> None:
    events(sqlite_ledger)
    with scenario(sqlite_ledger, certificate) as s:
        moment = [hours(0)]

        def registry(settings: Settings) -> float | None:
            collector = ledger_registry(
                sqlite_ledger,
                settings,
                certificates=CertificateWatch(SignerSettings()),
                clock=lambda: moment[0],
            )
            return collector.get_sample_value("vneid_audit_anchor_age_seconds")

        assert registry(s.settings) is None  # no anchor due yet: no sample
        s.publish(hours(0))
        moment[0] = hours(27)
        assert registry(s.settings) == 27 * 3600
        assert registry(load_settings(evidence=EVIDENCE_SETTINGS)) is None  # anchors off: no gauge
        with sqlite_ledger.connect() as conn:
            _, record = repo.read_checkpoint(conn, anchor_age.ANCHOR_CHECKPOINT)
        assert record is not None
        assert record["sent"] == ["webhook"]
