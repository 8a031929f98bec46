"""MedicationWorkflow on the time-skipping server: a month of dosing with misses, holds,
reassessment and an overdue injection."""

from datetime import date, timedelta

import pytest
from sqlmodel import Session, select

from activities.medication import MedicationActivities
from domain.clock import local_date
from domain.medication import MedicationOrder
from iop.worker import build_worker
from store.models import AlertRecord, DispenseRow, MedicationEventRow
from store.shapes import typed
from tests.conftest import unique
from tests.helpers import refused, refused_unread
from tests.workflows.scenarios import record_participant, start_participant
from tests.workflows.test_screening_program import skip
from workflows.contracts.medication import (
    DispenseRecord,
    DoseChange,
    MedicationInput,
    MedicationStart,
    Reassessment,
    StorageAttestation,
)
from workflows.medication import MedicationWorkflow, workflow_id
from workflows.participant import ParticipantWorkflow

ZONE = "America/New_York"


def raw_order(pid: str, start: date, **overrides) -> dict:
    """An order as JSON, as anyone reaching Temporal's port could send it (no domain checks on this side)."""
    body = {
        "order_id": f"m-{pid[-6:]}",
        "participant_id": pid,
        "drug": "methadone",
        "dose": 60.0,
        "unit": "mg",
        "route": "oral",
        "schedule": {
            "kind": "daily-observed",
            "observed_weekdays": [0, 1, 2, 3, 4, 5, 6],
            "every_days": None,
            "grace_days": 3,
        },
        "start_date": start.isoformat(),
        "stop_date": None,
        "prescriber": "Dr. Okafor",
    }
    body.update(overrides)
    return body


def order(pid: str, start: date, **overrides) -> MedicationOrder:
    return typed(MedicationOrder, raw_order(pid, start, **overrides))


@pytest.fixture
async def program(time_env, records_engine, task_queue):
    async with build_worker(time_env.client, records_engine, task_queue):
        today = local_date(await time_env.get_current_time(), ZONE)
        participant = await start_participant(time_env.client, records_engine, task_queue, start=today)
        yield time_env, records_engine, participant, today


async def start_order(env, participant, body):
    order_id = await participant.execute_update(
        ParticipantWorkflow.start_medication, MedicationStart(order=body, rules="federal-otp-2024")
    )
    return env.client.get_workflow_handle_for(MedicationWorkflow.run, workflow_id(order_id))


DOSE = DispenseRecord(kind="observed-dose", actor="RN-3", dose=60.0, unit="mg")


async def test_thirty_days_with_misses_alert_then_hold_until_reassessment(program):
    env, engine, participant, today = program
    pid = (await participant.query(ParticipantWorkflow.status)).participant_id
    medication = await start_order(env, participant, order(pid, today))
    missed_days = {4, 10, 11, 12}
    refused_while_held = 0
    for day in range(30):
        if day not in missed_days:
            state = await medication.query(MedicationWorkflow.status)
            if state.status == "held":
                with refused("on hold"):
                    await medication.execute_update(MedicationWorkflow.dispense, DOSE)
                refused_while_held += 1
                await medication.execute_update(
                    MedicationWorkflow.reassess, Reassessment("resume", "seen in clinic, stable", "md-1")
                )
            await medication.execute_update(MedicationWorkflow.dispense, DOSE)
        await skip(env, timedelta(days=1))
    state = await medication.query(MedicationWorkflow.status)
    missed = sorted(d for d, o in state.outcomes.items() if o == "missed")
    assert missed == [(today + timedelta(days=d)).isoformat() for d in sorted(missed_days)]
    assert refused_while_held == 1 and state.status == "active"
    assert state.adherence_30d.expected >= 29 and state.adherence_30d.taken == state.adherence_30d.expected - 4
    with Session(engine) as session:
        alerts = session.exec(select(AlertRecord).where(AlertRecord.participant_id == pid)).all()
        events = session.exec(select(MedicationEventRow).where(MedicationEventRow.participant_id == pid)).all()
        doses = session.exec(select(DispenseRow).where(DispenseRow.participant_id == pid)).all()
    # One alert per run of misses (day 4; days 10-12), and the hold after the third in a row.
    assert sorted(a.subject_id.split(":")[1] for a in alerts if a.kind == "missed-doses") == [
        (today + timedelta(days=4)).isoformat(),
        (today + timedelta(days=10)).isoformat(),
    ]
    assert [a.kind for a in alerts if a.kind == "reassessment-required"] == ["reassessment-required"]
    assert sum(e.kind == "missed-dose" for e in events) == 4
    assert {e.kind for e in events} >= {"held-for-reassessment", "reassessment-resume"}
    assert len(doses) == 26
    assert state.eligibility.basis.startswith("federal-otp-2024")
    await participant.terminate("test over")


