"""The client against the real simulator over HTTP on 127.0.0.1: receipts, tokens, duplicates, every fault.

No HTTP mocks: each test steers the simulator through its control API and checks both what the client
returned and what the simulator recorded.
"""

from __future__ import annotations

import base64
import hashlib
import io
import socket
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from adapters.gateway.bhxh import protocol
from adapters.gateway.bhxh.token_cache import TokenCache, utc_now
from adapters.gateway.simulator import RunningSimulator, SimulatorAdmin
from schemas.ports import DocumentKind, Gateway, Outcome
from tests.unit.gateway.conftest import DEMO_PASSWORD, DEMO_USERNAME, FACILITY, GatewayEnv, GatewayFactory
from tests.unit.gateway.support import XmlsecSigner, claim_template
from worker.logging import configure_logging


# -- acceptance and receipts ------------------------------------------------------------------------------
def test_accepted_claim_returns_a_receipt_and_is_recorded(
    make_gateway: GatewayFactory, admin: SimulatorAdmin, signer: XmlsecSigner, ma_lk: str
) -> None:
    gateway = make_gateway()
    assert isinstance(gateway, Gateway)
    signed = signer.claim(ma_lk)
    receipt = gateway.submit(signed, DocumentKind.CLAIM)
    assert receipt.outcome is Outcome.ACCEPTED
    assert (receipt.http_status, receipt.ma_ket_qua, receipt.duplicate) == (200, "200", False)
    assert receipt.ma_giao_dich
    assert receipt.thoi_gian_tiep_nhan is not None
    assert len(receipt.thoi_gian_tiep_nhan) == 14
    assert receipt.thoi_gian_tiep_nhan.isdigit()
    assert receipt.request_sha256 == hashlib.sha256(signed).hexdigest()
    [record] = admin.accepted(ma_lk=ma_lk)
    assert record["ma_giao_dich"] == receipt.ma_giao_dich
    assert record["file_sha256"] == receipt.request_sha256  # the exact bytes arrived
    assert (record["endpoint"], record["variant"], record["loai_ho_so"]) == ("send", "3176", "130")
    assert (record["ma_cskcb"], record["ma_tinh"], record["username"]) == (FACILITY, "79", DEMO_USERNAME)
    assert admin.accepted_file(receipt.ma_giao_dich) == signed


def test_checkin_goes_to_the_checkin_endpoint_with_loai_ho_so_0(
    make_gateway: GatewayFactory, admin: SimulatorAdmin, signer: XmlsecSigner, ma_lk: str
) -> None:
    receipt = make_gateway().submit(signer.checkin(ma_lk), DocumentKind.CHECKIN)
    assert receipt.outcome is Outcome.ACCEPTED
    [record] = admin.accepted(ma_lk=ma_lk)
    assert (record["endpoint"], record["loai_ho_so"], record["tables"]) == ("checkin", "0", "XML0")


@pytest.mark.parametrize("variant", ["3176", "4750"])
def test_variant_selects_the_endpoints(
    variant: str, make_gateway: GatewayFactory, admin: SimulatorAdmin, signer: XmlsecSigner, ma_lk: str
) -> None:
    gateway = make_gateway(variant=variant)
    assert gateway.submit(signer.claim(ma_lk), DocumentKind.CLAIM).outcome is Outcome.ACCEPTED
    assert gateway.submit(signer.checkin(ma_lk), DocumentKind.CHECKIN).outcome is Outcome.ACCEPTED
    assert {record["variant"] for record in admin.accepted(ma_lk=ma_lk)} == {variant}


def test_simulator_paths_are_case_sensitive(simulator: RunningSimulator) -> None:
    wrong_case = ("/api/qd130/checkInKcbQD3176", "/api/qd130/guiHoSoXmlQd3176")
    with httpx.Client(base_url=simulator.url) as client:
        for path in wrong_case:
            assert client.post(path, content=b"").status_code == 404


def test_base64_plus_slash_and_padding_survive_the_form(
    make_gateway: GatewayFactory, admin: SimulatorAdmin, signer: XmlsecSigner, ma_lk: str
) -> None:
    # An ASCII file rarely yields '/' in base64 (only a '?' at offset 3k+2 does); three '?' and three '>' in
    # a row give '/' and '+' at any alignment, and growing the comment varies the length until '=' pads.
    for length in range(6):
        signed = signer.claim(ma_lk, comment="kiểm thử ???>>>" + "x" * length)
        if {"+", "/", "="} <= set(base64.b64encode(signed).decode()):
            break
    else:
        pytest.fail("no signed file with '+', '/' and '=' in its base64")
    receipt = make_gateway().submit(signed, DocumentKind.CLAIM)
    assert receipt.outcome is Outcome.ACCEPTED
    [record] = admin.accepted(ma_lk=ma_lk)
    assert record["file_sha256"] == hashlib.sha256(signed).hexdigest()


