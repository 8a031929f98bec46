"""A participant's record as a FHIR R4 Bundle, every resource labelled as 42 CFR part 2 data.

Built from plain records (the stored screening snapshots and lab reports, medication orders and
doses, consents); no database, no clock, no network: the same records give the same Bundle.

- Bundle type "collection" (FHIR R4, http://hl7.org/fhir/R4/bundle.html); entries have urn:uuid
  full URLs derived from the project's own ids (UUID v5), and references point at those.
- Patient: minimal, the participant id as an identifier and nothing else (no name, birth date or
  contact: whoever receives the export already knows whom it is about, or must not learn it).
- DiagnosticReport + Observation per screening with a result: LOINC codes (http://loinc.org), the
  method the result was judged by and why (LOINC Method axis, a clinic override...), the cutoff
  and its source, an interpretation (v3 ObservationInterpretation), the final outcome and review.
- MedicationRequest per order; MedicationAdministration per observed dose or injection (and, with
  status not-done, per refused or held dose); MedicationDispense per take-home supply.
- Consent per Part 2 consent (42 CFR 2.31), with its recipient, categories, period and status.
- Provenance naming every resource in the Bundle as produced by this export.

Security labels (HL7 FHIR DS4P IG, http://hl7.org/fhir/uv/security-label-ds4p/; HL7 Healthcare
Privacy and Security Classification System): on the Bundle and on every resource,
confidentiality R (restricted), the policy 42CFRPart2 and the refrain policy NORDSCLCD (no
redisclosure without the consent directive). 42 CFR 2.32 requires the redisclosure notice with
each disclosure; the Bundle carries it in its Provenance.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from domain import loinc_tox
from domain.interpretation import AnalyteOutcome
from domain.medication import DispenseKind, Drug, OrderStatus, Route
from domain.vocab import ResultStatus, ScreeningStatus

V3_CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
V3_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
LOINC_SYSTEM = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ID_PARTICIPANT = "urn:iop:participant"
ID_SCREENING = "urn:iop:screening"
ID_LAB_RESULT = "urn:iop:lab-result"
ID_ORDER = "urn:iop:medication-order"
ID_DOSE = "urn:iop:dose"
ID_CONSENT = "urn:iop:consent"
LOCAL_CODE = "urn:iop:lab-local-code"
METHOD_SYSTEM = "urn:iop:test-method"
CATEGORY_SYSTEM = "urn:iop:disclosure-category"
PART2_POLICY = "https://www.ecfr.gov/current/title-42/chapter-I/subchapter-A/part-2"

SECURITY_LABELS: tuple[dict[str, str], ...] = (
    {"system": V3_CONFIDENTIALITY, "code": "R", "display": "restricted"},
    {"system": V3_ACT_CODE, "code": "42CFRPart2", "display": "42 CFR Part2"},
    {"system": V3_ACT_CODE, "code": "NORDSCLCD", "display": "no redisclosure without consent directive"},
)

REDISCLOSURE_NOTICE = "42 CFR part 2 prohibits unauthorized use or disclosure of these records (42 CFR 2.32)."

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:iop:fhir")

# RxNorm ingredient concepts of the products a medication order names (domain.medication.DRUGS).
RXNORM_INGREDIENTS: dict[str, tuple[str, str]] = {
    Drug.BUPRENORPHINE: ("1819", "buprenorphine"),
    Drug.BUPRENORPHINE_NALOXONE: ("352364", "buprenorphine / naloxone"),
    Drug.METHADONE: ("6813", "methadone"),
    Drug.NALTREXONE_ORAL: ("7243", "naltrexone"),
    Drug.NALTREXONE_ER_INJECTION: ("7243", "naltrexone"),
}

_ROUTES: dict[str, tuple[str, str]] = {  # SNOMED CT route of administration (FHIR R4 route-codes value set)
    Route.ORAL: ("26643006", "Oral route"),
    Route.SUBLINGUAL: ("37161004", "Sublingual route"),
    Route.BUCCAL: ("54471007", "Buccal route"),
    Route.INTRAMUSCULAR: ("78421000", "Intramuscular route"),
    Route.SUBCUTANEOUS: ("34206005", "Subcutaneous route"),
}

_REPORT_STATUS = {
    ScreeningStatus.FINAL: "final",
    ScreeningStatus.PRELIMINARY: "preliminary",
    ScreeningStatus.AWAITING_REVIEW: "preliminary",
    ScreeningStatus.AWAITING_RESULT: "registered",
    ScreeningStatus.NO_RESULT: "cancelled",
}
_RESULT_STATUS = {
    ResultStatus.FINAL: "final",
    ResultStatus.CORRECTED: "corrected",
    ResultStatus.PRELIMINARY: "preliminary",
    ResultStatus.CANCELLED: "cancelled",
}
_INTERPRETATION = {
    AnalyteOutcome.NEGATIVE: ("NEG", "Negative"),
    AnalyteOutcome.CONFIRMED_POSITIVE: ("POS", "Positive"),
    AnalyteOutcome.PRESUMPTIVE_POSITIVE: ("A", "Abnormal"),
    AnalyteOutcome.NOT_INTERPRETABLE: ("IND", "Indeterminate"),
}
_ORDER_STATUS: dict[str, str] = {
    OrderStatus.ACTIVE: "active",
    OrderStatus.HELD: "on-hold",
    OrderStatus.STOPPED: "stopped",
}


# --- inputs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScreeningFacts:
    """A screening's stored snapshot (workflows.contracts.screening.ScreeningState as saved) and its lab reports."""

    state: Mapping[str, Any]
    lab_reports: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # result id -> LabResult.report


