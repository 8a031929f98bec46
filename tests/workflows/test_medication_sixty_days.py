"""Sixty days of dosing on the time-skipping server (issue 18): clinic-closed days passed in as
input, misses and a hold, take-home supplies (one refused as an overlap), a random callback not
kept (diversion review), and a guest-dosing period that stops by itself. The test keeps its own
tally of every dose it gave and every supply accepted, and checks the workflow's adherence against it."""

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from activities.medication import MedicationActivities
from domain.clock import local_date
from domain.medication import MedicationOrder, Schedule
from iop.worker import build_worker
from store.models import AlertRecord, DispenseRow, MedicationEventRow
from tests.conftest import unique
from tests.helpers import refused
from tests.workflows.scenarios import record_participant
from tests.workflows.test_screening_program import skip
from workflows.contracts.medication import (
    BottleReturn,
    CallbackPolicy,
    DispenseRecord,
    GuestRequest,
    MedicationInput,
    Reassessment,
    StorageAttestation,
)
from workflows.medication import MedicationWorkflow, workflow_id

ZONE = "America/New_York"
DAYS = 60
CLOSED = {24, 45}  # a supply covers 24 (given on 23); 45 goes without one
MISSES = {15, 16, 17}  # three in a row: held for reassessment
GUEST = (40, 43)  # guest dosing at another site, days 40-43; the participant doses at home on 43
CALLBACK_ON = 34  # a callback drawn for day 35; the bottle from day 33 comes back only on day 36
DOSE = dict(actor="RN-3", dose=60.0, unit="mg")


@pytest.fixture
async def env(time_env, records_engine, task_queue):
    async with build_worker(time_env.client, records_engine, task_queue):
        yield time_env, records_engine, task_queue


