"""The program as data on the time-skipping server: closed days draw nothing and miss nothing; a gateway
that cannot deliver, or a participant without a phone, never turns into a reportable miss."""

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import Session, select

from activities.notify import WebhookNotifier
from domain.clock import local_date
from domain.program import program_from_dict
from iop.enrollment import program_input
from iop.worker import build_worker
from store.db import session_scope
from store.models import (
    AlertRecord,
    CallListEntry,
    Disclosure,
    NotificationAttempt,
    Participant,
    Screening,
    SelectionDraw,
)
from store.programs import current_program, save_version
from tests.conftest import unique
from tests.receiver import sms_gateway
from tests.workflows.test_screening_program import skip
from workflows.contracts.participant import ForCause
from workflows.participant import ParticipantWorkflow, workflow_id
from workflows.screening import ScreeningWorkflow
from workflows.screening import workflow_id as screening_workflow_id

ZONE = "America/New_York"
WEEKDAYS = {day: ["08:00", "17:00"] for day in ("mon", "tue", "wed", "thu", "fri")}


def store_program(engine, program_id: str, closed: dict[str, str], hours=None) -> None:
    definition = {
        "program_id": program_id,
        "name": "Weekday court program",
        "sites": {"north": {"timezone": ZONE, "hours": hours or WEEKDAYS, "closed": closed}},
        "phases": [
            {
                "name": "phase-1",
                "tests_per_week": 2.5,
                "min_per_rolling_week": 1,
                "max_per_rolling_week": 4,
                "specimen_types": ["urine"],
                "criteria": "first 90 days",
            }
        ],
    }
    with session_scope(engine) as session:
        save_version(session, program_from_dict(definition), "tester", "initial")


async def enroll(env, engine, queue, program_id: str, start: date, phone: str | None = "+15555550100"):
    participant_id = unique("p")
    with session_scope(engine) as session:
        session.add(
            Participant(
                id=participant_id,
                given_name="Test",
                family_name="Person",
                date_of_birth=date(1980, 1, 1),
                site="north",
                program=program_id,
                phase="phase-1",
                start_date=start,
                timezone=ZONE,
                case_numbers=[],
                status="enrolling",
                phone=phone,
            )
        )
    with Session(engine) as session:
        program = current_program(session, program_id)
        participant = session.get(Participant, participant_id)
        workflow_input = program_input(participant, program)
    return await env.client.start_workflow(
        ParticipantWorkflow.run, workflow_input, id=workflow_id(participant_id), task_queue=queue
    )


def rows(engine, model, **where):
    with Session(engine) as session:
        query = select(model)
        for key, value in where.items():
            query = query.where(getattr(model, key) == value)
        return session.exec(query).all()


@pytest.fixture
async def program(time_env, records_engine, task_queue):
    async with build_worker(time_env.client, records_engine, task_queue):
        yield time_env, records_engine, task_queue


async def test_holiday_and_closed_weekend_draw_nothing_and_miss_nothing_over_ninety_days(program):
    env, engine, queue = program
    today = local_date(await env.get_current_time(), ZONE)
    holiday = today + timedelta(days=(3 - today.weekday()) % 7 + 14)  # a Thursday two weeks on
    store_program(engine, "weekday-court", {holiday.isoformat(): "County holiday"})
    handle = await enroll(env, engine, queue, "weekday-court", today)
    await skip(env, timedelta(days=91))
    pid = (await handle.query(ParticipantWorkflow.status)).participant_id
    draws = sorted(rows(engine, SelectionDraw, participant_id=pid), key=lambda d: d.day)
    assert len(draws) >= 89
    closed = [d for d in draws if d.day.weekday() >= 5 or d.day == holiday]
    assert closed and all(not d.selected and d.reason == "clinic-closed" for d in closed)
    assert any(d.day == holiday for d in closed)
    # The draw record names the program version that decided it.
    assert {(d.program_id, d.program_version) for d in draws} == {("weekday-court", 1)}
    screenings = rows(engine, Screening, participant_id=pid)
    assert screenings and all(s.day.weekday() < 5 and s.day != holiday for s in screenings)
    # The window of each ends at closing time (17:00), never after.
    for s in screenings:
        if s.window_closes_at:
            closes = s.window_closes_at.replace(tzinfo=UTC).astimezone(handle_zone())
            assert closes.time() <= datetime.strptime("17:00", "%H:%M").time(), s.id
    # Open days are evenly likely: the same probability every open weekday.
    open_probabilities = {round(d.probability, 4) for d in draws if d.reason in ("selected", "not-selected")}
    assert open_probabilities == {0.5}
    await handle.terminate("test over")


