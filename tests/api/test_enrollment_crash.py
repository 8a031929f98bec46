"""Issue 12.2: a crash between "record committed" and "workflow started" must not leave a
participant who is never tested. The crash is simulated in process: the start of the program
raises a BaseException (as a killed process would stop), so nothing after it runs."""

import asyncio
import dataclasses
from datetime import date

import pytest
from sqlmodel import Session, select
from temporalio.client import WorkflowExecutionStatus
from temporalio.common import RetryPolicy
from temporalio.testing import ActivityEnvironment

from activities import reconciler as reconciler_activities
from activities.reconciler import ReconcileInput, ReconcilerActivities, ReconcileReport
from api.routers import participants as participants_router
from ingest.lab import LabIngest
from iop.settings import Settings
from iop.worker import ensure_reconciler_schedule
from store.audit import verify
from store.db import session_scope
from store.models import (
    ApiToken,
    AuditEvent,
    IdempotencyRecord,
    LabMessage,
    LabResult,
    Participant,
    QuarantineItem,
    WorklistItem,
)
from tests.api.test_lab import collected, oru, post_hl7, screening
from tests.conftest import unique
from tests.helpers import enrollment
from workflows.reconciler import ReconcilerWorkflow


class Crash(BaseException):
    """Stands in for the process dying: no `except Exception` handler sees it."""


async def crashed_enrollment(stack, monkeypatch, key: str) -> str:
    async def die(*_args, **_kwargs):
        raise Crash()

    monkeypatch.setattr(participants_router, "_start_program", die)
    # The middleware stack turns the dying request into its own error; what matters is what is left.
    with pytest.raises(BaseException):  # noqa: B017
        await stack.http.post(
            "/participants", json=enrollment(), headers={**stack.auth("staff"), "Idempotency-Key": key}
        )
    monkeypatch.undo()
    with Session(stack.engine) as session:
        rows = session.exec(select(Participant)).all()
    assert [r.status for r in rows] == ["enrolling"], "the crash did not leave the half-done record"
    return rows[0].id


async def test_retry_with_same_key_completes_a_crashed_enrollment(stack, monkeypatch):
    pid = await crashed_enrollment(stack, monkeypatch, "crash-then-retry")
    retry = await stack.http.post(
        "/participants", json=enrollment(), headers={**stack.auth("staff"), "Idempotency-Key": "crash-then-retry"}
    )
    assert retry.status_code == 201, retry.text
    assert retry.json()["id"] == pid and retry.json()["status"] == "active"
    described = await stack.temporal.get_workflow_handle(f"participant-{pid}").describe()
    assert described.status == WorkflowExecutionStatus.RUNNING
    with Session(stack.engine) as session:
        assert [(p.id, p.status) for p in session.exec(select(Participant)).all()] == [(pid, "active")]
        assert len(session.exec(select(IdempotencyRecord)).all()) == 1
    # and the participant is a real one now: the program can be ended
    done = await stack.http.post(
        f"/participants/{pid}/discharge", json={"kind": "completed", "reason": "done"}, headers=stack.auth("staff")
    )
    assert done.status_code == 200, done.text


# --- the reconciler: nothing depends on a retry ---------------------------------------------


async def reconcile(stack, **overrides) -> ReconcileReport:
    return await stack.temporal.execute_workflow(
        ReconcilerWorkflow.run,
        ReconcileInput(**{"stuck_after_seconds": 0, **overrides}),
        id=unique("reconciler"),
        task_queue=stack.task_queue,
    )


def system_audit(engine, action: str) -> list[AuditEvent]:
    with Session(engine) as session:
        return session.exec(select(AuditEvent).where(AuditEvent.action == action)).all()


async def test_reconciler_finishes_a_crashed_enrollment_and_audits_it(stack, monkeypatch):
    pid = await crashed_enrollment(stack, monkeypatch, "crash-then-nobody-retries")
    assert (await reconcile(stack, stuck_after_seconds=3600)).enrollments == {}  # not stuck for long enough yet
    report = await reconcile(stack)
    assert report.enrollments == {pid: "completed"}
    described = await stack.temporal.get_workflow_handle(f"participant-{pid}").describe()
    assert described.status == WorkflowExecutionStatus.RUNNING
    with Session(stack.engine) as session:
        assert session.get(Participant, pid).status == "active"
    [event] = system_audit(stack.engine, "reconciler.enrollment-completed")
    assert (event.actor, event.participant_id, event.subject_id) == ("system", pid, pid)
    assert verify(stack.engine).ok
    # a late retry of the first request still gets the same participant, and nothing more is made
    late = await stack.http.post(
        "/participants",
        json=enrollment(),
        headers={**stack.auth("staff"), "Idempotency-Key": "crash-then-nobody-retries"},
    )
    assert late.status_code == 201 and late.json()["id"] == pid
    assert (await reconcile(stack)).enrollments == {}
    with Session(stack.engine) as session:
        assert len(session.exec(select(Participant)).all()) == 1


