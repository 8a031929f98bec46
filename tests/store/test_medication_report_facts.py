"""The periodic report counts medication adherence with the one ledger function (issue 18)."""

from datetime import date, timedelta

from activities.disclosure import DisclosureActivities
from store.db import session_scope
from store.models import DispenseRow, MedicationEventRow, MedicationOrderRecord, Participant
from tests.conftest import TEST_KEYS
from tests.workflows.scenarios import record_participant

START = date(2026, 3, 2)


def order_row(pid: str, **extra) -> MedicationOrderRecord:
    body = {
        "order_id": "m-r1",
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
        "start_date": START.isoformat(),
        "stop_date": None,
        "prescriber": "Dr. A",
    }
    return MedicationOrderRecord(
        id="m-r1",
        participant_id=pid,
        site="north",
        drug="methadone",
        status="held",
        start_date=START,
        rules="federal-otp-2024",
        order=body,
        created_by="t",
        **extra,
    )


def test_held_days_are_due_and_not_taken_in_the_report(records_engine):
    """One dose, three misses, then 17 held days: the first build reported 1 of 4 (held days left out)."""
    record_participant(records_engine, "p-report")
    outcomes = {START.isoformat(): "dosed"}
    outcomes |= {(START + timedelta(days=i)).isoformat(): "missed" for i in (1, 2, 3)}
    outcomes |= {(START + timedelta(days=i)).isoformat(): "held" for i in range(4, 21)}
    with session_scope(records_engine) as session:
        session.add(
            order_row(
                "p-report",
                ledger={
                    "outcomes": outcomes,
                    "supplies": [],
                    "injections": [],
                    "closed_days": [(START + timedelta(days=10)).isoformat()],
                },
            )
        )
        session.flush()
        session.add(
            DispenseRow(
                id="m-r1:1",
                order_id="m-r1",
                participant_id="p-report",
                day=START,
                kind="observed-dose",
                dose=60.0,
                unit="mg",
                actor="RN",
            )
        )
        for i in (1, 2, 3):
            session.add(
                MedicationEventRow(
                    id=f"m-r1:e{i}",
                    order_id="m-r1",
                    participant_id="p-report",
                    day=START + timedelta(days=i),
                    kind="missed-dose",
                    actor="system",
                    detail="no dose",
                )
            )
    with session_scope(records_engine) as session:
        participant = session.get(Participant, "p-report")
        facts = DisclosureActivities(records_engine, TEST_KEYS)._period_facts(
            session,
            participant,
            {"period_start": START.isoformat(), "period_end": (START + timedelta(days=20)).isoformat()},
        )
    # 21 days, one of them closed with no supply: 20 due, 1 taken.
    assert facts["medication-adherence"] == [{"doses_expected": 20, "doses_taken": 1, "adherence_ratio": 0.05}]
