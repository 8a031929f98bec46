"""Metrics and traces of the processes (README "Observability").

- The worker's metrics are the Temporal SDK's own (workflow task and activity latencies,
  schedule-to-start, pollers, slots), served by its runtime's Prometheus endpoint
  (IOP_WORKER_METRICS_ADDRESS). Their labels are namespace, task queue, workflow and activity
  types: no workflow ids, no payloads.
- Traces: OpenTelemetry spans for an API request, the workflow it starts or signals, and the
  activities that run for it (temporalio.contrib.opentelemetry.TracingInterceptor), exported over
  OTLP. Off unless IOP_TRACING=1 or IOP_OTEL_ENDPOINT is set.

Never imported from workflow code (it reads settings); the interceptor's workflow half runs inside
the sandbox through the SDK's own extern functions.
"""

from __future__ import annotations

import threading

from opentelemetry.trace import Tracer
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from iop.settings import Settings

# Histogram buckets (seconds) for the SDK's latencies: a workflow task is milliseconds, a
# schedule-to-start under load can be seconds, an activity that delivers a report can take a minute.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SDK_HISTOGRAMS = (
    "workflow_task_schedule_to_start_latency",
    "workflow_task_execution_latency",
    "workflow_task_replay_latency",
    "workflow_endtoend_latency",
    "activity_schedule_to_start_latency",
    "activity_execution_latency",
    "activity_succeed_endtoend_latency",
    "local_activity_execution_latency",
    "local_activity_succeed_endtoend_latency",
)

_lock = threading.Lock()
_runtimes: dict[str, Runtime] = {}
_providers: dict[str, object] = {}


def metrics_address(settings: Settings, index: int = 0) -> str:
    """The address of the index-th worker process's metrics endpoint (`iop dev` runs several)."""
    host, _, port = settings.worker_metrics_address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(
            f"IOP_WORKER_METRICS_ADDRESS must be host:port, e.g. 0.0.0.0:9000, not {settings.worker_metrics_address!r}"
        )
    return f"{host}:{int(port) + index}"


def runtime(settings: Settings, index: int = 0) -> Runtime | None:
    """A Temporal runtime serving the SDK's metrics in Prometheus format, or None (the SDK's default
    runtime, no metrics endpoint) when IOP_WORKER_METRICS_ADDRESS is empty. One per process."""
    if not settings.worker_metrics_address:
        return None
    address = metrics_address(settings, index)
    with _lock:
        if address not in _runtimes:
            _runtimes[address] = Runtime(
                telemetry=TelemetryConfig(
                    metrics=PrometheusConfig(
                        bind_address=address,
                        counters_total_suffix=True,
                        unit_suffix=True,
                        durations_as_seconds=True,
                        histogram_bucket_overrides=dict.fromkeys(SDK_HISTOGRAMS, LATENCY_BUCKETS),
                    )
                )
            )
        return _runtimes[address]


def tracer(settings: Settings, service: str) -> Tracer | None:
    """The process's tracer exporting over OTLP/HTTP, or None when tracing is off."""
    if not settings.tracing_enabled:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    with _lock:
        if service not in _providers:
            provider = TracerProvider(resource=Resource.create({"service.name": service}))
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otel_endpoint or None)))
            _providers[service] = provider
        return _providers[service].get_tracer("iop")  # type: ignore[attr-defined]  # the SDK provider


def interceptors(tracer: Tracer | None) -> list:
    """The client (and so worker) interceptors that carry a trace from a request into workflows and
    activities; none when tracing is off."""
    if tracer is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(tracer)]


def shutdown() -> None:
    """Flush the spans still buffered (at process exit)."""
    with _lock:
        for provider in _providers.values():
            provider.shutdown()  # type: ignore[attr-defined]  # the SDK provider
