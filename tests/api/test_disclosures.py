"""Consent-governed reporting with real HTTP receivers on 127.0.0.1 and a real dev server."""

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session

from domain.disclosure_ids import disclosure_id
from store.models import Disclosure, Recipient
from tests.api.test_lab import CONFIRMED_POSITIVE, POSITIVE, URINE, collected, oru, post_hl7
from tests.helpers import result_once_started
from tests.receiver import webhook_receiver
from workflows.contracts.disclosure import disclosure_workflow_id

CASE = {"system": "county-drug-court", "value": "DC-2026-0917"}  # tests.helpers.enrollment's case number
NOW = datetime.now(UTC)
ZONE = ZoneInfo("America/New_York")  # tests.helpers.enrollment's time zone


@pytest.fixture
def court():
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture
def employer():
    with webhook_receiver() as receiver:
        yield receiver


async def add_recipient(stack, receiver, kind, categories, *, case_system=None):
    response = await stack.http.post(
        "/recipients",
        headers=stack.auth("admin"),
        json={
            "name": f"test {kind}",
            "kind": kind,
            "delivery": "webhook",
            "url": receiver.url,
            "case_number_system": case_system,
            "categories": categories,
        },
    )
    assert response.status_code == 201, response.text
    receiver.secret = response.json()["signing_secret"]
    return response.json()["id"]


def consent_body(recipient_id, categories, **overrides):
    body = {
        "recipient_id": recipient_id,
        "categories": categories,
        "purpose": "monitor progress in treatment court",
        "disclosing_program": "Northside IOP",
        "signer": "the participant",
        "signed_at": (NOW - timedelta(days=2)).isoformat(),
        "signature_method": "electronic",
        "expires_at": (NOW + timedelta(days=365)).isoformat(),
    }
    body.update(overrides)
    return body


async def add_consent(stack, pid, body):
    response = await stack.http.post(f"/participants/{pid}/consents", json=body, headers=stack.auth("staff"))
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def settled(stack, disclosure_id):
    """Wait for the delivery workflow itself to finish (no clock), then read the accounting."""
    await result_once_started(stack.temporal, disclosure_workflow_id(disclosure_id))
    with Session(stack.engine) as session:
        return session.get(Disclosure, disclosure_id)


async def test_a_screen_only_positive_confirmed_by_a_clinician_never_reaches_the_court(stack, court):
    """Issue 16: before, the clinician's "confirm" made an immunoassay screen `confirmed: true` for the court."""
    court_id = await add_recipient(stack, court, "court", ["screening-results"], case_system=CASE["system"])
    pid, sid, specimen = await collected(stack)
    await add_consent(stack, pid, consent_body(court_id, ["screening-results"]))
    await post_hl7(stack, oru("DISC-P", specimen, pid, obx=POSITIVE))  # 3393-6: no confirmatory method
    review = await stack.http.post(
        f"/screenings/{sid}/review",
        headers=stack.auth("clinician"),
        json={"decision": "confirm", "explanation": "no prescription"},
    )
    assert review.status_code == 200 and review.json()["final_outcome"] == "positive", review.text
    with Session(stack.engine) as session:
        assert session.get(Disclosure, disclosure_id(pid, sid, "screening-results", court_id)) is None
    assert court.requests == []


async def test_a_clinical_screening_is_never_disclosed(stack, court):
    court_id = await add_recipient(stack, court, "court", ["screening-results"], case_system=CASE["system"])
    pid, sid, specimen = await collected(stack)
    await add_consent(stack, pid, consent_body(court_id, ["screening-results"]))
    refused = await stack.http.put(
        f"/screenings/{sid}/forensic", headers=stack.auth("staff"), json={"forensic": False, "reason": " "}
    )
    assert refused.status_code == 422 and "reason" in refused.json()["detail"]
    answer = await stack.http.put(
        f"/screenings/{sid}/forensic",
        headers=stack.auth("staff"),
        json={"forensic": False, "reason": "treatment planning test, not for the court"},
    )
    assert answer.status_code == 200 and answer.json()["forensic"] is False and answer.json()["set_by"]
    await post_hl7(stack, oru("DISC-C", specimen, pid, obx=CONFIRMED_POSITIVE))
    review = await stack.http.post(
        f"/screenings/{sid}/review",
        headers=stack.auth("clinician"),
        json={"decision": "confirm", "explanation": "no prescription"},
    )
    assert review.status_code == 200
    with Session(stack.engine) as session:
        assert session.get(Disclosure, disclosure_id(pid, sid, "screening-results", court_id)) is None
    assert court.requests == []
    trail = await stack.http.get(f"/audit?subject_id={sid}", headers=stack.auth("auditor"))
    if trail.status_code == 200:
        assert any("forensic" in str(event) for event in trail.json().get("items", []))