async def test_second_dose_and_wrong_dose_are_refused_and_nothing_recorded(program):
    env, engine, participant, today = program
    pid = (await participant.query(ParticipantWorkflow.status)).participant_id
    medication = await start_order(env, participant, order(pid, today))
    await medication.execute_update(MedicationWorkflow.dispense, DOSE)
    with refused("second dose"):
        await medication.execute_update(MedicationWorkflow.dispense, DOSE)
    with refused("does not match the order"):
        await medication.execute_update(
            MedicationWorkflow.dispense, DispenseRecord(kind="observed-dose", actor="RN", dose=80.0, unit="mg")
        )
    with refused("take-home day"):
        await medication.execute_update(
            MedicationWorkflow.dispense,
            DispenseRecord(
                kind="take-home", actor="RN", dose=60.0, unit="mg", take_home_count=3, bottle_ids=["B1", "B2", "B3"]
            ),
        )
    with Session(engine) as session:
        assert len(session.exec(select(DispenseRow).where(DispenseRow.participant_id == pid)).all()) == 1
    await participant.terminate("test over")


async def test_overdue_injection_alert_at_due_date_plus_grace(program):
    env, engine, participant, today = program
    pid = (await participant.query(ParticipantWorkflow.status)).participant_id
    body = order(
        pid,
        today,
        drug="naltrexone-er-injection",
        dose=380.0,
        route="intramuscular",
        schedule={"kind": "injection", "observed_weekdays": [0, 1, 2, 3, 4, 5, 6], "every_days": 28, "grace_days": 3},
    )
    medication = await start_order(env, participant, body)
    await medication.execute_update(
        MedicationWorkflow.dispense,
        DispenseRecord(kind="injection", actor="RN", dose=380.0, unit="mg", lot="LOT-7", site="left gluteal"),
    )
    due = today + timedelta(days=28)
    await skip(env, timedelta(days=30))
    with Session(engine) as session:
        assert session.exec(select(AlertRecord).where(AlertRecord.kind == "injection-overdue")).all() == []
    await skip(env, timedelta(days=2))
    with Session(engine) as session:
        [alert] = session.exec(select(AlertRecord).where(AlertRecord.kind == "injection-overdue")).all()
    assert alert.subject_id.endswith(due.isoformat()) and "grace 3 days" in alert.detail
    assert (await medication.query(MedicationWorkflow.status)).next_due.day == due.isoformat()
    await participant.terminate("test over")


async def test_the_workflow_itself_refuses_implausible_and_unjustified_doses(program):
    """Updates sent straight to Temporal (not through the API) meet the same dose bounds."""
    env, engine, participant, today = program
    pid = (await participant.query(ParticipantWorkflow.status)).participant_id
    with refused_unread("usual maximum"):
        await start_order(env, participant, raw_order(pid, today, dose=150.0))
    with refused_unread("plausible ceiling"):
        await start_order(env, participant, raw_order(pid, today, dose=1e308, dose_override_reason="typo?"))
    medication = await start_order(env, participant, order(pid, today))
    with refused("plausible ceiling"):
        await medication.execute_update(MedicationWorkflow.change_dose, DoseChange(1e308, "mg", "x", "Dr. O"))
    with refused("override_reason"):
        await medication.execute_update(MedicationWorkflow.change_dose, DoseChange(150.0, "mg", "cravings", "Dr. O"))
    with refused("plausible ceiling"):
        await medication.execute_update(
            MedicationWorkflow.dispense, DispenseRecord(kind="observed-dose", actor="RN", dose=1e308, unit="mg")
        )
    state = await medication.execute_update(
        MedicationWorkflow.change_dose,
        DoseChange(150.0, "mg", "cravings", "Dr. O", override_reason="level 90 ng/mL at trough"),
    )
    assert state.order.dose == 150.0 and state.order.dose_override_reason == "level 90 ng/mL at trough"
    assert "dose override: level 90 ng/mL at trough" in state.events[-1].detail


