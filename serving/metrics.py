"""Prometheus metrics of `kexport serve`, under TF Serving's names, with `prometheus_client`.

TF Serving exports `:tensorflow:serving:request_count{model_name, status}` (requests per model and
outcome) and `:tensorflow:serving:request_latency{model_name, API, entrypoint}` (a histogram of
wall time in microseconds, buckets 10 * 1.8^i) on its REST port when --monitoring_config_file
enables Prometheus; dashboards and alerts written against it work against this server.

prometheus_client names a counter `<name>_total`; TF Serving's counter has no suffix, so the count
is exposed through a custom collector as an untyped sample with TF Serving's exact name.
"""

from __future__ import annotations

import threading
from collections import Counter

from prometheus_client import CollectorRegistry, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import UnknownMetricFamily

REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
# TF Serving's Buckets::Exponential(10, 1.8, 33): 10 us up to about 20 minutes.
LATENCY_BUCKETS = tuple(10 * 1.8 ** i for i in range(33)) + (float("inf"),)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServingMetrics:
    """Request counts and latencies per model, API (Predict, ...) and entry point (GRPC, REST)."""

    def __init__(self):
        disable_created_metrics()  # TF Serving exports no *_created series
        self.registry = CollectorRegistry()
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._latency = Histogram(
            REQUEST_LATENCY, "Distribution of wall time (in microseconds) for Tensorflow Serving "
            "request.", ["model_name", "API", "entrypoint"], buckets=LATENCY_BUCKETS,
            registry=self.registry)
        self.registry.register(self)

    def record(self, model_name: str, api: str, entrypoint: str, status: str,
               seconds: float) -> None:
        """Count one request; successful ones also go into the latency histogram (as TF Serving)."""
        with self._lock:
            self._counts[(model_name, status)] += 1
        if status == "OK":
            self._latency.labels(model_name, api, entrypoint).observe(seconds * 1e6)

    def collect(self):
        """prometheus_client's collector protocol: the request counts."""
        family = UnknownMetricFamily(REQUEST_COUNT, "The total number of requests.",
                                     labels=["model_name", "status"])
        with self._lock:
            for (model_name, status), count in sorted(self._counts.items()):
                family.add_metric([model_name, status], count)
        yield family

    def describe(self):
        """Lets the registry know the names without collecting."""
        return [UnknownMetricFamily(REQUEST_COUNT, "The total number of requests.")]

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
