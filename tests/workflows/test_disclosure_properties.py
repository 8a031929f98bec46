"""Issue 12.1, as a stateful property: three participants, two recipients (real HTTP receivers that
fail and recover), consents granted and revoked, phase changes, discharges, monthly summaries, results
and corrections, on the time-skipping server. After every step:

- each report a receiver kept belongs, by subject (case number), facts and consent, to the participant
  whose consent covered it when it was sent;
- every event a recipient wants is delivered exactly once (by webhook-id), or recorded as blocked or
  cancelled with the reason, or (its receiver down) still waiting to retry - as the model predicts;
- each participant's accounting (GET /disclosures?participant_id=) lists exactly their own reports.

The worker and the API run on the test's event loop; hypothesis drives the steps from a thread."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import date

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlmodel import Session, select

from domain.plan import PHASES
from domain.report_facts import ReportFacts
from store.models import ConsentRecord, Disclosure
from tests.helpers import api_stack
from tests.receiver import webhook_receiver
from tests.workflows.disclosure_world import SwitchableReceiver, World, probe_worker
from workflows.contracts.disclosure import DisclosureEvent
from workflows.contracts.participant import Discharge, PhaseChange
from workflows.participant import ParticipantWorkflow, monthly_summary_event

PARTICIPANTS, RECIPIENTS = 3, 2
# What each recipient wants, and what a consent to it covers: the employer's consent covers results
# only, so its program-status reports are blocked for want of the category.
WANTS = [
    ["phase-changes", "program-status", "periodic-summary", "screening-results"],
    ["program-status", "screening-results"],
]
COVERS = [WANTS[0], ["screening-results"]]
DISCHARGE_KINDS = ["withdrawn", "administrative", "transferred"]
STEPS = Counter()


@dataclass
class Expected:
    status: str  # delivered | blocked | cancelled | pending (its receiver is down: retrying)
    facts: dict  # what the report's data must say
    consent_id: str | None = None  # the consent it went out under


@dataclass
class Participant:
    pid: str
    case_number: str
    active: bool = True
    phase: str = "phase-1"
    summaries: int = 0
    results: list[str] = field(default_factory=list)
    corrected: set[str] = field(default_factory=set)


def build_machine(loop: asyncio.AbstractEventLoop, env, stack, engine, task_queue):
    def run(coro, timeout: float = 120):
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout)
        finally:
            future.cancel()  # nothing of a failed step keeps running into the next one

    class Disclosures(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.exits = contextlib.ExitStack()
            receivers = [
                self.exits.enter_context(webhook_receiver(receiver=SwitchableReceiver(url="")))
                for _ in range(RECIPIENTS)
            ]
            self.w = World(env, stack, engine, task_queue, case_system=f"court-{STEPS['examples']}")
            self.rids = [
                run(self.w.add_recipient(r, kind, WANTS[i]))
                for i, (r, kind) in enumerate(zip(receivers, ["court", "employer"], strict=False))
            ]
            self.people: list[Participant] = []
            self.consents: dict[tuple[int, int], str | None] = {}
            # (participant id, event_ref, category, recipient id, is a correction) -> what must happen
            self.expected: dict[tuple[str, str, str, str, bool], Expected] = {}
            STEPS["examples"] += 1

        @initialize()
        def enrol(self) -> None:
            for i in range(PARTICIPANTS):
                case = f"DC-{STEPS['examples']}-{i}"
                self.people.append(Participant(run(self.w.add_participant(case)), case))
            for i in range(PARTICIPANTS):
                for r in range(RECIPIENTS):
                    self.consents[(i, r)] = None

        def teardown(self) -> None:
            for receiver in self.w.receivers.values():
                receiver.failing = False
            with contextlib.suppress(Exception):
                run(self.w.settle())
            self.exits.close()

        # --- the model -----------------------------------------------------------------------

        def receiver(self, r: int) -> SwitchableReceiver:
            return self.w.receivers[self.rids[r]]

        def expect(self, i: int, event_ref: str, category: str, facts: dict, correction: bool = False) -> None:
            person = self.people[i]
            for r, rid in enumerate(self.rids):
                if category not in WANTS[r]:
                    continue
                if correction:
                    original = self.expected.get((person.pid, event_ref, category, rid, False))
                    if original is None or original.status not in ("delivered", "pending"):
                        continue  # never told, and never to be told: nothing to correct
                    # An original still retrying will be delivered: its amendment follows it.
                consent = self.consents[(i, r)]
                if consent is None or category not in COVERS[r]:
                    self.expected[(person.pid, event_ref, category, rid, correction)] = Expected("blocked", facts)
                elif self.receiver(r).failing:
                    self.expected[(person.pid, event_ref, category, rid, correction)] = Expected(
                        "pending", facts, consent
                    )
                else:
                    self.expected[(person.pid, event_ref, category, rid, correction)] = Expected(
                        "delivered", facts, consent
                    )

        def step(self, name: str) -> None:
            STEPS["steps"] += 1
            STEPS[name] += 1
            run(self.w.settle(self.parked()))

        def parked(self) -> list[str]:
            """The ids of deliveries the model says wait at a failing receiver."""
            pids = [p.pid for p in self.people]
            with Session(engine) as session:
                rows = session.exec(select(Disclosure).where(Disclosure.participant_id.in_(pids))).all()
            return [
                row.id
                for row in rows
                if (
                    exp := self.expected.get(
                        (row.participant_id, row.event_ref, row.category, row.recipient_id, row.corrects is not None)
                    )
                )
                and exp.status == "pending"
            ]

        # --- rules ---------------------------------------------------------------------------

        @rule(i=st.integers(0, PARTICIPANTS - 1), r=st.integers(0, RECIPIENTS - 1))
        def grant(self, i: int, r: int) -> None:
            if self.consents[(i, r)] is None:
                self.consents[(i, r)] = run(self.w.grant(self.people[i].pid, self.rids[r], COVERS[r]))
            self.step("grant")

        @rule(i=st.integers(0, PARTICIPANTS - 1), r=st.integers(0, RECIPIENTS - 1))
        def revoke(self, i: int, r: int) -> None:
            consent = self.consents[(i, r)]
            if consent is not None:
                run(self.w.revoke(consent))
                self.consents[(i, r)] = None
                for key, exp in self.expected.items():  # deliveries waiting to retry stop now
                    if key[0] == self.people[i].pid and key[3] == self.rids[r] and exp.status == "pending":
                        exp.status = "cancelled"
            self.step("revoke")

        @rule(i=st.integers(0, PARTICIPANTS - 1), to=st.sampled_from(PHASES))
        def change_phase(self, i: int, to: str) -> None:
            person = self.people[i]
            if person.active and to != person.phase:
                state = run(
                    self.w.participants[person.pid].execute_update(
                        ParticipantWorkflow.change_phase, PhaseChange(to, "progress", "tester")
                    )
                )
                person.phase = to
                self.expect(i, f"phase-change-{len(state.phase_history) - 1}", "phase-changes", {"to_phase": to})
            self.step("phase change")

        @rule(i=st.integers(0, PARTICIPANTS - 1), kind=st.sampled_from(DISCHARGE_KINDS))
        def discharge(self, i: int, kind: str) -> None:
            person = self.people[i]
            if person.active:
                run(
                    self.w.participants[person.pid].execute_update(
                        ParticipantWorkflow.discharge, Discharge(kind, "test", "tester")
                    )
                )
                person.active = False
                self.expect(i, "program-status", "program-status", {"status": "discharged", "discharge_kind": kind})
            self.step("discharge")

        @rule(i=st.integers(0, PARTICIPANTS - 1))
        def monthly_summary(self, i: int) -> None:
            person = self.people[i]
            if person.active:
                person.summaries += 1
                state = run(self.w.participants[person.pid].query(ParticipantWorkflow.status))
                later = person.summaries  # the first of the month after the one summarised
                event = monthly_summary_event(state, date(2027 + later // 12, later % 12 + 1, 1))
                run(self.w.probe(event))
                self.expect(i, event.event_ref, "periodic-summary", {"month": event.facts.month})
            self.step("monthly summary")

        @rule(i=st.integers(0, PARTICIPANTS - 1))
        def result(self, i: int) -> None:
            person = self.people[i]
            sid = f"s-{person.pid.removeprefix('p-')}-2027{len(person.results) + 1:04d}"
            person.results.append(sid)
            facts = {"collected_on": "2027-01-05", "specimen_type": "urine", "observed": True, "outcome": "negative"}
            run(self.w.probe(DisclosureEvent(person.pid, "screening-results", sid, ReportFacts(**facts))))
            self.expect(i, sid, "screening-results", {"outcome": "negative"})
            self.step("result")

        @precondition(lambda self: any(set(p.results) - p.corrected for p in self.people))
        @rule(data=st.data())
        def correction(self, data) -> None:
            i = data.draw(st.sampled_from([n for n, p in enumerate(self.people) if set(p.results) - p.corrected]))
            person = self.people[i]
            sid = data.draw(st.sampled_from(sorted(set(person.results) - person.corrected)))
            person.corrected.add(sid)
            facts = {"collected_on": "2027-01-05", "specimen_type": "urine", "observed": True, "outcome": "invalid"}
            run(
                self.w.probe(
                    DisclosureEvent(person.pid, "screening-results", sid, ReportFacts(**facts), corrects_event=True)
                )
            )
            self.expect(i, sid, "screening-results", {"outcome": "invalid"}, correction=True)
            self.step("correction")

        @rule(r=st.integers(0, RECIPIENTS - 1))
        def receiver_fails(self, r: int) -> None:
            self.receiver(r).failing = True
            self.step("receiver fails")

        @rule(r=st.integers(0, RECIPIENTS - 1))
        def receiver_recovers(self, r: int) -> None:
            if self.receiver(r).failing:
                self.receiver(r).failing = False
                for key, exp in self.expected.items():
                    if key[3] == self.rids[r] and exp.status == "pending":
                        exp.status = "delivered"
            self.step("receiver recovers")

        # --- invariants ----------------------------------------------------------------------

        @invariant()
        def reports_are_their_participants_own_and_as_predicted(self) -> None:
            if not self.people:
                return
            pids = {p.pid: p for p in self.people}
            with Session(engine) as session:
                rows = session.exec(select(Disclosure).where(Disclosure.participant_id.in_(list(pids)))).all()
                consents = {
                    c.id: c
                    for c in session.exec(
                        select(ConsentRecord).where(ConsentRecord.participant_id.in_(list(pids)))
                    ).all()
                }
            by_key = {}
            for row in rows:
                key = (row.participant_id, row.event_ref, row.category, row.recipient_id, row.corrects is not None)
                assert key not in by_key, f"two rows for one report: {row.id}, {by_key[key].id}"
                by_key[key] = row
            assert set(by_key) == set(self.expected), set(by_key) ^ set(self.expected)
            rows_by_id = {row.id: row for row in rows}
            for key, exp in self.expected.items():
                row = by_key[key]
                wanted = {"pending": ("pending", "retrying")}.get(exp.status, (exp.status,))
                assert row.status in wanted, (key, row.status, row.reason, exp)
                if row.status in ("blocked", "cancelled"):
                    assert row.reason, row.id
                    assert all(row.id not in rec.kept for rec in self.w.receivers.values())
                if row.status == "delivered":
                    assert row.consent_id == exp.consent_id, (row.id, row.consent_id, exp.consent_id)
            for rid, receiver in self.w.receivers.items():
                accepted = Counter(r["headers"]["webhook-id"] for r in receiver.requests if 200 <= r["status"] < 300)
                delivered = {row.id for row in rows if row.recipient_id == rid and row.status == "delivered"}
                assert set(receiver.kept) == delivered and set(accepted) == delivered
                assert all(n == 1 for n in accepted.values()), accepted  # exactly once, by webhook-id
                for webhook_id, payload in receiver.kept.items():
                    row = rows_by_id[webhook_id]
                    owner = pids[row.participant_id]
                    exp = self.expected[
                        (row.participant_id, row.event_ref, row.category, rid, row.corrects is not None)
                    ]
                    assert payload["disclosure_id"] == webhook_id and payload["subject"] == {
                        "case_number": owner.case_number
                    }
                    consent = consents[payload["consent"]["consent_id"]]
                    assert (consent.participant_id, consent.recipient_id) == (owner.pid, rid)
                    data = payload["data"]
                    for fact, value in exp.facts.items():
                        assert data.get(fact) == value, (webhook_id, fact, data)
                    if row.corrects:
                        assert payload["corrects"] == row.corrects
                        assert rows_by_id[row.corrects].participant_id == owner.pid

        @invariant()
        def accounting_lists_exactly_their_own(self) -> None:
            for person in self.people:
                items = run(self.w.accounting(person.pid))
                assert all(d["participant_id"] == person.pid for d in items)
                mine = {k for k in self.expected if k[0] == person.pid}
                assert {
                    (d["participant_id"], d["event_ref"], d["category"], d["recipient_id"], d["corrects"] is not None)
                    for d in items
                } == mine

    return Disclosures


async def test_reports_stay_with_their_participant_through_faults(time_env, records_engine, task_queue, tmp_path):
    loop = asyncio.get_running_loop()
    STEPS.clear()
    async with (
        probe_worker(time_env.client, records_engine, task_queue),
        api_stack(time_env.client, records_engine, task_queue, tmp_path, with_worker=False) as stack,
    ):
        machine = build_machine(loop, time_env, stack, records_engine, task_queue)
        config = settings(
            max_examples=5,
            stateful_step_count=10,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
        )
        await asyncio.to_thread(run_state_machine_as_test, machine, settings=config)
    print(
        f"\nproperty test: {STEPS['examples']} examples, {STEPS['steps']} steps: "
        + ", ".join(f"{k} {v}" for k, v in sorted(STEPS.items()) if k not in ("examples", "steps"))
    )
    assert STEPS["examples"] >= 5 and STEPS["steps"] >= 20
