"""Enrollment through the API, against a real Temporal dev server and a real worker."""

import asyncio

from sqlmodel import Session, select
from temporalio.client import Client

from store.models import IdempotencyRecord, Participant
from tests.conftest import TEST_CONVERTER
from tests.helpers import api_stack, enrollment
from workflows.participant import ParticipantWorkflow

PROBLEM = "application/problem+json"


async def test_enroll_then_read_record_and_live_workflow_state(stack):
    created = await stack.enroll()
    assert created["id"].startswith("p-") and created["status"] == "active"
    response = await stack.http.get(f"/participants/{created['id']}", headers=stack.auth("clinician"))
    assert response.status_code == 200
    detail = response.json()
    assert detail["workflow_id"] == f"participant-{created['id']}"
    assert detail["workflow"]["phase"] == "phase-1"
    assert detail["workflow"]["status"] == "active"
    assert detail["workflow"]["plan"]["phase"] == "phase-1"
    assert detail["case_numbers"] == [{"system": "county-drug-court", "value": "DC-2026-0917"}]
    described = await stack.temporal.get_workflow_handle(detail["workflow_id"]).describe()
    assert described.typed_search_attributes is not None


async def test_nobody_sees_the_roll_that_places_the_next_draw(stack):
    """The next draw's minute is rolled ahead of time inside the workflow; no role may read it."""
    pid = (await stack.enroll())["id"]
    handle = stack.temporal.get_workflow_handle(f"participant-{pid}")
    for _ in range(200):  # until the workflow has planned its first draw (its first task done)
        if (await handle.query(ParticipantWorkflow.status)).pending_time_roll is not None:
            break
        await asyncio.sleep(0.05)
    assert (await handle.query(ParticipantWorkflow.status)).pending_time_roll is not None  # in the workflow...
    hidden = {"pending_time_roll", "verifiable_roll_for", "day_plan", "revision"}
    for role in ("admin", "staff", "clinician", "auditor"):  # ...and in no answer
        detail = (await stack.http.get(f"/participants/{pid}", headers=stack.auth(role))).json()
        assert detail["workflow"]["next_draw_day"] and not hidden & set(detail["workflow"]), role
    changed = await stack.http.post(
        f"/participants/{pid}/phase",
        headers=stack.auth("staff"),
        json={"phase": "phase-2", "reason": "sixty days negative"},
    )
    assert changed.status_code == 200 and not hidden & set(changed.json())
    discharged = await stack.http.post(
        f"/participants/{pid}/discharge", headers=stack.auth("staff"), json={"kind": "completed", "reason": "graduated"}
    )
    assert discharged.status_code == 200 and not hidden & set(discharged.json())


async def test_list_is_paginated_and_filtered(stack):
    ids = [(await stack.enroll(site="east", phase="phase-2"))["id"] for _ in range(3)]
    await stack.enroll(site="west")
    page = (await stack.http.get("/participants?site=east&limit=2", headers=stack.auth("auditor"))).json()
    assert page["total"] == 3 and len(page["items"]) == 2 and (page["limit"], page["offset"]) == (2, 0)
    assert page["next"].startswith("/participants?") and "site=east" in page["next"] and "offset=2" in page["next"]
    rest = (await stack.http.get(page["next"], headers=stack.auth("auditor"))).json()
    assert rest["next"] is None and rest["offset"] == 2
    assert sorted(p["id"] for p in page["items"] + rest["items"]) == sorted(ids)
    by_phase = (await stack.http.get("/participants?site=east&phase=phase-2", headers=stack.auth("staff"))).json()
    assert by_phase["total"] == 3