def test_simulator_refuses_unencoded_base64_characters(
    make_gateway: GatewayFactory,
    simulator: RunningSimulator,
    admin: SimulatorAdmin,
    signer: XmlsecSigner,
    ma_lk: str,
) -> None:
    """What the test above guards against: a raw '+' in the form reads back as a space."""
    make_gateway().submit(signer.claim(ma_lk), DocumentKind.CLAIM)  # logs in; the token is reused below
    token = _login(simulator)
    raw = base64.b64encode(signer.claim(ma_lk, filler="x")).decode()
    body = (
        protocol.encode_form(
            {"username": DEMO_USERNAME, "loaiHoSo": "130", "maTinh": "79", "maCSKCB": FACILITY}
        )
        + f"&fileHSBase64={raw}".encode()
    )
    with httpx.Client(base_url=simulator.url) as client:
        answer = client.post(
            protocol.send_path("3176"),
            content=body,
            headers={"Content-Type": protocol.FORM_CONTENT_TYPE, **token},
        ).json()
    assert answer["maKetQua"] == "400"


def _login(simulator: RunningSimulator) -> dict[str, str]:
    with httpx.Client(base_url=simulator.url) as client:
        answer = client.post(
            protocol.TOKEN_PATH,
            data={"username": DEMO_USERNAME, "password": protocol.password_md5(DEMO_PASSWORD)},
        ).json()
    return {
        "accessToken": answer["APIKey"]["access_token"],
        "tokenId": answer["APIKey"]["id_token"],
        "passwordHash": protocol.password_md5(DEMO_PASSWORD),
    }


# -- duplicates -------------------------------------------------------------------------------------------
def test_resending_the_same_file_is_an_accepted_duplicate_with_the_original_receipt(
    make_gateway: GatewayFactory, admin: SimulatorAdmin, signer: XmlsecSigner, ma_lk: str
) -> None:
    gateway = make_gateway()
    signed = signer.claim(ma_lk)
    first = gateway.submit(signed, DocumentKind.CLAIM)
    again = gateway.submit(signed, DocumentKind.CLAIM)
    assert (again.outcome, again.duplicate) == (Outcome.ACCEPTED, True)
    assert (again.ma_giao_dich, again.thoi_gian_tiep_nhan) == (first.ma_giao_dich, first.thoi_gian_tiep_nhan)
    assert len(admin.accepted(ma_lk=ma_lk)) == 1
    stats = admin.stats()
    assert (stats["accepted"], stats["duplicates"]) == (1, 1)


def test_changed_content_for_the_same_visit_is_a_new_submission(
    make_gateway: GatewayFactory, admin: SimulatorAdmin, signer: XmlsecSigner, ma_lk: str
) -> None:
    gateway = make_gateway()
    first = gateway.submit(signer.claim(ma_lk), DocumentKind.CLAIM)
    corrected = gateway.submit(signer.claim(ma_lk, filler="corrected"), DocumentKind.CLAIM)
    assert (corrected.outcome, corrected.duplicate) == (Outcome.ACCEPTED, False)
    assert corrected.ma_giao_dich != first.ma_giao_dich
    assert len(admin.accepted(ma_lk=ma_lk)) == 2


# -- tokens -----------------------------------------------------------------------------------------------
def test_token_is_taken_once_and_reused(
    make_gateway: GatewayFactory, admin: SimulatorAdmin, signer: XmlsecSigner, ma_lk: str
) -> None:
    gateway = make_gateway()
    for number in range(3):
        assert (
            gateway.submit(signer.claim(f"{ma_lk}{number}"), DocumentKind.CLAIM).outcome is Outcome.ACCEPTED
        )
    assert admin.stats()["tokens"]["issued"] == 1


def test_gateways_sharing_a_cache_share_the_login(
    make_gateway: GatewayFactory, admin: SimulatorAdmin, signer: XmlsecSigner, ma_lk: str
) -> None:
    cache = TokenCache()
    make_gateway(token_cache=cache).submit(signer.claim(ma_lk), DocumentKind.CLAIM)
    make_gateway(token_cache=cache).submit(signer.checkin(ma_lk), DocumentKind.CHECKIN)
    assert admin.stats()["tokens"]["issued"] == 1


