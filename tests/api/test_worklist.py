"""The staff worklist: every alert kind arrives as an item, escalates on Temporal timers (time-skipping
server) when nobody resolves it, and is claimed, commented on and resolved through the API, audited."""

from __future__ import annotations

import dataclasses
import secrets
from datetime import UTC, date, datetime, timedelta

import pytest
import pytest_asyncio
from sqlmodel import Session, select
from temporalio.common import RetryPolicy
from temporalio.testing import ActivityEnvironment

from activities import reconciler as reconciler_module
from activities.reconciler import ReconcilerActivities
from activities.records import RecordActivities
from api.ui.views import worklist_link
from domain import worklist as wl
from iop.worker import ensure_worklist_workflow
from store.db import session_scope
from store.models import (
    AlertRecord,
    AuditEvent,
    Disclosure,
    LabMessage,
    Participant,
    QuarantineItem,
    Recipient,
    WorklistItem,
)
from tests.helpers import api_stack
from workflows.contracts.alerts import Alert
from workflows.worklist import WorklistWorkflow

# not raised as alerts: held lab messages, blocked reports, the reconciler's findings
SOURCE_ONLY = {"lab-quarantine", "intake-stalled", "disclosure-blocked", "enrollment-rolled-back", "enrollment-stuck"}
FINDINGS = ("enrollment-rolled-back", "enrollment-stuck")
ALERT_KINDS = sorted(set(wl.KINDS) - SOURCE_ONLY) + ["a-kind-nobody-mapped-yet"]


@pytest_asyncio.fixture
async def tstack(time_env, records_engine, task_queue, tmp_path):
    async with api_stack(time_env.client, records_engine, task_queue, tmp_path) as s:
        s.env = time_env
        yield s


def person(
    engine,
    site: str = "north",
    given: str = "Dana",
    family: str = "Okafor",
    status: str = "active",
    phase: str = "phase-1",
) -> str:
    pid = f"p-{secrets.token_hex(4)}"
    with session_scope(engine) as session:
        session.add(
            Participant(
                id=pid,
                given_name=given,
                family_name=family,
                date_of_birth=date(1984, 5, 2),
                site=site,
                program="iop",
                phase=phase,
                start_date=date(2026, 11, 1),
                timezone="America/New_York",
                case_numbers=[],
                status=status,
            )
        )
    return pid


async def reconciler_findings(stack, monkeypatch) -> dict[str, str]:
    """The reconciler's findings as its activity makes them (its last attempt of a pass): an enrollment it must
    undo (a phase no program has) and one it cannot finish (the workflow service refuses)."""
    activities = ReconcilerActivities(stack.engine, stack.temporal, stack.task_queue)
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=3, retry_policy=RetryPolicy(maximum_attempts=3))
    undone = person(stack.engine, given="Ines", family="Halvorsen", status="enrolling", phase="phase-9")
    stuck = person(stack.engine, site="south", status="enrolling")

    async def down(*_args, **_kwargs):
        raise RuntimeError("workflow service unavailable")

    monkeypatch.setattr(reconciler_module, "start_program", down)
    assert await env.run(activities.finish_enrollment, undone) == "rolled-back"
    with pytest.raises(RuntimeError):
        await env.run(activities.finish_enrollment, stuck)
    monkeypatch.undo()
    return {"enrollment-rolled-back": undone, "enrollment-stuck": stuck}


def held(engine, reason_code: str) -> int:
    with session_scope(engine) as session:
        message = LabMessage(
            sender="ACMELAB^ACME", control_id=secrets.token_hex(4), transport="http", raw="MSH|...", raw_sha256="0" * 64
        )
        session.add(message)
        session.flush()
        item = QuarantineItem(lab_message_id=message.id, reason_code=reason_code, reason=f"held: {reason_code}")
        session.add(item)
        session.flush()
        return item.id


def blocked_report(engine, pid: str) -> str:
    rid, did = f"r-{secrets.token_hex(3)}", f"d-{secrets.token_hex(4)}"
    with session_scope(engine) as session:
        session.add(
            Recipient(
                id=rid,
                name="county drug court",
                kind="court",
                delivery="webhook",
                url="https://court.example/hook",
                categories=["missed-tests"],
            )
        )
        session.flush()
        session.add(
            Disclosure(
                id=did, participant_id=pid, recipient_id=rid, category="missed-tests", event_ref="s-1", status="pending"
            )
        )
    with session_scope(engine) as session:  # blocked on its attempt, as the delivery activity does it
        row = session.get(Disclosure, did)
        row.status, row.reason = "blocked", "the consent does not cover missed-tests"
        session.add(row)
    return did


