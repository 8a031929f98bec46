"""Alerts raised (and raised again, as retried activities do), escalation passes run (and retried at the
same moment), sources settled, interleaved: after every step each source has exactly one item, and each
item has escalated exactly once per step of its ladder that fell due while it was unresolved."""

import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from sqlalchemy import text
from sqlmodel import Session, select

from activities.records import RecordActivities
from activities.worklist import EscalationPass, WorklistActivities
from domain import worklist as wl
from store.audit import use_keys
from store.db import make_engine, session_scope
from store.migrate import upgrade
from store.models import AlertRecord, AuditEvent, Participant, WorklistItem
from store.worklist import settle
from tests.store.test_audit_tamper import KEYS
from workflows.contracts.alerts import Alert

_DIR = Path(tempfile.mkdtemp(prefix="worklist-sm-"))
_URL = f"sqlite:///{_DIR / 'records.db'}"
upgrade(_URL)
ENGINE = make_engine(_URL)
use_keys(ENGINE, KEYS)
KINDS = ["review-overdue", "missed-doses", "callback-due", "disclosure-failed", "not-in-the-table"]


class WorklistMachine(RuleBasedStateMachine):
    @initialize()
    def fresh(self):
        with ENGINE.begin() as conn:
            for table in ("worklist_items", "alerts", "audit_events", "audit_head", "participants"):
                conn.execute(text(f"DELETE FROM {table}"))
        with session_scope(ENGINE) as session:
            session.add(
                Participant(
                    id="p-1",
                    given_name="A",
                    family_name="B",
                    date_of_birth=date(1980, 1, 1),
                    site="north",
                    program="iop",
                    phase="phase-1",
                    start_date=date(2026, 1, 1),
                    timezone="America/New_York",
                    case_numbers=[],
                )
            )
        self.now = datetime.now(UTC)
        self.sources: set[str] = set()
        self.unresolved_until: dict[str, datetime] = {}  # source ref -> the last pass while it was unresolved
        self.resolved: set[str] = set()

    @rule(kind=st.sampled_from(KINDS), subject=st.sampled_from(["s-1", "s-2"]), retried=st.booleans())
    def raise_alert(self, kind, subject, retried):
        for _ in range(2 if retried else 1):
            RecordActivities(ENGINE).raise_alert(Alert(kind, "p-1", subject, f"why {kind}"))
        self.sources.add(f"{kind}:{subject}")

    @rule(hours=st.integers(0, 30), retried=st.booleans())
    def escalation_pass(self, hours, retried):
        self.now += timedelta(hours=hours)
        for _ in range(2 if retried else 1):
            WorklistActivities(ENGINE).escalate_due(EscalationPass(self.now.isoformat()))
        for ref in self.sources - self.resolved:
            self.unresolved_until[ref] = self.now

    @rule(data=st.data())
    def settle_one(self, data):
        open_refs = sorted(self.sources - self.resolved)
        if not open_refs:
            return
        ref = data.draw(st.sampled_from(open_refs))
        with session_scope(ENGINE) as session:
            assert settle(session.connection(), source=wl.Source.ALERT, source_ref=ref, actor="t", text="done") == 1
        self.resolved.add(ref)

    @invariant()
    def one_item_per_source_and_escalated_once_per_due_step(self):
        with Session(ENGINE) as session:
            rows = session.exec(select(WorklistItem)).all()
            assert len(session.exec(select(AlertRecord)).all()) == len(self.sources)
            escalations = [e for e in session.exec(select(AuditEvent)).all() if e.action == "worklist.escalated"]
        assert sorted(r.source_ref for r in rows) == sorted(self.sources)
        for row in rows:
            spec = wl.spec_for(row.source, row.raw_kind)
            last = self.unresolved_until.get(row.source_ref)
            expected = sum(row.created_at + step.after <= last for step in spec.ladder) if last else 0
            assert row.escalation_level == expected, (row.source_ref, row.escalation_level, expected)
            if expected:
                assert row.escalated_to == spec.ladder[expected - 1].role
            if row.source_ref in self.resolved:
                assert row.status == "resolved" and row.next_escalation_at is None
            else:
                assert row.next_escalation_at == wl.next_escalation_at(spec, row.created_at, expected)
        assert len(escalations) == sum(r.escalation_level for r in rows)


TestWorklistMachine = WorklistMachine.TestCase
TestWorklistMachine.settings = settings(max_examples=25, stateful_step_count=12, deadline=None)


def test_alerts_from_before_the_worklist_are_backfilled_once():
    """Rows written without the table events (before migration 0018, or by plain SQL) get their item on the
    escalation workflow's first pass."""
    WorklistMachine().fresh()
    with ENGINE.begin() as conn:
        conn.execute(
            AlertRecord.__table__.insert().values(
                kind="review-overdue",
                participant_id="p-1",
                subject_id="s-old",
                detail="from last week",
                raised_at=datetime.now(UTC),
            )
        )
    first = WorklistActivities(ENGINE).escalate_due(EscalationPass(datetime.now(UTC).isoformat(), True))
    again = WorklistActivities(ENGINE).escalate_due(EscalationPass(datetime.now(UTC).isoformat(), True))
    assert (first.opened, again.opened) == (1, 0) and first.next_at
    with Session(ENGINE) as session:
        [row] = session.exec(select(WorklistItem)).all()
    assert (row.kind, row.site, row.why) == ("review-overdue", "north", "from last week")


def test_an_urgent_item_escalating_is_paged_signed_and_without_phi():
    import secrets as _secrets

    from activities.worklist import Pager
    from domain.webhook_signing import new_webhook_secret
    from tests.receiver import Receiver, webhook_receiver

    WorklistMachine().fresh()
    RecordActivities(ENGINE).raise_alert(Alert("diversion-suspected", "p-1", "o-1:b-7", "bottle b-7 short by 4"))
    RecordActivities(ENGINE).raise_alert(Alert("callback-due", "p-1", "o-1:2026-11-20T10:00", "call back"))
    secret = new_webhook_secret(_secrets.token_bytes(32))
    with webhook_receiver(receiver=Receiver(url="", secret=secret)) as receiver:
        later = (datetime.now(UTC) + timedelta(hours=5)).isoformat()
        report = WorklistActivities(ENGINE, Pager(receiver.url, secret)).escalate_due(EscalationPass(later))
        assert len(report.escalated) == 2  # both escalated; only the urgent one is paged
        [page] = receiver.requests
    assert page["verified"] and page["headers"]["webhook-id"].startswith("worklist-")
    body = page["body"].decode()
    assert '"kind":"diversion"' in body and '"escalated_to":"admin"' in body
    assert "p-1" not in body and "bottle" not in body  # names no participant, says nothing clinical
