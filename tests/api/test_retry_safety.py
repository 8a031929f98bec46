"""Issue 12.4: no Temporal error is a 500, and a retried POST with the same Idempotency-Key has one effect.

Real servers throughout: a private Temporal dev server that is stopped, a workflow whose task fails,
updates sent while no worker polls, and the shared dev server for the retries."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import pytest
from sqlmodel import Session, func, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import RPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from api.idempotency import Attempt
from api.tokens import issue_token
from iop.worker import build_worker
from store.db import session_scope
from store.models import DispenseRow, IdempotentAnswer, LabMessage, LabResult, Recipient, Screening
from tests.api.test_lab import POSITIVE, URINE, collected, oru, post_hl7
from tests.api.test_medications import METHADONE
from tests.conftest import TEST_CONVERTER, binary
from tests.helpers import api_stack
from workflows import search
from workflows.contracts.participant import ParticipantInput, ParticipantState
from workflows.participant import ParticipantWorkflow
from workflows.participant import workflow_id as participant_workflow_id
from workflows.screening import workflow_id as screening_workflow_id


def assert_retry_later(response, *, idempotency_hint: bool = True) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["Retry-After"]) > 0
    body = response.json()
    assert body["status"] == 503 and body["instance"]
    if idempotency_hint:
        assert "may already be in progress" in body["detail"] and "same Idempotency-Key" in body["detail"]


async def private_server() -> WorkflowEnvironment:
    return await WorkflowEnvironment.start_local(
        data_converter=TEST_CONVERTER, dev_server_existing_path=binary("temporal"), search_attributes=search.ALL
    )


# --- Temporal errors: 503 + Retry-After, never 500 --------------------------------------------


async def test_temporal_server_stopped_every_call_answers_503(records_engine, task_queue, tmp_path):
    env = await private_server()
    try:
        async with api_stack(env.client, records_engine, task_queue, tmp_path, with_worker=False) as stack:
            async with build_worker(env.client, records_engine, task_queue):
                pid, sid, _ = await collected(stack)
            await env.shutdown()  # the server is gone; the API keeps its client
            calls = [
                stack.http.post(
                    f"/participants/{pid}/screenings",
                    json={"reason": "r"},  # update
                    headers={**stack.auth("staff"), "Idempotency-Key": "k1"},
                ),
                stack.http.get(f"/participants/{pid}", headers=stack.auth("staff")),  # query
                stack.http.post(
                    f"/screenings/{sid}/review",
                    json={"decision": "confirm", "explanation": "x"},
                    headers=stack.auth("clinician"),
                ),
                stack.http.get(f"/screenings/{sid}", headers=stack.auth("staff")),
            ]
            enrolling = stack.http.post("/participants", json=_enrollment(), headers=stack.auth("staff"))
            # At once: with the server gone, each call waits out the client's own RPC retries (seconds).
            *answers, enrolled = await asyncio.gather(*calls, enrolling)
            for answer in answers:
                assert_retry_later(answer)
            assert_retry_later(enrolled, idempotency_hint=False)  # start_workflow: nobody enrolled, retry later
    finally:
        with contextlib.suppress(Exception):
            await env.shutdown()


def _enrollment():
    from tests.helpers import enrollment

    return enrollment()


async def test_update_not_taken_in_time_answers_503_and_the_retry_joins_it(records_engine, task_queue, tmp_path):
    """No worker polls: Temporal admits the for-cause order but nobody runs it before the RPC deadline
    (WorkflowUpdateRPCTimeoutOrCancelledError). 503; once a worker runs, the retry with the same key
    gets the first attempt's screening, and there is one."""
    env = await private_server()
    try:
        async with api_stack(env.client, records_engine, task_queue, tmp_path, with_worker=False) as stack:
            async with build_worker(env.client, records_engine, task_queue):
                pid = (await stack.enroll())["id"]
            headers = {**stack.auth("staff"), "Idempotency-Key": "order-while-no-worker"}
            first = await _with_short_rpc_deadline(
                stack, stack.http.post(f"/participants/{pid}/screenings", json={"reason": "r"}, headers=headers)
            )
            assert_retry_later(first)
            async with build_worker(env.client, records_engine, task_queue):
                again = await stack.http.post(f"/participants/{pid}/screenings", json={"reason": "r"}, headers=headers)
                assert again.status_code == 201, again.text
                replayed = await stack.http.post(
                    f"/participants/{pid}/screenings", json={"reason": "r"}, headers=headers
                )
        assert replayed.status_code == 201 and replayed.headers["Idempotent-Replayed"] == "true"
        assert replayed.json() == again.json()
        with Session(records_engine) as session:
            assert (
                session.exec(
                    select(func.count())
                    .select_from(Screening)
                    .where(Screening.participant_id == pid, Screening.reason == "for-cause")
                ).one()
                == 1
            )
    finally:
        await env.shutdown()


