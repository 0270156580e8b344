"""The port through which delivery reports what it did, so that the pipeline never imports monitoring.

``worker.bootstrap`` wires the Prometheus implementation (``worker.monitoring.worker_metrics``); a pipeline
built without one (tests, tools) reports to nobody.
"""

from __future__ import annotations

from typing import Protocol

from schemas.ports import GatewayReceipt


class DeliveryObserver(Protocol):
    def submitted(self, destination: str, receipt: GatewayReceipt) -> None:
        """One gateway submission to ``destination`` ended with ``receipt`` (called from the sending thread;
        must be thread-safe and must not raise)."""
        ...


class NoDeliveryObserver:
    """Reports to nobody: the default of a pipeline that has no monitoring wired."""

    def submitted(self, destination: str, receipt: GatewayReceipt) -> None:
        pass
