"""Issue 16: excusing a missed test after its screening's workflow has closed (the make-up period over) still
withdraws the miss from every recipient who was told of it. The excuse goes through the API; the closed
screening is reopened from its last saved state (iop/reopen.py). Time-skipping server, real worker, real
webhook receiver."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

import pytest

from domain.clock import local_date
from domain.disclosure_ids import disclosure_id
from domain.webhook_signing import new_webhook_secret
from iop.reopen import REOPENS, reopen_screening
from iop.worker import build_worker
from tests.helpers import api_stack, refused
from tests.receiver import Receiver, webhook_receiver
from tests.workflows.test_program_calendar import ZONE
from tests.workflows.test_reports_judge import _linked_screening, _received, _settled
from tests.workflows.test_screening_program import _for_cause, skip
from workflows.contracts.participant import Pause
from workflows.contracts.screening import Admission, Collection
from workflows.participant import ParticipantWorkflow
from workflows.screening import ScreeningWorkflow


@pytest.fixture
async def program(time_env, records_engine, task_queue):
    async with build_worker(time_env.client, records_engine, task_queue):
        yield time_env, records_engine, task_queue


@pytest.fixture
def court():
    with webhook_receiver(receiver=Receiver(url="", secret=new_webhook_secret(secrets.token_bytes(32)))) as receiver:
        yield receiver


async def test_excusing_a_miss_after_the_screening_closed_retracts_it_from_the_court(program, court, tmp_path):
    env, engine, queue = program
    participant, screening, pid = await _linked_screening(program, court)
    today = local_date(await env.get_current_time(), ZONE)
    await participant.execute_update(
        ParticipantWorkflow.pause,
        Pause(today.isoformat(), (today + timedelta(days=10)).isoformat(), "no random tests in this test", "tester"),
    )
    await env.sleep(timedelta(hours=9))
    missed = await screening.query(ScreeningWorkflow.status)
    assert missed.status == "missed"
    expected = disclosure_id(pid, missed.screening_id, "missed-tests", court.recipient_id)
    assert await asyncio.to_thread(court.wait_for, expected)
    [miss] = await _settled(env, engine, pid)
    assert miss.status == "delivered"
    # The make-up period (24 h) passes with nothing recorded: the screening's workflow closes, still missed.
    await skip(env, timedelta(days=2))
    closed = await screening.result()
    assert closed.status == "missed" and closed.excuse is None

    async with api_stack(env.client, engine, queue, tmp_path, with_worker=False) as stack:
        answer = await stack.http.post(
            f"/screenings/{missed.screening_id}/excuse",
            headers=stack.auth("staff"),
            json={"reason": "ER visit, discharge papers seen"},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "excused"
        # A second excuse is refused with what happened, not reopened again.
        again = await stack.http.post(
            f"/screenings/{missed.screening_id}/excuse", headers=stack.auth("staff"), json={"reason": "again"}
        )
        assert again.status_code == 409, again.text
    reopened = await screening.query(ScreeningWorkflow.status)
    assert reopened.status == "excused" and reopened.reopened_at
    rows = await _settled(env, engine, pid)
    first, retraction = _received(court)
    assert first["type"] == "screening.missed" and first["disclosure_id"] == miss.id
    assert retraction["type"] == "screening.missed.retracted" and retraction["amends"] == miss.id
    assert retraction["data"] == {"retracted": True, "retraction_reason": "excused"}
    assert [r.status for r in rows] == ["delivered", "delivered"]
    await participant.terminate("test over")


async def test_a_miss_reopened_for_its_excuse_takes_nothing_else_and_closes_again(program):
    """The reopened run of a missed test whose make-up period is over takes the excuse only (a late collection or
    an admission is refused with why); with no excuse it closes again, still missed."""
    env, engine, queue = program
    participant, screening, _ = await _for_cause(env, engine, queue)
    await env.sleep(timedelta(hours=9))
    await skip(env, timedelta(days=2))
    closed = await screening.result()
    assert closed.status == "missed"
    assert not await reopen_screening(env.client, engine, closed.screening_id, queue)  # only a final, by default
    assert await reopen_screening(env.client, engine, closed.screening_id, queue, statuses=REOPENS)
    late = Collection(specimen_type="urine", observed=True, collector="RN-7", late=True, late_reason="came back")
    with refused("make-up period .* is over"):
        await screening.execute_update(ScreeningWorkflow.record_collection, late)
    with refused("make-up period .* is over"):
        await screening.execute_update(
            ScreeningWorkflow.record_admission, Admission(["cocaine"], "J. Rivera, CADC", "used Friday", "staff-1")
        )
    await skip(env, timedelta(hours=2))
    again = await screening.result()
    assert again.status == "missed" and again.reopened_at and again.events[-1].what == "reopened"
    await participant.terminate("test over")


async def test_a_closed_screening_answers_409_with_its_status_and_an_unknown_one_404(program, tmp_path):
    """A screening whose workflow has closed still exists: a route that cannot act on it answers 409 saying it is
    closed and how it ended (it answered 404, "no running process"), and an unknown screening id stays 404."""
    env, engine, queue = program
    participant, screening, ref = await _for_cause(env, engine, queue)
    await env.sleep(timedelta(hours=9))
    await skip(env, timedelta(days=2))
    assert (await screening.result()).status == "missed"
    late = {"specimen_type": "urine", "observed": True, "collector": "RN-7", "late": True, "late_reason": "came back"}
    calls = {
        "refusal": ("staff", {"kind": "refused-to-provide", "detail": "Declined to give a specimen"}),
        "admission": ("staff", {"substances": ["cocaine"], "witnessed_by": "J. Rivera, CADC", "statement": "used"}),
        "collection": ("staff", late),
        "review": ("clinician", {"decision": "confirm", "explanation": "Checked the chain of custody"}),
    }
    async with api_stack(env.client, engine, queue, tmp_path, with_worker=False) as stack:
        for route, (role, body) in calls.items():
            answer = await stack.http.post(
                f"/screenings/{ref.screening_id}/{route}", json=body, headers=stack.auth(role)
            )
            assert answer.status_code == 409, (route, answer.text)
            assert answer.headers["content-type"].startswith("application/problem+json"), route
            assert answer.json()["detail"].startswith(f"Screening {ref.screening_id} is closed (missed)"), answer.text
            assert f"POST /screenings/{ref.screening_id}/excuse" in answer.json()["detail"], answer.text
            unknown = await stack.http.post(f"/screenings/s-unknown/{route}", json=body, headers=stack.auth(role))
            assert unknown.status_code == 404, (route, unknown.text)
        # A missed test is not replaced by a make-up: refused with why, not "not found".
        make_up = await stack.http.post(
            f"/screenings/{ref.screening_id}/make-up", json={"reason": "came back"}, headers=stack.auth("staff")
        )
        assert make_up.status_code == 409 and "missed" in make_up.json()["detail"], make_up.text
    assert (await screening.query(ScreeningWorkflow.status)).status == "missed"  # nothing reopened it
    await participant.terminate("test over")