async def test_a_reported_screening_made_clinical_is_retracted(stack, court):
    court_id = await add_recipient(stack, court, "court", ["screening-results"], case_system=CASE["system"])
    pid, sid, specimen = await collected(stack)
    await add_consent(stack, pid, consent_body(court_id, ["screening-results"]))
    await post_hl7(stack, oru("DISC-R", specimen, pid, obx=CONFIRMED_POSITIVE))
    review = await stack.http.post(
        f"/screenings/{sid}/review",
        headers=stack.auth("clinician"),
        json={"decision": "confirm", "explanation": "no prescription"},
    )
    assert review.status_code == 200, review.text
    original = await settled(stack, disclosure_id(pid, sid, "screening-results", court_id))
    assert original.status == "delivered"
    answer = await stack.http.put(
        f"/screenings/{sid}/forensic",
        headers=stack.auth("staff"),
        json={"forensic": False, "reason": "ordered for treatment planning, entered wrongly"},
    )
    assert answer.status_code == 200, answer.text
    expected = disclosure_id(pid, f"{sid}-retraction", "screening-results", court_id, corrects=original.id)
    assert await asyncio.to_thread(court.wait_for, expected)  # planned by a workflow the answer only started
    retraction = await settled(stack, expected)
    assert retraction.status == "delivered"
    payload = court.kept[retraction.id]
    assert payload["amends"] == original.id and payload["data"] == {
        "retracted": True,
        "retraction_reason": "not-reportable",
    }


async def test_final_positive_reaches_the_court_once_and_not_the_employer(stack, court, employer):
    court_id = await add_recipient(
        stack, court, "court", ["screening-results", "missed-tests"], case_system=CASE["system"]
    )
    employer_id = await add_recipient(stack, employer, "employer", ["screening-results", "missed-tests"])
    pid, sid, specimen = await collected(stack)
    await add_consent(
        stack,
        pid,
        consent_body(
            court_id,
            ["screening-results"],
            criminal_justice=True,
            expires_at=None,
            expires_on_event="final-disposition",
            revocable_after_event="final-disposition",
        ),
    )
    await add_consent(stack, pid, consent_body(employer_id, ["missed-tests"]))

    # Benzoylecgonine by a confirmatory method (LOINC 16226-3): issue 16, a result is reported as confirmed only
    # when the lab's confirmatory method says so, never on a clinician's word alone.
    await post_hl7(stack, oru("DISC-1", specimen, pid, obx=CONFIRMED_POSITIVE))
    review = await stack.http.post(
        f"/screenings/{sid}/review",
        headers=stack.auth("clinician"),
        json={"decision": "confirm", "explanation": "no prescription; confirmed by LC-MS"},
    )
    assert review.status_code == 200

    to_court = await settled(stack, disclosure_id(pid, sid, "screening-results", court_id))
    to_employer = await settled(stack, disclosure_id(pid, sid, "screening-results", employer_id))
    assert to_court.status == "delivered" and to_court.consent_id and to_court.attempts == 1
    assert to_employer.status == "blocked" and "screening-results" in to_employer.reason
    assert employer.requests == []
    [(webhook_id, payload)] = court.kept.items()
    assert webhook_id == to_court.id and court.requests[0]["verified"]
    assert payload["type"] == "screening.result" and payload["data"]["outcome"] == "positive"
    assert payload["data"]["confirmed"] is True and "benzoylecgonine" in payload["data"]["positive_for"]
    assert payload["basis"] == "laboratory-confirmed" and payload["forensic"] is True
    assert payload["subject"] == {"case_number": CASE["value"]}
    assert payload["redisclosure_notice"]["citation"] and "use_restriction" in payload  # a 2.35 consent
    assert payload["consent"]["consent_id"] == to_court.consent_id
    text = str(payload)
    for phi in ("Marisol", "Quintanilla", "1987", "+1555"):
        assert phi not in text

    listed = (await stack.http.get(f"/disclosures?participant_id={pid}", headers=stack.auth("auditor"))).json()
    assert {(d["recipient_id"], d["status"]) for d in listed["items"]} >= {
        (court_id, "delivered"),
        (employer_id, "blocked"),
    }


