"""The audit trail through the API: list reads record who was shown, dead tokens are named, checkpoints are
taken on demand and on a Temporal schedule, and GET /audit/verify compares the chain against them."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlmodel import Session, select
from temporalio.client import ScheduleHandle, ScheduleOverlapPolicy
from temporalio.service import RPCError
from temporalio.worker import Worker

from activities.audit import AuditActivities
from api.tokens import issue_token
from iop.audit import SCHEDULE_ID, audit_keys, ensure_checkpoint_schedule
from iop.settings import Settings
from store.audit import AuditEntry, append, read_checkpoints
from store.db import session_scope
from store.models import AuditEvent
from tests.conftest import unique
from workflows.audit import AuditCheckpointWorkflow


def events_of(engine, request_id: str) -> list[AuditEvent]:
    with Session(engine) as session:
        return session.exec(select(AuditEvent).where(AuditEvent.request_id == request_id)).all()


async def test_a_list_read_records_the_participants_on_the_page(stack):
    ids = [(await stack.enroll(site="south"))["id"] for _ in range(3)]
    page = await stack.http.get(
        "/participants?site=south&limit=2", headers={**stack.auth("auditor"), "X-Request-ID": "list-1"}
    )
    shown = [item["id"] for item in page.json()["items"]]
    assert len(shown) == 2 and set(shown) <= set(ids)
    [event] = events_of(stack.engine, "list-1")
    assert event.shown.split(",") == shown
    screenings = await stack.http.get("/screenings?limit=5", headers={**stack.auth("staff"), "X-Request-ID": "list-2"})
    assert screenings.status_code == 200
    [event] = events_of(stack.engine, "list-2")
    assert event.shown == (",".join(dict.fromkeys(s["participant_id"] for s in screenings.json()["items"])) or None)
    trail = await stack.http.get("/audit?limit=500", headers={**stack.auth("auditor"), "X-Request-ID": "list-3"})
    [event] = events_of(stack.engine, "list-3")
    listed = {e["participant_id"] for e in trail.json()["items"] if e["participant_id"]}
    assert set(event.shown.split(",")) == listed and set(ids) <= listed


async def test_a_revoked_or_expired_token_is_named_in_the_trail(stack):
    with session_scope(stack.engine) as session:
        revoked, revoked_token = issue_token(session, name="left the program", role="staff")
        expired, expired_token = issue_token(
            session, name="temp", role="clinician", expires_at=datetime.now(UTC) - timedelta(minutes=1)
        )
        ids = revoked.id, expired.id
    revoke = await stack.http.post(f"/tokens/{ids[0]}/revoke", headers=stack.auth("admin"))
    assert revoke.status_code == 200
    for token_id, token, rid in ((ids[0], revoked_token, "dead-1"), (ids[1], expired_token, "dead-2")):
        answer = await stack.http.get(
            "/participants", headers={"Authorization": f"Bearer {token}", "X-Request-ID": rid}
        )
        assert answer.status_code == 401
        [event] = events_of(stack.engine, rid)
        assert (event.actor, event.outcome) == (token_id, "401") and "token rejected" in event.detail
    wrong = await stack.http.get(
        "/participants", headers={"Authorization": f"Bearer iop_{ids[0]}_guess", "X-Request-ID": "dead-3"}
    )
    assert wrong.status_code == 401 and events_of(stack.engine, "dead-3")[0].actor == "anonymous"


async def test_checkpoint_on_demand_then_a_truncated_tail_is_named(stack, tmp_path):
    for _ in range(3):
        await stack.enroll()
    denied = await stack.http.post("/audit/checkpoints", headers=stack.auth("auditor"))
    assert denied.status_code == 403
    taken = await stack.http.post("/audit/checkpoints", headers=stack.auth("admin"))
    assert taken.status_code == 201, taken.text
    point = taken.json()
    [on_file] = read_checkpoints(tmp_path / "audit-checkpoints.jsonl")
    assert on_file.seq == point["seq"] and on_file.hash == point["hash"]
    intact = (await stack.http.get("/audit/verify", headers=stack.auth("auditor"))).json()
    assert intact["ok"] and intact["checkpoints"] == 1 and intact["keyed_from"] == 1
    keep = point["seq"] - 2
    assert keep >= 2
    with stack.engine.begin() as conn:  # the database role removes the newest events and fixes the head
        last = conn.execute(text("SELECT hash FROM audit_events WHERE seq = :s"), dict(s=keep)).scalar_one()
        conn.execute(text("DELETE FROM audit_events WHERE seq > :s"), dict(s=keep))
        conn.execute(text("UPDATE audit_head SET seq = :s, hash = :h"), dict(s=keep, h=last))
    broken = (await stack.http.get("/audit/verify", headers=stack.auth("auditor"))).json()
    assert not broken["ok"] and broken["first_broken_seq"] == keep + 1 and "removed" in broken["problem"]


async def test_the_schedule_takes_checkpoints_through_a_workflow(dev_env, records_engine, task_queue, tmp_path):
    settings = Settings(data_dir=tmp_path, task_queue=task_queue)
    client = dev_env.client
    for i in range(3):
        append(
            records_engine,
            AuditEntry(actor="system", role="-", action="test", outcome=str(i)),
            keys=audit_keys(settings),
        )
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[AuditCheckpointWorkflow],
        activities=AuditActivities(records_engine, settings).all(),
        activity_executor=ThreadPoolExecutor(2),
    ):
        await ensure_checkpoint_schedule(client, task_queue, 15)
        handle: ScheduleHandle = client.get_schedule_handle(SCHEDULE_ID)
        try:
            await ensure_checkpoint_schedule(client, task_queue, 20)  # idempotent; updates the interval
            schedule = (await handle.describe()).schedule
            assert schedule.spec.intervals[0].every == timedelta(minutes=20)
            assert schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
            action = schedule.action
            assert (action.workflow, action.task_queue) == ("AuditCheckpointWorkflow", task_queue)
            # What each scheduled run does, run once here (a triggered run could only be awaited by polling).
            taken = await client.execute_workflow(
                AuditCheckpointWorkflow.run, id=unique("audit-checkpoint"), task_queue=task_queue
            )
        finally:
            await ensure_checkpoint_schedule(client, task_queue, 0)
    with pytest.raises(RPCError):
        await handle.describe()  # interval 0 removed it
    [point] = read_checkpoints(tmp_path / "audit-checkpoints.jsonl")
    assert (taken.seq, taken.at) == (point.seq, point.at) and point.seq == 3