# --- issue 18: adherence counts only doses taken; take-homes cannot be doubled ----------------


async def test_past_start_with_holds_reads_zero_percent_and_the_run_that_caused_the_hold(program):
    """Reproduces issue 18: an order started 21 days ago with no dose: 3 misses, then held. Held
    days used to count as taken (30 days 86% (18 of 21), 7 days 100% (7 of 7)) and the run read 0."""
    env, engine, participant, today = program
    pid = (await participant.query(ParticipantWorkflow.status)).participant_id
    medication = await start_order(env, participant, order(pid, today - timedelta(days=21)))
    await skip(env, timedelta(hours=1))  # the past days are weighed as the workflow starts
    state = await medication.query(MedicationWorkflow.status)
    assert state.status == "held"
    assert (state.adherence_30d.taken, state.adherence_30d.expected) == (0, 21)
    assert (state.adherence_7d.taken, state.adherence_7d.expected) == (0, 7)
    assert state.adherence_30d.ratio == 0 and state.adherence_7d.ratio == 0
    assert state.missed_run == 3
    attendance = next(r for r in state.eligibility.reasons if r.startswith("attendance"))
    assert "0% of expected doses" in attendance and state.eligibility.max_take_home_days == 0
    await participant.terminate("test over")


async def test_zero_doses_nine_days_is_zero_percent(program):
    env, engine, participant, today = program
    pid = (await participant.query(ParticipantWorkflow.status)).participant_id
    medication = await start_order(env, participant, order(pid, today - timedelta(days=9)))
    await skip(env, timedelta(hours=1))
    state = await medication.query(MedicationWorkflow.status)
    assert state.adherence_30d.expected == 9 and state.adherence_30d.taken == 0
    await participant.terminate("test over")


async def test_two_take_home_supplies_same_day_on_daily_observed_order_refused(program):
    """Reproduces issue 18: two 7-day supplies accepted on treatment day 2 of a daily-observed order."""
    env, engine, participant, today = program
    pid = (await participant.query(ParticipantWorkflow.status)).participant_id
    medication = await start_order(env, participant, order(pid, today))
    await medication.execute_update(MedicationWorkflow.dispense, DOSE)
    await skip(env, timedelta(days=1))
    await medication.execute_update(MedicationWorkflow.attest_storage, StorageAttestation(True, "lockbox seen", "md"))
    supply = DispenseRecord(
        kind="take-home", actor="RN", dose=60.0, unit="mg", take_home_count=7, bottle_ids=[f"B{i}" for i in range(7)]
    )
    accepted = 0
    for _ in range(2):
        with refused("daily-observed"):
            await medication.execute_update(MedicationWorkflow.dispense, supply)
            accepted += 1
    assert accepted == 0
    with Session(engine) as session:
        assert [d.kind for d in session.exec(select(DispenseRow).where(DispenseRow.participant_id == pid))] == [
            "observed-dose"
        ]
    await participant.terminate("test over")


@pytest.fixture
async def solo(time_env, records_engine, task_queue):
    """An order's workflow on its own: no participant program, so no random screen changes eligibility."""
    async with build_worker(time_env.client, records_engine, task_queue):
        today = local_date(await time_env.get_current_time(), ZONE)
        pid = unique("p")
        record_participant(records_engine, pid, start=today)

        async def start(body):
            start = MedicationInput(
                order=body,
                participant_id=pid,
                site="north",
                timezone=ZONE,
                rules="federal-otp-2024",
                treatment_start=today.isoformat(),
            )
            MedicationActivities(records_engine).open_order(start)
            return await time_env.client.start_workflow(
                MedicationWorkflow.run, start, id=workflow_id(body.order_id), task_queue=task_queue
            )

        yield time_env, records_engine, pid, today, start


