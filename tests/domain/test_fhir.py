"""The FHIR export built from plain records, validated by two kept libraries' models: fhir.resources (FHIR R4B
4.3.0; the installed 8.x carries no R4 package) and the SMART on FHIR client's models (fhirclient 4.x, generated
from FHIR R4 4.0.1, the version the issue names), strictly: a missing required element or an element R4 does not
define is refused."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhirclient.models import bundle as r4_bundle
from fhirclient.models.fhirabstractbase import FHIRValidationError

from domain.fhir import (
    SECURITY_LABELS,
    ConsentFacts,
    DoseFacts,
    ExportFacts,
    OrderFacts,
    ScreeningFacts,
    participant_bundle,
)

FINDING = {
    "analyte": "benzoylecgonine",
    "outcome": "presumptive-positive",
    "cutoff_used": 150.0,
    "cutoff_source": "lab",
    "reason": "640 >= cutoff 150 (lab cutoff)",
    "method": "screen",
    "value": 640.0,
}
STATE = {
    "screening_id": "s-1-20261123-r",
    "participant_id": "p-1",
    "day": "2026-11-23",
    "reason": "random",
    "status": "final",
    "final_outcome": "positive",
    "finalized_at": "2026-11-24T10:00:00+00:00",
    "collection": {"specimen_type": "urine", "observed": True, "collected_at": "2026-11-23T14:00:00+00:00"},
    "current_result_id": "lr-1-1",
    "reviews": [{"decision": "confirm", "explanation": "no prescription on file", "actor": "t-1"}],
    "results": [
        {
            "result_id": "lr-1-1",
            "result_status": "F",
            "received_at": "2026-11-24T09:00:00+00:00",
            "interpretation": {
                "overall": "non-negative",
                "findings": [FINDING],
                "summary": "Non-negative",
                "cutoff_tables": ["HHS-2025"],
            },
            "methods": [
                {
                    "analyte": "benzoylecgonine",
                    "code": "3393-6",
                    "method": "screen",
                    "basis": "default",
                    "note": "nothing names a method",
                }
            ],
        }
    ],
}
REPORT = {
    "collected_at": "2026-11-23T09:00:00",
    "observations": [
        {
            "set_id": "1",
            "code": "3393-6",
            "coding_system": "LN",
            "label": "Benzoylecgonine",
            "value_numeric": 640.0,
            "units": "ng/mL",
            "reference_range": "<150",
        },
        {"set_id": "2", "code": "LOCAL1", "coding_system": "L", "label": "Something local", "value_text": "NEG"},
    ],
}
ORDER = {
    "order_id": "m-1",
    "participant_id": "p-1",
    "drug": "methadone",
    "dose": 60.0,
    "unit": "mg",
    "route": "oral",
    "schedule": {"kind": "daily-observed"},
    "start_date": "2026-11-01",
    "stop_date": None,
    "prescriber": "Dr. Okafor",
}
CONSENT = {
    "consent_id": "c-1",
    "participant_id": "p-1",
    "recipient_id": "r-1",
    "recipient_kind": "court",
    "categories": ["screening-results"],
    "purpose": "treatment court",
    "disclosing_program": "North IOP",
    "signer": "Rosa Diaz",
    "signed_at": "2026-11-01T10:00:00+00:00",
    "signature_method": "electronic",
    "effective_from": "2026-11-01T10:00:00+00:00",
    "expires_at": None,
    "criminal_justice": True,
}


def validate_r4(bundle: dict) -> None:
    """Raise FHIRValidationError unless the Bundle and every resource in it are valid FHIR R4 (4.0.1) structures."""
    parsed = r4_bundle.Bundle(bundle, strict=True)
    # Each entry's resource is parsed as its own R4 type (not as a bare Resource), so its elements are checked.
    assert [type(e.resource).__name__ for e in parsed.entry or ()] == [
        e["resource"]["resourceType"] for e in bundle.get("entry", ())
    ]


def dose(dose_id: str, kind: str, **extra) -> DoseFacts:
    values = {
        "dose": 60.0,
        "unit": "mg",
        "take_home_count": 0,
        "covered_dates": None,
        "lot": None,
        "injection_site": None,
    }
    values.update(extra)
    return DoseFacts(dose_id, "m-1", "2026-11-02", kind, recorded_at="2026-11-02T13:00:00+00:00", **values)


def facts(**overrides) -> ExportFacts:
    base = dict(
        participant_id="p-1",
        program="iop",
        generated_at="2026-12-01T12:00:00+00:00",
        screenings=[ScreeningFacts(STATE, {"lr-1-1": REPORT})],
        orders=[OrderFacts("m-1", "active", ORDER, "2026-11-01T09:00:00+00:00")],
        doses=[
            dose("d-1", "observed-dose"),
            dose("d-2", "take-home", take_home_count=2, covered_dates=["2026-11-03", "2026-11-04"]),
            dose("d-3", "refused", dose=None, unit=None),
        ],
        consents=[ConsentFacts(CONSENT, "County drug court")],
    )
    base.update(overrides)
    return ExportFacts(**base)


def test_bundle_validates_and_every_resource_is_labelled():
    bundle = participant_bundle(facts())
    Bundle.model_validate(bundle)  # raises on any structural error
    validate_r4(bundle)
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds == [
        "Patient",
        "DiagnosticReport",
        "Observation",
        "Observation",
        "MedicationRequest",
        "MedicationAdministration",
        "MedicationDispense",
        "MedicationAdministration",
        "Consent",
        "Provenance",
    ]
    wanted = {(label["system"], label["code"]) for label in SECURITY_LABELS}
    assert {(s["system"], s["code"]) for s in bundle["meta"]["security"]} == wanted
    for entry in bundle["entry"]:
        assert {(s["system"], s["code"]) for s in entry["resource"]["meta"]["security"]} == wanted
        assert entry["fullUrl"] == f"urn:uuid:{entry['resource']['id']}"


def test_patient_is_minimal_and_references_resolve_inside_the_bundle():
    bundle = participant_bundle(facts())
    [patient] = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert set(patient) == {"resourceType", "id", "meta", "identifier"}
    urls = {e["fullUrl"] for e in bundle["entry"]}

    def references(value):
        if isinstance(value, dict):
            if isinstance(value.get("reference"), str):
                yield value["reference"]
            for item in value.values():
                yield from references(item)
        elif isinstance(value, list):
            for item in value:
                yield from references(item)

    found = list(references(bundle["entry"]))
    assert found and set(found) <= urls
    [provenance] = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Provenance"]
    assert len(provenance["target"]) == len(bundle["entry"]) - 1


def test_observation_carries_loinc_method_interpretation_and_basis():
    bundle = participant_bundle(facts())
    observations = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    loinc = observations[0]
    assert loinc["code"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "3393-6",
        "display": loinc["code"]["coding"][0]["display"],
    }
    assert loinc["valueQuantity"]["value"] == 640.0 and loinc["valueQuantity"]["code"] == "ng/mL"
    assert loinc["interpretation"][0]["coding"][0]["code"] == "A"
    assert "basis: default" in loinc["method"]["text"] and loinc["method"]["coding"][0]["code"] == "screen"
    assert loinc["referenceRange"][0]["text"] == "cutoff 150 (lab)"
    local = observations[1]
    assert local["code"]["coding"][0]["system"] == "urn:iop:lab-local-code" and local["valueString"] == "NEG"
    [report] = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DiagnosticReport"]
    assert report["status"] == "final" and "Final outcome: positive" in report["conclusion"]
    assert "no prescription on file" in report["conclusion"]


def test_same_records_same_bundle_and_no_foreign_records():
    assert participant_bundle(facts()) == participant_bundle(facts())
    with pytest.raises(ValueError):
        participant_bundle(facts(screenings=[ScreeningFacts({**STATE, "participant_id": "p-2"})]))
    with pytest.raises(ValueError):
        participant_bundle(facts(consents=[ConsentFacts({**CONSENT, "participant_id": "p-2"}, "x")]))


def test_revoked_consent_is_inactive_and_empty_record_still_validates():
    bundle = participant_bundle(facts(consents=[ConsentFacts(CONSENT, "Court", "2026-11-20T00:00:00+00:00")]))
    [consent] = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Consent"]
    assert consent["status"] == "inactive"
    assert "Rosa" not in str(bundle)  # the signer may be a name: never exported
    empty = participant_bundle(facts(screenings=[], orders=[], doses=[], consents=[]))
    Bundle.model_validate(empty)
    validate_r4(empty)
    assert [e["resource"]["resourceType"] for e in empty["entry"]] == ["Patient", "Provenance"]


def test_the_validation_is_live():
    bundle = participant_bundle(facts())
    provenance = bundle["entry"][-1]["resource"]
    del provenance["recorded"]
    with pytest.raises(ValueError):
        Bundle.model_validate(bundle)
    with pytest.raises(FHIRValidationError, match="recorded"):
        validate_r4(bundle)
    unknown = participant_bundle(facts())
    unknown["entry"][2]["resource"]["valueInteger64"] = 1  # R5's: no such element in R4
    with pytest.raises(FHIRValidationError, match="valueInteger64"):
        validate_r4(unknown)
