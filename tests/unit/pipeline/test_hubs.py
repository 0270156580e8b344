"""Hub deliveries follow the primary destination's retry policy: a wrong hub password stops the hub (as AUTH/CONFIG
stop the primary) and leaves its deliveries as they are, instead of retrying them until DEAD."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from cryptography import x509
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from adapters.gateway.bhxh.client import BhxhGateway
from adapters.gateway.bhxh.token_cache import TokenCache
from adapters.gateway.simulator import SimulatorConfig, start_simulator_in_thread
from adapters.his.demo.synthetic import Kind
from schemas.ports import Gateway, Outcome
from tests.factories import encounter
from tests.fakes import FakeGateway, FakeSigner, FakeSource
from tests.unit.gateway.conftest import gateway_config
from tests.unit.pipeline.conftest import T0
from worker.bootstrap import payload_options
from worker.config import Settings, load_settings
from worker.ledger import repository as repo
from worker.ledger.evidence_crypto import EvidenceKeys
from worker.ledger.schema import deliveries, encounters, versions
from worker.ledger.states import State
from worker.pipeline import delivery, discovery, hubs
from worker.pipeline.context import Pipeline
from worker.pipeline.policy import AUTH_FAILURES_BEFORE_STOP

#: Fewer attempts than the 401s that stop a destination: the old inline policy reached DEAD first.
MAX_ATTEMPTS = 2


def _settings() -> Settings:
    return load_settings(
        destinations={"bhxh": {}, "hanoi": {"primary": False}},
        delivery={"max_attempts": MAX_ATTEMPTS, "backoff_base_s": 1, "backoff_cap_s": 2},
    )


def _pipeline(engine: Engine, certificate: x509.Certificate, hub: Gateway) -> tuple[Pipeline, FakeSource]:
    settings, source, bhxh = _settings(), FakeSource(), FakeGateway()
    pipeline = Pipeline(
        settings=settings,
        engine=engine,
        source_factory=lambda: source,
        signer_factory=lambda: FakeSigner(certificate),
        gateways_factory=lambda: {"bhxh": bhxh, "hanoi": hub},
        payload_options=payload_options(settings.payload),
        evidence_keys=EvidenceKeys.generate(),
    )
    return pipeline, source


def _accept_at_bhxh(pipeline: Pipeline, source: FakeSource, his_key: str) -> None:
    source.put(encounter(Kind.OUTPATIENT_EXAM, his_key=his_key), T0)
    found = discovery.discover(pipeline)
    delivery.process_versions(pipeline, found.version_ids, owner="test")


def _deliver_hubs_now(pipeline: Pipeline, runs: int) -> list[hubs.HubResult]:
    """Run the hub deliveries ``runs`` times, each with every delivery due (no waiting for backoff)."""
    results = []
    for _ in range(runs):
        with pipeline.engine.begin() as conn:
            conn.execute(sa.update(deliveries).values(next_attempt_at=None))
        results.append(hubs.deliver_due(pipeline))
    return results


def _hub_delivery(engine: Engine) -> tuple[str, int]:
    with engine.connect() as conn:
        row = conn.execute(sa.select(deliveries.c.state, deliveries.c.attempts)).one()
    return row.state, row.attempts


def _primary_state(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(encounters.c.state)).scalars())


@pytest.mark.parametrize(
    ("script", "answers_before_stop"),
    [
        pytest.param([Outcome.CONFIG], 1, id="login-refused-stops-at-once"),
        pytest.param(
            [Outcome.AUTH] * AUTH_FAILURES_BEFORE_STOP, AUTH_FAILURES_BEFORE_STOP, id="persistent-401"
        ),
    ],
)
def test_a_wrong_hub_password_stops_the_hub_instead_of_retrying_it_to_dead(
    sqlite_ledger: Engine, certificate: x509.Certificate, script: list[Outcome], answers_before_stop: int
) -> None:
    hub = FakeGateway(name="hanoi", script=list(script))
    pipeline, source = _pipeline(sqlite_ledger, certificate, hub)
    _accept_at_bhxh(pipeline, source, "2001")

    results = _deliver_hubs_now(pipeline, runs=answers_before_stop + 2)

    assert len(hub.calls) == answers_before_stop  # nothing more is sent once the hub is stopped
    assert sum(result.dead for result in results) == 0
    assert _hub_delivery(pipeline.engine) == (State.SIGNED, 0)  # left as it is: no attempt spent on it
    with pipeline.engine.connect() as conn:
        stopped = repo.stopped_destinations(conn)
    assert set(stopped) == {"hanoi"}  # the hub alone: BHXH is not touched
    assert _primary_state(pipeline.engine) == {State.ACCEPTED}

    with pipeline.engine.begin() as conn:
        assert repo.resume_destination(conn, "hanoi")
    [after_resume] = _deliver_hubs_now(pipeline, runs=1)
    assert after_resume.accepted == 1  # the corrected password delivers the same kept bytes
    assert hub.calls[-1] == hub.calls[0]
    assert _hub_delivery(pipeline.engine) == (State.ACCEPTED, 1)


@pytest.fixture
def wrong_password_hub() -> Iterator[BhxhGateway]:
    """The real gateway client against the simulator over HTTP, configured with a wrong hub password."""
    with start_simulator_in_thread(SimulatorConfig(structure_check="minimal")) as simulator:
        config = gateway_config(simulator.url, name="hanoi", password=SecretStr("not-the-password"))
        gateway = BhxhGateway(config, token_cache=TokenCache())
        yield gateway
        gateway.close()


def test_a_wrong_hub_password_at_the_simulator_stops_the_hub(
    sqlite_ledger: Engine, certificate: x509.Certificate, wrong_password_hub: BhxhGateway
) -> None:
    pipeline, source = _pipeline(sqlite_ledger, certificate, wrong_password_hub)
    _accept_at_bhxh(pipeline, source, "2101")

    results = _deliver_hubs_now(pipeline, runs=MAX_ATTEMPTS + AUTH_FAILURES_BEFORE_STOP)

    assert sum(result.dead for result in results) == 0
    assert sum(result.sent for result in results) <= AUTH_FAILURES_BEFORE_STOP
    assert _hub_delivery(pipeline.engine) == (State.SIGNED, 0)
    with pipeline.engine.connect() as conn:
        assert "hanoi" in repo.stopped_destinations(conn)
        assert conn.execute(sa.select(versions.c.state)).scalar_one() == State.ACCEPTED
