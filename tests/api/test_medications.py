"""Medication orders and dispensing through the API on a real dev server."""

from datetime import UTC, datetime

from sqlmodel import Session, select

from domain.clock import local_date
from store.models import DispenseRow
from tests.api.test_lab import VALID, collected, oru, post_hl7, screening

# The program's day, in its time zone (the enrollment default), not the machine's.
TODAY = local_date(datetime.now(UTC), "America/New_York").isoformat()
METHADONE = {
    "drug": "methadone",
    "dose": 60,
    "unit": "mg",
    "route": "oral",
    "schedule": {"kind": "daily-observed"},
    "start_date": TODAY,
    "prescriber": "Dr. Okafor",
}
BUPRENORPHINE = {
    "drug": "buprenorphine-naloxone",
    "dose": 16,
    "unit": "mg",
    "route": "sublingual",
    "schedule": {"kind": "daily-observed"},
    "start_date": TODAY,
    "prescriber": "Dr. Okafor",
}


async def start(stack, pid, body=METHADONE, role="clinician"):
    return await stack.http.post(f"/participants/{pid}/medications", json=body, headers=stack.auth(role))


async def test_order_dispense_refusals_and_today_list(stack):
    pid = (await stack.enroll())["id"]
    assert (await start(stack, pid, role="staff")).status_code == 403
    bad = await start(stack, pid, {**METHADONE, "schedule": {"kind": "injection", "every_days": 28}})
    assert bad.status_code == 422 and "not an injectable product" in bad.json()["detail"]
    created = await start(stack, pid)
    assert created.status_code == 201, created.text
    order_id = created.json()["id"]
    assert order_id.startswith(f"m-{pid.removeprefix('p-')}-")  # scoped: no other participant's order has it

    dose = {"kind": "observed-dose", "dose": 60, "unit": "mg"}
    given = await stack.http.post(f"/medications/{order_id}/dispenses", json=dose, headers=stack.auth("staff"))
    assert given.status_code == 200, given.text
    second = await stack.http.post(f"/medications/{order_id}/dispenses", json=dose, headers=stack.auth("staff"))
    assert second.status_code == 409 and "second dose" in second.json()["detail"]
    wrong = await stack.http.post(
        f"/medications/{order_id}/dispenses", json={**dose, "dose": 90}, headers=stack.auth("staff")
    )
    assert wrong.status_code == 422 and "does not match the order" in wrong.json()["detail"]
    home = await stack.http.post(
        f"/medications/{order_id}/dispenses",
        headers=stack.auth("staff"),
        json={"kind": "take-home", "dose": 60, "unit": "mg", "take_home_count": 2, "bottle_ids": ["B-1", "B-2"]},
    )
    assert home.status_code == 409 and "daily-observed" in home.json()["detail"]

    detail = (await stack.http.get(f"/medications/{order_id}", headers=stack.auth("auditor"))).json()
    eligibility = detail["workflow"]["eligibility"]
    assert eligibility["max_take_home_days"] == 0 and len(eligibility["reasons"]) >= 5
    assert any("storage" in reason for reason in eligibility["reasons"])
    today = (await stack.http.get("/dispensing/today?site=north", headers=stack.auth("staff"))).json()["items"]
    mine = [item for item in today if item["order_id"] == order_id]
    assert mine and mine[0]["dosed_today"] and mine[0]["expected"] == "observed-dose"

    stopped = await stack.http.post(
        f"/medications/{order_id}/stop", json={"reason": "tapered off"}, headers=stack.auth("clinician")
    )
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    after = await stack.http.post(f"/medications/{order_id}/dispenses", json=dose, headers=stack.auth("staff"))
    assert after.status_code == 409 and "stopped" in after.json()["detail"]
    with Session(stack.engine) as session:
        assert len(session.exec(select(DispenseRow).where(DispenseRow.order_id == order_id)).all()) == 1


async def test_hold_by_clinician_refuses_dosing_until_resumed(stack):
    pid = (await stack.enroll())["id"]
    order_id = (await start(stack, pid)).json()["id"]
    held = await stack.http.post(
        f"/medications/{order_id}/reassessment",
        json={"decision": "hold", "note": "sedated"},
        headers=stack.auth("clinician"),
    )
    assert held.status_code == 200 and held.json()["status"] == "held"
    dose = {"kind": "observed-dose", "dose": 60, "unit": "mg"}
    refused = await stack.http.post(f"/medications/{order_id}/dispenses", json=dose, headers=stack.auth("staff"))
    assert refused.status_code == 409 and "on hold" in refused.json()["detail"]
    recorded_hold = await stack.http.post(
        f"/medications/{order_id}/dispenses", json={"kind": "held"}, headers=stack.auth("staff")
    )
    assert recorded_hold.status_code == 200
    await stack.http.post(
        f"/medications/{order_id}/reassessment",
        json={"decision": "resume", "note": "alert, ok"},
        headers=stack.auth("clinician"),
    )
    count = await stack.http.post(
        f"/medications/{order_id}/pill-counts",
        headers=stack.auth("staff"),
        json={"bottle_id": "B-9", "expected_units": 7, "counted_units": 4, "returned_on_time": True},
    )
    assert count.status_code == 200 and count.json()["diversion_flag_since"] == TODAY
    assert "diversion" in " ".join(count.json()["eligibility"]["reasons"])