@pytest.mark.parametrize("case", ["none", "expired", "revoked", "category"])
async def test_no_covering_consent_blocks_with_the_reason(stack, court, case):
    court_id = await add_recipient(stack, court, "probation", ["phase-changes"], case_system=CASE["system"])
    pid = (await stack.enroll())["id"]
    if case == "expired":
        await add_consent(
            stack, pid, consent_body(court_id, ["phase-changes"], expires_at=(NOW - timedelta(hours=1)).isoformat())
        )
    elif case == "revoked":
        consent_id = await add_consent(stack, pid, consent_body(court_id, ["phase-changes"]))
        revoked = await stack.http.post(
            f"/consents/{consent_id}/revoke", json={"reason": "participant asked"}, headers=stack.auth("staff")
        )
        assert revoked.status_code == 200
    elif case == "category":
        await add_consent(stack, pid, consent_body(court_id, ["missed-tests"]))
    changed = await stack.http.post(
        f"/participants/{pid}/phase", json={"phase": "phase-2", "reason": "progress"}, headers=stack.auth("clinician")
    )
    assert changed.status_code == 200
    disclosure = await settled(stack, disclosure_id(pid, "phase-change-1", "phase-changes", court_id))
    assert disclosure.status == "blocked" and court.requests == []
    expected = {"none": "no consent", "expired": "expired", "revoked": "revoked", "category": "phase-changes"}[case]
    assert expected in disclosure.reason.lower(), disclosure.reason


async def test_criminal_justice_consent_cannot_be_revoked_before_its_condition(stack, court):
    court_id = await add_recipient(stack, court, "court", ["phase-changes"], case_system=CASE["system"])
    pid = (await stack.enroll())["id"]
    consent_id = await add_consent(
        stack,
        pid,
        consent_body(
            court_id,
            ["phase-changes"],
            criminal_justice=True,
            expires_at=None,
            expires_on_event="final-disposition",
            revocable_after_event="final-disposition",
        ),
    )
    refused = await stack.http.post(
        f"/consents/{consent_id}/revoke", json={"reason": "changed my mind"}, headers=stack.auth("staff")
    )
    assert refused.status_code == 409 and "final-disposition" in refused.json()["detail"].replace(" ", "-")
    incomplete = await stack.http.post(
        f"/participants/{pid}/consents",
        headers=stack.auth("staff"),
        json=consent_body(
            court_id, ["phase-changes"], criminal_justice=True, expires_at=None, expires_on_event="final-disposition"
        ),
    )
    assert incomplete.status_code == 422 and "revoc" in incomplete.json()["detail"].lower()


async def test_recipient_url_rules_and_410_disables(stack, court):
    bad = await stack.http.post(
        "/recipients",
        headers=stack.auth("admin"),
        json={
            "name": "x",
            "kind": "court",
            "delivery": "webhook",
            "url": "http://example.org/hook",
            "categories": ["phase-changes"],
        },
    )
    assert bad.status_code == 422 and "https" in bad.json()["detail"]
    court.script = [(410, {})]
    court_id = await add_recipient(stack, court, "court", ["phase-changes"], case_system=CASE["system"])
    pid = (await stack.enroll())["id"]
    await add_consent(stack, pid, consent_body(court_id, ["phase-changes"]))
    await stack.http.post(
        f"/participants/{pid}/phase", json={"phase": "phase-2", "reason": "progress"}, headers=stack.auth("clinician")
    )
    disclosure = await settled(stack, disclosure_id(pid, "phase-change-1", "phase-changes", court_id))
    assert disclosure.status == "failed" and disclosure.last_status_code == 410
    recipients = (await stack.http.get("/recipients", headers=stack.auth("staff"))).json()["items"]
    [mine] = [r for r in recipients if r["id"] == court_id]
    assert mine["status"] == "disabled" and mine["disabled_reason"]
    with Session(stack.engine) as session:
        assert session.get(Recipient, court_id).status == "disabled"


