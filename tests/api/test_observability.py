"""The API's /metrics (Prometheus text, route templates only, readable by the right peers) and one
OpenTelemetry trace from an API request through the workflow it starts to the activity that runs."""

from __future__ import annotations

import asyncio

import httpx
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor

from api.app import create_app
from api.observability import UNMATCHED
from iop.settings import Settings
from tests.helpers import api_stack, enrollment

LATENCY = "iop_http_request_duration_seconds"


def request_counts(text: str) -> dict[tuple[str, str, str], float]:
    counts = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{LATENCY}_count":
                counts[(sample.labels["method"], sample.labels["route"], sample.labels["status"])] = sample.value
    return counts


async def test_metrics_count_requests_by_route_template_and_status_without_phi(stack):
    person = enrollment()
    enrolled = await stack.enroll(**person)
    pid = enrolled["id"]
    assert (await stack.http.get(f"/participants/{pid}", headers=stack.auth("staff"))).status_code == 200
    assert (await stack.http.get(f"/participants/{pid}", headers=stack.auth("lab"))).status_code == 403
    # A path no route matches, carrying data in its path and query: counted, but not by its path.
    missing = f"/nowhere/{person['family_name']}?dob={person['date_of_birth']}&phone={person['phone']}"
    assert (await stack.http.get(missing, headers=stack.auth("staff"))).status_code == 404

    answer = await stack.http.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    counts = request_counts(text)
    assert counts[("POST", "/participants", "201")] == 1
    assert counts[("GET", "/participants/{participant_id}", "200")] == 1
    assert counts[("GET", "/participants/{participant_id}", "403")] == 1
    assert counts[("GET", UNMATCHED, "404")] == 1
    # Buckets too: a latency histogram, not only a counter.
    assert f'{LATENCY}_bucket{{le="0.005",method="POST",route="/participants",status="201"}}' in text
    # Labels are templates of real routes; nothing of the person or their id is in the exposition.
    templates = set(stack.http._transport.app.openapi()["paths"]) | {UNMATCHED}
    assert {route for _, route, _ in counts} <= templates
    for secret in (
        pid,
        pid.removeprefix("p-"),
        person["family_name"],
        person["given_name"],
        person["date_of_birth"],
        person["phone"],
        person["phone"].lstrip("+"),
        "nowhere",
        "dob=",
    ):
        assert secret not in text, secret


def _app(**settings):
    return create_app(Settings(**settings))


async def test_metrics_are_for_loopback_without_a_token_and_for_the_token_with_one(tmp_path):
    open_app = _app(data_dir=tmp_path)
    for peer, expected in (
        (("127.0.0.1", 40000), 200),
        (("::1", 40000), 200),
        (("10.0.0.7", 40000), 403),
        (("172.18.0.5", 40000), 403),
    ):
        transport = httpx.ASGITransport(app=open_app, client=peer)
        async with httpx.AsyncClient(transport=transport, base_url="http://iop.test") as http:
            answer = await http.get("/metrics")
        assert answer.status_code == expected, (peer, answer.text)
        if expected == 403:
            assert answer.headers["content-type"] == "application/problem+json"
            assert "IOP_METRICS_TOKEN" in answer.json()["detail"]

    guarded = _app(data_dir=tmp_path, metrics_token="m3trics-t0ken")
    transport = httpx.ASGITransport(app=guarded, client=("10.0.0.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://iop.test") as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "m3trics-t0ken"}):
            answer = await http.get("/metrics", headers=headers)
            assert answer.status_code == 401, headers
            assert answer.headers["www-authenticate"] == "Bearer"
            assert "Authorization: Bearer" in answer.json()["detail"]
        answer = await http.get("/metrics", headers={"Authorization": "Bearer m3trics-t0ken"})
        assert answer.status_code == 200 and f"# TYPE {LATENCY} histogram" in answer.text
    # Loopback is no way around a configured token.
    transport = httpx.ASGITransport(app=guarded, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://iop.test") as http:
        assert (await http.get("/metrics")).status_code == 401


async def test_one_trace_spans_the_request_the_workflow_and_its_activity(dev_env, records_engine, task_queue, tmp_path):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    traced = Client(**{**dev_env.client.config(), "interceptors": [TracingInterceptor(tracer)]})
    async with api_stack(traced, records_engine, task_queue, tmp_path, tracer=tracer) as stack:
        caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"  # W3C traceparent of a caller
        enrolled = await stack.http.post(
            "/participants", json=enrollment(), headers={**stack.auth("staff"), "traceparent": caller}
        )
        assert enrolled.status_code == 201, enrolled.text
        for _ in range(300):  # bounded wait for the activity's span (it ends when the activity does)
            if any(s.name.startswith("RunActivity:") for s in exporter.get_finished_spans()):
                break
            await asyncio.sleep(0.1)
    spans = exporter.get_finished_spans()
    by_id = {span.context.span_id: span for span in spans}
    request = [s for s in spans if s.name == "POST /participants"]
    assert len(request) == 1, [s.name for s in spans]
    request = request[0]
    # The caller's trace continues: the request span is its child.
    assert f"{request.context.trace_id:032x}" == caller.split("-")[1]
    assert request.parent is not None and f"{request.parent.span_id:016x}" == caller.split("-")[2]
    assert request.attributes["http.route"] == "/participants"
    assert request.attributes["http.response.status_code"] == 201

    def ancestors(span) -> list[str]:
        names = []
        while span.parent is not None and span.parent.span_id in by_id:
            span = by_id[span.parent.span_id]
            names.append(span.name)
        return names

    activity = [s for s in spans if s.name.startswith("RunActivity:")]
    assert activity, [s.name for s in spans]
    chain = ancestors(activity[0])
    assert chain[-1] == "POST /participants", chain
    assert chain[-2] == "StartWorkflow:ParticipantWorkflow", chain
    assert any(name.startswith("StartActivity:") for name in chain), chain
    # The workflow's own run, under the start the request made (the SDK hangs workflow spans there).
    run = [s for s in spans if s.name == "RunWorkflow:ParticipantWorkflow"]
    assert run and ancestors(run[0])[-2:] == ["StartWorkflow:ParticipantWorkflow", "POST /participants"]
    assert {s.context.trace_id for s in [request, *activity, *run]} == {request.context.trace_id}
    # No workflow input (the person) in any attribute.
    for span in spans:
        for value in (span.attributes or {}).values():
            assert "Quintanilla" not in str(value) and "1987-03-14" not in str(value)
