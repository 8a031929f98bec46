"""Faults, bounded in time: a worker killed at random during 50 pipelines, the Temporal server
restarted mid-run, a database connection dropped during an activity."""

import asyncio
import os
import random
import secrets
import signal
import subprocess
import sys

import httpx
import psycopg
import pytest
from sqlalchemy import event
from sqlmodel import Session, select
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from domain.disclosure_ids import disclosure_id as scoped_id
from iop.codec import format_key
from iop.worker import build_worker
from store.models import Disclosure, LabResult, Screening
from tests.api.test_disclosures import CASE, add_consent, add_recipient, consent_body
from tests.api.test_lab import URINE, oru, post_hl7
from tests.conftest import TEST_CONVERTER, TEST_KEYS, binary, unique
from tests.helpers import api_stack, result_once_started
from tests.receiver import webhook_receiver
from tests.workflows.scenarios import start_participant
from workflows import search
from workflows.contracts.participant import ForCause, PhaseChange
from workflows.contracts.screening import Collection
from workflows.participant import ParticipantWorkflow
from workflows.screening import ScreeningWorkflow
from workflows.screening import workflow_id as screening_workflow_id


@pytest.fixture(scope="module", autouse=True)
def cpu_burners():
    """CI's machines are small and busy: two CPU-bound processes occupy both cores while these tests run."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    yield burners
    for burner in burners:
        burner.kill()
        burner.wait(10)


def worker_process(target: str, database_url: str, task_queue: str, log_path=None) -> subprocess.Popen:
    env = {
        **os.environ,
        "IOP_TEMPORAL_ADDRESS": target,
        "IOP_DATABASE_URL": database_url,
        "IOP_TASK_QUEUE": task_queue,
        "IOP_CODEC_KEYS": ",".join(format_key(k) for k in TEST_KEYS),
        "IOP_LOG_LEVEL": os.environ.get("IOP_FAULT_WORKER_LOG_LEVEL", "ERROR"),
    }
    log = open(log_path, "ab") if log_path else None  # noqa: SIM115 - the process owns it
    return subprocess.Popen([sys.executable, "-m", "iop.cli", "worker"], env=env, stderr=log)


async def polling(client, task_queue: str, pid: int) -> None:
    """Until the worker process `pid` polls the task queue, as Temporal itself reports its pollers."""
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    for _ in range(1200):
        try:
            pollers = (await client.workflow_service.describe_task_queue(request)).pollers
        except RPCError:  # the question itself timed out on a loaded server: ask again
            pollers = []
        if any(p.identity.startswith(f"{pid}@") for p in pollers):
            return
        await asyncio.sleep(0.1)  # bounded polling of Temporal's record
    raise AssertionError(f"worker {pid} never polled")


async def test_worker_killed_at_random_during_fifty_pipelines(dev_env, records_engine, task_queue, tmp_path):
    """Enroll, for-cause test, collection, HL7 result, final, disclosure - fifty times, while the
    worker process is killed with SIGKILL at random moments and started again."""
    target = dev_env.client.service_client.config.target_host
    database_url = records_engine.url.render_as_string(hide_password=False)
    chaos = random.Random(20261123)
    with webhook_receiver() as court:
        async with api_stack(dev_env.client, records_engine, task_queue, tmp_path, with_worker=False) as stack:
            worker = worker_process(target, database_url, task_queue, tmp_path / "worker.log")
            court_id = await add_recipient(stack, court, "court", ["screening-results"], case_system=CASE["system"])
            finished = asyncio.Event()

            async def kill_at_random() -> int:
                nonlocal worker
                kills = 0
                while not finished.is_set():
                    # A random moment while the worker works: after it polls (on a loaded machine its
                    # start alone takes longer than 4 s; killing it before it polls tests nothing).
                    await polling(dev_env.client, task_queue, worker.pid)
                    try:
                        await asyncio.wait_for(finished.wait(), timeout=chaos.uniform(1.0, 4.0))
                    except TimeoutError:
                        worker.send_signal(signal.SIGKILL)
                        await asyncio.to_thread(worker.wait)
                        kills += 1
                        worker = worker_process(target, database_url, task_queue, tmp_path / "worker.log")
                return kills

            retried = {"503": 0, "AE": 0}

            async def post_until_answered(path: str, body: dict) -> httpx.Response:
                """What a client does: on 503 (problem+json, Retry-After) it retries with the same key."""
                headers = {**stack.auth("staff"), "Idempotency-Key": f"fault-{secrets.token_hex(8)}"}
                for _ in range(60):
                    answer = await stack.http.post(path, json=body, headers=headers)
                    if answer.status_code != 503:
                        return answer
                    assert answer.headers["content-type"] == "application/problem+json", answer.text
                    assert int(answer.headers["Retry-After"]) > 0 and "Idempotency-Key" in answer.json()["detail"]
                    retried["503"] += 1
                    await asyncio.sleep(1)  # the client's back-off (shorter than Retry-After, to keep the test short)
                raise AssertionError(f"{path} was never answered")

            async def pipeline(i: int) -> str:
                pid = (await stack.enroll())["id"]
                await add_consent(stack, pid, consent_body(court_id, ["screening-results"]))
                ordered = await post_until_answered(f"/participants/{pid}/screenings", {"reason": f"run {i}"})
                assert ordered.status_code == 201, ordered.text
                sid = ordered.json()["screening_id"]
                collected = await post_until_answered(f"/screenings/{sid}/collection", URINE)
                assert collected.status_code == 200, collected.text
                message = oru(f"F-{i}", collected.json()["specimen_id"], pid)
                for _ in range(60):
                    _, ack = await post_hl7(stack, message)
                    if ack.ack_code == "AA":
                        break
                    assert ack.ack_code == "AE" and "resend" in str(ack), ack  # filing failed: the lab resends
                    retried["AE"] += 1
                    await asyncio.sleep(1)
                assert ack.ack_code == "AA", ack
                return sid

            killer = asyncio.create_task(kill_at_random())
            semaphore = asyncio.Semaphore(10)

            async def bounded(i):
                async with semaphore:
                    return await pipeline(i)

            try:
                screenings = await asyncio.wait_for(asyncio.gather(*(bounded(i) for i in range(50))), timeout=400)
                finished.set()
                kills = await killer
                with Session(records_engine) as session:
                    owners = dict(
                        session.exec(
                            select(Screening.id, Screening.participant_id).where(Screening.id.in_(screenings))
                        ).all()
                    )
                disclosure_ids = [scoped_id(owners[sid], sid, "screening-results", court_id) for sid in screenings]
                for disclosure_id in disclosure_ids:
                    await result_once_started(stack.temporal, f"disclosure-{disclosure_id}", timeout=120)
            finally:
                finished.set()
                worker.kill()
                worker.wait(10)
    assert kills >= 2, "the worker was never killed: the test proved nothing"
    print(f"kills={kills} retried={retried}")
    with Session(records_engine) as session:
        rows = session.exec(select(Screening).where(Screening.id.in_(screenings))).all()
        participants = {r.participant_id for r in rows}
        per_participant = session.exec(
            select(Screening.participant_id).where(
                Screening.participant_id.in_(participants), Screening.reason == "for-cause"
            )
        ).all()
        results = session.exec(select(LabResult).where(LabResult.screening_id.in_(screenings))).all()
        disclosures = session.exec(select(Disclosure).where(Disclosure.recipient_id == court_id)).all()
    assert len(rows) == 50 and {r.status for r in rows} == {"final"}  # no lost result
    assert len(results) == 50 and len({r.screening_id for r in results}) == 50  # one result per screening
    assert len(participants) == 50 and len(per_participant) == 50  # a retried order made no second screening
    assert sorted(d.id for d in disclosures) == sorted(disclosure_ids)
    assert {d.status for d in disclosures} == {"delivered"}
    assert sorted(court.kept) == sorted(disclosure_ids)  # each report once at the receiver


async def test_temporal_server_restarted_mid_run_workflows_resume(records_engine, tmp_path):
    database = tmp_path / "temporal.db"

    async def server() -> WorkflowEnvironment:
        env = await WorkflowEnvironment.start_local(
            data_converter=TEST_CONVERTER,
            dev_server_existing_path=binary("temporal"),
            dev_server_database_filename=str(database),
            search_attributes=search.ALL,
        )
        return env

    queue = unique("tq")
    env = await server()
    async with build_worker(env.client, records_engine, queue):
        participant = await start_participant(env.client, records_engine, queue)
        ref = await participant.execute_update(ParticipantWorkflow.order_for_cause, ForCause("before restart", "t"))
    await env.shutdown()  # the server stops with workflows open

    env = await server()
    try:
        async with build_worker(env.client, records_engine, queue):
            participant = env.client.get_workflow_handle_for(ParticipantWorkflow.run, participant.id)
            state = await participant.execute_update(
                ParticipantWorkflow.change_phase, PhaseChange("phase-2", "after restart", "t")
            )
            screening = env.client.get_workflow_handle_for(
                ScreeningWorkflow.run, screening_workflow_id(ref.screening_id)
            )
            collected = await screening.execute_update(
                ScreeningWorkflow.record_collection, Collection("urine", True, "RN")
            )
            assert [p.phase for p in state.phase_history] == ["phase-1", "phase-2"]
            assert collected.status == "awaiting-result" and collected.screening_id == ref.screening_id
            await participant.terminate("test over")
    finally:
        await env.shutdown()


async def test_database_connection_dropped_during_an_activity_is_retried_without_partial_rows(
    time_env, postgres_admin_url
):
    """A phase change plans one report per recipient in one transaction; the PostgreSQL backend
    is terminated after the first insert; Temporal retries the activity; every row exists once."""
    from store.db import make_engine
    from store.migrate import upgrade
    from tests.conftest import drop_schema, postgres_schema_url
    from tests.workflows.test_disclosure_delivery import setup_records_for

    url, schema = postgres_schema_url(postgres_admin_url)
    upgrade(url)
    engine = make_engine(url)
    dropped: list[int] = []

    @event.listens_for(engine, "after_cursor_execute")
    def drop_once(conn, cursor, statement, *args):
        if statement.startswith("INSERT INTO disclosures") and not dropped:
            dropped.append(conn.connection.dbapi_connection.info.backend_pid)
            with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (dropped[0],))

    queue = unique("tq")
    try:
        async with build_worker(time_env.client, engine, queue):
            participant = await start_participant(time_env.client, engine, queue)
            pid = (await participant.query(ParticipantWorkflow.status)).participant_id
            for _ in range(3):
                setup_records_for(
                    engine, pid, "http://127.0.0.1:9/unused", "whsec_" + "A" * 43 + "=", ["phase-changes"]
                )
            await participant.execute_update(ParticipantWorkflow.change_phase, PhaseChange("phase-2", "x", "t"))
            await participant.terminate("test over")
        with Session(engine) as session:
            rows = session.exec(select(Disclosure).where(Disclosure.participant_id == pid)).all()
        assert dropped, "the connection was never dropped: the test proved nothing"
        assert len(rows) == 3 and len({r.recipient_id for r in rows}) == 3
    finally:
        engine.dispose()
        drop_schema(postgres_admin_url, schema)