async def test_a_witnessed_admission_is_recorded_over_the_api_and_reported_as_admitted_use(stack, court):
    court_id = await add_recipient(stack, court, "court", ["screening-results"], case_system=CASE["system"])
    pid = (await stack.enroll())["id"]
    await add_consent(stack, pid, consent_body(court_id, ["screening-results"]))
    ordered = await stack.http.post(
        f"/participants/{pid}/screenings", json={"reason": "admitted use at group"}, headers=stack.auth("staff")
    )
    sid = ordered.json()["screening_id"]
    body = {"substances": ["cocaine"], "witnessed_by": "J. Rivera, CADC", "statement": "used on Friday night"}
    unwitnessed = await stack.http.post(
        f"/screenings/{sid}/admission", headers=stack.auth("staff"), json={**body, "witnessed_by": ""}
    )
    assert unwitnessed.status_code == 422 and "witnessed_by" in unwitnessed.text
    answer = await stack.http.post(f"/screenings/{sid}/admission", headers=stack.auth("staff"), json=body)
    assert answer.status_code == 200, answer.text
    assert (
        answer.json()["final_outcome"] == "positive"
        and answer.json()["admission"]["witnessed_by"] == body["witnessed_by"]
    )
    again = await stack.http.post(
        f"/screenings/{sid}/collection",
        headers=stack.auth("staff"),
        json={"specimen_type": "urine", "observed": True, "collector": "RN-7"},
    )
    assert again.status_code == 409
    report = await settled(stack, disclosure_id(pid, sid, "screening-results", court_id))
    assert report.status == "delivered"
    payload = court.kept[report.id]
    assert payload["basis"] == "admitted-use" and payload["data"]["confirmed"] is False
    assert payload["data"]["admission_witnessed_by"] == "J. Rivera, CADC" and payload["data"]["positive_for"] == [
        "cocaine"
    ]