async def _with_short_rpc_deadline(stack, request):
    """The update RPC of this request gets a 2 s deadline (the server's own is a minute): the same
    error as on a loaded machine, sooner."""
    client = stack.temporal
    original = client.workflow_service.update_workflow_execution

    async def deadline(req, *, retry=False, metadata={}, timeout=None):  # noqa: B006 - the SDK's signature
        return await original(req, retry=retry, metadata=metadata, timeout=timedelta(seconds=2))

    client.workflow_service.update_workflow_execution = deadline
    try:
        return await request
    finally:
        client.workflow_service.update_workflow_execution = original


async def test_hl7_result_not_filed_in_time_is_answered_ae_and_the_resend_files_it_once(
    records_engine, task_queue, tmp_path
):
    """The lab is never told AA for a result that was not filed, and never gets a 500: AE asking it to
    resend; the raw message is stored; the resend joins the first delivery (one result)."""
    env = await private_server()
    try:
        async with api_stack(env.client, records_engine, task_queue, tmp_path, with_worker=False) as stack:
            async with build_worker(env.client, records_engine, task_queue):
                pid, sid, specimen = await collected(stack)
            message = oru("SLOW-1", specimen, pid)
            text, ack = await _with_short_rpc_deadline(stack, post_hl7(stack, message))
            assert ack.ack_code == "AE" and "resend" in text, text
            with Session(records_engine) as session:
                assert session.exec(select(func.count()).select_from(LabMessage)).one() == 1
                assert session.exec(select(func.count()).select_from(LabResult)).one() == 0
            async with build_worker(env.client, records_engine, task_queue):
                _, ack = await post_hl7(stack, message)
                assert ack.ack_code == "AA"
        with Session(records_engine) as session:
            assert [r.screening_id for r in session.exec(select(LabResult)).all()] == [sid]
    finally:
        await env.shutdown()


async def test_workflow_task_failing_answers_503(records_engine, task_queue, tmp_path):
    """A workflow whose task fails (here: a plan it cannot read) refuses updates with
    WorkflowNotReadyFailure, "Workflow Task in failed state": 503, not 500."""
    env = await private_server()
    try:
        async with api_stack(env.client, records_engine, task_queue, tmp_path) as stack:
            pid = (await stack.enroll())["id"]
            await stack.temporal.get_workflow_handle(participant_workflow_id(pid)).terminate("replaced by a broken one")
            state = ParticipantState(
                participant_id=pid,
                program="iop",
                site="north",
                phase="phase-1",
                start_date="2026-11-23",
                timezone="America/New_York",
                plan={"broken": True},
            )
            handle = await stack.temporal.start_workflow(
                ParticipantWorkflow.run,
                ParticipantInput(state=state, continued=True),
                id=participant_workflow_id(pid),
                task_queue=task_queue,
            )
            await _until_workflow_task_failed(handle)
            response = await stack.http.post(
                f"/participants/{pid}/screenings", json={"reason": "r"}, headers=stack.auth("staff")
            )
            assert_retry_later(response)
            await handle.terminate("test over")
    finally:
        await env.shutdown()


async def _until_workflow_task_failed(handle, attempts: int = 2) -> None:
    for _ in range(600):
        events = [e async for e in handle.fetch_history_events()]
        if sum(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED for e in events) >= 1:
            description = await handle.describe()
            if description.raw_description.pending_workflow_task.attempt >= attempts:
                return
        await asyncio.sleep(0.1)  # polling Temporal's record, bounded
    raise AssertionError("the workflow task never failed")


# --- retries with the same Idempotency-Key: one effect ---------------------------------------


