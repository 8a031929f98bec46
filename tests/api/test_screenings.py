"""Screening routes against a real dev server: for-cause tests, collection, excuse, refusal,
check-ins, pauses, lists."""

from datetime import date, timedelta

PROBLEM = "application/problem+json"
URINE = {
    "specimen_type": "urine",
    "observed": True,
    "collector": "RN-7",
    "temperature_in_range": True,
    "poc_readings": [{"analyte": "fentanyl", "result": "negative"}],
}


async def for_cause(stack, pid, reason="appeared impaired at group"):
    response = await stack.http.post(
        f"/participants/{pid}/screenings", json={"reason": reason}, headers=stack.auth("clinician")
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_for_cause_collection_and_the_lists(stack):
    pid = (await stack.enroll())["id"]
    ref = await for_cause(stack, pid)
    sid = ref["screening_id"]
    assert ref["reason"] == "for-cause"

    detail = await stack.http.get(f"/screenings/{sid}", headers=stack.auth("staff"))
    assert detail.status_code == 200
    assert detail.json()["workflow"]["for_cause_reason"] == "appeared impaired at group"

    hair = await stack.http.post(
        f"/screenings/{sid}/collection", json={**URINE, "specimen_type": "hair"}, headers=stack.auth("staff")
    )
    assert hair.status_code == 422 and hair.headers["content-type"] == PROBLEM
    assert "specimen_type" in hair.json()["detail"]

    collected = await stack.http.post(f"/screenings/{sid}/collection", json=URINE, headers=stack.auth("staff"))
    assert collected.status_code == 200, collected.text
    body = collected.json()
    assert body["status"] == "awaiting-result" and body["specimen_id"] == f"{sid}.1"
    assert body["collection"]["poc_readings"] == [{"analyte": "fentanyl", "result": "negative"}]
    assert not body["late_collection"]

    again = await stack.http.post(f"/screenings/{sid}/collection", json=URINE, headers=stack.auth("staff"))
    assert again.status_code == 409 and "already collected" in again.json()["detail"]
    excuse = await stack.http.post(f"/screenings/{sid}/excuse", json={"reason": "x"}, headers=stack.auth("staff"))
    assert excuse.status_code == 409

    today = body["day"]
    listed = (
        await stack.http.get(f"/screenings?date={today}&participant_id={pid}", headers=stack.auth("auditor"))
    ).json()
    assert [s["id"] for s in listed["items"]] == [sid] and listed["items"][0]["status"] == "awaiting-result"
    assert listed["items"][0]["specimen_type"] == "urine"
    mine = (await stack.http.get(f"/participants/{pid}/screenings", headers=stack.auth("clinician"))).json()
    assert mine["total"] == 1
    by_status = (
        await stack.http.get("/screenings?status=awaiting-result&site=north", headers=stack.auth("staff"))
    ).json()
    assert sid in {s["id"] for s in by_status["items"]}


async def test_excuse_refusal_and_their_conflicts(stack):
    pid = (await stack.enroll())["id"]
    first = (await for_cause(stack, pid))["screening_id"]
    excused = await stack.http.post(
        f"/screenings/{first}/excuse", json={"reason": "court appearance, docket seen"}, headers=stack.auth("clinician")
    )
    assert excused.status_code == 200 and excused.json()["status"] == "excused"
    late = await stack.http.post(f"/screenings/{first}/collection", json=URINE, headers=stack.auth("staff"))
    assert late.status_code == 409 and "already excused" in late.json()["detail"]

    second = (await for_cause(stack, pid, "positive breathalyser at intake"))["screening_id"]
    assert second != first
    unknown = await stack.http.post(
        f"/screenings/{second}/refusal", json={"kind": "rude", "detail": "x"}, headers=stack.auth("staff")
    )
    assert unknown.status_code == 422 and "kind" in unknown.json()["detail"]
    refusal = await stack.http.post(
        f"/screenings/{second}/refusal",
        json={"kind": "refused-observation", "detail": "declined observed collection"},
        headers=stack.auth("staff"),
    )
    assert refusal.status_code == 200 and refusal.json()["refusal"]["kind"] == "refused-observation"


async def test_check_in_pause_and_draws(stack):
    pid = (await stack.enroll())["id"]
    quiet = await stack.http.post(
        "/check-ins", json={"participant_id": pid, "method": "kiosk"}, headers=stack.auth("staff")
    )
    assert quiet.status_code == 200 and quiet.json()["must_test"] is False
    sid = (await for_cause(stack, pid))["screening_id"]
    told = (
        await stack.http.post("/check-ins", json={"participant_id": pid, "method": "ivr"}, headers=stack.auth("staff"))
    ).json()
    assert told["must_test"] is True and told["screening_id"] == sid and told["report_by"]

    start = date.today() + timedelta(days=3)
    pause = {"start": start.isoformat(), "end": (start + timedelta(days=5)).isoformat(), "reason": "inpatient detox"}
    paused = await stack.http.post(f"/participants/{pid}/pauses", json=pause, headers=stack.auth("clinician"))
    assert paused.status_code == 200 and paused.json()["pauses"][0]["reason"] == "inpatient detox"
    overlap = await stack.http.post(f"/participants/{pid}/pauses", json=pause, headers=stack.auth("clinician"))
    assert overlap.status_code == 409 and "Overlaps the pause" in overlap.json()["detail"]
    backwards = await stack.http.post(
        f"/participants/{pid}/pauses",
        json={**pause, "end": (start - timedelta(days=1)).isoformat()},
        headers=stack.auth("clinician"),
    )
    assert backwards.status_code == 422 and "cannot end before it starts" in backwards.json()["detail"].lower()

    draws = await stack.http.get(f"/participants/{pid}/draws", headers=stack.auth("auditor"))
    assert draws.status_code == 200 and isinstance(draws.json()["items"], list)


async def test_unknown_things_and_roles(stack):
    assert (await stack.http.get("/screenings/s-nothing", headers=stack.auth("staff"))).status_code == 404
    nobody = await stack.http.post(
        "/check-ins", json={"participant_id": "p-nobody", "method": "kiosk"}, headers=stack.auth("staff")
    )
    assert nobody.status_code == 404 and "p-nobody" in nobody.json()["detail"]
    pid = (await stack.enroll())["id"]
    for role in ("lab", "auditor"):
        denied = await stack.http.post(
            f"/participants/{pid}/screenings", json={"reason": "x"}, headers=stack.auth(role)
        )
        assert denied.status_code == 403, role
    assert (await stack.http.get("/screenings", headers=stack.auth("lab"))).status_code == 403
    await stack.http.post(
        f"/participants/{pid}/discharge", json={"kind": "completed", "reason": "done"}, headers=stack.auth("staff")
    )
    after = await stack.http.post(f"/participants/{pid}/screenings", json={"reason": "x"}, headers=stack.auth("staff"))
    assert after.status_code == 409 and "completed" in after.json()["detail"]