@dataclass(frozen=True)
class OrderFacts:
    order_id: str
    status: str
    order: Mapping[str, Any]  # a MedicationOrder as stored (store.shapes.plain)
    created_at: str


@dataclass(frozen=True)
class DoseFacts:
    dose_id: str
    order_id: str
    day: str
    kind: str  # domain.medication.DISPENSE_KINDS
    dose: float | None
    unit: str | None
    take_home_count: int
    covered_dates: Sequence[str] | None
    lot: str | None
    injection_site: str | None
    recorded_at: str


@dataclass(frozen=True)
class ConsentFacts:
    consent: Mapping[str, Any]  # domain.consent.consent_to_dict
    recipient_name: str
    recorded_revoked_at: str | None = None


@dataclass(frozen=True)
class ExportFacts:
    participant_id: str
    program: str
    generated_at: str  # when the export was made (ISO 8601 with offset)
    screenings: Sequence[ScreeningFacts] = ()
    orders: Sequence[OrderFacts] = ()
    doses: Sequence[DoseFacts] = ()
    consents: Sequence[ConsentFacts] = ()


# --- helpers -------------------------------------------------------------------------------------


def resource_id(kind: str, key: str) -> str:
    """A stable FHIR id (a UUID, valid under FHIR's id rules) for one of our records."""
    return str(uuid.uuid5(_NAMESPACE, f"{kind}/{key}"))


def _ref(resource: Mapping[str, Any]) -> dict[str, str]:
    return {"reference": f"urn:uuid:{resource['id']}", "type": resource["resourceType"]}


def _meta() -> dict[str, Any]:
    return {"security": [dict(label) for label in SECURITY_LABELS]}


def _resource(kind: str, key: str, **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": kind,
        "id": resource_id(kind, key),
        "meta": _meta(),
        **{k: v for k, v in fields.items() if v is not None and v != []},
    }


def _identifier(system: str, value: str) -> list[dict[str, str]]:
    return [{"system": system, "value": value}]


def _instant(value: str | None) -> str | None:
    """An ISO moment as FHIR dateTime/instant: naive ones are UTC (the records store UTC)."""
    if not value:
        return None
    text = str(value).replace(" ", "T")
    if len(text) > 10 and not (text.endswith("Z") or "+" in text[10:] or "-" in text[10:]):
        text += "+00:00"
    return text


