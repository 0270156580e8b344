"""Alerts: exactly one "firing" and one "resolved" message per condition across repeated evaluations
(issue 7's acceptance criterion), delivered to a real webhook receiver and a real SMTP session on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from adapters.signers.testpki import generate_ca, issue_signing_certificate
from schemas.domain.values import VIETNAM_TZ
from tests.unit.monitoring.support import (
    EVIDENCE_SETTINGS,
    attempt,
    localhost_tls,
    smtp_sink,
    visit_in_state,
    webhook_receiver,
)
from worker.config import DeadlineSettings, DestinationSettings, Settings, load_settings
from worker.ledger import queries
from worker.ledger import repository as repo
from worker.ledger.schema import alert_state
from worker.ledger.states import State
from worker.monitoring import alert_machine, alert_model, conditions, notification
from worker.reporting.deadlines import DeadlineCalendar

NOW = datetime(2026, 3, 20, 10, 0, tzinfo=VIETNAM_TZ)  # a Friday
FIRED = {
    "claim_deadline_breached",
    "dead_encounters",
    "destination_stopped:bhxh",
    "certificate_expiring",
}


def local(day: str, hour: int = 9) -> datetime:
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00+07:00")


@pytest.fixture(scope="module")
def certificates() -> dict[str, x509.Certificate]:
    ca = generate_ca(key_size=2048)
    issued = {
        "expiring": issue_signing_certificate(
            ca, not_before=NOW - timedelta(days=300), not_after=NOW + timedelta(days=5)
        ),
        "renewed": issue_signing_certificate(
            ca, not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=365)
        ),
        "expired": issue_signing_certificate(
            ca, not_before=NOW - timedelta(days=400), not_after=NOW - timedelta(days=2)
        ),
    }
    return {name: item.certificate for name, item in issued.items()}


def alert_settings(webhook_url: str | None = None) -> Settings:
    return load_settings(
        destinations={"bhxh": DestinationSettings(), "hub": DestinationSettings(primary=False)},
        alerts={"webhook_url": webhook_url, "webhook_token": "hook-secret"} if webhook_url else {},
        evidence=EVIDENCE_SETTINGS,
    )


def test_each_condition_fires_once_and_resolves_once(
    sqlite_ledger: Engine, certificates: dict[str, x509.Certificate]
) -> None:
    engine = sqlite_ledger
    late = visit_in_state(engine, "LATE", local("2026-03-02"), State.REJECTED)  # past the 7-working-day limit
    dead = visit_in_state(engine, "DEAD1", local("2026-03-19"), State.DEAD)  # recent, but out of retries
    visit_in_state(engine, "NEW", local("2026-03-19"), State.DISCOVERED)  # recent: no alert
    visit_in_state(
        engine, "OLD-HIDDEN", local("2026-03-01"), State.HIDDEN
    )  # not completed any more: no alert
    with engine.begin() as conn:
        repo.stop_destination(conn, "bhxh", "config:402")

    with webhook_receiver() as receiver:
        cfg = alert_settings(receiver.url)
        notifiers = notification.notifiers_from_settings(cfg)
        expiring = lambda: certificates["expiring"]  # noqa: E731  # a reader returning a fixed certificate

        first = alert_machine.evaluate_and_notify(engine, cfg, notifiers, NOW, certificate_reader=expiring)
        assert {t.condition for t in first} == FIRED
        assert all(t.firing and t.delivered for t in first)
        second_dead = visit_in_state(engine, "DEAD2", local("2026-03-19"), State.DEAD)  # the numbers change…
        for minutes in (5, 10):  # …but a condition that keeps firing is not notified again
            later = alert_machine.evaluate_and_notify(
                engine, cfg, notifiers, NOW + timedelta(minutes=minutes), certificate_reader=expiring
            )
            assert later == []
        assert sorted(receiver.statuses()) == sorted((condition, "firing") for condition in FIRED)
        assert {item.condition for item in alert_machine.firing_conditions(engine)} == FIRED
        with engine.connect() as conn:
            stored = conn.execute(
                sa.select(alert_state.c.detail).where(alert_state.c.condition == "dead_encounters")
            ).scalar_one()
        assert json.loads(stored)["count"] == 2  # the stored detail follows the numbers silently

        # Everything gets fixed: accepted, replayed, resumed, renewed.
        attempt(engine, late, State.ACCEPTED, "200")
        with engine.begin() as conn:
            queries.requeue_dead(conn, [dead.version_id, second_dead.version_id])
            repo.resume_destination(conn, "bhxh")
        renewed = lambda: certificates["renewed"]  # noqa: E731  # see above
        for minutes in (15, 20, 25):
            alert_machine.evaluate_and_notify(
                engine, cfg, notifiers, NOW + timedelta(minutes=minutes), certificate_reader=renewed
            )

    messages = receiver.statuses()
    for condition in FIRED:
        assert messages.count((condition, "firing")) == 1, condition
        assert messages.count((condition, "resolved")) == 1, condition
    assert len(messages) == 2 * len(FIRED)
    assert alert_machine.firing_conditions(engine) == []
    assert {m.authorization for m in receiver.messages} == {"Bearer hook-secret"}


def test_messages_carry_counts_ids_and_codes_only(
    sqlite_ledger: Engine, certificates: dict[str, x509.Certificate]
) -> None:
    visit_in_state(sqlite_ledger, "LATE", local("2026-03-02"), State.REJECTED)
    visit_in_state(sqlite_ledger, "DEAD1", local("2026-03-19"), State.DEAD)
    with webhook_receiver() as receiver:
        cfg = alert_settings(receiver.url)
        alert_machine.evaluate_and_notify(
            sqlite_ledger,
            cfg,
            notification.notifiers_from_settings(cfg),
            NOW,
            certificate_reader=lambda: certificates["renewed"],
        )
    by_condition = {m.body["condition"]: m.body for m in receiver.messages}
    assert set(by_condition) == {"claim_deadline_breached", "dead_encounters"}
    claim = by_condition["claim_deadline_breached"]
    assert set(claim) == {
        "source",
        "facility_code",
        "condition",
        "status",
        "since",
        "at",
        "summary",
        "detail",
    }
    assert claim["facility_code"] == "79999"
    assert claim["detail"] == {
        "count": 1,
        "by_state": {"rejected": 1},
        "completed_before": "2026-03-11T00:00:00+07:00",
        "oldest_ma_lk": ["79999-LATE"],
    }
    assert by_condition["dead_encounters"]["detail"] == {
        "count": 1,
        "by_error_code": {"transient:500": 1},
        "ma_lk": ["79999-DEAD1"],
    }


def test_undelivered_transition_is_retried_next_time(
    sqlite_ledger: Engine, certificates: dict[str, x509.Certificate]
) -> None:
    visit_in_state(sqlite_ledger, "DEAD1", local("2026-03-19"), State.DEAD)
    reader = lambda: certificates["renewed"]  # noqa: E731  # see above
    with webhook_receiver() as receiver:
        cfg = alert_settings(receiver.url)
        notifiers = notification.notifiers_from_settings(cfg)
        receiver.status = 500  # the receiver is down
        failed = alert_machine.evaluate_and_notify(
            sqlite_ledger, cfg, notifiers, NOW, certificate_reader=reader
        )
        assert [(t.condition, t.delivered) for t in failed] == [("dead_encounters", False)]
        assert alert_machine.firing_conditions(sqlite_ledger) == []  # put back, so the next run tries again
        receiver.status = 204
        retried = alert_machine.evaluate_and_notify(
            sqlite_ledger, cfg, notifiers, NOW + timedelta(minutes=5), certificate_reader=reader
        )
        again = alert_machine.evaluate_and_notify(
            sqlite_ledger, cfg, notifiers, NOW + timedelta(minutes=10), certificate_reader=reader
        )
    assert [(t.condition, t.delivered) for t in retried] == [("dead_encounters", True)]
    assert again == []
    assert receiver.statuses() == [("dead_encounters", "firing")]


def test_certificate_conditions(sqlite_ledger: Engine, certificates: dict[str, x509.Certificate]) -> None:
    cfg = alert_settings()
    expired = alert_machine.evaluate_and_notify(
        sqlite_ledger, cfg, [], NOW, certificate_reader=lambda: certificates["expired"]
    )
    assert {t.condition for t in expired} == {"certificate_expiring", "certificate_invalid"}

    def unreadable() -> x509.Certificate:
        from adapters.signers.errors import SignerConfigError

        raise SignerConfigError("signer.source = 'file' needs signer.key_file")

    broken = alert_machine.evaluate_and_notify(
        sqlite_ledger, cfg, [], NOW + timedelta(minutes=5), certificate_reader=unreadable
    )
    # While the certificate cannot be read, nothing is known about its dates: those conditions keep their state.
    assert [(t.condition, t.status) for t in broken] == [("certificate_unreadable", "firing")]
    assert {f.condition for f in alert_machine.firing_conditions(sqlite_ledger)} == {
        "certificate_expiring",
        "certificate_invalid",
        "certificate_unreadable",
    }


def test_coverage_counts_visits_never_discovered(sqlite_ledger: Engine, tmp_path: Path) -> None:
    """Against the demo HIS: completed visits past the claim deadline that the ledger has not accepted."""
    from adapters.his.demo.seed import seed_demo_his
    from worker.monitoring.health import create_his_source

    his_url = f"sqlite:///{tmp_path / 'his.sqlite3'}"
    seed_demo_his(
        his_url, encounters=6, since=date(2026, 3, 4), until=date(2026, 3, 6), random_seed=7, bad_share=0
    )
    cfg = load_settings(his={"adapter": "demo", "url": his_url}, delivery={"sweep_days": 7})
    source = create_his_source(cfg)
    try:
        window = list(source.list_completed(local("2026-03-04", 0), local("2026-03-11", 0)))
        assert window, "the seeded visits must fall in the window"
        first = conditions.evaluate(sqlite_ledger, cfg, NOW, source=source, certificate_reader=_unused)
        coverage = next(o for o in first if o.condition == "coverage_incomplete")
        assert coverage.firing
        assert coverage.detail["counts"] == {"completed": len(window), "missing": len(window)}
        for ref in window:  # the worker catches up: every one of them accepted
            visit_in_state(sqlite_ledger, ref.his_key, ref.completed_at, State.ACCEPTED)
        second = conditions.evaluate(sqlite_ledger, cfg, NOW, source=source, certificate_reader=_unused)
    finally:
        source.close()
    assert not next(o for o in second if o.condition == "coverage_incomplete").firing


def _unused() -> x509.Certificate:
    raise RuntimeError("certificate not part of this test")


# -------------------------------------------------------------------------------------------- email


def _email_transition() -> alert_model.Transition:
    return alert_model.Transition(
        "dead_encounters",
        True,
        NOW.astimezone(UTC),
        "2 visit(s) dead",
        {"count": 2, "ma_lk": ["79999-A", "79999-B"]},
    )


def test_email_over_starttls_with_login(tmp_path: Path) -> None:
    tls = localhost_tls(tmp_path)
    with smtp_sink(tls.server) as sink:
        notifier = notification.EmailNotifier(
            host=sink.host,
            port=sink.port,
            sender="vneid@bv.example",
            recipients=["it@bv.example", "qa@bv.example"],
            user="mailer",
            password=_secret("smtp-pw"),
            ssl_context=tls.client,
        )
        notifier.send(alert_model.AlertMessage("79999", _email_transition(), NOW))
    [session] = sink.delivered
    assert session.commands[:3] == ["EHLO", "STARTTLS", "EHLO"]
    assert session.auth == ("mailer", "smtp-pw")
    assert session.auth_over_tls
    assert session.mail_from == "vneid@bv.example"
    assert session.recipients == ["it@bv.example", "qa@bv.example"]
    text = session.data.decode()
    assert "Subject: [vneid-sync 79999] FIRING: dead_encounters" in text
    assert "79999-A" in text


def test_email_refuses_login_without_starttls(tmp_path: Path) -> None:
    with smtp_sink(None) as sink:
        notifier = notification.EmailNotifier(
            host=sink.host,
            port=sink.port,
            sender="vneid@bv.example",
            recipients=["it@bv.example"],
            user="mailer",
            password=_secret("smtp-pw"),
        )
        with pytest.raises(notification.NotifierError, match="STARTTLS"):
            notifier.send(alert_model.AlertMessage("79999", _email_transition(), NOW))
    assert all(session.auth is None and not session.data for session in sink.sessions)


def test_email_through_a_local_relay_without_login(
    sqlite_ledger: Engine, certificates: dict[str, x509.Certificate]
) -> None:
    """Configured from the settings, run through evaluate_and_notify: one mail per transition."""
    visit_in_state(sqlite_ledger, "DEAD1", local("2026-03-19"), State.DEAD)
    with smtp_sink(None) as sink:
        cfg = load_settings(
            alerts={
                "smtp_host": sink.host,
                "smtp_port": sink.port,
                "email_from": "vneid@bv.example",
                "email_to": ["it@bv.example"],
            },
            evidence=EVIDENCE_SETTINGS,
        )
        notifiers = notification.notifiers_from_settings(cfg)
        assert [n.name for n in notifiers] == ["email"]
        for minutes in (0, 5):
            alert_machine.evaluate_and_notify(
                sqlite_ledger,
                cfg,
                notifiers,
                NOW + timedelta(minutes=minutes),
                certificate_reader=lambda: certificates["renewed"],
            )
    assert len(sink.delivered) == 1
    assert "FIRING: dead_encounters" in sink.delivered[0].data.decode()


def _secret(value: str) -> SecretStr:
    return SecretStr(value)


def test_both_notifiers_from_settings() -> None:
    cfg = load_settings(
        alerts={
            "webhook_url": "http://127.0.0.1:9/hook",
            "smtp_host": "127.0.0.1",
            "email_from": "a@b.example",
            "email_to": ["c@d.example"],
        }
    )
    assert [n.name for n in notification.notifiers_from_settings(cfg)] == ["webhook", "email"]
    assert notification.notifiers_from_settings(load_settings()) == []


# -------------------------------------------------------------------------------------- deadlines


def test_claim_cutoff_counts_working_days_and_holidays(tmp_path: Path) -> None:
    calendar = DeadlineCalendar(DeadlineSettings())
    assert conditions.claim_cutoff(calendar, NOW) == date(
        2026, 3, 11
    )  # 7 working days after 03-10 end on 03-19
    holidays = tmp_path / "holidays.txt"
    holidays.write_text("2026-03-12  # a holiday\n")
    with_holiday = DeadlineCalendar(DeadlineSettings(holidays_file=holidays))
    assert conditions.claim_cutoff(with_holiday, NOW) == date(2026, 3, 10)


@settings(max_examples=200, deadline=None)
@given(
    now=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
    back=st.integers(min_value=0, max_value=40 * 24 * 60),
)
def test_claim_cutoff_agrees_with_the_coverage_clocks(now: datetime, back: int) -> None:
    """A visit is before the cutoff exactly when the coverage report calls its claim deadline breached."""
    calendar = DeadlineCalendar(DeadlineSettings())
    completed = now - timedelta(minutes=back)
    cutoff = datetime.combine(conditions.claim_cutoff(calendar, now), datetime.min.time(), tzinfo=VIETNAM_TZ)
    claim_at = calendar.clocks(completed).claim_at
    if abs((now - claim_at).total_seconds()) > 1:  # the deadline's last second is ambiguous by design
        assert (completed < cutoff) == (now > claim_at)


# ---------------------------------------------------------------------------------------------- CLI


def test_alerts_check_command(tmp_path: Path, sqlite_ledger: Engine) -> None:
    """`vneid-sync alerts check`: exit 0 while nothing fires, 1 while something does; notifies once."""
    import typer
    from typer.testing import CliRunner

    from adapters.signers.testpki import create_test_pki
    from worker.cli import monitor_cmd

    app = typer.Typer()

    @app.callback()
    def root() -> None:
        pass

    monitor_cmd.register(app)
    pki = create_test_pki(tmp_path / "pki", ca_key_size=2048, valid_days=365)
    runner = CliRunner()
    with webhook_receiver() as receiver:
        env = {
            "VNEID_DATA_DIR": str(tmp_path),
            "VNEID_LEDGER__DATABASE_URL": str(sqlite_ledger.url),
            "VNEID_SIGNER__KEY_FILE": str(pki.pkcs12),
            "VNEID_SIGNER__PASSPHRASE": pki.passphrase,
            "VNEID_ALERTS__WEBHOOK_URL": receiver.url,
            "VNEID_EVIDENCE__KEY": EVIDENCE_SETTINGS["key"],
            "COLUMNS": "200",
        }
        quiet = runner.invoke(app, ["alerts", "check", "--no-his"], env=env)
        assert quiet.exit_code == 0, quiet.output
        assert "no alert condition is firing" in quiet.stdout
        visit_in_state(sqlite_ledger, "DEAD1", datetime.now(UTC) - timedelta(hours=1), State.DEAD)
        firing = runner.invoke(app, ["alerts", "check", "--no-his"], env=env)
        again = runner.invoke(app, ["alerts", "check", "--no-his"], env=env)
    assert firing.exit_code == 1
    assert "FIRING   dead_encounters: 1 visit(s) dead" in firing.stdout
    assert again.exit_code == 1
    assert receiver.statuses() == [("dead_encounters", "firing")]
