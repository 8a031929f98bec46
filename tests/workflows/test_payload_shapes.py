"""Payloads written before the workflows carried the domain's own dataclasses (issue 14: plans, orders,
eligibility, adherence, supplies, callbacks as dicts) still read as the typed contracts. The saved histories
(test_participant_workflow.py::test_saved_histories_replay) cover first runs; these cover what only a run that
continued as new carries: a medication order's whole state, and a participant's next plan and day plan."""

import dataclasses
import json
from pathlib import Path

import temporalio.converter
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload

from domain.ledger import Supply
from domain.medication import Adherence, Callback, Expected, MedicationOrder
from domain.plan import TestingPlan
from domain.report_facts import ReportFacts, facts_dict
from domain.takehome import Eligibility
from tests.conftest import TEST_CONVERTER
from workflows.contracts.disclosure import DisclosureEvent
from workflows.contracts.medication import GuestPeriod, MedicationInput, ScreenOutcome
from workflows.contracts.participant import ParticipantInput

HERE = Path(__file__).parent
PAYLOADS = temporalio.converter.default().payload_converter


def _read(data: bytes, cls: type):
    [value] = PAYLOADS.from_payloads([Payload(metadata={"encoding": b"json/plain"}, data=data)], [cls])
    return value


def test_a_continued_medication_order_written_as_dicts_reads_typed():
    # Written by main at 27daf47's payload converter (domain.medication.order_to_dict and friends).
    old = (HERE / "payloads" / "medication-input-continued.json").read_bytes()
    value = _read(old, MedicationInput)
    state = value.state
    assert isinstance(value.order, MedicationOrder) and value.order.schedule.observed_weekdays == (0, 1, 2, 3, 4)
    assert state.order == value.order
    assert isinstance(state.eligibility, Eligibility) and state.eligibility.max_take_home_days == 14
    assert state.adherence_7d == Adherence(7, "2026-11-24", "2026-11-30", 5, 4, 0.8)
    assert state.adherence_30d.ratio is None
    assert state.next_due == Expected("2026-12-01", "observed-dose", "Tuesday is observed")
    assert state.supplies == [Supply("2026-11-28", ("2026-11-29", "2026-11-30"), ("B1", "B2"))]
    assert [c.status for c in state.callbacks] == ["called", "scheduled"]
    assert state.callbacks[0] == Callback(
        "2026-12-03T10:15:00-05:00", 24, "called", ("B1",), "2026-12-04T10:15:00-05:00", "t-1"
    )
    assert state.guest == GuestPeriod("m-0", "south", "2026-12-01", "2026-12-05")
    assert state.recent_screens == [ScreenOutcome("s-1", "2026-11-20", "negative")]
    # Written again, it is the same JSON: a continued run carries what it read.
    assert json.loads(PAYLOADS.to_payloads([value])[0].data) == json.loads(old)


async def test_a_participant_state_with_plans_as_dicts_reads_typed():
    # The first run's input of a saved history (the old shape), with the plans a later run carries: the next
    # phase's plan ({**plan, "phase": ...} before) and the day's plan from the program (DayPlan.plan).
    history = json.loads((HERE / "histories" / "participant--colour-mode-missed-check-ins.json").read_text())
    started = history["events"][0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0]
    [plain] = await TEST_CONVERTER.payload_codec.decode([json_format.ParseDict(started, Payload())])
    old = json.loads(plain.data)
    plan = old["state"]["plan"]
    old["state"].update(
        next_plan={**plan, "phase": "phase-2"}, next_plan_from="2026-12-09", day_plan=plan, day_plan_for="2026-12-08"
    )
    value = _read(json.dumps(old).encode(), ParticipantInput)
    assert isinstance(value.state.plan, TestingPlan) and value.state.plan.collection_weekdays == (0, 1, 2, 3, 4)
    assert value.state.next_plan.phase == "phase-2" and value.state.day_plan == value.state.plan
    # Written again, each plan keeps every key it had (fields added since take their defaults).
    again = json.loads(PAYLOADS.to_payloads([value])[0].data)["state"]
    for key, before in (("plan", plan), ("next_plan", old["state"]["next_plan"]), ("day_plan", plan)):
        assert {name: again[key][name] for name in before} == before


# --- a disclosure's facts: typed, and the same dict as before ------------------------------------

