"""Issue 16: amendments always follow the original. Any change to something already disclosed reaches every
recipient that was sent the original, whatever category it now falls in, referencing the original's id,
after the original (an amendment waits while its original is retrying), with no time limit.

The activities run as the worker runs them, against a real SQLite database and a real HTTP receiver."""

from __future__ import annotations

import json
import secrets
from datetime import UTC

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlmodel import Session, col, select

from activities.disclosure import DisclosureActivities
from domain.report_content import slot_categories
from domain.report_facts import ReportFacts
from store.models import Disclosure
from tests.conftest import TEST_KEYS
from tests.receiver import Receiver, webhook_receiver
from tests.workflows.scenarios import record_participant
from tests.workflows.test_disclosure_delivery import setup_records_for
from tests.workflows.test_disclosure_scoping import add_consent
from workflows.contracts.disclosure import DisclosureEvent, DisclosureInput

RESULTS, REFUSALS, MISSED = "screening-results", "refusals", "missed-tests"
NEGATIVE = {"collected_on": "2026-11-20", "specimen_type": "urine", "observed": True, "outcome": "negative"}
POSITIVE = {
    **NEGATIVE,
    "outcome": "positive",
    "positive_for": ["benzoylecgonine"],
    "basis": "laboratory-confirmed",
    "confirmed": True,
}
INVALID = {**NEGATIVE, "outcome": "invalid"}
SUBSTITUTED = {"occurred_on": "2026-11-20", "refusal_kind": "adulterated-or-substituted"}
MISS = {"scheduled_on": "2026-11-20", "window_closed_at": "2026-11-20T16:00:00+00:00"}
EXCUSED = {"retracted": True, "retraction_reason": "excused"}
VOIDED = {"retracted": True, "retraction_reason": "voided"}


class FlakyReceiver(Receiver):
    failing: bool = False

    def answer(self) -> tuple[int, dict[str, str]]:
        return (503, {}) if self.failing else super().answer()


def recipients(engine, receiver, pid: str, wanted: dict[str, list[str]], rids: dict[str, str] | None = None):
    """One webhook recipient per name wanting its categories, each with the participant's consent to them."""
    rids = dict(rids or {})
    for name, categories in wanted.items():
        if name in rids:
            add_consent(engine, pid, rids[name], categories)
        else:
            _, rids[name], _ = setup_records_for(engine, pid, receiver.url, "whsec_" + "A" * 44, categories)
    return rids


def new_participant(engine) -> str:
    pid = f"p-{secrets.token_hex(5)}"
    record_participant(engine, pid)
    return pid


def drain(activities: DisclosureActivities, engine, pid: str, rounds: int = 8) -> None:
    """Attempt every undecided delivery of the participant, oldest first, until none is left."""
    for _ in range(rounds):
        with Session(engine) as session:
            rows = session.exec(
                select(Disclosure)
                .where(Disclosure.participant_id == pid, col(Disclosure.status).in_(("pending", "retrying")))
                .order_by(col(Disclosure.created_at))
            ).all()
        if not rows:
            return
        for row in rows:
            activities.attempt_delivery(DisclosureInput(row.id, pid, row.recipient_id, row.category))
    raise AssertionError("deliveries still undecided")


def received(engine, receiver: Receiver, pid: str) -> list[tuple[str, dict]]:
    """(recipient id, payload) of every report the receiver accepted for the participant, in arrival order."""
    out = []
    with Session(engine) as session:
        for request in receiver.requests:
            if 200 <= request["status"] < 300:
                row = session.get(Disclosure, request["headers"]["webhook-id"])
                if row is not None and row.participant_id == pid:
                    out.append((row.recipient_id, json.loads(request["body"])))
    return out


def test_a_positive_corrected_to_substituted_reaches_whoever_got_the_positive(records_engine):
    with webhook_receiver(receiver=FlakyReceiver(url="")) as receiver:
        pid = new_participant(records_engine)
        rids = recipients(records_engine, receiver, pid, {"both": [RESULTS, REFUSALS], "results": [RESULTS]})
        activities = DisclosureActivities(records_engine, TEST_KEYS)
        activities.plan_disclosures(DisclosureEvent(pid, RESULTS, "s-1", ReportFacts(**POSITIVE)))
        drain(activities, records_engine, pid)
        originals = {rid: p for rid, p in received(records_engine, receiver, pid)}
        activities.plan_disclosures(
            DisclosureEvent(pid, REFUSALS, "s-1", ReportFacts(**SUBSTITUTED), corrects_event=True)
        )
        drain(activities, records_engine, pid)
        later = received(records_engine, receiver, pid)[2:]
    by_recipient = {rid: p for rid, p in later}
    both, results_only = by_recipient[rids["both"]], by_recipient[rids["results"]]
    assert both["type"] == "screening.refusal" and both["amends"] == originals[rids["both"]]["disclosure_id"]
    assert both["data"]["refusal_kind"] == "adulterated-or-substituted"
    # Not consented to refusals: the positive is withdrawn, and nothing about the refusal is said.
    assert results_only["type"] == "screening.result.retracted"
    assert results_only["amends"] == originals[rids["results"]]["disclosure_id"]
    assert results_only["data"] == {"retracted": True, "retraction_reason": "corrected"}