# --- screening results ---------------------------------------------------------------------------


def _current_entry(state: Mapping[str, Any]) -> Mapping[str, Any] | None:
    results: list[Mapping[str, Any]] = state.get("results") or []
    wanted = state.get("current_result_id")
    for entry in results:
        if entry.get("result_id") == wanted:
            return entry
    live = [e for e in results if not e.get("superseded_by")]
    return live[-1] if live else None


def _code(observation: Mapping[str, Any]) -> dict[str, Any]:
    code, label = observation.get("code") or "unknown", observation.get("label")
    row = loinc_tox.lookup(observation.get("coding_system") or "", code)
    if (observation.get("coding_system") or "").upper() in ("LN", "LOINC"):
        coding = {"system": LOINC_SYSTEM, "code": code}
        if row is not None:
            coding["display"] = row.loinc_name
        return {"coding": [coding], "text": label or (row.loinc_name if row else code)}
    return {"coding": [{"system": LOCAL_CODE, "code": code}], "text": label or code}


def _value(observation: Mapping[str, Any]) -> dict[str, Any]:
    if observation.get("value_numeric") is not None:
        quantity: dict[str, Any] = {"value": observation["value_numeric"]}
        if observation.get("comparator") in ("<", "<=", ">", ">="):
            quantity["comparator"] = observation["comparator"]
        if observation.get("units"):
            quantity.update(unit=observation["units"], system=UCUM, code=observation["units"])
        return {"valueQuantity": quantity}
    if observation.get("value_text"):
        return {"valueString": str(observation["value_text"])}
    if observation.get("value_raw"):
        return {"valueString": str(observation["value_raw"])}
    return {}


def _method(choice: Mapping[str, Any] | None, code: str, coding_system: str) -> dict[str, Any] | None:
    row = loinc_tox.lookup(coding_system, code)
    if choice is None and row is None:
        return None
    method = (choice or {}).get("method") or (row.method if row else loinc_tox.UNSPECIFIED)
    parts = [f"judged as {method}"]
    if row is not None and row.technique != loinc_tox.UNSPECIFIED:
        parts.append(f"LOINC technique: {row.technique}")
    if choice:
        parts.append(f"basis: {choice.get('basis')} ({choice.get('note')})")
    return {"coding": [{"system": METHOD_SYSTEM, "code": method}], "text": "; ".join(parts)}


def _observations(
    participant: Mapping[str, Any], screening: ScreeningFacts, entry: Mapping[str, Any], report_status: str
) -> list[dict[str, Any]]:
    state = screening.state
    report = screening.lab_reports.get(entry["result_id"]) or {}
    interpretation = entry.get("interpretation") or {}
    findings = {f["analyte"]: f for f in interpretation.get("findings", [])}
    choices = {m["code"]: m for m in entry.get("methods", [])}
    status = _RESULT_STATUS.get(entry.get("result_status", ""), report_status)
    out = []
    for index, observation in enumerate(report.get("observations", [])):
        code = observation.get("code") or "unknown"
        choice = choices.get(code)
        finding = findings.get(choice["analyte"]) if choice else None
        extra: dict[str, Any] = {}
        if finding is not None:
            flag_code, display = _INTERPRETATION.get(finding["outcome"], ("IND", "Indeterminate"))
            extra["interpretation"] = [
                {
                    "coding": [{"system": V3_INTERPRETATION, "code": flag_code, "display": display}],
                    "text": finding["outcome"],
                }
            ]
            notes = [f"{finding['analyte']}: {finding['reason']}"]
            if finding.get("cutoff_used") is not None:
                source = finding.get("cutoff_source") or "unstated"
                extra["referenceRange"] = [{"text": f"cutoff {finding['cutoff_used']:g} ({source})"}]
            extra["note"] = [{"text": note} for note in notes]
        elif observation.get("reference_range"):
            extra["referenceRange"] = [{"text": str(observation["reference_range"])}]
        out.append(
            _resource(
                "Observation",
                f"{entry['result_id']}/{index}",
                identifier=_identifier(ID_LAB_RESULT, f"{entry['result_id']}/{observation.get('set_id') or index}"),
                status=status,
                category=[
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                "code": "laboratory",
                            }
                        ]
                    }
                ],
                code=_code(observation),
                subject=_ref(participant),
                effectiveDateTime=_instant(
                    report.get("collected_at") or (state.get("collection") or {}).get("collected_at")
                ),
                issued=_instant(entry.get("received_at")),
                method=_method(choice, code, observation.get("coding_system") or ""),
                **_value(observation),
                **extra,
            )
        )
    return out