def test_token_is_refreshed_before_it_expires(
    make_gateway: GatewayFactory, admin: SimulatorAdmin, signer: XmlsecSigner, ma_lk: str
) -> None:
    """The simulator's tokens live an hour; once the client's clock passes refresh_at it logs in again."""
    client_time = _ClientClock()
    cache = TokenCache(refresh_margin=timedelta(minutes=3), clock=client_time)
    gateway = make_gateway(token_cache=cache)
    gateway.submit(signer.claim(ma_lk), DocumentKind.CLAIM)
    token = cache.peek(("bhxh", DEMO_USERNAME))
    assert token is not None
    assert token.expires_at is not None
    client_time.advance(token.refresh_at - client_time())
    gateway.submit(signer.claim(ma_lk, filler="2"), DocumentKind.CLAIM)
    stats = admin.stats()
    assert stats["tokens"]["issued"] == 2
    assert stats["rejected"] == {}  # refreshed before the gateway had to refuse it


class _ClientClock:
    def __init__(self) -> None:
        self._offset = timedelta(0)

    def advance(self, delta: timedelta) -> None:
        self._offset += delta

    def __call__(self) -> datetime:
        return utc_now() + self._offset


def test_expired_token_at_the_gateway_means_one_relogin_and_success(
    make_gateway: GatewayFactory, admin: SimulatorAdmin, signer: XmlsecSigner, ma_lk: str
) -> None:
    gateway = make_gateway()
    gateway.submit(signer.claim(ma_lk), DocumentKind.CLAIM)
    admin.advance_clock(2 * 3600)  # the gateway's clock passes the token's expiry; the client's does not
    receipt = gateway.submit(signer.claim(ma_lk, filler="2"), DocumentKind.CLAIM)
    assert receipt.outcome is Outcome.ACCEPTED
    stats = admin.stats()
    assert stats["tokens"]["issued"] == 2
    assert stats["rejected"] == {"401": 1}


def test_token_storm_once_is_survived_by_the_relogin(
    make_gateway: GatewayFactory, admin: SimulatorAdmin, signer: XmlsecSigner, ma_lk: str
) -> None:
    gateway = make_gateway()
    gateway.submit(signer.claim(ma_lk), DocumentKind.CLAIM)
    admin.set_faults(token_storm=1.0, max_faults=1)
    receipt = gateway.submit(signer.claim(ma_lk, filler="2"), DocumentKind.CLAIM)
    assert receipt.outcome is Outcome.ACCEPTED
    assert admin.stats()["tokens"]["issued"] == 2


def test_second_401_after_the_relogin_is_auth(
    make_gateway: GatewayFactory, admin: SimulatorAdmin, signer: XmlsecSigner, ma_lk: str
) -> None:
    admin.set_faults(token_storm=1.0)  # every file call revokes every token first
    receipt = make_gateway().submit(signer.claim(ma_lk), DocumentKind.CLAIM)
    assert (receipt.outcome, receipt.ma_ket_qua) == (Outcome.AUTH, "401")
    stats = admin.stats()
    assert stats["tokens"]["issued"] == 2  # the first login and exactly one re-login
    assert stats["requests"]["send"] == 2
    assert admin.accepted(ma_lk=ma_lk) == []


@pytest.mark.parametrize(
    ("status", "password", "code"),
    [
        ("active", "wrong-password", "401"),
        ("wrong_facility", DEMO_PASSWORD, "402"),
        ("locked", DEMO_PASSWORD, "403"),
    ],
)
def test_token_refusals_stop_the_destination(status: str, password: str, code: str, env: GatewayEnv) -> None:
    make_gateway, admin, signer, ma_lk = env.make_gateway, env.admin, env.signer, env.ma_lk
    admin.set_accounts(
        [{"username": DEMO_USERNAME, "password": DEMO_PASSWORD, "facility_code": FACILITY, "status": status}]
    )
    receipt = make_gateway(password=SecretStr(password)).submit(signer.claim(ma_lk), DocumentKind.CLAIM)
    assert (receipt.outcome, receipt.ma_ket_qua) == (Outcome.CONFIG, code)
    stats = admin.stats()
    assert stats["tokens"]["rejected"] == {code: 1}  # no retry of a configuration error
    assert stats["requests"].get("send", 0) == 0


def test_unknown_account_is_config(
    make_gateway: GatewayFactory, admin: SimulatorAdmin, signer: XmlsecSigner, ma_lk: str
) -> None:
    receipt = make_gateway(username="00000_BV").submit(signer.claim(ma_lk), DocumentKind.CLAIM)
    assert (receipt.outcome, receipt.ma_ket_qua) == (Outcome.CONFIG, "401")