async def test_screen_without_buprenorphine_is_flagged_expected_absent(stack):
    pid, sid, specimen = await collected(stack)
    assert (await start(stack, pid, BUPRENORPHINE)).status_code == 201
    obx = [
        "CWE|3414-0^Buprenorphine [Presence] in Urine^LN||NEG^Negative^L||<5|N",
        "NM|49751-1^Norbuprenorphine^LN||0|ng/mL|<5|N",
        "NM|3393-6^Benzoylecgonine^LN||10|ng/mL|<150|N",
        *VALID,
    ]
    _, ack = await post_hl7(stack, oru("BUP-1", specimen, pid, obx=obx))
    assert ack.ack_code == "AA"
    state = await screening(stack, sid)
    flags = {f["code"] for f in state["results"][0]["interpretation"]["flags"]}
    assert "expected-absent" in flags and state["status"] == "awaiting-review"


# --- issue 18: refusals that record nothing ---------------------------------------------------


def _dispense_count(stack, order_id: str) -> int:
    with Session(stack.engine) as session:
        return len(session.exec(select(DispenseRow).where(DispenseRow.order_id == order_id)).all())


async def test_nobody_doses_a_held_order_admin_included_until_a_clinician_releases_it(stack):
    pid = (await stack.enroll())["id"]
    order_id = (await start(stack, pid)).json()["id"]
    held = await stack.http.post(
        f"/medications/{order_id}/reassessment",
        headers=stack.auth("clinician"),
        json={"decision": "hold", "note": "sedated at the window"},
    )
    assert held.status_code == 200 and held.json()["status"] == "held"
    dose = {"kind": "observed-dose", "dose": 60, "unit": "mg"}
    for role in ("staff", "admin", "clinician"):
        answer = await stack.http.post(f"/medications/{order_id}/dispenses", json=dose, headers=stack.auth(role))
        assert answer.status_code == 409 and "on hold" in answer.json()["detail"], (role, answer.text)
    assert _dispense_count(stack, order_id) == 0
    # Only a clinician releases the hold (an admin may not: it is a clinical decision).
    release = {"decision": "resume", "note": "reassessed, alert and oriented"}
    by_admin = await stack.http.post(f"/medications/{order_id}/reassessment", json=release, headers=stack.auth("admin"))
    assert by_admin.status_code == 403
    assert _dispense_count(stack, order_id) == 0
    released = await stack.http.post(
        f"/medications/{order_id}/reassessment", json=release, headers=stack.auth("clinician")
    )
    assert released.status_code == 200 and released.json()["hold_released_by"]
    given = await stack.http.post(f"/medications/{order_id}/dispenses", json=dose, headers=stack.auth("admin"))
    assert given.status_code == 200 and _dispense_count(stack, order_id) == 1


async def test_take_home_on_daily_observed_order_and_unknown_bottle_refused(stack):
    pid = (await stack.enroll())["id"]
    order_id = (await start(stack, pid)).json()["id"]
    supply = {"kind": "take-home", "dose": 60, "unit": "mg", "take_home_count": 7, "bottle_ids": ["B-1"]}
    for _ in range(2):
        answer = await stack.http.post(f"/medications/{order_id}/dispenses", json=supply, headers=stack.auth("admin"))
        assert answer.status_code == 409 and "daily-observed" in answer.json()["detail"], answer.text
    assert _dispense_count(stack, order_id) == 0
    returned = await stack.http.post(
        f"/medications/{order_id}/bottle-returns", headers=stack.auth("staff"), json={"bottle_ids": ["B-404"]}
    )
    assert returned.status_code == 409 and "B-404" in returned.json()["detail"], returned.text


async def test_default_rule_set_is_recorded_and_files_are_listed(stack):
    pid = (await stack.enroll())["id"]
    created = (await start(stack, pid)).json()
    assert created["rules"] == "federal-otp-2024"
    listed = (await stack.http.get("/takehome-rule-sets", headers=stack.auth("auditor"))).json()["items"]
    names = {r["name"] for r in listed}
    assert {"federal-otp-2024", "wisconsin-dhs75", "california-9ccr10375"} <= names
    assert all(r["citations"] for r in listed if r["name"] != "state-strict-example")