async def test_overlapping_supplies_refused_with_the_dates(solo):
    env, engine, pid, today, start = solo
    weekdays = [today.weekday(), (today + timedelta(days=1)).weekday()]  # observed two days a week
    medication = await start(
        order(
            pid,
            today,
            schedule={
                "kind": "observed-plus-take-home",
                "observed_weekdays": weekdays,
                "every_days": None,
                "grace_days": 3,
            },
        )
    )
    await medication.execute_update(MedicationWorkflow.dispense, DOSE)
    await skip(env, timedelta(days=1))
    await medication.execute_update(MedicationWorkflow.dispense, DOSE)
    await medication.execute_update(MedicationWorkflow.attest_storage, StorageAttestation(True, "lockbox seen", "md"))
    await medication.execute_update(
        MedicationWorkflow.dispense,
        DispenseRecord(kind="take-home", actor="RN", dose=60.0, unit="mg", take_home_count=5, bottle_ids=["A1"]),
    )
    day_3 = (today + timedelta(days=2)).isoformat()
    with refused(day_3):
        await medication.execute_update(
            MedicationWorkflow.dispense,
            DispenseRecord(kind="take-home", actor="RN", dose=60.0, unit="mg", take_home_count=5, bottle_ids=["A2"]),
        )
    with Session(engine) as session:
        rows = session.exec(select(DispenseRow).where(DispenseRow.participant_id == pid)).all()
    assert [d.kind for d in rows] == ["observed-dose", "observed-dose", "take-home"]
    assert rows[-1].covered_dates == [(today + timedelta(days=n)).isoformat() for n in range(2, 7)]
    await medication.terminate("test over")


async def test_split_dose_counts_once_all_parts_are_given(program):
    env, engine, participant, today = program
    pid = (await participant.query(ParticipantWorkflow.status)).participant_id
    medication = await start_order(env, participant, order(pid, today, dose=120.0))
    half = DispenseRecord(kind="observed-dose", actor="RN", dose=60.0, unit="mg", split_parts=2)
    with refused("each of the 2 parts must be 60 mg"):
        await medication.execute_update(
            MedicationWorkflow.dispense,
            DispenseRecord(kind="observed-dose", actor="RN", dose=50.0, unit="mg", split_parts=2),
        )
    state = await medication.execute_update(MedicationWorkflow.dispense, half)
    assert today.isoformat() not in state.outcomes  # half a dose is not the day's dose
    state = await medication.execute_update(MedicationWorkflow.dispense, half)
    assert state.outcomes[today.isoformat()] == "dosed"
    with refused("second dose"):
        await medication.execute_update(MedicationWorkflow.dispense, half)
    await skip(env, timedelta(days=1))
    state = await medication.query(MedicationWorkflow.status)
    assert (state.adherence_7d.taken, state.adherence_7d.expected) == (1, 1)
    with Session(engine) as session:
        assert len(session.exec(select(DispenseRow).where(DispenseRow.participant_id == pid)).all()) == 2
    await participant.terminate("test over")


async def test_guest_dosing_ends_by_itself_on_its_last_day(program):
    from workflows.contracts.medication import GuestRequest

    env, engine, participant, today = program
    pid = (await participant.query(ParticipantWorkflow.status)).participant_id
    medication = await start_order(env, participant, order(pid, today))
    with refused("lasts 1 to 31 days"):
        await medication.execute_update(
            MedicationWorkflow.start_guest,
            GuestRequest("south", today.isoformat(), (today + timedelta(days=45)).isoformat(), "md"),
        )
    guest_id = await medication.execute_update(
        MedicationWorkflow.start_guest,
        GuestRequest("south", today.isoformat(), (today + timedelta(days=1)).isoformat(), "md"),
    )
    guest = env.client.get_workflow_handle_for(MedicationWorkflow.run, workflow_id(guest_id))
    await guest.execute_update(MedicationWorkflow.dispense, DOSE)
    await skip(env, timedelta(minutes=5))  # the home order hears of the guest dose
    with refused("second dose"):  # dosed at the guest site: not dosed again at home the same day
        await medication.execute_update(MedicationWorkflow.dispense, DOSE)
    with refused("already a guest order"):
        await guest.execute_update(
            MedicationWorkflow.start_guest, GuestRequest("east", today.isoformat(), today.isoformat(), "md")
        )
    await skip(env, timedelta(days=3))
    assert (await guest.result()).status == "stopped"
    state = await medication.query(MedicationWorkflow.status)
    assert state.outcomes[today.isoformat()] == "guest-dosed"
    await participant.terminate("test over")