async def test_reconciler_rolls_back_a_record_that_cannot_start_a_program(stack):
    with Session(stack.engine) as session:
        desk = session.exec(select(ApiToken).where(ApiToken.name == "test staff")).one()
    with session_scope(stack.engine) as session:
        session.add(
            Participant(
                id="p-incomplete",
                given_name="Rosalind",
                family_name="Achterberg",
                date_of_birth=date(1990, 1, 1),
                phone="+15555550199",
                site="north",
                program="iop",
                phase="phase-9",
                status="enrolling",
                start_date=date(2026, 11, 1),
                timezone="America/New_York",
            )
        )
        session.add(
            IdempotencyRecord(
                actor=desk.id,
                scope="participants",
                key="k-incomplete",
                request_sha256="0" * 64,
                resource_id="p-incomplete",
            )
        )
    report = await reconcile(stack)
    assert report.enrollments == {"p-incomplete": "rolled-back"}
    with Session(stack.engine) as session:
        assert session.get(Participant, "p-incomplete") is None
        assert session.exec(select(IdempotencyRecord)).all() == []
    [event] = system_audit(stack.engine, "reconciler.enrollment-rolled-back")
    assert event.actor == "system" and "phase-9" in event.detail
    # The person at the desk believes they are enrolled: staff are told, on the worklist, whom to enroll again.
    listed = await stack.http.get("/worklist", params={"kind": "enrollment-rolled-back"}, headers=stack.auth("staff"))
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert (item["source"], item["site"], item["participant_id"]) == ("reconciler", "north", "p-incomplete")
    assert item["owner_role"] == "staff" and "enroll" in item["todo"].lower()
    assert all(words in item["why"] for words in ("Rosalind Achterberg", "test staff", "k-incomplete", "phase-9"))
    # the name is in the staff-facing worklist row only: not in the trail, not in the birth date or phone anywhere
    assert "1990-01-01" not in item["why"] and "5555550199" not in item["why"]
    with Session(stack.engine) as session:
        trail = session.exec(select(AuditEvent)).all()
    assert not any("Rosalind" in (e.detail or "") or "Achterberg" in (e.detail or "") for e in trail)
    [read] = [e for e in trail if e.action == "GET /worklist"]
    assert read.shown == "p-incomplete"  # who saw the name is in the trail, under the removed record's id
    # a staff member enrolls the person again and resolves the item; another pass opens nothing new
    done = await stack.http.post(
        f"/worklist/{item['id']}/resolve", json={"outcome": "done", "note": "re-enrolled"}, headers=stack.auth("staff")
    )
    assert done.status_code == 200, done.text
    assert (await reconcile(stack)).enrollments == {}
    again = await stack.http.get("/worklist", params={"status": "all"}, headers=stack.auth("staff"))
    assert [i["id"] for i in again.json()["items"]] == [item["id"]]


def last_attempt_of(attempts: int, attempt: int) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt, retry_policy=RetryPolicy(maximum_attempts=attempts))
    return env


async def test_an_enrollment_the_reconciler_cannot_finish_goes_to_staff_and_settles_when_finished(stack, monkeypatch):
    pid = await crashed_enrollment(stack, monkeypatch, "crash-then-service-down")
    activities = ReconcilerActivities(stack.engine, stack.temporal, stack.task_queue)

    async def down(*_args, **_kwargs):
        raise RuntimeError("workflow service unavailable")

    monkeypatch.setattr(reconciler_activities, "start_program", down)
    for attempt in (1, 2, 3, 3):  # an earlier attempt is retried quietly; the last one (and a later pass's) tells
        with pytest.raises(RuntimeError):
            await last_attempt_of(3, attempt).run(activities.finish_enrollment, pid)
        with Session(stack.engine) as session:
            rows = session.exec(select(WorklistItem)).all()
        assert len(rows) == (attempt == 3), attempt
    [item] = rows
    assert (item.kind, item.owner_role, item.participant_id, item.site) == ("enrollment-stuck", "admin", pid, "north")
    assert "RuntimeError" in item.why and "Quintanilla" not in item.why  # the participant row names them
    [event] = system_audit(stack.engine, "reconciler.enrollment-stuck")
    assert event.participant_id == pid and "Quintanilla" not in event.detail
    monkeypatch.undo()
    assert (await reconcile(stack)).enrollments == {pid: "completed"}  # the service is back: fixed, and settled
    with Session(stack.engine) as session:
        settled = session.get(WorklistItem, item.id)
    assert (settled.status, settled.outcome, settled.resolved_by) == ("resolved", "resolved-at-source", "system")