def handle_zone():
    from zoneinfo import ZoneInfo

    return ZoneInfo(ZONE)


async def _for_cause_with_gateway(env, engine, queue, phone):
    today = local_date(await env.get_current_time(), ZONE)
    every_day = {d: ["00:00", "23:59"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    store_program(engine, "all-hours", {}, hours=every_day)
    handle = await enroll(env, engine, queue, "all-hours", today, phone=phone)
    ref = await handle.execute_update(ParticipantWorkflow.order_for_cause, ForCause("odour of alcohol", "tester"))
    screening = env.client.get_workflow_handle_for(ScreeningWorkflow.run, screening_workflow_id(ref.screening_id))
    return handle, screening, ref


@pytest.fixture
async def gateway_down(time_env, records_engine, task_queue):
    with sms_gateway() as gateway:
        gateway.down = True
        notifier = WebhookNotifier(gateway.url, "gateway-secret", timeout=5)
        async with build_worker(time_env.client, records_engine, task_queue, notifier=notifier):
            yield time_env, records_engine, task_queue, gateway


async def test_gateway_outage_longer_than_the_window_is_no_reportable_miss_and_a_call_list_entry(gateway_down):
    env, engine, queue, gateway = gateway_down
    handle, screening, ref = await _for_cause_with_gateway(env, engine, queue, "+15555550100")
    await skip(env, timedelta(hours=10))
    during_outage = len(gateway.requests)
    gateway.down = False  # back after the window closed: too late to tell anyone
    await skip(env, timedelta(hours=1))
    state = await screening.query(ScreeningWorkflow.status)
    assert state.status == "not-notified", state.status
    assert "missed" not in [e.what for e in state.events]
    calls = rows(engine, CallListEntry, screening_id=ref.screening_id)
    assert len(calls) == 1 and "gateway" in calls[0].reason
    # Nobody was reached by the time the window closed: the system took the entry off the call list; the test
    # is on the worklist as not notified (the miss-needs-decision alert below).
    assert calls[0].resolved_by == "system" and "not-notified" in calls[0].outcome, calls[0].outcome
    attempts = rows(engine, NotificationAttempt, screening_id=ref.screening_id)
    assert len(attempts) >= 3 and {a.status for a in attempts} == {"error"}
    # Every try met the outage, and none for this screening was made after the window (the gateway was back by then:
    # a try then would be an attempt that did not fail). Later requests are other notices, e.g. the next day's draw
    # when the skipped hours pass the participant's draw time.
    assert {r["status"] for r in gateway.requests[:during_outage]} == {503} and during_outage >= len(attempts)
    assert rows(engine, Disclosure, participant_id=state.participant_id) == []
    assert rows(engine, AlertRecord, kind="miss-needs-decision", subject_id=ref.screening_id)
    await handle.terminate("test over")


async def test_participant_without_a_phone_goes_to_the_call_list(gateway_down):
    env, engine, queue, gateway = gateway_down
    handle, screening, ref = await _for_cause_with_gateway(env, engine, queue, None)
    await skip(env, timedelta(hours=10))
    state = await screening.query(ScreeningWorkflow.status)
    assert state.status == "not-notified"
    calls = rows(engine, CallListEntry, screening_id=ref.screening_id)
    assert len(calls) == 1 and "no phone" in calls[0].reason
    assert [a.status for a in rows(engine, NotificationAttempt, screening_id=ref.screening_id)] == ["no-phone"]
    assert gateway.requests == []
    await handle.terminate("test over")


async def test_a_required_check_in_not_made_is_its_own_event_with_an_alert(program):
    env, engine, queue = program
    today = local_date(await env.get_current_time(), ZONE)
    every_day = {d: ["07:00", "19:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    definition = {
        "program_id": "check-in-court",
        "name": "Check-in court",
        "sites": {"north": {"timezone": ZONE, "hours": every_day, "closed": {}}},
        "phases": [
            {
                "name": "phase-1",
                "tests_per_week": 1,
                "min_per_rolling_week": 0,
                "max_per_rolling_week": 3,
                "check_in_required": True,
                "missed_check_in_reportable": True,
            }
        ],
    }
    with session_scope(engine) as session:
        save_version(session, program_from_dict(definition), "tester", None)
    handle = await enroll(env, engine, queue, "check-in-court", today)
    await skip(env, timedelta(days=4))
    pid = (await handle.query(ParticipantWorkflow.status)).participant_id
    from store.models import CheckInDayRecord

    days = rows(engine, CheckInDayRecord, participant_id=pid)
    assert len(days) >= 2 and all(d.missed_required for d in days)
    alerts = rows(engine, AlertRecord, kind="missed-check-in", participant_id=pid)
    assert len(alerts) == len(days) and all("reportable as a missed check-in" in a.detail for a in alerts)
    await handle.terminate("test over")


async def test_staff_decide_a_test_that_was_never_notified(gateway_down):
    from workflows.contracts.screening import Excuse

    env, engine, queue, gateway = gateway_down
    handle, screening, ref = await _for_cause_with_gateway(env, engine, queue, None)
    await skip(env, timedelta(hours=10))
    assert (await screening.query(ScreeningWorkflow.status)).status == "not-notified"
    state = await screening.execute_update(ScreeningWorkflow.excuse, Excuse("never reached: no phone", "staff-1"))
    assert state.status == "excused" and state.events[-1].actor == "staff-1"
    await handle.terminate("test over")


async def test_a_new_version_applies_from_the_next_program_day_and_each_draw_names_its_version(program):
    env, engine, queue = program
    today = local_date(await env.get_current_time(), ZONE)
    every_day = {d: ["07:00", "19:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    store_program(engine, "versioned", {}, hours=every_day)  # 2.5 tests a week over 7 open days
    handle = await enroll(env, engine, queue, "versioned", today)
    await skip(env, timedelta(days=4))
    edited_on = local_date(await env.get_current_time(), ZONE)
    definition = {
        "program_id": "versioned",
        "name": "Versioned",
        "sites": {"north": {"timezone": ZONE, "hours": every_day, "closed": {}}},
        "phases": [{"name": "phase-1", "tests_per_week": 3.5, "min_per_rolling_week": 1, "max_per_rolling_week": 5}],
    }
    with session_scope(engine) as session:
        assert save_version(session, program_from_dict(definition), "tester", "more tests") == 2
    await skip(env, timedelta(days=5))
    pid = (await handle.query(ParticipantWorkflow.status)).participant_id
    draws = sorted(rows(engine, SelectionDraw, participant_id=pid), key=lambda d: d.day)
    versions = [d.program_version for d in draws]
    assert versions == sorted(versions) and set(versions) == {1, 2}
    # A day keeps the version it began with: the edit day (and at most the next) still ran on version 1.
    assert all(d.program_version == 1 for d in draws if d.day <= edited_on)
    assert all(d.program_version == 2 for d in draws if d.day >= edited_on + timedelta(days=2))
    rates = {d.program_version: round(d.probability, 3) for d in draws if d.reason in ("selected", "not-selected")}
    assert rates.get(1, 0.357) == 0.357 and rates.get(2, 0.5) == 0.5
    await handle.terminate("test over")


def test_a_collection_saved_under_a_lower_revision_still_lands(records_engine):
    """After a worker crash a replay can number the collection's save below a snapshot stored earlier."""
    from dataclasses import replace as copy

    from temporalio.testing import ActivityEnvironment

    from activities.screenings import ScreeningActivities
    from workflows.contracts.screening import Collection, ScreeningState

    with session_scope(records_engine) as session:
        session.add(
            Participant(
                id="p-rev",
                given_name="T",
                family_name="P",
                date_of_birth=date(1980, 1, 1),
                site="north",
                program="iop",
                phase="phase-1",
                start_date=date(2026, 11, 2),
                timezone=ZONE,
                case_numbers=[],
                status="active",
            )
        )
    activities, env = ScreeningActivities(records_engine), ActivityEnvironment()
    base = ScreeningState(
        "s-rev",
        "p-rev",
        "north",
        "2026-11-02",
        "for-cause",
        "2026-11-02T14:00:00+00:00",
        8.0,
        status="awaiting-collection",
        revision=3,
    )
    env.run(activities.save_screening, base)
    collected = copy(
        base,
        status="awaiting-result",
        revision=2,
        specimen_id="s-rev.1",
        collection=Collection("urine", True, "RN", collected_at="2026-11-02T15:00:00+00:00"),
    )
    env.run(activities.save_screening, collected)
    with Session(records_engine) as session:
        row = session.get(Screening, "s-rev")
    assert row.specimen_id == "s-rev.1" and row.revision == 3


def _check_in_program(engine, program_id: str, reportable: bool) -> None:
    every_day = {d: ["07:00", "19:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    definition = {
        "program_id": program_id,
        "name": "Check-in court",
        "sites": {"north": {"timezone": ZONE, "hours": every_day, "closed": {}}},
        "phases": [
            {
                "name": "phase-1",
                "tests_per_week": 1,
                "min_per_rolling_week": 0,
                "max_per_rolling_week": 3,
                "check_in_required": True,
                "missed_check_in_reportable": reportable,
            }
        ],
    }
    with session_scope(engine) as session:
        save_version(session, program_from_dict(definition), "tester", None)


async def test_a_missed_check_in_is_reported_where_the_program_says_so_and_consent_covers_it(program):
    """Category missed-check-ins: reported to the recipient whose consent covers it, for the participant whose
    program makes a missed check-in reportable; never for a program that does not, nor without consent."""
    import secrets

    from domain.webhook_signing import new_webhook_secret
    from store.models import CheckInDayRecord
    from tests.receiver import Receiver, webhook_receiver
    from tests.workflows.test_disclosure_delivery import free_port, setup_records_for
    from workflows.contracts.disclosure import disclosure_workflow_id

    env, engine, queue = program
    today = local_date(await env.get_current_time(), ZONE)
    _check_in_program(engine, "reporting-court", True)
    _check_in_program(engine, "quiet-court", False)
    port, secret = free_port(), new_webhook_secret(secrets.token_bytes(32))
    receiver = Receiver(url=f"http://127.0.0.1:{port}/reports", secret=secret)
    reported = await enroll(env, engine, queue, "reporting-court", today)
    quiet = await enroll(env, engine, queue, "quiet-court", today)
    reported_id = (await reported.query(ParticipantWorkflow.status)).participant_id
    quiet_id = (await quiet.query(ParticipantWorkflow.status)).participant_id
    _, court, consent = setup_records_for(engine, reported_id, receiver.url, secret, ["missed-check-ins"])
    # A probation office that wants missed check-ins but whose consent covers missed tests only.
    _, probation, _ = setup_records_for(engine, reported_id, receiver.url, secret, ["missed-tests"])
    with session_scope(engine) as session:
        from store.models import Recipient

        session.get(Recipient, probation).categories = ["missed-tests", "missed-check-ins"]
    setup_records_for(engine, quiet_id, receiver.url, secret, ["missed-check-ins"])
    with webhook_receiver(port, receiver):
        await skip(env, timedelta(days=3))
        await reported.terminate("test over")
        await quiet.terminate("test over")
        missed = {
            d.day.isoformat()
            for d in rows(engine, CheckInDayRecord, participant_id=reported_id)
            if d.missed_required and d.missed_reportable
        }
        planned = rows(engine, Disclosure, category="missed-check-ins")
        to_court = [d for d in planned if d.recipient_id == court]
        for row in to_court:  # each delivery runs to its end
            await env.client.get_workflow_handle(disclosure_workflow_id(row.id)).result()
    assert len(to_court) >= 2 and {d.facts["scheduled_on"] for d in to_court} <= missed
    # (A random test the participant missed may go to probation, under its consent: not this category.)
    payloads = [p for p in receiver.kept.values() if p["category"] == "missed-check-ins"]
    assert sorted(p["data"]["scheduled_on"] for p in payloads) == sorted(d.facts["scheduled_on"] for d in to_court)
    assert {p["type"] for p in payloads} == {"check-in.missed"} and payloads
    assert {p["consent"]["consent_id"] for p in payloads} == {consent}
    assert all(p["data"]["due_by"].startswith(p["data"]["scheduled_on"]) for p in payloads)
    assert {d.participant_id for d in planned} == {reported_id}
    assert all(d.status != "delivered" for d in planned if d.recipient_id == probation)
    assert not [d for d in rows(engine, Disclosure) if d.participant_id == quiet_id]
    # The quiet program's misses are recorded (and alerted) all the same, as not reportable.
    quiet_days = rows(engine, CheckInDayRecord, participant_id=quiet_id)
    assert quiet_days and all(d.missed_required and not d.missed_reportable for d in quiet_days)


@pytest.fixture
async def gateway_up(time_env, records_engine, task_queue):
    with sms_gateway() as gateway:
        notifier = WebhookNotifier(gateway.url, "gateway-secret", timeout=5)
        async with build_worker(time_env.client, records_engine, task_queue, notifier=notifier):
            yield time_env, records_engine, task_queue, gateway


async def test_a_reminder_goes_out_before_the_window_closes_to_the_uncollected_only(gateway_up):
    """A program with reminders 2 h before close: the told, uncollected participant gets the reminder through the
    gateway (recorded as an attempt); the one collected before then, and a program with reminders off, get none."""
    from workflows.contracts.screening import Collection

    env, engine, queue, gateway = gateway_up
    today = local_date(await env.get_current_time(), ZONE)
    every_day = {d: ["00:00", "23:59"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    base = {
        "sites": {"north": {"timezone": ZONE, "hours": every_day, "closed": {}}},
        "phases": [{"name": "phase-1", "tests_per_week": 1, "min_per_rolling_week": 0, "max_per_rolling_week": 3}],
    }
    with session_scope(engine) as session:
        save_version(
            session,
            program_from_dict(
                {**base, "program_id": "reminding", "name": "Reminding", "reminder_hours_before_close": 2}
            ),
            "tester",
            None,
        )
        save_version(session, program_from_dict({**base, "program_id": "silent", "name": "Silent"}), "tester", None)
    started = []
    for program_id in ("reminding", "reminding", "silent"):
        handle = await enroll(env, engine, queue, program_id, today, phone="+15555550100")
        ref = await handle.execute_update(ParticipantWorkflow.order_for_cause, ForCause("odour of alcohol", "tester"))
        screening = env.client.get_workflow_handle_for(ScreeningWorkflow.run, screening_workflow_id(ref.screening_id))
        started.append((handle, screening, ref))
    (_, late, late_ref), (_, early, early_ref), (_, silent, silent_ref) = started
    windows = {}
    for screening in (late, early, silent):
        state = await screening.query(ScreeningWorkflow.status)
        windows[state.screening_id] = datetime.fromisoformat(state.window_closes_at)
    await early.execute_update(ScreeningWorkflow.record_collection, Collection("urine", True, "RN"))
    await skip(env, timedelta(hours=9))
    reminded = rows(engine, NotificationAttempt, screening_id=late_ref.screening_id)
    assert sorted(a.notification_id.split(":")[1] for a in reminded) == ["reminder", "test-required"]
    reminder = [r["body"] for r in gateway.requests if r["body"]["id"] == f"{late_ref.screening_id}:reminder"]
    assert len(reminder) == 1 and reminder[0]["message"].startswith("Reminder: your drug test today is not done yet")
    from store.models import NotificationRecord

    with Session(engine) as session:
        sent = session.get(NotificationRecord, f"{late_ref.screening_id}:reminder")
    assert sent.kind == "reminder" and sent.report_by.replace(tzinfo=UTC) == windows[late_ref.screening_id]
    events = {e.what: datetime.fromisoformat(e.at) for e in (await late.query(ScreeningWorkflow.status)).events}
    closes = windows[late_ref.screening_id]
    assert closes - timedelta(hours=2) <= events["reminder handed to the gateway (accepted)"] < closes
    for ref in (early_ref, silent_ref):
        assert [
            a.notification_id.split(":")[1] for a in rows(engine, NotificationAttempt, screening_id=ref.screening_id)
        ] == ["test-required"]
    for handle, _, _ in started:
        await handle.terminate("test over")


async def test_colour_mode_calls_colours_on_open_days_and_everyone_of_a_called_colour_tests(program):
    """A program that publishes daily colours: each open day the colours are drawn once (verifiable rolls of the
    period's seed) at opening; every participant of a called colour tests that day and nobody else does; the
    weekend and a holiday call no colour."""
    from store.models import ColourDay

    env, engine, queue = program
    today = local_date(await env.get_current_time(), ZONE)
    holiday = today + timedelta(days=(2 - today.weekday()) % 7 + 7)  # a Wednesday a week or more on
    definition = {
        "program_id": "colour-court",
        "name": "Colour court",
        "mode": "colour",
        "sites": {"north": {"timezone": ZONE, "hours": WEEKDAYS, "closed": {holiday.isoformat(): "County holiday"}}},
        "phases": [{"name": "phase-1", "tests_per_week": 1, "min_per_rolling_week": 0, "max_per_rolling_week": 3}],
        "colours": [
            {"name": "red", "tests_per_week": 2.5, "min_per_rolling_week": 1, "max_per_rolling_week": 3},
            {"name": "blue", "tests_per_week": 1, "min_per_rolling_week": 0, "max_per_rolling_week": 2},
            {"name": "green", "tests_per_week": 1},
        ],
    }
    with session_scope(engine) as session:
        save_version(session, program_from_dict(definition), "tester", "colour mode")
    colours = {}
    handles = []
    for colour in ("red", "red", "blue", None):
        handle = await enroll(env, engine, queue, "colour-court", today)
        pid = (await handle.query(ParticipantWorkflow.status)).participant_id
        with session_scope(engine) as session:
            session.get(Participant, pid).colour = colour
        colours[pid] = colour
        handles.append(handle)
    await skip(env, timedelta(days=12))
    for handle in handles:
        await handle.terminate("test over")
    days = {row.day: row for row in rows(engine, ColourDay, program_id="colour-court", site="north")}
    assert len(days) >= 7
    assert all(day.weekday() < 5 and day != holiday for day in days), "a colour was called on a closed day"
    assert all(
        row.program_version == 1 and [d["colour"] for d in row.draws] == ["red", "blue", "green"]
        for row in days.values()
    )
    for pid, colour in colours.items():
        draws = {d.day: d for d in rows(engine, SelectionDraw, participant_id=pid)}
        open_draws = [d for d in draws.values() if d.day in days]
        assert len(open_draws) == len(days)  # every participant drew on every colour day
        for d in open_draws:
            assert d.selected == (colour is not None and colour in days[d.day].colours), (pid, d.day, d.detail)
        if colour is None:
            assert {d.reason for d in open_draws} == {"no-colour"}
        closed = [d for d in draws.values() if d.day.weekday() >= 5 or d.day == holiday]
        assert closed and all(not d.selected and d.reason == "clinic-closed" for d in closed)
        screenings = rows(engine, Screening, participant_id=pid)
        assert {s.day for s in screenings} == {d.day for d in open_draws if d.selected}
        # Called at opening (08:00), so the whole collection window fits before closing.
        assert all(
            s.selected_at.replace(tzinfo=UTC).astimezone(handle_zone()).strftime("%H:%M") == "08:00" for s in screenings
        )
    red = [pid for pid, c in colours.items() if c == "red"]
    red_days = [{d.day for d in rows(engine, SelectionDraw, participant_id=pid) if d.selected} for pid in red]
    assert red_days[0] == red_days[1] and red_days[0]  # the floor of 1 a week calls red at least once
    # Each colour keeps its ceiling in every rolling 7 days.
    for name, ceiling in (("red", 3), ("blue", 2)):
        called = sorted(day for day, row in days.items() if name in row.colours)
        assert all(sum(1 for c in called if start <= c < start + timedelta(days=7)) <= ceiling for start in called)