def test_an_amendment_waits_for_its_original_still_retrying(records_engine):
    with webhook_receiver(receiver=FlakyReceiver(url="")) as receiver:
        pid = new_participant(records_engine)
        rids = recipients(records_engine, receiver, pid, {"court": [RESULTS]})
        activities = DisclosureActivities(records_engine, TEST_KEYS)
        [original] = activities.plan_disclosures(DisclosureEvent(pid, RESULTS, "s-1", ReportFacts(**NEGATIVE)))
        receiver.failing = True
        first = activities.attempt_delivery(DisclosureInput(original.disclosure_id, pid, rids["court"], RESULTS))
        assert first.kind == "retry"
        [amendment] = activities.plan_disclosures(
            DisclosureEvent(pid, RESULTS, "s-1", ReportFacts(**INVALID), corrects_event=True)
        )
        assert amendment.corrects == original.disclosure_id
        receiver.failing = False
        waited = activities.attempt_delivery(DisclosureInput(amendment.disclosure_id, pid, rids["court"], RESULTS))
        assert waited.kind == "waiting" and original.disclosure_id in waited.reason
        assert [p["disclosure_id"] for _, p in received(records_engine, receiver, pid)] == []
        drain(activities, records_engine, pid)
        order = [p["disclosure_id"] for _, p in received(records_engine, receiver, pid)]
    assert order == [original.disclosure_id, amendment.disclosure_id]


def test_the_same_event_again_plans_nothing_new(records_engine):
    with webhook_receiver(receiver=FlakyReceiver(url="")) as receiver:
        pid = new_participant(records_engine)
        recipients(records_engine, receiver, pid, {"court": [RESULTS]})
        activities = DisclosureActivities(records_engine, TEST_KEYS)
        first = activities.plan_disclosures(DisclosureEvent(pid, RESULTS, "s-1", ReportFacts(**POSITIVE)))
        drain(activities, records_engine, pid)
        again = activities.plan_disclosures(DisclosureEvent(pid, RESULTS, "s-1", ReportFacts(**POSITIVE)))
    assert [p.disclosure_id for p in again] == [p.disclosure_id for p in first]


# --- every recipient's last word matches the final truth, over random sequences ---------------------

# A clinician's review decides a non-negative result: confirm reports the positive, excuse reports it negative
# (ScreeningWorkflow._announce_final); a reversal of that review decides it the other way.
REVIEWED = {"confirm": (RESULTS, POSITIVE), "excuse": (RESULTS, {**NEGATIVE, "dilute": False})}
OUTCOMES = {
    "negative": (RESULTS, NEGATIVE),
    "positive": (RESULTS, POSITIVE),
    "invalid": (RESULTS, INVALID),
    "substituted": (REFUSALS, SUBSTITUTED),
}
WANTS = {"all": [RESULTS, REFUSALS, MISSED], "results": [RESULTS], "refusals": [REFUSALS, MISSED]}