async def test_reconciler_reprocesses_a_lab_message_left_unanswered(stack, monkeypatch):
    pid, sid, specimen = await collected(stack)

    async def die(*_args, **_kwargs):
        raise Crash()

    monkeypatch.setattr(LabIngest, "_process", die)
    with pytest.raises(BaseException):  # noqa: B017
        await post_hl7(stack, oru("STUCK-1", specimen, pid))
    monkeypatch.undo()
    with Session(stack.engine) as session:
        [message] = session.exec(select(LabMessage)).all()
    assert message.status == "received" and message.ack is None

    report = await reconcile(stack)
    assert report.lab_messages == {str(message.id): "reprocessed"}
    with Session(stack.engine) as session:
        assert session.get(LabMessage, message.id).status == "processed"
        results = session.exec(select(LabResult)).all()
    assert [(r.state, r.screening_id) for r in results] == [("filed", sid)]
    assert (await screening(stack, sid))["status"] == "final"
    [event] = system_audit(stack.engine, "reconciler.lab-message-reprocessed")
    assert event.actor == "system" and event.subject_id == str(message.id)
    # the lab's own resend now gets the stored answer and files nothing twice
    _, ack = await post_hl7(stack, oru("STUCK-1", specimen, pid))
    assert ack.ack_code == "AA"
    with Session(stack.engine) as session:
        assert len(session.exec(select(LabResult)).all()) == 1 and len(session.exec(select(LabMessage)).all()) == 1


async def test_reconciler_puts_a_message_it_cannot_process_before_staff(stack):
    with session_scope(stack.engine) as session:
        row = LabMessage(
            sender="json^LAB", control_id="broken-1", transport="json", raw="{not json", raw_sha256="0" * 64
        )
        session.add(row)
        session.flush()
        message_id = row.id
    first = await reconcile(stack, lab_staff_after_seconds=3600)
    assert first.lab_messages == {str(message_id): "retry-later"}
    held = await reconcile(stack, lab_staff_after_seconds=0)
    again = await reconcile(stack, lab_staff_after_seconds=0)
    assert held.lab_messages == again.lab_messages == {str(message_id): "held-for-staff"}
    with Session(stack.engine) as session:
        items = session.exec(select(QuarantineItem).where(QuarantineItem.lab_message_id == message_id)).all()
    assert [i.reason_code for i in items] == ["intake-stalled"]  # once, not once per pass
    assert len(system_audit(stack.engine, "reconciler.lab-message-held")) == 1


async def test_worker_start_creates_the_reconciler_schedule_idempotently(stack):
    settings = Settings(task_queue=stack.task_queue, reconcile_every_seconds=3600, reconcile_stuck_after_seconds=0)
    schedule_id = await ensure_reconciler_schedule(stack.temporal, settings)
    try:
        assert await ensure_reconciler_schedule(stack.temporal, settings) == schedule_id  # a second start: no error
        handle = stack.temporal.get_schedule_handle(schedule_id)
        described = await handle.describe()
        assert described.schedule.action.workflow == "ReconcilerWorkflow"
        assert described.schedule.spec.intervals[0].every.total_seconds() == 3600
        await handle.trigger()
        # The schedule starts the pass in the server's own time; wait (bounded) for it to be listed.
        async with asyncio.timeout(30):
            while not (described := await handle.describe()).info.recent_actions:
                await asyncio.sleep(0.2)
        run = described.info.recent_actions[0].action
        report = await stack.temporal.get_workflow_handle(run.workflow_id, result_type=ReconcileReport).result()
        assert report == ReconcileReport()
    finally:
        await stack.temporal.get_schedule_handle(schedule_id).delete()