def test_simulator_checks_the_md5_form_of_the_password(
    simulator: RunningSimulator, admin: SimulatorAdmin
) -> None:
    with httpx.Client(base_url=simulator.url) as client:

        def code(password: str) -> str:
            answer = client.post(protocol.TOKEN_PATH, data={"username": DEMO_USERNAME, "password": password})
            return str(answer.json()["maKetQua"])

        assert code(DEMO_PASSWORD) == "401"  # the plain password is refused
        assert code(protocol.password_md5(DEMO_PASSWORD)) == "200"


def test_send_for_another_facility_is_config(
    make_gateway: GatewayFactory, admin: SimulatorAdmin, signer: XmlsecSigner, ma_lk: str
) -> None:
    receipt = make_gateway(facility_code="79998").submit(signer.claim(ma_lk), DocumentKind.CLAIM)
    assert (receipt.outcome, receipt.ma_ket_qua) == (Outcome.CONFIG, "402")


@pytest.mark.parametrize(
    ("code", "outcome"), [("403", Outcome.CONFIG), ("402", Outcome.CONFIG), ("999", Outcome.DATA_ERROR)]
)
def test_forced_result_codes(code: str, outcome: Outcome, env: GatewayEnv) -> None:
    make_gateway, admin, signer, ma_lk = env.make_gateway, env.admin, env.signer, env.ma_lk
    admin.set_faults(result_codes={code: 1.0})
    receipt = make_gateway().submit(signer.claim(ma_lk), DocumentKind.CLAIM)
    assert (receipt.outcome, receipt.ma_ket_qua) == (outcome, code)
    assert admin.stats()["requests"]["send"] == 1  # no automatic retry


# -- transient faults ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("faults", "http_status", "ma_ket_qua"),
    [
        ({"http_5xx": 1.0}, "5xx", None),
        ({"http_429": 1.0}, 429, None),
        ({"result_500": 1.0}, 200, "500"),
        ({"malformed": 1.0}, 200, None),
    ],
)
def test_transient_faults_are_retried_a_few_times_then_reported(
    faults: dict[str, float], http_status: int | str, ma_ket_qua: str | None, env: GatewayEnv
) -> None:
    make_gateway, admin, signer, ma_lk = env.make_gateway, env.admin, env.signer, env.ma_lk
    admin.set_faults(**faults)
    receipt = make_gateway(transient_attempts=3).submit(signer.claim(ma_lk), DocumentKind.CLAIM)
    assert receipt.outcome is Outcome.TRANSIENT
    assert receipt.ma_ket_qua == ma_ket_qua
    if http_status == "5xx":
        assert receipt.http_status is not None
        assert 500 <= receipt.http_status < 600
    else:
        assert receipt.http_status == http_status
    assert admin.stats()["requests"]["send"] == 3
    assert admin.accepted(ma_lk=ma_lk) == []


def test_transient_fault_then_success_within_one_call(
    make_gateway: GatewayFactory, admin: SimulatorAdmin, signer: XmlsecSigner, ma_lk: str
) -> None:
    admin.set_faults(http_5xx=1.0, max_faults=2)
    receipt = make_gateway(transient_attempts=3).submit(signer.claim(ma_lk), DocumentKind.CLAIM)
    assert receipt.outcome is Outcome.ACCEPTED
    assert admin.stats()["requests"]["send"] == 3
    assert len(admin.accepted(ma_lk=ma_lk)) == 1


def test_token_call_faults_are_transient(
    make_gateway: GatewayFactory, admin: SimulatorAdmin, signer: XmlsecSigner, ma_lk: str
) -> None:
    admin.set_faults(http_5xx=1.0, on_token_calls=True)
    receipt = make_gateway(transient_attempts=2).submit(signer.claim(ma_lk), DocumentKind.CLAIM)
    assert receipt.outcome is Outcome.TRANSIENT
    stats = admin.stats()
    assert stats["requests"]["token"] == 2
    assert stats["requests"].get("send", 0) == 0


def test_connection_refused_is_transient(
    make_gateway: GatewayFactory, signer: XmlsecSigner, ma_lk: str
) -> None:
    with socket.socket() as probe:  # a port that nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    receipt = make_gateway(base_url=f"http://127.0.0.1:{port}", transient_attempts=2).submit(
        signer.claim(ma_lk), DocumentKind.CLAIM
    )
    assert receipt.outcome is Outcome.TRANSIENT
    assert receipt.http_status is None


