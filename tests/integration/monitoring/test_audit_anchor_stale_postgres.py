"""``audit_anchor_stale`` on a PostgreSQL ledger: the same once-firing, once-resolving scenario as on SQLite,
and alert checks racing on a ledger where anchors were just turned on (the first one records when an anchor
became due; the others neither fail on that row nor notify twice)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from cryptography import x509
from sqlalchemy.engine import Engine

from adapters.signers.testpki import generate_ca, issue_signing_certificate
from tests.unit.monitoring.test_audit_anchor_stale import (
    STALE,
    T0,
    events,
    hours,
    run_stale_scenario,
    scenario,
)
from worker.ledger import repository as repo
from worker.monitoring import anchor_age


@pytest.fixture(scope="module")
def certificate() -> x509.Certificate:
    return issue_signing_certificate(
        generate_ca(key_size=2048), not_before=T0 - timedelta(days=2), not_after=T0 + timedelta(days=365)
    ).certificate


def test_stale_anchor_fires_once_and_resolves_once_on_postgresql(
    pg_ledger: Engine, certificate: x509.Certificate
) -> None:
    run_stale_scenario(pg_ledger, certificate)


def test_racing_checks_note_the_due_time_once_and_fire_once(
    pg_ledger: Engine, certificate: x509.Certificate
) -> None:
    events(pg_ledger)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []
    with scenario(pg_ledger, certificate) as s:

        def check(at: float) -> None:
            try:
                barrier.wait(timeout=10)
                s.check(hours(at))
            except BaseException as exc:  # collected and re-raised below
                errors.append(exc)

        for at in (0, 30):  # anchors just turned on; then, with no anchor sent, past the limit
            threads = [threading.Thread(target=check, args=(at + i / 100,)) for i in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            if at == 0:
                with pg_ledger.connect() as conn:
                    _, record = repo.read_checkpoint(conn, anchor_age.ANCHOR_CHECKPOINT)
                assert record is not None
                assert set(record) == {"watched_since"}
                assert record["watched_since"] in {hours(i / 100).isoformat() for i in range(4)}
    assert errors == []
    assert s.alerts_hook.statuses() == [(STALE, "firing")]