def _screening_resources(participant: Mapping[str, Any], screening: ScreeningFacts) -> list[dict[str, Any]]:
    state = screening.state
    entry = _current_entry(state)
    if entry is None:
        return []
    status = _REPORT_STATUS.get(state.get("status", ""), "partial")
    if state.get("corrected_after_final") and status == "final":
        status = "corrected"
    observations = _observations(participant, screening, entry, status)
    interpretation = entry.get("interpretation") or {}
    conclusion = [f"Screening reason: {state.get('reason')} (selected {state.get('day')})."]
    if state.get("final_outcome"):
        conclusion.append(f"Final outcome: {state['final_outcome']}.")
    if interpretation.get("summary"):
        conclusion.append(interpretation["summary"])
    for review in state.get("reviews") or []:
        conclusion.append(f"Review: {review.get('decision')} - {review.get('explanation')}")
    if interpretation.get("cutoff_tables"):
        conclusion.append("Cutoff tables: " + ", ".join(interpretation["cutoff_tables"]) + ".")
    collection = state.get("collection") or {}
    report = _resource(
        "DiagnosticReport",
        state["screening_id"],
        identifier=_identifier(ID_SCREENING, state["screening_id"]),
        status=status,
        category=[
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB", "display": "Laboratory"}
                ]
            }
        ],
        code={
            "coding": [{"system": LOINC_SYSTEM, "code": "8251-1", "display": "Service comment"}],
            "text": f"Drug screen ({collection.get('specimen_type') or 'specimen'}"
            f"{', observed' if collection.get('observed') else ''})",
        },
        subject=_ref(participant),
        effectiveDateTime=_instant(collection.get("collected_at")),
        issued=_instant(state.get("finalized_at") or entry.get("received_at")),
        result=[_ref(o) for o in observations],
        conclusion=" ".join(conclusion),
    )
    return [report, *observations]


# --- medication ----------------------------------------------------------------------------------


def _medication(drug: str) -> dict[str, Any]:
    coding = [{"system": "urn:iop:medication", "code": drug}]
    if drug in RXNORM_INGREDIENTS:
        code, display = RXNORM_INGREDIENTS[drug]
        coding.insert(0, {"system": RXNORM, "code": code, "display": display})
    return {"coding": coding, "text": drug}


def _route(route: str | None) -> dict[str, Any] | None:
    if not route:
        return None
    if route in _ROUTES:
        code, display = _ROUTES[route]
        return {"coding": [{"system": "http://snomed.info/sct", "code": code, "display": display}], "text": route}
    return {"text": route}