async def test_a_consent_ending_at_final_disposition_covers_reports_before_it_and_blocks_those_after(stack, court):
    """Issue 16: nothing recorded final disposition, so consents tied to it never ended."""
    court_id = await add_recipient(stack, court, "court", ["phase-changes"], case_system=CASE["system"])
    pid = (await stack.enroll())["id"]
    consent_id = await add_consent(
        stack,
        pid,
        consent_body(
            court_id,
            ["phase-changes"],
            criminal_justice=True,
            expires_at=None,
            expires_on_event="final-disposition",
            revocable_after_event="final-disposition",
        ),
    )
    before = await stack.http.post(
        f"/participants/{pid}/phase", json={"phase": "phase-2", "reason": "progress"}, headers=stack.auth("clinician")
    )
    assert before.status_code == 200
    assert (await settled(stack, disclosure_id(pid, "phase-change-1", "phase-changes", court_id))).status == "delivered"

    wrong = await stack.http.post(
        f"/participants/{pid}/case-events",
        headers=stack.auth("staff"),
        json={"kind": "final-disposition", "case_system": "family-court"},
    )
    assert wrong.status_code == 422 and "county-drug-court" in wrong.json()["detail"]
    future = await stack.http.post(
        f"/participants/{pid}/case-events",
        headers=stack.auth("staff"),
        json={"kind": "final-disposition", "occurred_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()},
    )
    assert future.status_code == 422 and "future" in future.json()["detail"]
    assert (
        await stack.http.post(
            f"/participants/{pid}/case-events", headers=stack.auth("clinician"), json={"kind": "final-disposition"}
        )
    ).status_code == 403
    recorded = await stack.http.post(
        f"/participants/{pid}/case-events",
        headers=stack.auth("staff"),
        json={"kind": "final-disposition", "case_system": CASE["system"], "note": "dismissed on completion"},
    )
    assert recorded.status_code == 201, recorded.text
    assert recorded.json()["consents"] == [consent_id] and recorded.json()["recorded_by"]

    after = await stack.http.post(
        f"/participants/{pid}/phase", json={"phase": "phase-3", "reason": "progress"}, headers=stack.auth("clinician")
    )
    assert after.status_code == 200
    blocked = await settled(stack, disclosure_id(pid, "phase-change-2", "phase-changes", court_id))
    assert blocked.status == "blocked" and "ended at final-disposition" in blocked.reason
    assert len(court.kept) == 1
    # 42 CFR 2.35(d): revocable from final disposition on.
    revoked = await stack.http.post(
        f"/consents/{consent_id}/revoke", json={"reason": "case closed"}, headers=stack.auth("staff")
    )
    assert revoked.status_code == 200, revoked.text
    listed = (await stack.http.get(f"/participants/{pid}/case-events", headers=stack.auth("auditor"))).json()
    assert [e["kind"] for e in listed["items"]] == ["final-disposition"]
    trail = await stack.http.get(f"/audit?participant_id={pid}", headers=stack.auth("auditor"))
    assert any("case-events" in e["action"] and e["outcome"] == "201" for e in trail.json()["items"])


async def test_attendance_is_recorded_reported_amended_and_counted_in_the_completion_letter(stack, court):
    """Issue 16: attendance was a stub category (never recorded, "sessions: 0" in every summary)."""
    court_id = await add_recipient(stack, court, "court", ["attendance", "program-status"], case_system=CASE["system"])
    pid = (await stack.enroll())["id"]
    await add_consent(stack, pid, consent_body(court_id, ["attendance", "program-status"]))
    started = datetime.now(UTC) - timedelta(hours=2)
    scheduled = await stack.http.post(
        "/attendance-sessions",
        headers=stack.auth("staff"),
        json={
            "kind": "group",
            "title": "Relapse prevention group",
            "site": "north",
            "starts_at": started.isoformat(),
            "duration_minutes": 90,
            "facilitator": "A. Osei, LCSW",
            "participant_ids": [pid],
            "weekly_repeats": 2,
        },
    )
    assert scheduled.status_code == 201, scheduled.text
    first, next_week = scheduled.json()
    assert first["participant_ids"] == [pid] and next_week["starts_at"] > first["starts_at"]
    early = await stack.http.post(
        f"/attendance-sessions/{next_week['id']}/attendance",
        headers=stack.auth("staff"),
        json={"participant_id": pid, "status": "present"},
    )
    assert early.status_code == 409 and "starts at" in early.json()["detail"]
    no_reason = await stack.http.post(
        f"/attendance-sessions/{first['id']}/attendance",
        headers=stack.auth("staff"),
        json={"participant_id": pid, "status": "excused"},
    )
    assert no_reason.status_code == 422 and "note" in no_reason.text

    absent = await stack.http.post(
        f"/attendance-sessions/{first['id']}/attendance",
        headers=stack.auth("staff"),
        json={"participant_id": pid, "status": "absent", "method": "kiosk"},
    )
    assert absent.status_code == 200 and absent.json()["status"] == "absent", absent.text
    original_id = disclosure_id(pid, f"attendance-{first['id']}", "attendance", court_id)
    assert await asyncio.to_thread(court.wait_for, original_id)
    original = await settled(stack, original_id)
    assert court.kept[original.id]["type"] == "attendance.period"
    assert court.kept[original.id]["data"] == {
        "session_on": started.astimezone(ZONE).date().isoformat(),
        "session_kind": "group",
        "attendance_status": "absent",
    }
    excused = await stack.http.post(
        f"/attendance-sessions/{first['id']}/attendance",
        headers=stack.auth("staff"),
        json={"participant_id": pid, "status": "excused", "note": "hospital, letter seen"},
    )
    assert excused.status_code == 200
    amendment_id = disclosure_id(pid, f"attendance-{first['id']}", "attendance", court_id, corrects=original.id)
    assert await asyncio.to_thread(court.wait_for, amendment_id)
    amendment = court.kept[(await settled(stack, amendment_id)).id]
    assert amendment["amends"] == original.id and amendment["data"]["attendance_status"] == "excused"

    page = (await stack.http.get(f"/participants/{pid}/attendance", headers=stack.auth("auditor"))).json()
    assert page["total"] == 2 and page["next"] is None and page["items"][0]["status"] == "scheduled"
    summary = (await stack.http.get(f"/participants/{pid}/attendance/summary", headers=stack.auth("auditor"))).json()
    assert summary == {
        "sessions": 1,
        "attended": 0,
        "present": 0,
        "late": 0,
        "excused": 1,
        "absent": 0,
        "not_recorded": 0,
        "ratio": None,
    }

    done = await stack.http.post(
        f"/participants/{pid}/discharge", json={"kind": "completed", "reason": "graduated"}, headers=stack.auth("staff")
    )
    assert done.status_code == 200, done.text
    letter_id = disclosure_id(pid, "program-status", "program-status", court_id)
    assert await asyncio.to_thread(court.wait_for, letter_id)
    letter = court.kept[(await settled(stack, letter_id)).id]
    assert letter["data"]["sections"]["attendance"] == {
        "sessions": 1,
        "attended": 0,
        "late": 0,
        "excused": 1,
        "unexcused": 0,
    }
    assert "Sessions: 0 of 1 attended; 1 excused and 0 unexcused absence(s)." in letter["data"]["text"]


async def test_a_reversed_review_of_a_reported_result_amends_the_courts_report(stack, court):
    """Issue 16 review: before, a final result's review could not be reversed (409), so the court kept the positive."""
    court_id = await add_recipient(stack, court, "court", ["screening-results"], case_system=CASE["system"])
    pid, sid, specimen = await collected(stack)
    await add_consent(stack, pid, consent_body(court_id, ["screening-results"]))
    await post_hl7(stack, oru("DISC-V", specimen, pid, obx=CONFIRMED_POSITIVE))
    review = await stack.http.post(
        f"/screenings/{sid}/review",
        headers=stack.auth("clinician"),
        json={"decision": "confirm", "explanation": "no prescription on file"},
    )
    assert review.status_code == 200 and review.json()["final_outcome"] == "positive", review.text
    original = await settled(stack, disclosure_id(pid, sid, "screening-results", court_id))
    assert original.status == "delivered"
    same = await stack.http.post(
        f"/screenings/{sid}/review",
        headers=stack.auth("clinician"),
        json={"decision": "confirm", "explanation": "again", "reverses": True},
    )
    assert same.status_code == 409 and "decides differently" in same.json()["detail"], same.text
    reversal = await stack.http.post(
        f"/screenings/{sid}/review",
        headers=stack.auth("clinician"),
        json={"decision": "excuse", "reverses": True, "explanation": "PDMP shows a prescription filled 2026-11-18"},
    )
    assert reversal.status_code == 200, reversal.text
    state = reversal.json()
    assert state["final_outcome"] == "explained" and state["reviews"][-1]["reverses"] is True
    assert any(
        e["what"] == "review reversed" and e["actor"] == state["reviews"][-1]["actor"] for e in state["timeline"]
    )
    trail = (
        await stack.http.get(
            "/audit",
            headers=stack.auth("auditor"),
            params={"participant_id": pid, "action": "POST /screenings/{screening_id}/review"},
        )
    ).json()["items"]
    assert [(e["detail"], e["outcome"]) for e in trail][-3:] == [
        ("confirm", "200"),
        ("confirm (reverses the deciding review)", "409"),
        ("excuse (reverses the deciding review)", "200"),
    ]
    assert trail[-1]["actor"] == trail[0]["actor"] and trail[-1]["subject_id"] == sid
    amendment = await settled(stack, disclosure_id(pid, sid, "screening-results", court_id, corrects=original.id))
    assert amendment.status == "delivered"
    payload = court.kept[amendment.id]
    assert payload["amends"] == original.id and payload["data"]["outcome"] == "negative"
    # Reversed again after the screening's workflow has closed: it is reopened, and the court is told again.
    await stack.temporal.get_workflow_handle(f"screening-{sid}").terminate("closed, as after its correction period")
    again = await stack.http.post(
        f"/screenings/{sid}/review",
        headers=stack.auth("clinician"),
        json={"decision": "confirm", "reverses": True, "explanation": "the prescription was for another drug class"},
    )
    assert again.status_code == 200 and again.json()["final_outcome"] == "positive", again.text
    assert again.json()["reopened_at"]
    second = await settled(stack, disclosure_id(pid, sid, "screening-results", court_id, corrects=amendment.id))
    assert second.status == "delivered" and court.kept[second.id]["data"]["outcome"] == "positive"


def presumptive_program(program_id: str, report_presumptive: bool) -> dict:
    return {
        "program_id": program_id,
        "name": "Treatment court",
        "report_presumptive": report_presumptive,
        "sites": {
            "north": {
                "timezone": "America/New_York",
                "hours": {d: ["00:00", "23:59"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
                "closed": {},
            }
        },
        "phases": [
            {
                "name": "phase-1",
                "tests_per_week": 1,
                "min_per_rolling_week": 0,
                "max_per_rolling_week": 3,
                "specimen_types": ["urine"],
            }
        ],
    }


@pytest.mark.parametrize("report_presumptive", [False, True])
async def test_a_request_for_confirmation_asks_the_lab_and_the_report_waits_or_goes_out_presumptive(
    stack, court, report_presumptive
):
    """Issue 16 review: before, request-confirmation only set the screening back to awaiting a result."""
    program_id = f"court-{'p' if report_presumptive else 'w'}-{uuid4().hex[:6]}"
    created = await stack.http.post(
        "/programs", json=presumptive_program(program_id, report_presumptive), headers=stack.auth("admin")
    )
    assert created.status_code == 201, created.text
    court_id = await add_recipient(stack, court, "court", ["screening-results"], case_system=CASE["system"])
    pid = (await stack.enroll(program=program_id))["id"]
    await add_consent(stack, pid, consent_body(court_id, ["screening-results"]))
    sid = (
        await stack.http.post(
            f"/participants/{pid}/screenings", json={"reason": "lab test"}, headers=stack.auth("staff")
        )
    ).json()["screening_id"]
    specimen = (await stack.http.post(f"/screenings/{sid}/collection", json=URINE, headers=stack.auth("staff"))).json()[
        "specimen_id"
    ]
    await post_hl7(stack, oru("CONF-S", specimen, pid, obx=POSITIVE))  # an immunoassay screen only
    asked = await stack.http.post(
        f"/screenings/{sid}/review",
        headers=stack.auth("clinician"),
        json={"decision": "request-confirmation", "explanation": "denies use; confirm before it counts"},
    )
    assert asked.status_code == 200, asked.text
    request = asked.json()["confirmation_request"]
    assert request["analytes"] == ["benzoylecgonine"] and request["specimen_id"] == specimen
    assert request["actor"] == asked.json()["reviews"][-1]["actor"] and request["answered_by"] is None
    [item] = (
        await stack.http.get(
            "/worklist", headers=stack.auth("staff"), params={"participant_id": pid, "kind": "confirmation-requested"}
        )
    ).json()["items"]
    assert item["status"] == "open" and item["owner_role"] == "staff" and item["subject_id"] == sid
    assert f"confirm specimen {specimen}" in item["why"] and "benzoylecgonine" in item["why"]

    first = disclosure_id(pid, sid, "screening-results", court_id)
    with Session(stack.engine) as session:
        presumptive = session.get(Disclosure, first)
    if report_presumptive:
        presumptive = await settled(stack, first)
        assert presumptive.status == "delivered"
        payload = court.kept[first]
        assert payload["basis"] == payload["data"]["basis"] == "presumptive-screen"
        assert payload["data"]["outcome"] == "presumptive-positive" and payload["data"]["confirmed"] is False
        assert "presumptive" in payload["data"]["statement"]
    else:
        assert presumptive is None and court.requests == []  # the report waits for the confirmation

    await post_hl7(stack, oru("CONF-C", specimen, pid, obx=CONFIRMED_POSITIVE, status="C"))
    [item] = (
        await stack.http.get(
            "/worklist",
            headers=stack.auth("staff"),
            params={"participant_id": pid, "kind": "confirmation-requested", "status": "all"},
        )
    ).json()["items"]
    assert item["status"] == "resolved" and item["outcome"] == "resolved-at-source"
    confirmed = await stack.http.post(
        f"/screenings/{sid}/review",
        headers=stack.auth("clinician"),
        json={"decision": "confirm", "explanation": "LC-MS/MS confirmed"},
    )
    assert confirmed.status_code == 200 and confirmed.json()["confirmation_request"]["answered_by"], confirmed.text
    report_id = disclosure_id(pid, sid, "screening-results", court_id, corrects=first if report_presumptive else None)
    report = await settled(stack, report_id)
    assert report.status == "delivered"
    payload = court.kept[report_id]
    assert payload["data"]["basis"] == "laboratory-confirmed" and payload["data"]["confirmed"] is True
    assert payload.get("amends") == (first if report_presumptive else None)