def test_slow_answers_are_still_accepted(
    make_gateway: GatewayFactory, admin: SimulatorAdmin, signer: XmlsecSigner, ma_lk: str
) -> None:
    admin.set_faults(slow=1.0, slow_s=0.05)
    assert make_gateway().submit(signer.claim(ma_lk), DocumentKind.CLAIM).outcome is Outcome.ACCEPTED
    assert admin.stats()["faults"]["slow"] == 1


# -- unknown: the file may have arrived ------------------------------------------------------------------
def test_timeout_after_sending_is_unknown_and_the_resend_is_the_duplicate(
    make_gateway: GatewayFactory, admin: SimulatorAdmin, signer: XmlsecSigner, ma_lk: str
) -> None:
    admin.set_faults(timeout=1.0, timeout_s=1.5, max_faults=1)
    gateway = make_gateway(timeout_s=0.3)
    signed = signer.claim(ma_lk)
    lost = gateway.submit(signed, DocumentKind.CLAIM)
    assert lost.outcome is Outcome.UNKNOWN
    assert admin.stats()["requests"]["send"] == 1  # UNKNOWN is not retried inside the call
    resent = gateway.submit(signed, DocumentKind.CLAIM)
    assert (resent.outcome, resent.duplicate) == (Outcome.ACCEPTED, True)
    [record] = admin.accepted(ma_lk=ma_lk)
    assert resent.ma_giao_dich == record["ma_giao_dich"]


def test_lost_response_then_resend_leaves_exactly_one_record(
    make_gateway: GatewayFactory, admin: SimulatorAdmin, signer: XmlsecSigner, ma_lk: str
) -> None:
    admin.set_faults(lost_response=1.0, max_faults=1)
    gateway = make_gateway()
    signed = signer.claim(ma_lk)
    lost = gateway.submit(signed, DocumentKind.CLAIM)
    assert lost.outcome is Outcome.UNKNOWN
    assert lost.ma_giao_dich is None
    resent = gateway.submit(signed, DocumentKind.CLAIM)
    assert (resent.outcome, resent.duplicate) == (Outcome.ACCEPTED, True)
    [record] = admin.accepted(ma_lk=ma_lk)
    assert record["ma_giao_dich"] == resent.ma_giao_dich
    assert admin.stats()["faults"]["lost_response"] == 1


# -- data errors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("build", "kind", "code"),
    [
        (lambda signer, ma_lk: b"not xml at all", DocumentKind.CLAIM, "411"),
        (lambda signer, ma_lk: signer.checkin(ma_lk), DocumentKind.CLAIM, "412"),  # XML0 sent as a claim
        (lambda signer, ma_lk: signer.claim(ma_lk), DocumentKind.CHECKIN, "412"),
        (lambda signer, ma_lk: claim_template(ma_lk, signature=False), DocumentKind.CLAIM, "413"),  # unsigned
        (lambda signer, ma_lk: signer.claim(ma_lk, facility="01001"), DocumentKind.CLAIM, "415"),
    ],
)
def test_invalid_files_are_data_errors_and_not_retried(
    build: Callable[[XmlsecSigner, str], bytes], kind: DocumentKind, code: str, env: GatewayEnv
) -> None:
    make_gateway, admin, signer, ma_lk = env.make_gateway, env.admin, env.signer, env.ma_lk
    receipt = make_gateway().submit(build(signer, ma_lk), kind)
    assert (receipt.outcome, receipt.ma_ket_qua) == (Outcome.DATA_ERROR, code)
    assert receipt.thong_diep
    assert admin.stats()["rejected"] == {code: 1}
    assert admin.accepted(ma_lk=ma_lk) == []


def test_thong_diep_and_the_file_never_reach_the_log(
    make_gateway: GatewayFactory, admin: SimulatorAdmin, signer: XmlsecSigner, ma_lk: str
) -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream=stream)
    try:
        rejected = make_gateway().submit(signer.checkin(ma_lk), DocumentKind.CLAIM)
        accepted = make_gateway().submit(signer.claim(ma_lk), DocumentKind.CLAIM)
    finally:
        configure_logging("INFO", "json")
    output = stream.getvalue()
    assert rejected.thong_diep is not None
    assert accepted.thong_diep is not None
    assert rejected.thong_diep not in output
    assert accepted.thong_diep not in output
    assert rejected.request_sha256 in output
    assert "fileHSBase64" not in output
    assert protocol.password_md5(DEMO_PASSWORD) not in output