def items(engine) -> dict[str, WorklistItem]:
    with Session(engine) as session:
        return {f"{r.source}:{r.raw_kind}": r for r in session.exec(select(WorklistItem)).all()}


async def api_items(stack, as_role="staff", **params) -> dict:
    response = await stack.http.get("/worklist", params={"limit": 200, **params}, headers=stack.auth(as_role))
    assert response.status_code == 200, response.text
    return response.json()


async def test_every_alert_kind_arrives_escalates_and_is_resolved(tstack, monkeypatch):
    stack, engine = tstack, tstack.engine
    pid = person(engine)
    findings = await reconciler_findings(stack, monkeypatch)
    for kind in ALERT_KINDS:
        RecordActivities(engine).raise_alert(Alert(kind, pid, f"subj-{kind}", f"why {kind}"))
    RecordActivities(engine).raise_alert(Alert(ALERT_KINDS[0], pid, f"subj-{ALERT_KINDS[0]}", "again"))  # once
    quarantined = {code: held(engine, code) for code in ("unknown-specimen", "intake-stalled")}
    report = blocked_report(engine, pid)

    # Arriving: one item per source, with the table's words; an unmapped kind is a generic item.
    page = await api_items(stack)
    assert page["total"] == len(ALERT_KINDS) + 3 + len(FINDINGS) and page["next"] is None and page["offset"] == 0
    by_raw = {i["raw_kind"]: i for i in page["items"]}
    for raw, item in by_raw.items():
        spec = wl.spec_for(item["source"], raw)
        assert (item["kind"], item["todo"], item["owner_role"], item["severity"]) == (
            spec.kind,
            spec.todo,
            spec.owner_role,
            spec.severity,
        ), raw
        assert item["status"] == "open" and item["escalation_level"] == 0
    assert by_raw["a-kind-nobody-mapped-yet"]["kind"] == "other"
    assert by_raw["a-kind-nobody-mapped-yet"]["why"] == "why a-kind-nobody-mapped-yet"
    assert by_raw["unknown-specimen"]["kind"] == "lab-quarantine"
    assert by_raw["intake-stalled"]["kind"] == "intake-stalled"
    assert by_raw["disclosure-blocked"]["subject_id"] == report
    assert by_raw["review-overdue"]["participant_name"] == "Dana Okafor" and by_raw["review-overdue"]["site"] == "north"
    # the undone enrollment's record is gone: the item alone says whom to enroll again, and where
    undone = by_raw["enrollment-rolled-back"]
    assert (undone["participant_id"], undone["site"], undone["participant_name"]) == (
        findings["enrollment-rolled-back"],
        "north",
        None,
    )
    assert "Ines Halvorsen was not enrolled" in undone["why"] and "1984" not in undone["why"]
    assert worklist_link(undone) == ("/ui/participants/new", "Enroll again")  # not to the removed record
    assert (by_raw["enrollment-stuck"]["participant_name"], by_raw["enrollment-stuck"]["site"]) == (
        "Dana Okafor",
        "south",
    )
    assert {by_raw[k]["source"] for k in FINDINGS} == {"reconciler"}
    assert [i["severity"] for i in page["items"]] == sorted(
        (i["severity"] for i in page["items"]), key=lambda s: wl.SEVERITY_ORDER[wl.Severity(s)]
    )

    # One is resolved at once: it never escalates.
    early = by_raw["review-overdue"]["id"]
    done = await stack.http.post(
        f"/worklist/{early}/resolve", json={"outcome": "done"}, headers=stack.auth("clinician")
    )
    assert done.status_code == 200 and done.json()["status"] == "resolved", done.text

    handle = stack.temporal.get_workflow_handle(await ensure_worklist_workflow(stack.temporal, stack.task_queue))
    assert await ensure_worklist_workflow(stack.temporal, stack.task_queue) == handle.id  # a second start: no error
    await stack.env.sleep(timedelta(hours=25))
    escalated_by_25h = items(engine)
    for key, row in escalated_by_25h.items():
        spec = wl.spec_for(row.source, row.raw_kind)
        if row.raw_kind == "review-overdue":
            assert row.escalation_level == 0, "a resolved item escalated"
            continue
        expected = sum(step.after < timedelta(hours=25) for step in spec.ladder)
        assert row.escalation_level == expected, (key, row.escalation_level, expected)
        if expected:
            assert row.escalated_to == spec.ladder[expected - 1].role, key
            assert [n["what"] for n in row.notes].count("escalated") == expected

    await stack.env.sleep(timedelta(hours=25))
    for key, row in items(engine).items():
        spec = wl.spec_for(row.source, row.raw_kind)
        if row.raw_kind != "review-overdue":
            assert row.escalation_level == sum(s.after < timedelta(hours=50) for s in spec.ladder) >= 1, key
    assert await handle.query(WorklistWorkflow.pass_count) >= 50  # woke at least hourly

    # Escalated items reach the role they went to.
    for_admin = await api_items(stack, "admin", role="admin")
    assert {"missed-doses", "diversion-suspected", "disclosure-blocked"} <= {i["raw_kind"] for i in for_admin["items"]}

    # Resolved: each alert by the role that owns it, after a claim and a comment.
    for kind in ALERT_KINDS:
        item = by_raw[kind]
        if item["id"] == early:
            continue
        role = item["owner_role"]
        claimed = await stack.http.post(f"/worklist/{item['id']}/claim", json={}, headers=stack.auth(role))
        assert claimed.status_code == 200 and claimed.json()["assignee_name"] == f"test {role}", claimed.text
        commented = await stack.http.post(
            f"/worklist/{item['id']}/comments", json={"note": "left a voicemail"}, headers=stack.auth(role)
        )
        assert commented.status_code == 201, commented.text
        resolved = await stack.http.post(
            f"/worklist/{item['id']}/resolve",
            json={"outcome": "participant-contacted", "note": "spoke to them"},
            headers=stack.auth(role),
        )
        assert resolved.status_code == 200, resolved.text
        assert [n["what"] for n in resolved.json()["notes"]][-3:] == ["claimed", "comment", "resolved"]
    # A reconciler finding is resolved by the role that owns it once the person is enrolled (again).
    for kind in FINDINGS:
        item = by_raw[kind]
        resolved = await stack.http.post(
            f"/worklist/{item['id']}/resolve",
            json={"outcome": "done", "note": "enrolled with a new request"},
            headers=stack.auth(item["owner_role"]),
        )
        assert resolved.status_code == 200, resolved.text
    # A held lab message is resolved where it is held; its item closes with it.
    refused = await stack.http.post(
        f"/worklist/{by_raw['unknown-specimen']['id']}/resolve", json={"outcome": "done"}, headers=stack.auth("staff")
    )
    assert refused.status_code == 409 and "/lab/quarantine/" in refused.json()["detail"]
    for _code, item_id in quarantined.items():
        rejected = await stack.http.post(
            f"/lab/quarantine/{item_id}/resolve",
            json={"action": "reject", "note": "lab asked to resend"},
            headers=stack.auth("staff"),
        )
        assert rejected.status_code == 200, rejected.text
    blocked = await stack.http.post(
        f"/worklist/{by_raw['disclosure-blocked']['id']}/resolve",
        json={"outcome": "no-action-needed"},
        headers=stack.auth("staff"),
    )
    assert blocked.status_code == 422 and "needs a note" in blocked.json()["detail"]
    blocked = await stack.http.post(
        f"/worklist/{by_raw['disclosure-blocked']['id']}/resolve",
        json={"outcome": "no-action-needed", "note": "participant declined a new consent"},
        headers=stack.auth("staff"),
    )
    assert blocked.status_code == 200, blocked.text

    assert (await api_items(stack))["total"] == 0
    final = items(engine)
    assert all(r.status == "resolved" for r in final.values())
    assert {final[f"lab-quarantine:{c}"].outcome for c in quarantined} == {"resolved-at-source"}
    with Session(engine) as session:
        assert all(a.resolved_at is not None for a in session.exec(select(AlertRecord)).all())
        trail = session.exec(select(AuditEvent)).all()
    escalations = [e for e in trail if e.action == "worklist.escalated"]
    assert len(escalations) == sum(r.escalation_level for r in final.values())
    resolves = [e for e in trail if e.action == "POST /worklist/{worklist_item_id}/resolve" and e.outcome == "200"]
    assert len(resolves) == len(ALERT_KINDS) + 1 + len(FINDINGS)
    assert all(e.detail.startswith("resolved: ") for e in resolves)
    assert {e.participant_id for e in resolves} == {pid, *findings.values()}
    assert not any("Halvorsen" in (e.detail or "") for e in trail)  # the undone enrollment's name: on the item only
    assert len([e for e in trail if e.action == "worklist.opened"]) == len(ALERT_KINDS)

    # Nothing resolved escalates again.
    await stack.env.sleep(timedelta(hours=30))
    after = {k: r.escalation_level for k, r in items(engine).items()}
    assert after == {k: r.escalation_level for k, r in final.items()}


