"""The worker's Temporal SDK metrics (IOP_WORKER_METRICS_ADDRESS), and the Grafana dashboard's
queries naming only metrics the API and the worker really expose."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from iop.settings import Settings
from iop.temporal import connect
from tests.helpers import api_stack, enrollment
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[1]


def _names(text: str) -> set[str]:
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


async def test_the_worker_serves_sdk_metrics_the_dashboard_reads(dev_env, records_engine, task_queue, tmp_path):
    port = free_port()
    settings = Settings(
        data_dir=tmp_path,
        temporal_address=dev_env.client.service_client.config.target_host,
        worker_metrics_address=f"127.0.0.1:{port}",
        task_queue=task_queue,
    )
    client = await connect(settings, service="iop-worker", worker_index=0)
    async with api_stack(client, records_engine, task_queue, tmp_path) as stack:
        person = enrollment()
        pid = (await stack.enroll(**person))["id"]
        # A for-cause screening: the workflow opens it with a local activity.
        ordered = await stack.http.post(
            f"/participants/{pid}/screenings", json={"reason": "metrics test"}, headers=stack.auth("staff")
        )
        assert ordered.status_code == 201, ordered.text
        worker_text = ""
        async with httpx.AsyncClient() as http:
            for _ in range(100):  # bounded wait for the activities' latencies to be recorded
                worker_text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                if all(
                    f"temporal_{kind}activity_execution_latency_seconds_bucket" in worker_text
                    for kind in ("", "local_")
                ):
                    break
                await asyncio.sleep(0.1)
        api_text = (await stack.http.get("/metrics")).text
    worker_names = _names(worker_text)
    assert {
        "temporal_workflow_task_execution_latency_seconds_bucket",
        "temporal_workflow_task_schedule_to_start_latency_seconds_bucket",
        "temporal_activity_execution_latency_seconds_bucket",
        "temporal_activity_schedule_to_start_latency_seconds_bucket",
    } <= worker_names
    # Latencies in seconds with the buckets iop/telemetry.py sets, labelled by types, never by ids.
    assert 'le="0.005"' in worker_text and f'task_queue="{task_queue}"' in worker_text
    assert 'workflow_type="ParticipantWorkflow"' in worker_text
    for secret in (pid, pid.removeprefix("p-"), person["family_name"], "workflow_id", "run_id"):
        assert secret not in worker_text, secret

    dashboard = json.loads((ROOT / "deploy" / "grafana" / "iop-workflows.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    queries += [v["query"]["query"] for v in dashboard["templating"]["list"] if isinstance(v.get("query"), dict)]
    used = {name for query in queries for name in re.findall(r"\b((?:iop|temporal)_\w+)", query)}
    missing = used - worker_names - _names(api_text)
    assert not missing, f"the dashboard queries metrics nobody exposes: {missing}"