async def test_retried_for_cause_collection_review_dispense_have_one_effect(stack):
    pid = (await stack.enroll())["id"]
    staff = {**stack.auth("staff"), "Idempotency-Key": "order-1"}
    orders = [
        await stack.http.post(f"/participants/{pid}/screenings", json={"reason": "r"}, headers=staff) for _ in range(3)
    ]
    assert [o.status_code for o in orders] == [201, 201, 201] and len({o.json()["screening_id"] for o in orders}) == 1
    sid = orders[0].json()["screening_id"]

    collect = {**stack.auth("staff"), "Idempotency-Key": "collect-1"}
    collections = await asyncio.gather(
        *[stack.http.post(f"/screenings/{sid}/collection", json=URINE, headers=collect) for _ in range(3)]
    )
    assert {c.status_code for c in collections} == {200}, [c.text for c in collections]
    specimen = collections[0].json()["specimen_id"]
    assert {c.json()["specimen_id"] for c in collections} == {specimen}

    _, ack = await post_hl7(stack, oru("RETRY-1", specimen, pid, obx=POSITIVE))
    assert ack.ack_code == "AA"
    review = {**stack.auth("clinician"), "Idempotency-Key": "review-1"}
    body = {"decision": "confirm", "explanation": "no prescription for the substance"}
    reviews = [await stack.http.post(f"/screenings/{sid}/review", json=body, headers=review) for _ in range(2)]
    assert [r.status_code for r in reviews] == [200, 200] and reviews[1].headers["Idempotent-Replayed"] == "true"
    other = await stack.http.post(f"/screenings/{sid}/review", json={**body, "decision": "excuse"}, headers=review)
    assert other.status_code == 422 and "different request body" in other.json()["detail"]

    started = await stack.http.post(
        f"/participants/{pid}/medications",
        json=METHADONE,
        headers={**stack.auth("clinician"), "Idempotency-Key": "start-1"},
    )
    order_id = started.json()["id"]
    dose = {**stack.auth("staff"), "Idempotency-Key": "dose-1"}
    given = {"kind": "observed-dose", "dose": 60, "unit": "mg"}
    doses = await asyncio.gather(
        *[stack.http.post(f"/medications/{order_id}/dispenses", json=given, headers=dose) for _ in range(3)]
    )
    assert {d.status_code for d in doses} == {200}, [d.text for d in doses]
    with Session(stack.engine) as session:
        assert (
            session.exec(
                select(func.count())
                .select_from(Screening)
                .where(Screening.participant_id == pid, Screening.reason == "for-cause")
            ).one()
            == 1
        )
        assert (
            session.exec(select(func.count()).select_from(DispenseRow).where(DispenseRow.order_id == order_id)).one()
            == 1
        )
    history = [e async for e in stack.temporal.get_workflow_handle(screening_workflow_id(sid)).fetch_history_events()]
    accepted = [
        e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        for e in history
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]
    assert accepted.count("record_collection") == 1 and accepted.count("review") == 1


async def test_collection_retried_after_the_first_client_was_cut_off_joins_it(
    records_engine, task_queue, dev_env, tmp_path
):
    async with api_stack(dev_env.client, records_engine, task_queue, tmp_path, with_worker=False) as stack:
        async with build_worker(stack.temporal, records_engine, task_queue):
            pid = (await stack.enroll())["id"]
            sid = (
                await stack.http.post(
                    f"/participants/{pid}/screenings", json={"reason": "r"}, headers=stack.auth("staff")
                )
            ).json()["screening_id"]
        headers = {**stack.auth("staff"), "Idempotency-Key": "cut-off-1"}
        first = asyncio.create_task(stack.http.post(f"/screenings/{sid}/collection", json=URINE, headers=headers))
        update = stack.temporal.get_workflow_handle(screening_workflow_id(sid)).get_update_handle(
            await _claimed_update_id(stack, sid)
        )
        await _until_admitted(update)
        first.cancel()  # the client (and, in-process, the request) is cut off; the update is already with Temporal
        with contextlib.suppress(asyncio.CancelledError):
            await first
        async with build_worker(stack.temporal, records_engine, task_queue):
            retry = await stack.http.post(f"/screenings/{sid}/collection", json=URINE, headers=headers)
            assert retry.status_code == 200, retry.text
            assert (await update.result())["specimen_id"] == retry.json()["specimen_id"]
    history = [e async for e in stack.temporal.get_workflow_handle(screening_workflow_id(sid)).fetch_history_events()]
    accepted = [e for e in history if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED]
    assert len(accepted) == 1  # one collection


