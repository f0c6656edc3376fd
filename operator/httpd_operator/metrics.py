"""Prometheus metrics of the operator: what it did, how long it took, where the sites stand."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

PHASES = ("Pending", "Progressing", "Ready", "Degraded", "Failed")


class Metrics(Collector):
    """One registry per operator (tests run several operators in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reconciles = Counter("httpd_operator_reconciles", "Site reconciles by result "
                                  "(changed, unchanged, error, gone).", ["result"], registry=self.registry)
        self.duration = Histogram("httpd_operator_reconcile_duration_seconds", "Time to reconcile one site.",
                                  registry=self.registry,
                                  buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.api_errors = Counter("httpd_operator_api_errors", "Failed Kubernetes API calls by HTTP status "
                                  "(0: no answer).", ["status"], registry=self.registry)
        self.phases: dict[tuple[str, str], str] = {}
        self.registry.register(self)

    def observe(self, result: str, seconds: float) -> None:
        self.reconciles.labels(result).inc()
        self.duration.observe(seconds)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("httpd_operator_sites", "Sites by phase.", labels=["phase"])
        counts = Tally(self.phases.values())
        for phase in PHASES:
            family.add_metric([phase], counts.get(phase, 0))
        yield family

    def serve(self, port: int, addr: str = "0.0.0.0") -> Any:
        """Serve /metrics in a thread; returns the server (tests call its shutdown())."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        return server
