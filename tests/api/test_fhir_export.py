"""GET /participants/{id}/fhir end to end: a screening result posted as HL7 through the lab intake, a
medication order with doses, a Part 2 consent -> a FHIR R4 Bundle that validates (fhir.resources),
every resource labelled R / 42CFRPart2 / NORDSCLCD, only this participant's records, audited."""

import json

import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlmodel import Session, col, select

from store.models import AuditEvent
from tests.api.test_disclosures import add_consent, add_recipient, consent_body
from tests.api.test_lab import POSITIVE, URINE, collected, oru, post_hl7
from tests.api.test_medications import start
from tests.domain.test_fhir import validate_r4
from tests.receiver import webhook_receiver

LABELS = {
    ("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "R"),
    ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "42CFRPart2"),
    ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "NORDSCLCD"),
}


@pytest.fixture
def court():
    with webhook_receiver() as receiver:
        yield receiver


async def a_full_record(stack, court_id, control):
    """A participant with a confirmed positive, a methadone order with a dose and a refusal, a consent."""
    pid, sid, specimen = await collected(stack)
    await post_hl7(stack, oru(control, specimen, pid, obx=POSITIVE))
    review = await stack.http.post(
        f"/screenings/{sid}/review",
        headers=stack.auth("clinician"),
        json={"decision": "confirm", "explanation": "no prescription on file"},
    )
    assert review.status_code == 200, review.text
    order = await start(stack, pid)
    assert order.status_code == 201, order.text
    order_id = order.json()["id"]
    dosed = await stack.http.post(
        f"/medications/{order_id}/dispenses",
        headers=stack.auth("staff"),
        json={"kind": "observed-dose", "dose": 60, "unit": "mg"},
    )
    assert dosed.status_code == 200, dosed.text
    consent_id = await add_consent(stack, pid, consent_body(court_id, ["screening-results"]))
    return pid, sid, specimen, order_id, consent_id


async def test_bundle_validates_is_labelled_and_holds_only_this_participant(stack, court):
    court_id = await add_recipient(stack, court, "court", ["screening-results"], case_system="county-drug-court")
    pid, sid, specimen, order_id, consent_id = await a_full_record(stack, court_id, "FHIR-1")
    other = await a_full_record(stack, court_id, "FHIR-2")

    response = await stack.http.get(f"/participants/{pid}/fhir", headers=stack.auth("clinician"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    bundle = response.json()
    Bundle.model_validate(bundle)
    validate_r4(bundle)  # FHIR R4 4.0.1 as well
    assert bundle["type"] == "collection"

    resources = [e["resource"] for e in bundle["entry"]]
    kinds = [r["resourceType"] for r in resources]
    for kind in (
        "Patient",
        "DiagnosticReport",
        "Observation",
        "MedicationRequest",
        "MedicationAdministration",
        "Consent",
        "Provenance",
    ):
        assert kind in kinds, kind
    for resource in [bundle, *resources]:
        assert {(s["system"], s["code"]) for s in resource["meta"]["security"]} == LABELS, resource["resourceType"]

    [patient] = [r for r in resources if r["resourceType"] == "Patient"]
    assert patient["identifier"] == [{"system": "urn:iop:participant", "value": pid}]
    text = json.dumps(bundle)
    for phi in ("Marisol", "Quintanilla", "1987", "+1555", "DC-2026-0917"):
        assert phi not in text
    # The LOINC-coded result, its method and interpretation, the confirmed outcome.
    observations = [r for r in resources if r["resourceType"] == "Observation"]
    [cocaine] = [o for o in observations if o["code"]["coding"][0]["code"] == "3393-6"]
    assert cocaine["code"]["coding"][0]["system"] == "http://loinc.org"
    assert cocaine["valueQuantity"]["value"] == 640 and cocaine["interpretation"][0]["coding"][0]["code"] == "A"
    assert "judged as screen" in cocaine["method"]["text"]
    [report] = [r for r in resources if r["resourceType"] == "DiagnosticReport"]
    assert report["identifier"][0]["value"] == sid and "Final outcome: positive" in report["conclusion"]
    [request] = [r for r in resources if r["resourceType"] == "MedicationRequest"]
    assert request["identifier"][0]["value"] == order_id and request["status"] == "active"
    [given] = [r for r in resources if r["resourceType"] == "MedicationAdministration"]
    assert given["status"] == "completed" and given["dosage"]["dose"]["value"] == 60
    [consent] = [r for r in resources if r["resourceType"] == "Consent"]
    assert consent["identifier"][0]["value"] == consent_id and consent["status"] == "active"

    # Nothing of the other participant: not their id, screening, specimen, order or consent.
    other_pid, other_sid, other_specimen, other_order, other_consent = other
    for foreign in (other_pid, other_sid, other_specimen, other_order, other_consent):
        assert foreign not in text

    with Session(stack.engine) as session:
        [event] = session.exec(
            select(AuditEvent)
            .where(AuditEvent.action == "GET /participants/{participant_id}/fhir", AuditEvent.outcome == "200")
            .order_by(col(AuditEvent.seq))
        ).all()
    assert event.participant_id == pid and event.subject_id == pid and "FHIR export" in event.detail


async def test_only_admin_and_clinician_may_export(stack):
    pid = (await stack.enroll())["id"]
    for role, status in (("admin", 200), ("clinician", 200), ("staff", 403), ("auditor", 403), ("lab", 403)):
        response = await stack.http.get(f"/participants/{pid}/fhir", headers=stack.auth(role))
        assert response.status_code == status, (role, response.text)
    missing = await stack.http.get("/participants/p-nobody/fhir", headers=stack.auth("clinician"))
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    assert "p-nobody" in missing.json()["detail"]
    with Session(stack.engine) as session:
        refused = session.exec(
            select(AuditEvent).where(
                AuditEvent.action == "GET /participants/{participant_id}/fhir", AuditEvent.outcome == "403"
            )
        ).all()
    assert refused and all(e.participant_id == pid for e in refused)


async def test_a_just_enrolled_participant_exports_a_minimal_valid_bundle(stack):
    pid = (await stack.enroll())["id"]
    order = await stack.http.post(
        f"/participants/{pid}/screenings", json={"reason": "fhir"}, headers=stack.auth("staff")
    )
    sid = order.json()["screening_id"]
    assert (
        await stack.http.post(f"/screenings/{sid}/collection", json=URINE, headers=stack.auth("staff"))
    ).status_code == 200
    bundle = (await stack.http.get(f"/participants/{pid}/fhir", headers=stack.auth("admin"))).json()
    Bundle.model_validate(bundle)
    # A screening still waiting for its result has no report yet.
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Patient", "Provenance"]
