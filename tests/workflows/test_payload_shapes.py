"""Payloads written before the workflows carried the domain's own dataclasses (issue 14: plans, orders,
eligibility, adherence, supplies, callbacks as dicts) still read as the typed contracts. The saved histories
(test_participant_workflow.py::test_saved_histories_replay) cover first runs; these cover what only a run that
continued as new carries: a medication order's whole state, and a participant's next plan and day plan."""

import json
from pathlib import Path

import temporalio.converter
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload

from domain.ledger import Supply
from domain.medication import Adherence, Callback, Expected, MedicationOrder
from domain.plan import TestingPlan
from domain.takehome import Eligibility
from tests.conftest import TEST_CONVERTER
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


# --- no untyped dict crosses the Temporal boundary --------------------------------------------

# Kept as a dict on purpose: the disclosure's minimum facts differ by category and are trimmed by the
# recipient's allow-list (domain.report_content.allowed_facts), not read by the workflows; why a typed form
# would not decode old histories safely: workflows.contracts.disclosure.DisclosureEvent.
UNTYPED_ALLOWED = {"DisclosureEvent.facts"}


def _untyped(hint, where: str, seen: set) -> list[str]:
    """Where `hint` (a payload type) holds Any or a bare dict, walking into dataclasses, lists, unions."""
    import collections.abc
    import dataclasses
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
            if f"{hint.__name__}.{name}" not in UNTYPED_ALLOWED and not name.startswith("__"):
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
