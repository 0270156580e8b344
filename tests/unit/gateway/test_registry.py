"""create_gateways: one client per enabled destination, configured from the settings."""

from __future__ import annotations

from pydantic import SecretStr

from adapters.gateway.bhxh.client import BhxhGateway
from adapters.gateway.bhxh.config import BhxhGatewayConfig
from adapters.gateway.registry import create_gateways
from schemas.ports import Gateway
from worker.config import DestinationSettings, PayloadSettings, Settings


def test_enabled_destinations_become_gateways() -> None:
    settings = Settings(
        destinations={
            "bhxh": DestinationSettings(base_url="https://egw.example.invalid/"),
            "hanoi": DestinationSettings(base_url="https://hub.example.invalid", enabled=False),
        }
    )
    gateways = create_gateways(settings.destinations, default_facility_code=settings.payload.facility_code)
    try:
        assert list(gateways) == ["bhxh"]
        gateway = gateways["bhxh"]
        assert isinstance(gateway, Gateway)
        assert gateway.name == "bhxh"
    finally:
        for gateway in gateways.values():
            gateway.close()


def test_config_from_settings_fills_facility_and_province() -> None:
    destination = DestinationSettings(
        base_url="https://daotaoegw.example.invalid/", variant="4750", password=SecretStr("s"), timeout_s=12
    )
    config = BhxhGatewayConfig.from_settings("bhxh", destination, default_facility_code="01001")
    assert (config.facility_code, config.province_code) == ("01001", "01")
    assert config.base_url == "https://daotaoegw.example.invalid"
    assert (config.checkin_path, config.send_path) == (
        "/api/qd130/checkInKcbQd4750",
        "/api/qd130/guiHoSoXmlQD4750",
    )
    assert config.timeout_s == 12
    assert "password" not in repr(config)
    explicit = DestinationSettings(facility_code="79999", province_code="80")
    config = BhxhGatewayConfig.from_settings("hub", explicit, default_facility_code="01001")
    assert (config.facility_code, config.province_code) == ("79999", "80")


def test_payload_facility_is_the_default() -> None:
    settings = Settings(payload=PayloadSettings(facility_code="48001"))
    gateways = create_gateways(settings.destinations, default_facility_code=settings.payload.facility_code)
    try:
        gateway = gateways["bhxh"]
        assert isinstance(gateway, BhxhGateway)
        assert gateway.config.facility_code == "48001"
    finally:
        gateways["bhxh"].close()