async def test_phase_change_and_discharge_and_discharging_twice(stack):
    pid = (await stack.enroll())["id"]
    changed = await stack.http.post(
        f"/participants/{pid}/phase",
        json={"phase": "phase-2", "reason": "90 days clean"},
        headers=stack.auth("clinician"),
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["phase"] == "phase-2"
    assert [h["phase"] for h in changed.json()["phase_history"]] == ["phase-1", "phase-2"]
    same = await stack.http.post(
        f"/participants/{pid}/phase", json={"phase": "phase-2", "reason": "again"}, headers=stack.auth("clinician")
    )
    assert same.status_code == 409 and "already in phase-2" in same.json()["detail"]
    unknown = await stack.http.post(
        f"/participants/{pid}/phase", json={"phase": "phase-9", "reason": "x"}, headers=stack.auth("clinician")
    )
    assert unknown.status_code == 422 and "phase-9" in unknown.json()["detail"]

    done = await stack.http.post(
        f"/participants/{pid}/discharge", json={"kind": "completed", "reason": "graduated"}, headers=stack.auth("staff")
    )
    assert done.status_code == 200 and done.json()["status"] == "completed"
    again = await stack.http.post(
        f"/participants/{pid}/discharge", json={"kind": "withdrawn", "reason": "x"}, headers=stack.auth("staff")
    )
    assert again.status_code == 409
    assert again.headers["content-type"] == PROBLEM
    assert "is completed since" in again.json()["detail"]
    record = (await stack.http.get(f"/participants/{pid}", headers=stack.auth("staff"))).json()
    assert record["status"] == "completed" and record["phase"] == "phase-2" and record["discharged_at"]


async def test_tokens_and_roles(stack):
    body = enrollment()
    missing = await stack.http.post("/participants", json=body)
    assert missing.status_code == 401 and missing.headers["content-type"] == PROBLEM
    assert missing.headers["www-authenticate"] == "Bearer"
    invalid = await stack.http.post("/participants", json=body, headers={"Authorization": "Bearer iop_abc_def"})
    assert invalid.status_code == 401 and "not valid" in invalid.json()["detail"]
    for role in ("lab", "auditor"):
        denied = await stack.http.post("/participants", json=body, headers=stack.auth(role))
        assert denied.status_code == 403, role
        assert denied.headers["content-type"] == PROBLEM and role in denied.json()["detail"]
    lab_read = await stack.http.get("/participants", headers=stack.auth("lab"))
    assert lab_read.status_code == 403
    with Session(stack.engine) as session:
        assert session.exec(select(Participant)).all() == []


async def test_invalid_body_names_the_field(stack):
    response = await stack.http.post(
        "/participants", json=enrollment(date_of_birth="not-a-date"), headers=stack.auth("staff")
    )
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert "date_of_birth" in problem["detail"]
    assert problem["errors"][0]["field"] == "body.date_of_birth"
    missing = await stack.http.post("/participants", json={"given_name": "A"}, headers=stack.auth("staff"))
    assert missing.status_code == 422 and "family_name" in missing.json()["detail"]
    bad_phase = await stack.http.post("/participants", json=enrollment(phase="phase-7"), headers=stack.auth("staff"))
    assert bad_phase.status_code == 422 and "phase" in bad_phase.json()["detail"]


async def test_unknown_participant_is_404(stack):
    for method, path, body in [
        ("GET", "/participants/p-nobody", None),
        ("POST", "/participants/p-nobody/phase", {"phase": "phase-2", "reason": "x"}),
        ("POST", "/participants/p-nobody/discharge", {"kind": "completed", "reason": "x"}),
    ]:
        response = await stack.http.request(method, path, json=body, headers=stack.auth("admin"))
        assert response.status_code == 404 and response.headers["content-type"] == PROBLEM
        assert "p-nobody" in response.json()["detail"]


async def test_idempotency_key_same_body_same_participant_other_body_422(stack):
    headers = {**stack.auth("staff"), "Idempotency-Key": "intake-form-77"}
    first = await stack.http.post("/participants", json=enrollment(), headers=headers)
    second = await stack.http.post("/participants", json=enrollment(), headers=headers)
    assert first.status_code == 201 and second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["idempotent-replayed"] == "true"
    other = await stack.http.post("/participants", json=enrollment(site="south"), headers=headers)
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["detail"]
    with Session(stack.engine) as session:
        assert len(session.exec(select(Participant)).all()) == 1


async def test_concurrent_retries_with_one_key_make_one_participant(stack):
    headers = {**stack.auth("staff"), "Idempotency-Key": "kiosk-retry-1"}
    responses = await asyncio.gather(
        *[stack.http.post("/participants", json=enrollment(), headers=headers) for _ in range(5)]
    )
    ok = [r for r in responses if r.status_code == 201]
    assert ok and all(r.status_code in (201, 409) for r in responses)
    assert len({r.json()["id"] for r in ok}) == 1
    with Session(stack.engine) as session:
        assert len(session.exec(select(Participant)).all()) == 1


async def test_temporal_unreachable_enrolls_nobody(records_engine, task_queue, tmp_path):
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    unreachable = await Client.connect("127.0.0.1:1", data_converter=TEST_CONVERTER, lazy=True)
    async with api_stack(unreachable, records_engine, task_queue, tmp_path, with_worker=False) as stack:
        headers = {**stack.auth("staff"), "Idempotency-Key": "during-outage"}
        response = await stack.http.post("/participants", json=enrollment(), headers=headers)
        assert response.status_code == 503, response.text
        assert "nobody was enrolled" in response.json()["detail"]
        ready = await stack.http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["temporal"].startswith("unavailable")
        assert ready.headers["content-type"] == "application/problem+json" and "Temporal" in ready.json()["detail"]
    with Session(records_engine) as session:
        assert session.exec(select(Participant)).all() == []
        assert session.exec(select(IdempotencyRecord)).all() == []


async def test_health_and_readiness(stack):
    assert (await stack.http.get("/healthz")).json() == {"status": "ok"}
    ready = await stack.http.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "database": "ok", "temporal": "ok"}


async def test_openapi_declares_problem_answers(stack):
    schema = (await stack.http.get("/openapi.json")).json()
    post = schema["paths"]["/participants"]["post"]["responses"]
    for status in ("401", "403", "422", "503"):
        assert "application/problem+json" in post[status]["content"], status
    assert "HTTPValidationError" not in str(post["422"])
