"""Monitoring: health checks, metrics, alert conditions and their state machine, notifiers, audit anchors.

One job per module; the ledger reads and writes they need are ``worker.ledger.monitoring``. The pipeline never
imports this package (an import-linter contract): delivery reports through ``worker.pipeline.observer``, which
``worker.monitoring.worker_metrics`` implements and ``worker.bootstrap`` wires.
"""