async def test_claim_take_over_release_filters_and_refusals(tstack):
    stack, engine = tstack, tstack.engine
    north, south = person(engine, "north"), person(engine, "south", "Ana", "Lima")
    RecordActivities(engine).raise_alert(Alert("missed-doses", north, "o-1:2026-11-20", "3 missed"))
    RecordActivities(engine).raise_alert(Alert("callback-due", south, "o-2:2026-11-21T10:00", "call back"))
    RecordActivities(engine).raise_alert(Alert("result-overdue", south, "s-9", "no final result"))
    with session_scope(engine) as session:  # one raised two days ago: past due
        row = session.exec(select(WorklistItem).where(WorklistItem.raw_kind == "result-overdue")).one()
        row.due_at = datetime.now(UTC) - timedelta(days=2)
        session.add(row)
    by_kind = {i["raw_kind"]: i for i in (await api_items(stack))["items"]}

    assert {i["participant_id"] for i in (await api_items(stack, site="south"))["items"]} == {south}
    assert [i["raw_kind"] for i in (await api_items(stack, kind="callback-due"))["items"]] == ["callback-due"]
    overdue = await api_items(stack, overdue="true")
    assert [i["raw_kind"] for i in overdue["items"]] == ["result-overdue"] and overdue["items"][0]["overdue"]
    paged = await api_items(stack, limit=2)
    assert (paged["total"], len(paged["items"])) == (3, 2) and "offset=2" in paged["next"]

    item = by_kind["callback-due"]["id"]
    assert (await stack.http.post(f"/worklist/{item}/claim", json={}, headers=stack.auth("staff"))).status_code == 200
    assert [i["id"] for i in (await api_items(stack, mine="true"))["items"]] == [item]
    assert (await api_items(stack, "clinician", mine="true"))["total"] == 0
    taken = await stack.http.post(f"/worklist/{item}/claim", json={}, headers=stack.auth("clinician"))
    assert taken.status_code == 409 and "take_over" in taken.json()["detail"]
    assert taken.headers["content-type"] == "application/problem+json"
    taken = await stack.http.post(f"/worklist/{item}/claim", json={"take_over": True}, headers=stack.auth("clinician"))
    assert taken.status_code == 200 and taken.json()["assignee_name"] == "test clinician"
    released = await stack.http.post(f"/worklist/{item}/release", headers=stack.auth("clinician"))
    assert released.json()["status"] == "open" and released.json()["assignee"] is None

    assert (
        await stack.http.post(
            f"/worklist/{item}/resolve", json={"outcome": "resolved-at-source"}, headers=stack.auth("staff")
        )
    ).status_code == 422
    assert (
        await stack.http.post(f"/worklist/{item}/resolve", json={"outcome": "done"}, headers=stack.auth("auditor"))
    ).status_code == 403
    assert (
        await stack.http.post(f"/worklist/{item}/resolve", json={"outcome": "done"}, headers=stack.auth("staff"))
    ).status_code == 200
    again = await stack.http.post(f"/worklist/{item}/resolve", json={"outcome": "done"}, headers=stack.auth("staff"))
    assert again.status_code == 409 and "already resolved" in again.json()["detail"]
    assert (await stack.http.post(f"/worklist/{item}/claim", json={}, headers=stack.auth("staff"))).status_code == 409
    missing = await stack.http.get("/worklist/999999", headers=stack.auth("staff"))
    assert missing.status_code == 404 and "999999" in missing.json()["detail"]
    resolved = await api_items(stack, status="resolved")
    assert [i["id"] for i in resolved["items"]] == [item] and resolved["items"][0]["resolved_by"]


async def test_a_report_delivered_after_all_closes_its_items(tstack):
    engine = tstack.engine
    pid = person(engine)
    did = blocked_report(engine, pid)
    RecordActivities(engine).raise_alert(Alert("disclosure-failed", pid, did, "not delivered: 503"))
    with session_scope(engine) as session:
        row = session.get(Disclosure, did)
        row.status = "delivered"
        session.add(row)
    rows = items(engine)
    assert {rows["disclosure:disclosure-blocked"].outcome, rows["alert:disclosure-failed"].outcome} == {
        "resolved-at-source"
    }