def test_every_recipients_last_word_matches_the_final_truth(records_engine):
    engine = records_engine
    with webhook_receiver(receiver=FlakyReceiver(url="")) as receiver:
        shared: dict[str, str] = {}

        class Amendments(RuleBasedStateMachine):
            def __init__(self) -> None:
                super().__init__()
                self.pid = new_participant(engine)
                self.rids = recipients(engine, receiver, self.pid, WANTS, shared)
                shared.update(self.rids)
                self.activities = DisclosureActivities(engine, TEST_KEYS)
                self.outcome: tuple[str, dict] | None = None  # (category, facts) or None (none, or voided)
                self.missed = False
                self.decided_by: str | None = None  # the review decision the outcome rests on, if any
                receiver.failing = False

            @rule(outcome=st.sampled_from(sorted(OUTCOMES)))
            def result(self, outcome):
                category, facts = OUTCOMES[outcome]
                self.activities.plan_disclosures(DisclosureEvent(self.pid, category, "s-1", ReportFacts(**facts), True))
                self.outcome, self.decided_by = (category, facts), None

            @rule(decision=st.sampled_from(sorted(REVIEWED)))
            def review(self, decision):
                self._decide(decision)

            @precondition(lambda self: self.decided_by is not None)
            @rule()
            def reverse(self):
                """The review that decided the result is reversed: the other decision."""
                self._decide(next(d for d in REVIEWED if d != self.decided_by))

            def _decide(self, decision):
                category, facts = REVIEWED[decision]
                self.activities.plan_disclosures(DisclosureEvent(self.pid, category, "s-1", ReportFacts(**facts), True))
                self.outcome, self.decided_by = (category, facts), decision

            @rule()
            def void(self):
                self.activities.plan_disclosures(DisclosureEvent(self.pid, RESULTS, "s-1", ReportFacts(**VOIDED)))
                self.outcome, self.decided_by = None, None

            @rule()
            def miss(self):
                self.activities.plan_disclosures(DisclosureEvent(self.pid, MISSED, "s-1", ReportFacts(**MISS)))
                self.missed = True

            @rule()
            def excuse(self):
                self.activities.plan_disclosures(DisclosureEvent(self.pid, MISSED, "s-1", ReportFacts(**EXCUSED)))
                self.missed = False

            @rule(failures=st.lists(st.booleans(), min_size=1, max_size=4), order=st.randoms(use_true_random=False))
            def deliver_some(self, failures, order):
                """A few attempts in any order (workers run them concurrently), each answered or failing."""
                with Session(engine) as session:
                    rows = session.exec(
                        select(Disclosure)
                        .where(
                            Disclosure.participant_id == self.pid, col(Disclosure.status).in_(("pending", "retrying"))
                        )
                        .order_by(col(Disclosure.created_at))
                    ).all()
                order.shuffle(rows)
                for row, failing in zip(rows, failures, strict=False):
                    receiver.failing = failing
                    self.activities.attempt_delivery(DisclosureInput(row.id, self.pid, row.recipient_id, row.category))
                receiver.failing = False

            @invariant()
            def amendments_never_overtake(self):
                seen: set[str] = set()
                for _, payload in received(engine, receiver, self.pid):
                    if payload.get("amends"):
                        assert payload["amends"] in seen, "an amendment arrived before what it amends"
                    seen.add(payload["disclosure_id"])

            def teardown(self):
                receiver.failing = False
                drain(self.activities, engine, self.pid)
                reports = received(engine, receiver, self.pid)
                for name, rid in self.rids.items():
                    for slot, truth in ((RESULTS, self.outcome), (MISSED, (MISSED, MISS) if self.missed else None)):
                        told = [p for r, p in reports if r == rid and p["category"] in slot_categories(slot)]
                        wanted = truth is not None and truth[0] in WANTS[name]
                        if wanted:
                            last = told[-1]
                            assert last["category"] == truth[0] and not last["data"].get("retracted")
                            assert all(last["data"].get(k) == v for k, v in truth[1].items() if k != "by_category")
                        elif told:
                            assert told[-1]["data"].get("retracted") is True, (name, truth, told[-1])

        Amendments.TestCase.settings = settings(
            max_examples=25,
            stateful_step_count=10,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            # Shrinking a database-backed run takes minutes: report it as found.
            phases=(Phase.explicit, Phase.reuse, Phase.generate),
        )
        Amendments.TestCase().runTest()


def test_a_monthly_summary_counts_no_screen_only_positive_and_no_clinical_screening(records_engine):
    """Before issue 16 a clinician-"confirmed" immunoassay screen counted as a positive in the court's summary."""
    from dataclasses import asdict
    from datetime import date, datetime

    from domain.interpretation import AnalyteResult, MedicationContext, interpret
    from store.db import session_scope
    from store.models import Participant, Screening
    from workflows.contracts.results import ResultEntry
    from workflows.contracts.screening import ScreeningState

    with webhook_receiver(receiver=FlakyReceiver(url="")) as receiver:
        pid = new_participant(records_engine)
        recipients(records_engine, receiver, pid, {"court": ["periodic-summary", RESULTS]})
        with session_scope(records_engine) as session:
            start = session.get(Participant, pid).start_date
            for n, (method, forensic) in enumerate([("screen", None), ("confirm", None), ("confirm", False)]):
                # A cocaine screen (presumptive) or confirmation (confirmed), as the workflow saves it.
                found = interpret([AnalyteResult("benzoylecgonine", 300.0, method=method)], None, MedicationContext())
                selected = datetime(2026, 1, 1, tzinfo=UTC)
                state = ScreeningState(
                    f"s-{pid}-{n}",
                    pid,
                    "north",
                    start.isoformat(),
                    "random",
                    selected.isoformat(),
                    8.0,
                    status="final",
                    final_outcome="positive",
                    current_result_id="r",
                    results=[ResultEntry("r", "F", selected.isoformat(), found)],
                )
                session.add(
                    Screening(
                        id=f"s-{pid}-{n}",
                        participant_id=pid,
                        site="north",
                        day=start,
                        reason="random",
                        status="final",
                        selected_at=selected,
                        state=asdict(state),
                        forensic=forensic,
                    )
                )
        activities = DisclosureActivities(records_engine, TEST_KEYS)
        month = start.isoformat()[:7]
        activities.plan_disclosures(
            DisclosureEvent(
                pid,
                "periodic-summary",
                f"summary-{month}",
                ReportFacts(
                    month=month,
                    period_start=start.replace(day=1).isoformat(),
                    period_end=date(start.year + start.month // 12, start.month % 12 + 1, 1).isoformat(),
                ),
            )
        )
        drain(activities, records_engine, pid)
        [(_, summary)] = received(records_engine, receiver, pid)
    assert summary["data"]["sections"]["screening-results"] == {
        "total": 1,
        "by_outcome": {"negative": 0, "positive": 1, "invalid": 0},
    }
