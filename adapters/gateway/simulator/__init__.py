"""Gateway simulator: a real HTTP server speaking the BHXH API, with checks, receipts and fault injection.

Start it in-process with ``start_simulator_in_thread`` / ``running_simulator``, as a child process with
``spawn_simulator`` (``python -m adapters.gateway.simulator``), or as ``vneid-sync simulator serve``.
Query and steer it with ``SimulatorAdmin``.
"""

from adapters.gateway.simulator.admin import SimulatorAdmin
from adapters.gateway.simulator.config import Account, AccountStatus, SimulatorConfig
from adapters.gateway.simulator.faults import FaultConfig
from adapters.gateway.simulator.process import SimulatorProcess, spawn_simulator
from adapters.gateway.simulator.server import GatewaySimulator
from adapters.gateway.simulator.serving import RunningSimulator, running_simulator, start_simulator_in_thread

__all__ = [
    "Account",
    "AccountStatus",
    "FaultConfig",
    "GatewaySimulator",
    "RunningSimulator",
    "SimulatorAdmin",
    "SimulatorConfig",
    "SimulatorProcess",
    "running_simulator",
    "spawn_simulator",
    "start_simulator_in_thread",
]