async def _claimed_update_id(stack, sid: str) -> str:
    for _ in range(600):
        with Session(stack.engine) as session:
            row = session.exec(select(IdempotentAnswer).where(IdempotentAnswer.key == "cut-off-1")).first()
        if row is not None:
            return Attempt(row.actor, row.route, row.subject, row.key, row.request_sha256, row.id).update_id(sid)
        await asyncio.sleep(0.05)  # polling the database, bounded
    raise AssertionError("the first attempt never claimed its key")


async def _until_admitted(update) -> None:
    for _ in range(600):
        try:
            await update.result(rpc_timeout=timedelta(seconds=1))
        except RPCTimeoutOrCancelledError:
            return  # Temporal holds the update, waiting for a worker
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            await asyncio.sleep(0.05)  # not sent yet
    raise AssertionError("the update never reached Temporal")


async def test_non_workflow_posts_replay_their_first_answer(stack):
    body = {
        "name": "Drug Court",
        "kind": "court",
        "delivery": "email",
        "email": "clerk@court.example",
        "categories": ["screening-results"],
    }
    admin = {**stack.auth("admin"), "Idempotency-Key": "recipient-1"}
    first = await stack.http.post("/recipients", json=body, headers=admin)
    again = await stack.http.post("/recipients", json=body, headers=admin)
    assert first.status_code == again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    changed = await stack.http.post("/recipients", json={**body, "name": "Other"}, headers=admin)
    assert changed.status_code == 422 and changed.headers["content-type"] == "application/problem+json"
    assert "different request body" in changed.json()["detail"]
    # Keys are the caller's: another token with the same key makes its own.
    with session_scope(stack.engine) as session:
        _, token = issue_token(session, name="second admin", role="admin")
    other = await stack.http.post(
        "/recipients", json=body, headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "recipient-1"}
    )
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    with Session(stack.engine) as session:
        assert session.exec(select(func.count()).select_from(Recipient)).one() == 2


@pytest.mark.parametrize("path", ["/participants", "/lab/hl7", "/lab/results"])
def test_routes_with_their_own_once_only_mechanism_are_left_to_it(path):
    from api.idempotency import OWN_MECHANISM

    assert path in OWN_MECHANISM


def test_every_other_post_takes_an_idempotency_key():
    from api.app import create_app
    from iop.settings import Settings

    schema = create_app(Settings()).openapi()
    # The SMS gateway's posts are exempt: a gateway (Twilio, a Standard Webhooks sender) never sends an
    # Idempotency-Key; its retries are deduplicated by its own signed message id (MessageSid, webhook-id),
    # tests/api/test_channel.py::test_a_gateway_retry_is_answered_once_by_its_message_id.
    gateway = ("/channel/inbound", "/channel/receipts")
    missing = [
        path
        for path, item in schema["paths"].items()
        if "post" in item
        and not path.startswith("/ui")
        and path not in ("/participants", "/lab/hl7", "/lab/results", "/codec/decode", "/codec/encode", *gateway)
        and "idempotency-key" not in {p["name"].lower() for p in item["post"].get("parameters", [])}
    ]
    assert missing == []


@pytest.mark.parametrize(
    "error, retry_later",
    [
        (TimeoutError(), True),
        (RPCTimeoutOrCancelledError("update"), True),
        (RPCError("unreachable", RPCStatusCode.UNAVAILABLE, b""), True),
        (RPCError("deadline", RPCStatusCode.DEADLINE_EXCEEDED, b""), True),
        (
            RPCError(
                "Unable to perform workflow execution update due to Workflow Task in failed state.",
                RPCStatusCode.FAILED_PRECONDITION,
                b"",
            ),
            True,
        ),
        (RuntimeError("Failed client connect: connection refused"), True),
        (RPCError("not found", RPCStatusCode.NOT_FOUND, b""), False),
        (RPCError("bad", RPCStatusCode.INVALID_ARGUMENT, b""), False),
        (ValueError("a bug of ours"), False),
    ],
)
def test_which_temporal_errors_mean_retry_later(error, retry_later):
    from iop.temporal import not_available_now

    assert not_available_now(error) is retry_later
    wrapped = RuntimeError("while filing")
    wrapped.__cause__ = error
    assert not_available_now(wrapped) is retry_later  # seen through the causes
