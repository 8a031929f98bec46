"""A test the participant was never told about (no phone, gateway down) is replaced by a make-up test through
the API: the lost one is excused, a new one is ordered, and a retry with the same Idempotency-Key does neither
again. On the time-skipping server, with a real worker."""

from __future__ import annotations

from datetime import timedelta

import pytest_asyncio

from activities.notify import WebhookNotifier
from domain.clock import local_date
from iop.worker import build_worker
from store.models import Screening
from tests.helpers import api_stack
from tests.receiver import sms_gateway
from tests.workflows.test_program_calendar import ZONE, enroll, rows, store_program
from tests.workflows.test_screening_program import skip
from workflows.contracts.participant import ForCause
from workflows.participant import ParticipantWorkflow
from workflows.screening import ScreeningWorkflow
from workflows.screening import workflow_id as screening_workflow_id


@pytest_asyncio.fixture
async def stack(time_env, records_engine, task_queue, tmp_path):
    with sms_gateway() as gateway:
        gateway.down = True  # nobody can be told: the test is not-notified once its window closes
        notifier = WebhookNotifier(gateway.url, "gateway-secret", timeout=5)
        async with build_worker(time_env.client, records_engine, task_queue, notifier=notifier):
            async with api_stack(time_env.client, records_engine, task_queue, tmp_path, with_worker=False) as s:
                s.env = time_env
                yield s


async def test_a_test_never_notified_is_replaced_by_a_make_up_once(stack):
    env, engine = stack.env, stack.engine
    today = local_date(await env.get_current_time(), ZONE)
    store_program(
        engine,
        "all-hours",
        {},
        hours={d: ["00:00", "23:59"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    )
    handle = await enroll(env, engine, stack.task_queue, "all-hours", today, phone=None)
    lost = await handle.execute_update(ParticipantWorkflow.order_for_cause, ForCause("odour of alcohol", "tester"))
    await skip(env, timedelta(hours=10))
    screening = env.client.get_workflow_handle_for(ScreeningWorkflow.run, screening_workflow_id(lost.screening_id))
    assert (await screening.query(ScreeningWorkflow.status)).status == "not-notified"

    headers = {**stack.auth("staff"), "Idempotency-Key": "make-up-1"}
    body = {"reason": "no phone on file; reached in person"}
    made = await stack.http.post(f"/screenings/{lost.screening_id}/make-up", json=body, headers=headers)
    assert made.status_code == 201, made.text
    again = await stack.http.post(f"/screenings/{lost.screening_id}/make-up", json=body, headers=headers)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == made.json() and made.json()["screening_id"] != lost.screening_id
    state = await screening.query(ScreeningWorkflow.status)
    assert state.status == "excused" and "make-up" in state.events[-1].detail
    pid = state.participant_id
    # The lost one and one make-up (a random draw may also fall on today: it is not theirs to count).
    ordered = sorted(s.id for s in rows(engine, Screening, participant_id=pid) if s.reason != "random")
    assert ordered == sorted([lost.screening_id, made.json()["screening_id"]])
    # Without a key, the excused screening is refused: it was already replaced.
    refused = await stack.http.post(f"/screenings/{lost.screening_id}/make-up", json=body, headers=stack.auth("staff"))
    assert refused.status_code == 409 and "excused" in refused.json()["detail"]
    await handle.terminate("test over")


async def test_a_test_never_notified_is_replaced_after_its_screening_closed(stack):
    """Past the make-up period the lost test's workflow has closed; the make-up still replaces it (the screening is
    reopened for the excuse, as an excuse alone is) instead of answering 404."""
    env, engine = stack.env, stack.engine
    today = local_date(await env.get_current_time(), ZONE)
    store_program(
        engine,
        "all-hours",
        {},
        hours={d: ["00:00", "23:59"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    )
    handle = await enroll(env, engine, stack.task_queue, "all-hours", today, phone=None)
    lost = await handle.execute_update(ParticipantWorkflow.order_for_cause, ForCause("odour of alcohol", "tester"))
    await skip(env, timedelta(hours=10))
    await skip(env, timedelta(days=2))
    screening = env.client.get_workflow_handle_for(ScreeningWorkflow.run, screening_workflow_id(lost.screening_id))
    assert (await screening.result()).status == "not-notified"

    made = await stack.http.post(
        f"/screenings/{lost.screening_id}/make-up", json={"reason": "reached in person"}, headers=stack.auth("staff")
    )
    assert made.status_code == 201, made.text
    state = await screening.query(ScreeningWorkflow.status)
    assert state.status == "excused" and state.reopened_at and "make-up" in state.events[-1].detail
    assert made.json()["screening_id"] != lost.screening_id
    await handle.terminate("test over")