def _order_resource(participant: Mapping[str, Any], order: OrderFacts) -> dict[str, Any]:
    data = order.order
    schedule = data.get("schedule") or {}
    dose = {"value": data.get("dose"), "unit": data.get("unit"), "system": UCUM, "code": data.get("unit")}
    instruction = {
        "text": f"{data.get('dose'):g} {data.get('unit')} {data.get('route')}, {schedule.get('kind')}"
        if data.get("dose") is not None
        else str(schedule.get("kind")),
        "route": _route(data.get("route")),
        "doseAndRate": [{"doseQuantity": dose}] if data.get("dose") is not None else None,
    }
    period = {"start": data.get("start_date")}
    if data.get("stop_date"):
        period["end"] = data["stop_date"]
    instruction["timing"] = {"repeat": {"boundsPeriod": period}}
    return _resource(
        "MedicationRequest",
        order.order_id,
        identifier=_identifier(ID_ORDER, order.order_id),
        status=_ORDER_STATUS.get(order.status, "unknown"),
        intent="order",
        medicationCodeableConcept=_medication(str(data.get("drug"))),
        subject=_ref(participant),
        authoredOn=_instant(order.created_at),
        requester={"display": str(data.get("prescriber"))} if data.get("prescriber") else None,
        dosageInstruction=[{k: v for k, v in instruction.items() if v is not None}],
        note=[{"text": f"dose above the usual maximum: {data['dose_override_reason']}"}]
        if data.get("dose_override_reason")
        else None,
    )


def _dose_resource(
    participant: Mapping[str, Any], dose: DoseFacts, orders: Mapping[str, dict[str, Any]], drugs: Mapping[str, str]
) -> dict[str, Any]:
    request = orders.get(dose.order_id)
    medication = _medication(drugs.get(dose.order_id, "other"))
    quantity = (
        {"value": dose.dose, "unit": dose.unit, "system": UCUM, "code": dose.unit}
        if dose.dose is not None and dose.unit
        else None
    )
    if dose.kind == "take-home":
        days = len(dose.covered_dates) if dose.covered_dates else max(dose.take_home_count, 1)
        return _resource(
            "MedicationDispense",
            dose.dose_id,
            identifier=_identifier(ID_DOSE, dose.dose_id),
            status="completed",
            medicationCodeableConcept=medication,
            subject=_ref(participant),
            authorizingPrescription=[_ref(request)] if request else None,
            quantity={"value": dose.take_home_count, "unit": "dose"},
            daysSupply={"value": days, "unit": "day"},
            whenHandedOver=_instant(dose.recorded_at),
            dosageInstruction=[
                {"text": f"take-home supply for {days} day(s)", "doseAndRate": [{"doseQuantity": quantity}]}
            ]
            if quantity
            else None,
        )
    done = dose.kind in (DispenseKind.OBSERVED_DOSE, DispenseKind.INJECTION)
    dosage: dict[str, Any] = {}
    if quantity:
        dosage["dose"] = quantity
    if dose.injection_site:
        dosage["site"] = {"text": dose.injection_site}
    return _resource(
        "MedicationAdministration",
        dose.dose_id,
        identifier=_identifier(ID_DOSE, dose.dose_id),
        status="completed" if done else "not-done",
        statusReason=None
        if done
        else [{"text": "refused by the participant" if dose.kind == "refused" else "held by the clinic"}],
        medicationCodeableConcept=medication,
        subject=_ref(participant),
        effectiveDateTime=_instant(dose.recorded_at) or dose.day,
        request=_ref(request) if request else None,
        dosage=dosage or None,
        note=[{"text": f"{dose.kind} on program day {dose.day}" + (f", lot {dose.lot}" if dose.lot else "")}],
    )


# --- consent -------------------------------------------------------------------------------------


