"""Request metrics and traces of the API (README "Observability").

Every request is measured under its route TEMPLATE (/participants/{participant_id}), never its path:
paths carry ids and query strings, labels must not (PHI discipline, and a label per participant
would also explode Prometheus's series). A request no route matched is counted as "(unmatched)".

Who may read /metrics: with IOP_METRICS_TOKEN set, whoever presents it as a bearer token (the
Prometheus of docker-compose.yml reads it from a Compose secret); without it, loopback peers only.
Several API processes (IOP_API_WORKERS) share one view through prometheus_client's multiprocess
mode (PROMETHEUS_MULTIPROC_DIR, set by `iop api`).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import time

from fastapi import APIRouter, Request
from fastapi.responses import Response
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
)

from api.problems import ProblemError

UNMATCHED = "(unmatched)"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    """The API's metrics, in a registry of their own (one per app: tests build many apps)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "iop_http_request_duration_seconds",
            "API request latency by route template, method and status",
            ["method", "route", "status"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        if not multiprocess_dir():
            ProcessCollector(registry=self.registry)

    def exposition(self) -> bytes:
        if multiprocess_dir():  # every API process's files, gathered
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


def route_template(scope: dict) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or UNMATCHED


class Observe:
    """Pure ASGI middleware, outermost: times every HTTP request and, with tracing on, opens the
    server span (continuing a caller's W3C traceparent) that the Temporal client calls nest under."""

    def __init__(self, app, metrics: Metrics, tracer: Tracer | None) -> None:
        self.app, self.metrics, self.tracer = app, metrics, tracer

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        method = scope["method"]

        async def sending(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        span = None
        if self.tracer is not None:
            carrier = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope.get("headers", [])}
            span = self.tracer.start_span(
                f"{method}",
                kind=SpanKind.SERVER,
                context=propagate.extract(carrier),
                attributes={"http.request.method": method},
            )
        try:
            if span is None:
                await self.app(scope, receive, sending)
            else:
                with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
                    await self.app(scope, receive, sending)
        finally:
            template = route_template(scope)
            self.metrics.latency.labels(method, template, str(status)).observe(time.perf_counter() - started)
            if span is not None:
                span.update_name(f"{method} {template}")
                span.set_attribute("http.route", template)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                span.end()


router = APIRouter(tags=["health"])


def _loopback(request: Request) -> bool:
    try:
        return request.client is not None and ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


@router.get("/metrics", response_class=Response, include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text format. IOP_METRICS_TOKEN set: its bearer only; unset: loopback peers only."""
    token = request.app.state.metrics_token
    if token:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise ProblemError(
                401,
                "send the metrics token (IOP_METRICS_TOKEN) as `Authorization: Bearer <token>`",
                headers={"WWW-Authenticate": "Bearer"},
            )
    elif not _loopback(request):
        raise ProblemError(
            403,
            "without IOP_METRICS_TOKEN the API answers /metrics to loopback peers only; set "
            "IOP_METRICS_TOKEN and give it to your Prometheus as a bearer token",
        )
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