async def test_sixty_days_of_dosing(env):
    time_env, engine, task_queue = env
    today = local_date(await time_env.get_current_time(), ZONE)
    day = {d: today + timedelta(days=d) for d in range(-1, DAYS + 1)}
    pid = unique("p")
    record_participant(engine, pid, start=today)
    take_home_weekday = day[6].weekday()
    order = MedicationOrder(
        order_id=f"m-{pid[-6:]}",
        participant_id=pid,
        drug="methadone",
        dose=60.0,
        unit="mg",
        route="oral",
        schedule=Schedule("observed-plus-take-home", tuple(w for w in range(7) if w != take_home_weekday)),
        start_date=today.isoformat(),
        prescriber="Dr. Okafor",
    )
    start = MedicationInput(
        order=order,
        participant_id=pid,
        site="north",
        timezone=ZONE,
        rules="federal-otp-2024",
        treatment_start=today.isoformat(),
        closed_days=[day[d].isoformat() for d in CLOSED],
    )
    MedicationActivities(engine).open_order(start)
    medication = await time_env.client.start_workflow(
        MedicationWorkflow.run, start, id=workflow_id(order.order_id), task_queue=task_queue
    )
    await medication.execute_update(MedicationWorkflow.attest_storage, StorageAttestation(True, "lockbox", "md-1"))

    dosed, guest_dosed, covered, supplies_accepted, supplies_refused = set(), set(), set(), [], []
    bottles_out: list[str] = []
    guest = None
    for d in range(DAYS):
        state = await medication.query(MedicationWorkflow.status)
        observed_day = day[d].weekday() != take_home_weekday and d not in CLOSED and d not in MISSES
        if observed_day and GUEST[0] <= d < GUEST[1]:
            await guest.execute_update(MedicationWorkflow.dispense, DispenseRecord(kind="observed-dose", **DOSE))
            guest_dosed.add(d)
        elif observed_day:
            if state.status == "held":
                with refused("on hold"):
                    await medication.execute_update(
                        MedicationWorkflow.dispense, DispenseRecord(kind="observed-dose", **DOSE)
                    )
                assert state.missed_run == 3 and "3 consecutive missed doses" in state.plain_reason
                await medication.execute_update(
                    MedicationWorkflow.reassess, Reassessment("resume", "seen, stable", "md-1")
                )
            await medication.execute_update(MedicationWorkflow.dispense, DispenseRecord(kind="observed-dose", **DOSE))
            dosed.add(d)
            back = [b for b in bottles_out if not (b == "B-33" and d < 36)]
            if back:
                await medication.execute_update(MedicationWorkflow.return_bottles, BottleReturn(back, "RN-3"))
                bottles_out = [b for b in bottles_out if b not in back]
        if d == CALLBACK_ON:
            await medication.execute_update(MedicationWorkflow.schedule_callback, CallbackPolicy(1, 4, "RN-3"))
        if d == GUEST[0] - 1:
            guest_id = await medication.execute_update(
                MedicationWorkflow.start_guest,
                GuestRequest("south", day[GUEST[0]].isoformat(), day[GUEST[1]].isoformat(), "md-1"),
            )
            guest = time_env.client.get_workflow_handle(workflow_id(guest_id))
        tomorrow = d + 1
        wants_supply = tomorrow < DAYS and (day[tomorrow].weekday() == take_home_weekday or tomorrow in CLOSED - {45})
        if wants_supply and (observed_day or d == 23):
            state = await medication.query(MedicationWorkflow.status)
            supply = DispenseRecord(kind="take-home", take_home_count=1, bottle_ids=[f"B-{d}"], **DOSE)
            if state.eligibility.max_take_home_days >= 1 or tomorrow in CLOSED:
                await medication.execute_update(MedicationWorkflow.dispense, supply)
                supplies_accepted.append(d)
                covered.add(tomorrow)
                bottles_out.append(f"B-{d}")
                if d == 5:  # a second supply for the covered date is refused, naming it
                    with refused(day[6].isoformat()):
                        await medication.execute_update(
                            MedicationWorkflow.dispense,
                            DispenseRecord(kind="take-home", take_home_count=1, bottle_ids=["B-dup"], **DOSE),
                        )
            else:
                with refused("allowed now"):
                    await medication.execute_update(MedicationWorkflow.dispense, supply)
                supplies_refused.append(d)
        await skip(time_env, timedelta(days=1))

    state = await medication.query(MedicationWorkflow.status)
    # The workflow's 30-day figure against the test's own tally (days 30..59 end yesterday = day 59).
    window = range(DAYS - 30, DAYS)
    taken = sum(1 for d in window if d in dosed | guest_dosed | covered)
    due = sum(1 for d in window if not (d in CLOSED and d not in covered))
    assert (state.adherence_30d.taken, state.adherence_30d.expected) == (taken, due)
    assert {state.outcomes[day[d].isoformat()] for d in guest_dosed} == {"guest-dosed"}
    assert day[45].isoformat() not in state.outcomes  # closed, no supply: neither due nor missed
    assert state.outcomes[day[24].isoformat()] == "take-home"
    # Supplies were given until the missed callback, refused after it (diversion within 30 days).
    assert supplies_accepted and all(d < 35 or d + 1 in CLOSED for d in supplies_accepted)
    assert supplies_refused and all(d > 35 for d in supplies_refused)
    assert any("diversion" in r and "within" in r for r in state.eligibility.reasons)
    assert [c.status for c in state.callbacks] == ["missed"]
    # The guest copy stopped by itself when the participant dosed at home on day 43.
    guest_state = await guest.query(MedicationWorkflow.status)
    assert guest_state.status == "stopped" and any("dosed at the home site" in e.detail for e in guest_state.events)
    with Session(engine) as session:
        rows = session.exec(select(DispenseRow).where(DispenseRow.participant_id == pid)).all()
        alerts = {a.kind for a in session.exec(select(AlertRecord).where(AlertRecord.participant_id == pid))}
        events = {
            e.kind for e in session.exec(select(MedicationEventRow).where(MedicationEventRow.participant_id == pid))
        }
    assert len(rows) == len(dosed) + len(guest_dosed) + len(supplies_accepted)
    assert {tuple(r.covered_dates) for r in rows if r.kind == "take-home"} == {
        (day[d + 1].isoformat(),) for d in supplies_accepted
    }
    assert {"missed-doses", "reassessment-required", "callback-due", "diversion-review"} <= alerts
    assert {
        "held-for-reassessment",
        "reassessment-resume",
        "bottle-return",
        "callback-scheduled",
        "diversion-flag",
        "guest-dosing",
    } <= events
    await medication.terminate("test over")