def _consent_resource(participant: Mapping[str, Any], facts: ConsentFacts) -> dict[str, Any]:
    consent = facts.consent
    revoked = consent.get("revoked_at") or facts.recorded_revoked_at
    period = {"start": _instant(consent.get("effective_from"))}
    if consent.get("expires_at"):
        period["end"] = _instant(consent["expires_at"])
    legal = "42 CFR 2.35 (criminal justice)" if consent.get("criminal_justice") else "42 CFR 2.31"
    return _resource(
        "Consent",
        str(consent["consent_id"]),
        identifier=_identifier(ID_CONSENT, str(consent["consent_id"])),
        status="inactive" if revoked else "active",
        scope={
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                    "display": "Privacy Consent",
                }
            ]
        },
        category=[
            {"coding": [{"system": LOINC_SYSTEM, "code": "59284-0", "display": "Patient Consent"}]},
            {"coding": [{"system": V3_ACT_CODE, "code": "IDSCL", "display": "information disclosure"}]},
        ],
        patient=_ref(participant),
        dateTime=_instant(consent.get("signed_at")),
        organization=[{"display": str(consent.get("disclosing_program"))}],
        policy=[{"authority": "https://www.ecfr.gov", "uri": PART2_POLICY}],
        policyRule={
            "coding": [{"system": V3_ACT_CODE, "code": "42CFRPart2"}],
            # The signer is left out: it may be a name (the participant's or a representative's).
            "text": f"{legal}; purpose: {consent.get('purpose')}; signed "
            f"({consent.get('signature_method')})" + (f"; revoked {revoked}" if revoked else ""),
        },
        provision={
            "type": "permit",
            "period": period,
            "actor": [
                {
                    "role": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                "code": "IRCP",
                                "display": "information recipient",
                            }
                        ]
                    },
                    "reference": {
                        "display": f"{facts.recipient_name} ({consent.get('recipient_kind')})",
                        "identifier": {"system": "urn:iop:recipient", "value": str(consent.get("recipient_id"))},
                    },
                }
            ],
            "code": [
                {"coding": [{"system": CATEGORY_SYSTEM, "code": c}], "text": c} for c in consent.get("categories") or []
            ],
            "purpose": [
                {"system": V3_ACT_REASON, "code": "HLEGAL", "display": "legal"}
                if consent.get("criminal_justice")
                else {"system": V3_ACT_REASON, "code": "PATRQT", "display": "patient requested"}
            ],
        },
    )


# --- the bundle ----------------------------------------------------------------------------------


def participant_bundle(facts: ExportFacts) -> dict[str, Any]:
    """The participant's Bundle (JSON-ready dict). Only the records passed in appear in it."""
    patient = _resource("Patient", facts.participant_id, identifier=_identifier(ID_PARTICIPANT, facts.participant_id))
    resources: list[dict[str, Any]] = [patient]
    for screening in sorted(facts.screenings, key=lambda s: (s.state.get("day", ""), s.state["screening_id"])):
        if screening.state.get("participant_id") not in (None, facts.participant_id):
            raise ValueError("a screening of another participant was passed in")
        resources += _screening_resources(patient, screening)
    orders = {o.order_id: _order_resource(patient, o) for o in sorted(facts.orders, key=lambda o: o.order_id)}
    resources += orders.values()
    drugs = {o.order_id: str(o.order.get("drug")) for o in facts.orders}
    for dose in sorted(facts.doses, key=lambda d: (d.day, d.recorded_at, d.dose_id)):
        resources.append(_dose_resource(patient, dose, orders, drugs))
    for consent in sorted(facts.consents, key=lambda c: str(c.consent["consent_id"])):
        if consent.consent.get("participant_id") not in (None, facts.participant_id):
            raise ValueError("a consent of another participant was passed in")
        resources.append(_consent_resource(patient, consent))
    provenance = _resource(
        "Provenance",
        f"{facts.participant_id}/{facts.generated_at}",
        target=[_ref(r) for r in resources],
        recorded=facts.generated_at,
        policy=[PART2_POLICY],
        activity={
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                    "code": "CREATE",
                    "display": "create",
                }
            ],
            "text": f"export of the participant record. {REDISCLOSURE_NOTICE}",
        },
        agent=[
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                            "code": "assembler",
                            "display": "Assembler",
                        }
                    ]
                },
                "who": {"display": f"iop-workflows ({facts.program} program)"},
            }
        ],
    )
    resources.append(provenance)
    return {
        "resourceType": "Bundle",
        "id": resource_id("Bundle", f"{facts.participant_id}/{facts.generated_at}"),
        "meta": _meta(),
        "type": "collection",
        "timestamp": facts.generated_at,
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
    }