# Every shape of facts the producers sent as a dict before ReportFacts (workflows/screening.py, participant.py,
# medication.py, api/routers/screenings.py and attendance.py at main 9b2dc65), with the facts that can be null.
OLD_FACTS = {
    "adherence": {
        "period_start": "2026-11-24",
        "period_end": "2026-11-30",
        "doses_expected": 5,
        "doses_taken": 4,
        "adherence_ratio": 0.8,
    },
    "adherence, no dose due": {
        "period_start": "2026-11-24",
        "period_end": "2026-11-30",
        "doses_expected": 0,
        "doses_taken": 0,
        "adherence_ratio": None,
    },
    "summary": {
        "month": "2026-11",
        "period_start": "2026-11-01",
        "period_end": "2026-11-30",
        "phase_changes": [{"to_phase": "phase-1", "effective_on": "2026-10-02"}],
    },
    "missed check-in": {"scheduled_on": "2026-11-20", "due_by": "2026-11-20T10:00:00-05:00"},
    "phase change": {"from_phase": "phase-1", "to_phase": "phase-2", "effective_on": "2026-11-24"},
    "first phase change": {"from_phase": None, "to_phase": "phase-2", "effective_on": "2026-11-24"},
    "discharge": {
        "status": "completed",
        "effective_on": "2026-11-30T10:00:00+00:00",
        "discharge_kind": "completed",
        "phase_changes": [],
    },
    "missed test": {"scheduled_on": "2026-11-20", "window_closed_at": "2026-11-20T16:00:00+00:00"},
    "retraction": {"retracted": True, "retraction_reason": "not-reportable"},
    "refusal": {"occurred_on": "2026-11-20", "refusal_kind": "adulterated-or-substituted"},
    "presumptive": {
        "collected_on": "2026-11-20",
        "specimen_type": "urine",
        "observed": True,
        "outcome": "positive",
        "dilute": False,
        "positive_for": ["benzoylecgonine", "morphine"],
        "basis": "presumptive-screen",
        "confirmed": False,
    },
    "admission": {
        "collected_on": "2026-11-20",
        "outcome": "positive",
        "positive_for": ["cocaine"],
        "basis": "admitted-use",
        "confirmed": False,
        "admission_witnessed_by": "staff-1",
    },
    "breath, no device": {
        "collected_on": "2026-11-20",
        "specimen_type": "breath",
        "observed": False,
        "outcome": "negative",
        "breath_alcohol": 0.0,
        "device_id": None,
    },
    "breath positive": {
        "collected_on": "2026-11-20",
        "specimen_type": "breath",
        "observed": False,
        "outcome": "positive",
        "breath_alcohol": 0.061,
        "device_id": "ebt-2",
        "basis": "breath-alcohol-confirmed",
        "confirmed": True,
        "positive_for": ["ethanol"],
    },
    "lab": {
        "collected_on": "2026-11-20",
        "specimen_type": "urine",
        "observed": True,
        "outcome": "invalid",
        "dilute": True,
    },
    "lab positive, before the basis": {
        "collected_on": "2026-11-20",
        "specimen_type": "oral-fluid",
        "observed": True,
        "outcome": "positive",
        "dilute": False,
        "confirmed": True,
        "positive_for": ["amphetamine"],
    },
    "attendance": {"session_on": "2026-11-20", "session_kind": "group", "attendance_status": "excused"},
}


def test_report_facts_give_back_the_dict_each_producer_sent():
    """What is stored, compared for "the same report again" and reported is facts_dict(ReportFacts): the dict
    a producer sent before, absent facts absent and null facts null. So are the facts of an event that crossed
    Temporal (a DiscloseEventWorkflow started by the API, a local activity's input) as a flat dict before, and
    those of one written now."""
    for name, old in OLD_FACTS.items():
        assert facts_dict(ReportFacts(**old)) == old, name
        written = PAYLOADS.to_payloads([DisclosureEvent("p-1", "any", "e-1", ReportFacts(**old))])[0].data
        assert facts_dict(_read(written, DisclosureEvent).facts) == old, name
        before = {"participant_id": "p-1", "category": "any", "event_ref": "e-1", "facts": old, "corrects_event": False}
        assert facts_dict(_read(json.dumps(before).encode(), DisclosureEvent).facts) == old, name
    # A fact given as None is kept; one not given is not written as null.
    assert facts_dict(ReportFacts(device_id=None)) == {"device_id": None} and facts_dict(ReportFacts()) == {}


def test_report_facts_carry_every_fact_a_report_may_say():
    from itertools import chain

    from domain.report_content import FACT_KEYS

    reported = set(chain.from_iterable(FACT_KEYS.values()))
    kept_for_planning = {"retracted", "retraction_reason", "month", "phase_changes"}
    assert {f.name for f in dataclasses.fields(ReportFacts) if f.init} == reported | kept_for_planning


# --- no untyped dict crosses the Temporal boundary --------------------------------------------


def _untyped(hint, where: str, seen: set) -> list[str]:
    """Where `hint` (a payload type) holds Any or a bare dict, walking into dataclasses, lists, unions."""
    import collections.abc
    import typing

    if hint is typing.Any or hint is dict:
        return [where]
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (dict, collections.abc.Mapping) and (not args or args[1] is typing.Any):
        return [where]
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if hint in seen:
            return []
        seen.add(hint)
        found = []
        for name, field_hint in typing.get_type_hints(hint).items():
            if not name.startswith("__"):
                found += _untyped(field_hint, f"{hint.__name__}.{name}", seen)
        return found
    return [place for arg in args if arg is not Ellipsis for place in _untyped(arg, where, seen)]


def test_no_payload_of_a_workflow_or_activity_is_an_untyped_dict(records_engine):
    import typing

    from temporalio import activity, workflow

    from iop.codec import new_key
    from iop.worker import WORKFLOWS, activities

    signatures = [activity._Definition.must_from_callable(fn).fn for fn in activities(records_engine, [new_key()])]
    for cls in WORKFLOWS:
        definition = workflow._Definition.must_from_class(cls)
        signatures += [
            definition.run_fn,
            *(s.fn for s in definition.signals.values()),
            *(u.fn for u in definition.updates.values()),
            *(q.fn for q in definition.queries.values()),
        ]
    found, seen = [], set()
    for fn in signatures:
        for name, hint in typing.get_type_hints(fn).items():
            found += _untyped(hint, f"{fn.__qualname__}({name})", seen)
    assert found == [], found