async def test_a_second_supply_for_covered_dates_is_refused_with_the_dates(stack):
    from datetime import date, timedelta

    pid = (await stack.enroll())["id"]
    order_id = (await start(stack, pid)).json()["id"]
    closed = [(date.fromisoformat(TODAY) + timedelta(days=n)).isoformat() for n in (1, 2)]
    by_staff = await stack.http.post(
        f"/medications/{order_id}/closed-days", json={"days": closed}, headers=stack.auth("staff")
    )
    assert by_staff.status_code == 403
    set_days = await stack.http.post(
        f"/medications/{order_id}/closed-days", json={"days": closed}, headers=stack.auth("admin")
    )
    assert set_days.status_code == 200 and set_days.json()["closed_days"] == closed
    # No take-home is earned yet, but doses for clinic-closed days go home (42 CFR 8.12(i)(1)).
    supply = {"kind": "take-home", "dose": 60, "unit": "mg", "take_home_count": 2, "bottle_ids": ["B-1", "B-2"]}
    first = await stack.http.post(f"/medications/{order_id}/dispenses", json=supply, headers=stack.auth("staff"))
    assert first.status_code == 200, first.text
    second = await stack.http.post(
        f"/medications/{order_id}/dispenses", headers=stack.auth("admin"), json={**supply, "bottle_ids": ["B-3", "B-4"]}
    )
    assert second.status_code == 409 and all(day in second.json()["detail"] for day in closed), second.text
    assert _dispense_count(stack, order_id) == 1
    with Session(stack.engine) as session:
        [row] = session.exec(select(DispenseRow).where(DispenseRow.order_id == order_id)).all()
    assert row.covered_dates == closed
    wrong = await stack.http.post(
        f"/medications/{order_id}/bottle-returns", headers=stack.auth("staff"), json={"bottle_ids": ["B-1", "B-3"]}
    )
    assert wrong.status_code == 409 and "B-3" in wrong.json()["detail"]
    back = await stack.http.post(
        f"/medications/{order_id}/bottle-returns", headers=stack.auth("staff"), json={"bottle_ids": ["B-1", "B-2"]}
    )
    assert back.status_code == 200 and back.json()["bottles_out"] == {}


async def test_an_order_takes_its_closed_days_from_the_programs_calendar(stack):
    """Issue 18 consumes the program calendar (issue 15): a closed day is not a dose due."""
    from datetime import date, timedelta

    from tests.api.test_channel import program

    holiday = (date.fromisoformat(TODAY) + timedelta(days=3)).isoformat()
    created = await stack.http.post(
        "/programs", json=program(closed={holiday: "County holiday"}), headers=stack.auth("admin")
    )
    assert created.status_code == 201, created.text
    pid = (await stack.enroll(program="county-court", phase="orientation"))["id"]
    answer = await start(stack, pid, {**METHADONE, "start_date": local_date(datetime.now(UTC), "UTC").isoformat()})
    assert answer.status_code == 201, answer.text
    state = (await stack.http.get(f"/medications/{answer.json()['id']}", headers=stack.auth("staff"))).json()
    assert state["workflow"]["closed_days"] == [holiday], state["workflow"]
    # The built-in program is open every day: nothing closed.
    other = (await stack.enroll())["id"]
    plain = await start(stack, other)
    state = (await stack.http.get(f"/medications/{plain.json()['id']}", headers=stack.auth("staff"))).json()
    assert state["workflow"]["closed_days"] == []


async def test_a_random_callback_is_not_announced_before_it_is_made(stack):
    # The callback's day and time are drawn in the workflow; a participant told ahead of time (through any
    # staff screen or token) could bring the bottles in for the call alone. The answers show it as scheduled,
    # with its time only once the call is made.
    pid = (await stack.enroll())["id"]
    order_id = (await start(stack, pid)).json()["id"]
    scheduled = await stack.http.post(
        f"/medications/{order_id}/callbacks", json={"window_days": 7, "respond_hours": 24}, headers=stack.auth("staff")
    )
    assert scheduled.status_code == 200, scheduled.text
    [callback] = scheduled.json()["callbacks"]
    assert callback["status"] == "scheduled" and callback["call_at"] is None
    handle = stack.temporal.get_workflow_handle(f"medication-{order_id}")
    from workflows.medication import MedicationWorkflow

    [drawn] = (await handle.query(MedicationWorkflow.status)).callbacks  # in the workflow...
    for role in ("admin", "staff", "clinician", "auditor"):  # ...and in no answer
        detail = await stack.http.get(f"/medications/{order_id}", headers=stack.auth(role))
        assert detail.status_code == 200 and drawn.call_at not in detail.text, role
        assert drawn.call_at[:16] not in detail.text, role
    assert drawn.call_at[:16] not in scheduled.text
