"""Verifiable random selection on the time-skipping server: ninety days of draws, every one recomputed from the
revealed seed by the CLI's check and by the standalone docs/verify_selection.py; tampering is caught."""

import copy
import importlib.util
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from domain import verifiable
from domain.clock import local_date
from domain.program import program_from_dict
from domain.verifiable import commitment, verify_export
from iop.worker import build_worker
from store import selection
from store.db import session_scope
from store.models import AuditEvent, Participant, SelectionDraw
from store.programs import save_version
from tests.conftest import TEST_KEYS
from tests.workflows.test_program_calendar import WEEKDAYS, ZONE, enroll, store_program
from tests.workflows.test_screening_program import skip
from workflows.contracts.participant import ForCause
from workflows.participant import ParticipantWorkflow

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "verify_selection.py"


def standalone():
    spec = importlib.util.spec_from_file_location("verify_selection", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_standalone_script_imports_nothing_of_the_project():
    text = SCRIPT.read_text()
    for name in ("domain", "store", "iop", "api", "workflows", "activities"):
        assert f"from {name}" not in text and f"import {name}" not in text, name


@pytest.fixture
async def world(time_env, records_engine, task_queue):
    async with build_worker(time_env.client, records_engine, task_queue):
        yield time_env, records_engine, task_queue


async def test_ninety_days_of_draws_all_follow_from_the_revealed_seeds(world):
    env, engine, queue = world
    today = local_date(await env.get_current_time(), ZONE)
    holiday = today + timedelta(days=(3 - today.weekday()) % 7 + 14)
    store_program(engine, "court-v", {holiday.isoformat(): "County holiday"})
    handles = [await enroll(env, engine, queue, "court-v", today) for _ in range(2)]
    cause = await handles[0].execute_update(ParticipantWorkflow.order_for_cause, ForCause("odour of alcohol", "tester"))
    handles.append(await _colour_participant(env, engine, queue, today, holiday))
    await skip(env, timedelta(days=91))
    end = local_date(await env.get_current_time(), ZONE)

    with Session(engine) as session:
        draws = [d for d in session.exec(select(SelectionDraw)).all() if d.program_id == "court-v"]
        periods = selection.periods(session, "court-v")
    assert len(draws) >= 2 * 89 and all(d.verifiable for d in draws)
    assert {p.period for p in periods} == {d.day.strftime("%Y-%m") for d in draws}
    # Each commitment was in the audit trail when its period opened; no seed was public before the reveal.
    with Session(engine) as session:
        audited = {
            e.subject_id: e.detail for e in session.exec(select(AuditEvent)).all() if e.action == "selection.commit"
        }
    assert all(audited[f"court-v:{p.period}"] == f"commitment {p.commitment}" for p in periods)
    # Each period's workflow revealed its seed on its own once the period was over, and no other.
    with Session(engine) as session:
        revealers = {
            e.subject_id: e.actor
            for e in session.exec(select(AuditEvent)).all()
            if e.action == "selection.reveal" and e.subject_id.startswith("court-v:")
        }
    now = await env.get_current_time()
    over = {p.period for p in periods if verifiable.reveal_moment(p.period) <= now}
    assert over and {p.period for p in periods if p.seed_revealed} == over
    assert revealers == {f"court-v:{period}": "system" for period in over}
    with pytest.raises(selection.SelectionError, match="can be revealed from"):
        selection.reveal(engine, TEST_KEYS, "court-v", f"{end:%Y-%m}", today=end)

    script = standalone()
    checked = 0
    for period in sorted(p.period for p in periods):
        if selection.period_end(period) >= end - timedelta(days=1):
            continue  # not over yet
        row = selection.reveal(engine, TEST_KEYS, "court-v", period, today=end)
        assert commitment(bytes.fromhex(row.seed_revealed), "court-v", period) == row.commitment
        with Session(engine) as session:
            export = json.loads(json.dumps(selection.export(session, "court-v", period)))
        assert export["draws"] and export["not_verifiable"] == []
        assert verify_export(export) == [], period
        assert script.check(export, row.seed_revealed, row.commitment) == [], period
        checked += len(export["draws"])
        if period == cause.day[:7]:  # the staff-ordered test is listed apart, never as a draw
            assert [f["screening_id"] for f in export["for_cause"]] == [cause.screening_id]
            assert cause.screening_id not in {d["screening_id"] for d in export["draws"]}
        _tampering_is_detected(export, row.seed_revealed, row.commitment, script)
    assert checked >= 2 * 55  # at least two whole months of both participants
    _colour_days_verify(engine, end, script)
    for handle in handles:
        await handle.terminate("test over")


async def _colour_participant(env, engine, queue, today, holiday):
    """A participant of a colour-mode program (issue 15): the day's colours are drawn from the period's seed too."""
    definition = {
        "program_id": "colour-v",
        "name": "Colour court",
        "mode": "colour",
        "sites": {"north": {"timezone": ZONE, "hours": WEEKDAYS, "closed": {holiday.isoformat(): "County holiday"}}},
        "phases": [{"name": "phase-1", "tests_per_week": 1, "min_per_rolling_week": 0, "max_per_rolling_week": 3}],
        "colours": [
            {"name": "red", "tests_per_week": 2.5, "min_per_rolling_week": 1, "max_per_rolling_week": 3},
            {"name": "blue", "tests_per_week": 1, "min_per_rolling_week": 0, "max_per_rolling_week": 2},
        ],
    }
    with session_scope(engine) as session:
        save_version(session, program_from_dict(definition), "tester", "colour mode")
    handle = await enroll(env, engine, queue, "colour-v", today)
    pid = (await handle.query(ParticipantWorkflow.status)).participant_id
    with session_scope(engine) as session:
        session.get(Participant, pid).colour = "red"
    return handle


def _colour_days_verify(engine, end, script) -> None:
    """Every colour day of each revealed colour-mode period is exported and recomputed by both verifiers;
    tampering with one exported colour day is caught."""
    with Session(engine) as session:
        periods = [p.period for p in selection.periods(session, "colour-v")]
    verified = 0
    for period in sorted(periods):
        if selection.period_end(period) >= end - timedelta(days=1):
            continue
        row = selection.reveal(engine, TEST_KEYS, "colour-v", period, today=end)
        with Session(engine) as session:
            export = json.loads(json.dumps(selection.export(session, "colour-v", period)))
        days = export["colour_days"]
        assert days and all(len(d["draws"]) == 2 for d in days), period
        assert verify_export(export) == [], period
        assert script.check(export, row.seed_revealed, row.commitment) == [], period
        verified += len(days)

        def caught(changed: dict, seed: str = row.seed_revealed, published: str = row.commitment) -> bool:
            return bool(verify_export(changed, seed)) and bool(script.check(changed, seed, published))

        called = next(i for i, d in enumerate(days) if d["colours"])
        dropped = copy.deepcopy(export)  # a called colour left out of the day's published colours
        dropped["colour_days"][called]["colours"] = dropped["colour_days"][called]["colours"][1:]
        assert caught(dropped), "a colour left out of a called day must be caught"
        flipped = copy.deepcopy(export)
        draw = next(
            d for day in flipped["colour_days"] for d in day["draws"] if d["reason"] in ("selected", "not-selected")
        )
        draw["selected"] = not draw["selected"]
        assert caught(flipped), "a flipped colour draw must be caught"
        hidden = copy.deepcopy(export)  # an earlier call hidden from the ceiling's count
        later = next(
            d
            for day in hidden["colour_days"]
            for d in day["draws"]
            if d["inputs"]["recent_selections"][:1] and d["inputs"]["recent_selections"][0] >= period
        )
        later["inputs"]["recent_selections"] = later["inputs"]["recent_selections"][1:]
        assert caught(hidden), "a colour's history other than its exported calls must be caught"
    assert verified >= 20  # at least one whole month of open days


def _tampering_is_detected(export: dict, seed: str, published: str, script) -> None:
    def both(changed: dict, seed_hex: str = seed, commitment_hex: str = published) -> tuple[list, list]:
        return verify_export(changed, seed_hex), script.check(changed, seed_hex, commitment_hex)

    flipped = copy.deepcopy(export)
    draw = next(d for d in flipped["draws"] if d["reason"] in ("selected", "not-selected"))
    draw["selected"] = not draw["selected"]
    assert all(both(flipped)), "a flipped outcome must be caught"
    nudged = copy.deepcopy(export)
    nudged["draws"][-1]["roll"] = min(0.999, nudged["draws"][-1]["roll"] + 1e-9)
    assert all(both(nudged)), "a changed roll must be caught"
    other_seed = bytes(32).hex()
    assert all(both(export, other_seed)), "another seed must be caught"
    wrong = copy.deepcopy(export)
    wrong["commitment"] = "0" * 64
    assert all(both(wrong)), "another commitment must be caught"
    assert script.check(export, seed, "1" * 64), "a commitment other than the published one must be caught"
