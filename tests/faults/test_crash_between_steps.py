"""The API process killed between each pair of steps of enrollment and of lab intake (issue 12.2).

The API runs as a real subprocess (`iop api`); the test-only crash point IOP_TEST_CRASH_AT
(iop/crashpoints.py) makes it os._exit(137) - as SIGKILL would - exactly between two steps. It is
then started again and the work is recovered either by the client's retry (same Idempotency-Key,
the lab's resend) or by the reconciler alone. The end state is complete and single each time.
"""

import asyncio
import contextlib
import os
import subprocess
import sys

import httpx
import pytest
from sqlmodel import Session, select
from temporalio.client import WorkflowExecutionStatus

from activities.reconciler import ReconcileInput, ReconcileReport
from domain.hl7 import parse_ack
from iop.codec import format_key
from store.models import IdempotencyRecord, LabMessage, LabResult, Participant
from tests.api.test_lab import collected, oru, screening
from tests.conftest import TEST_KEYS, unique
from tests.helpers import api_stack, enrollment
from tests.ports import free_port
from workflows.participant import ParticipantWorkflow
from workflows.reconciler import ReconcilerWorkflow

KILLED = 137


@contextlib.asynccontextmanager
async def api_process(stack, crash_at: str | None = None):
    """`iop api` as its own process, on the stack's database, Temporal and task queue."""
    port = free_port()
    env = {
        **os.environ,
        "IOP_TEMPORAL_ADDRESS": stack.temporal.service_client.config.target_host,
        "IOP_DATABASE_URL": stack.engine.url.render_as_string(hide_password=False),
        "IOP_TASK_QUEUE": stack.task_queue,
        "IOP_CODEC_KEYS": ",".join(format_key(k) for k in TEST_KEYS),
        "IOP_API_PORT": str(port),
        "IOP_LOG_LEVEL": "ERROR",
    }
    env.pop("IOP_TEST_CRASH_AT", None)
    if crash_at:
        env["IOP_TEST_CRASH_AT"] = crash_at
    process = subprocess.Popen(
        [sys.executable, "-m", "iop.cli", "api"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            # Wait (bounded) for the process to listen: a connection refused means not yet.
            async with asyncio.timeout(60):
                while True:
                    assert process.poll() is None, "the API process exited while starting"
                    try:
                        if (await http.get("/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        await asyncio.sleep(0.1)
            yield process, http
    finally:
        if process.poll() is None:
            process.terminate()
        await asyncio.to_thread(process.wait, 30)


async def killed_during(stack, step: str, method: str, path: str, **request) -> None:
    async with api_process(stack, crash_at=step) as (process, http):
        with pytest.raises(httpx.TransportError):  # the process died: no answer at all
            await http.request(method, path, **request)
        assert await asyncio.to_thread(process.wait, 30) == KILLED


async def reconcile(stack) -> ReconcileReport:
    return await stack.temporal.execute_workflow(
        ReconcilerWorkflow.run,
        ReconcileInput(stuck_after_seconds=0),
        id=unique("reconciler"),
        task_queue=stack.task_queue,
    )


@pytest.fixture
async def stack(dev_env, records_engine, task_queue, tmp_path):
    async with api_stack(dev_env.client, records_engine, task_queue, tmp_path) as s:
        yield s


@pytest.mark.parametrize("recovery", ["retry", "reconciler"])
@pytest.mark.parametrize("step", ["enroll.after-commit", "enroll.after-start"])
async def test_api_killed_between_enrollment_steps(stack, step, recovery):
    headers = {**stack.auth("staff"), "Idempotency-Key": f"killed-{step}"}
    await killed_during(stack, step, "POST", "/participants", json=enrollment(), headers=headers)
    with Session(stack.engine) as session:
        [left] = session.exec(select(Participant)).all()
    if step == "enroll.after-commit":
        assert left.status == "enrolling"  # the half-done state the issue reports

    if recovery == "retry":
        async with api_process(stack) as (_, http):
            answer = await http.post("/participants", json=enrollment(), headers=headers)
        assert answer.status_code == 201, answer.text
        assert answer.json()["id"] == left.id and answer.json()["status"] == "active"
    else:
        report = await reconcile(stack)
        assert set(report.enrollments) <= {left.id}

    with Session(stack.engine) as session:
        participants = session.exec(select(Participant)).all()
        keys = session.exec(select(IdempotencyRecord)).all()
    assert [(p.id, p.status) for p in participants] == [(left.id, "active")]  # one participant, complete
    assert [k.resource_id for k in keys] == [left.id]
    program = stack.temporal.get_workflow_handle(f"participant-{left.id}")
    assert (await program.describe()).status == WorkflowExecutionStatus.RUNNING  # one workflow, by its id
    assert (await program.query(ParticipantWorkflow.status)).status == "active"
    # nothing is left for the reconciler, and a (further) retry makes nothing new
    assert (await reconcile(stack)).enrollments == {}
    replay = await stack.http.post("/participants", json=enrollment(), headers=headers)
    assert replay.status_code == 201 and replay.json()["id"] == left.id


@pytest.mark.parametrize("recovery", ["resend", "reconciler"])
@pytest.mark.parametrize("step", ["lab.after-raw-stored", "lab.after-filed"])
async def test_api_killed_between_lab_intake_steps(stack, step, recovery):
    pid, sid, specimen = await collected(stack)
    message = oru(f"K-{step}", specimen, pid)
    lab = {**stack.auth("lab"), "Content-Type": "text/plain"}
    await killed_during(stack, step, "POST", "/lab/hl7", content=message.encode(), headers=lab)
    with Session(stack.engine) as session:
        [stored] = session.exec(select(LabMessage)).all()
        filed = session.exec(select(LabResult)).all()
    assert stored.status == "received" and stored.ack is None  # stored raw, never answered
    assert len(filed) == (1 if step == "lab.after-filed" else 0)

    if recovery == "resend":
        async with api_process(stack) as (_, http):
            answer = await http.post("/lab/hl7", content=message.encode(), headers=lab)
        assert answer.status_code == 200 and parse_ack(answer.text).ack_code == "AA", answer.text
    else:
        assert (await reconcile(stack)).lab_messages == {str(stored.id): "reprocessed"}

    with Session(stack.engine) as session:
        messages = session.exec(select(LabMessage)).all()
        results = session.exec(select(LabResult)).all()
    assert [(m.id, m.status, m.ack_code) for m in messages] == [(stored.id, "processed", "AA")]  # one raw message
    assert [(r.state, r.screening_id) for r in results] == [("filed", sid)]  # one filed result
    state = await screening(stack, sid)
    assert state["status"] == "final" and len(state["results"]) == 1
    assert (await reconcile(stack)).lab_messages == {}
