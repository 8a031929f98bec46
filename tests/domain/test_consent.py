"""Consent checks (42 CFR Part 2) and report payloads (domain.consent, domain.report_content).

The property tests compare find_covering_consent and can_revoke with a small oracle kept in whole
hours, written separately from the module: it never parses a consent's strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.consent import (
    ATTENDANCE,
    CATEGORIES,
    MEDICATION_ADHERENCE,
    MISSED_CHECK_INS,
    MISSED_TESTS,
    PERIODIC_SUMMARY,
    PHASE_CHANGES,
    PROGRAM_STATUS,
    REFUSALS,
    SCREENING_RESULTS,
    Consent,
    ConsentError,
    can_revoke,
    consent_from_dict,
    consent_to_dict,
    coverage,
    find_covering_consent,
    record_event,
    revoke,
)
from domain.report_content import (
    CRIMINAL_JUSTICE_USE,
    FACT_KEYS,
    REDISCLOSURE_NOTICE,
    REDISCLOSURE_NOTICE_SHORT,
    REQUIRED_FACTS,
    SUBJECT_IDENTIFIER_KEYS,
    build_report,
    completion_letter,
    monthly_summary,
    redisclosure_notice,
)
from domain.webhook_signing import encode_payload

SIGNED = "2026-03-01T09:00:00-05:00"
EXPIRES = "2026-10-01T00:00:00-04:00"
DURING = "2026-05-15T12:00:00-04:00"
CASE = {"case_number": "DC-2026-0042"}
PII_PARTS = ("name", "dob", "birth", "phone", "email", "address")
REPORT_CATEGORIES = tuple(c for c in CATEGORIES if c != PERIODIC_SUMMARY)


def make_consent(**overrides) -> Consent:
    values = dict(
        consent_id="C-12",
        participant_id="P-7",
        recipient_id="R-1",
        recipient_kind="court",
        categories=(SCREENING_RESULTS, MISSED_TESTS),
        purpose="monitor progress in drug court",
        disclosing_program="Riverside IOP",
        signer="participant",
        signed_at=SIGNED,
        signature_method="electronic",
        effective_from=SIGNED,
        expires_at=EXPIRES,
    )
    values.update(overrides)
    return Consent(**values)


def criminal_justice_consent(**overrides) -> Consent:
    values = dict(criminal_justice=True, revocable_after="2026-06-01T00:00:00-04:00")
    values.update(overrides)
    return make_consent(**values)


def all_keys(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {key for item in value.values() for key in all_keys(item)}
    if isinstance(value, list):
        return {key for item in value for key in all_keys(item)}
    return set()


# --- consent elements ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"consent_id": ""}, "consent_id"),
        ({"participant_id": " "}, "participant_id"),
        ({"recipient_id": ""}, "recipient_id"),
        ({"disclosing_program": ""}, "disclosing_program"),
        ({"purpose": ""}, "purpose"),
        ({"signer": ""}, "signer"),
        ({"recipient_kind": "landlord"}, "unknown recipient kind"),
        ({"categories": ()}, "what information may be disclosed"),
        ({"categories": [SCREENING_RESULTS]}, "non-empty tuple"),
        ({"categories": ("gossip",)}, "unknown information category 'gossip'"),
        ({"categories": (REFUSALS, REFUSALS)}, "twice"),
        ({"signature_method": "fax"}, "unknown signature method"),
        ({"signed_at": "yesterday"}, "not an ISO 8601 date-time"),
        ({"signed_at": "2026-03-01T09:00:00"}, "no UTC offset"),
        ({"signed_at": None}, "signed_at must be an ISO 8601"),
        ({"effective_from": "2026-02-28T09:00:00-05:00"}, "before it was signed"),
        ({"expires_at": None}, "must say when it expires"),
        ({"expires_at": SIGNED}, "must be later than effective_from"),
        ({"expires_on_event": "dischrage"}, "not a known event"),
        ({"revocable_after": "2026-06-01T00:00:00-04:00"}, "only a criminal-justice consent"),
        ({"revocable_after_event": "final-disposition"}, "only a criminal-justice consent"),
        ({"revocation_reason": "asked"}, "give both or neither"),
        ({"revoked_at": "2026-02-01T00:00:00-05:00", "revocation_reason": "x"}, "before signed_at"),
        ({"events_occurred": (("graduation", SIGNED),)}, "not a known event"),
        ({"events_occurred": (("discharge",),)}, "(event, moment) pair"),
        ({"criminal_justice": True}, "must state when it becomes revocable"),
        ({"criminal_justice": True, "recipient_kind": "employer", "revocable_after": EXPIRES}, "criminal-justice"),
    ],
)
def test_every_consent_element_is_checked(overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_consent(**overrides)


def test_a_consent_may_expire_by_date_by_event_or_both():
    assert make_consent().expires_on_event is None
    assert make_consent(expires_at=None, expires_on_event="discharge").expires_at is None
    assert make_consent(expires_on_event="final-disposition").expires_at == EXPIRES


def test_a_criminal_justice_consent_may_state_a_time_or_an_event():
    assert criminal_justice_consent().revocable_after
    consent = criminal_justice_consent(revocable_after=None, revocable_after_event="final-disposition")
    assert consent.revocable_after_event == "final-disposition"


def test_consent_round_trips_through_json():
    consent = record_event(criminal_justice_consent(expires_on_event="discharge"), "discharge", DURING)
    data = json.loads(json.dumps(consent_to_dict(consent)))
    assert consent_from_dict(data) == consent


def test_consent_from_dict_rejects_unknown_and_missing_fields():
    data = consent_to_dict(make_consent())
    with pytest.raises(ValueError, match="unknown consent field"):
        consent_from_dict({**data, "expires": EXPIRES})
    del data["purpose"]
    with pytest.raises(ValueError, match="incomplete consent"):
        consent_from_dict(data)


# --- coverage --------------------------------------------------------------------------------


def test_a_consent_in_force_covers_and_says_until_when():
    result = coverage(make_consent(), "R-1", MISSED_TESTS, DURING)
    assert result.covered
    assert result.reason == "consent C-12 covers missed-tests for recipient R-1 until 2026-10-01"


def test_no_consent_at_all():
    consent, reason = find_covering_consent([], "R-1", MISSED_TESTS, DURING)
    assert consent is None
    assert reason == "no consent names recipient R-1 for missed-tests"


def test_expiry_instant_is_exclusive():
    consent = make_consent()
    assert not coverage(consent, "R-1", MISSED_TESTS, EXPIRES).covered
    assert coverage(consent, "R-1", MISSED_TESTS, "2026-09-30T23:59:59.999999-04:00").covered
    # The same instant written in another offset is still the expiry instant.
    result = coverage(consent, "R-1", MISSED_TESTS, "2026-10-01T04:00:00+00:00")
    assert not result.covered
    assert result.reason.startswith("consent C-12 expired on 2026-10-01")


def test_expired_by_an_event_at_or_before_the_moment():
    consent = record_event(make_consent(expires_on_event="discharge"), "discharge", DURING)
    assert coverage(consent, "R-1", MISSED_TESTS, "2026-05-15T11:59:59-04:00").covered
    result = coverage(consent, "R-1", MISSED_TESTS, DURING)
    assert not result.covered
    assert result.reason == f"consent C-12 ended at discharge on {DURING}"


def test_completion_ends_a_consent_that_ends_at_discharge():
    consent = record_event(make_consent(expires_on_event="discharge"), "completion", DURING)
    assert not coverage(consent, "R-1", MISSED_TESTS, "2026-05-16T00:00:00-04:00").covered


def test_an_unrelated_event_does_not_end_a_consent():
    consent = record_event(make_consent(expires_on_event="final-disposition"), "discharge", DURING)
    assert coverage(consent, "R-1", MISSED_TESTS, "2026-06-01T00:00:00-04:00").covered


def test_revoked_at_or_before_the_moment():
    consent = revoke(make_consent(), DURING, "participant asked in writing")
    assert coverage(consent, "R-1", MISSED_TESTS, "2026-05-15T11:00:00-04:00").covered
    result = coverage(consent, "R-1", MISSED_TESTS, DURING)
    assert not result.covered
    assert result.reason == f"consent C-12 was revoked on {DURING} (participant asked in writing)"


def test_wrong_category():
    result = coverage(make_consent(), "R-1", REFUSALS, DURING)
    assert not result.covered
    assert result.reason == "consent C-12 does not include refusals (it covers screening-results, missed-tests)"
    consent, reason = find_covering_consent([make_consent()], "R-1", REFUSALS, DURING)
    assert consent is None
    assert reason.startswith("no consent names recipient R-1 for refusals; the consents naming R-1 cover only: C-12")


def test_wrong_recipient():
    result = coverage(make_consent(), "R-2", MISSED_TESTS, DURING)
    assert not result.covered
    assert result.reason == "consent C-12 names recipient R-1, not R-2"
    assert find_covering_consent([make_consent()], "R-2", MISSED_TESTS, DURING) == (
        None,
        "no consent names recipient R-2 for missed-tests",
    )


def test_not_yet_effective():
    consent = make_consent(effective_from="2026-04-01T00:00:00-04:00")
    result = coverage(consent, "R-1", MISSED_TESTS, "2026-03-15T00:00:00-04:00")
    assert not result.covered
    assert "takes effect on 2026-04-01" in result.reason
    assert coverage(consent, "R-1", MISSED_TESTS, "2026-04-01T00:00:00-04:00").covered


def test_find_explains_every_consent_that_is_not_in_force():
    expired = make_consent(consent_id="C-1", expires_at="2026-04-01T00:00:00-04:00")
    revoked = revoke(make_consent(consent_id="C-2"), "2026-04-02T00:00:00-04:00", "participant request")
    consent, reason = find_covering_consent([expired, revoked], "R-1", MISSED_TESTS, DURING)
    assert consent is None
    assert "consent C-1 expired on 2026-04-01" in reason
    assert "consent C-2 was revoked on 2026-04-02 (participant request)" in reason


def test_find_prefers_the_newest_signed_whatever_the_order():
    older = make_consent(consent_id="C-1")
    april = "2026-04-01T09:00:00-04:00"
    newer = make_consent(consent_id="C-2", signed_at=april, effective_from=april)
    assert find_covering_consent([older, newer], "R-1", MISSED_TESTS, DURING)[0] == newer
    assert find_covering_consent([newer, older], "R-1", MISSED_TESTS, DURING)[0] == newer


def test_coverage_rejects_an_unknown_category_or_a_moment_without_offset():
    with pytest.raises(ValueError, match="unknown information category"):
        coverage(make_consent(), "R-1", "diagnosis", DURING)
    with pytest.raises(ValueError, match="no UTC offset"):
        coverage(make_consent(), "R-1", MISSED_TESTS, "2026-05-15T12:00:00")


# --- revocation ------------------------------------------------------------------------------


def test_an_ordinary_consent_can_be_revoked_any_time():
    consent = make_consent(recipient_kind="employer")
    allowed, reason = can_revoke(consent, "2026-03-01T09:00:01-05:00")
    assert allowed and "any time" in reason
    revoked = revoke(consent, "2026-03-01T09:00:01-05:00", "  changed jobs  ")
    assert revoked.revoked_at == "2026-03-01T09:00:01-05:00"
    assert revoked.revocation_reason == "changed jobs"


def test_criminal_justice_consent_is_not_revocable_before_its_stated_time():
    consent = criminal_justice_consent()
    allowed, reason = can_revoke(consent, DURING)
    assert not allowed
    assert reason == (
        "consent C-12 is a criminal-justice consent (42 CFR 2.35) and cannot be revoked until 2026-06-01 "
        "or final-disposition, whichever comes first; it stays in effect until then"
    )
    with pytest.raises(ConsentError) as error:
        revoke(consent, DURING, "participant request")
    assert error.value.reason == reason
    assert can_revoke(consent, "2026-06-01T00:00:00-04:00")[0]
    assert revoke(consent, "2026-06-01T00:00:00-04:00", "participant request").revoked_at


def test_criminal_justice_consent_revocable_after_its_event():
    consent = criminal_justice_consent(revocable_after=None, revocable_after_event="completion")
    assert not can_revoke(consent, DURING)[0]
    # An event the caller knows of but has not recorded counts too.
    assert can_revoke(consent, DURING, events=[("completion", "2026-05-01T00:00:00-04:00")])[0]
    completed = record_event(consent, "completion", "2026-05-01T00:00:00-04:00")
    assert not can_revoke(completed, "2026-04-30T00:00:00-04:00")[0]
    assert can_revoke(completed, DURING)[0]
    # Revoking on the strength of such an event records it, so the record shows why it was allowed.
    revoked = revoke(consent, DURING, "participant request", events=[("completion", "2026-05-01T00:00:00-04:00")])
    assert revoked.events_occurred == (("completion", "2026-05-01T00:00:00-04:00"),)


def test_final_disposition_always_makes_a_criminal_justice_consent_revocable():
    consent = criminal_justice_consent(revocable_after="2027-01-01T00:00:00-05:00")
    disposed = record_event(consent, "final-disposition", "2026-05-01T00:00:00-04:00")
    assert not can_revoke(consent, DURING)[0]
    assert can_revoke(disposed, DURING)[0]


def test_revocation_refusals():
    revoked = revoke(make_consent(), DURING, "participant request")
    assert can_revoke(revoked, "2026-06-01T00:00:00-04:00") == (False, f"consent C-12 was already revoked on {DURING}")
    assert not can_revoke(make_consent(), "2026-02-01T00:00:00-05:00")[0]
    with pytest.raises(ValueError, match="revocation reason"):
        revoke(make_consent(), DURING, " ")


def test_record_event_is_idempotent_and_checked():
    once = record_event(make_consent(), "discharge", DURING)
    assert record_event(once, "discharge", DURING) is once
    assert once.events_occurred == (("discharge", DURING),)
    with pytest.raises(ValueError, match="not a known event"):
        record_event(once, "relapse", DURING)


# --- report payloads -------------------------------------------------------------------------

GOOD_FACTS = {
    SCREENING_RESULTS: {"collected_on": "2026-05-14", "outcome": "negative", "specimen_type": "urine",
                        "observed": True},
    MISSED_TESTS: {"scheduled_on": "2026-05-14", "window_closed_at": "2026-05-14T19:00:00-04:00"},
    REFUSALS: {"occurred_on": "2026-05-14", "refusal_kind": "substituted"},
    MEDICATION_ADHERENCE: {"period_start": "2026-05-01", "period_end": "2026-05-14",
                           "doses_expected": 14, "doses_taken": 13},
    PHASE_CHANGES: {"from_phase": "phase-1", "to_phase": "phase-2", "effective_on": "2026-05-14"},
    ATTENDANCE: {"period_start": "2026-05-01", "period_end": "2026-05-14",
                 "sessions_scheduled": 6, "sessions_attended": 5},
    PROGRAM_STATUS: {"status": "discharged", "effective_on": "2026-05-14", "discharge_kind": "unsuccessful"},
    MISSED_CHECK_INS: {"scheduled_on": "2026-05-14", "due_by": "2026-05-14T19:00:00-04:00"},
}  # fmt: skip
EXPECTED_TYPES = {
    SCREENING_RESULTS: "screening.result",
    MISSED_TESTS: "screening.missed",
    REFUSALS: "screening.refusal",
    MEDICATION_ADHERENCE: "medication.adherence",
    PHASE_CHANGES: "participant.phase-changed",
    ATTENDANCE: "attendance.period",
    PROGRAM_STATUS: "participant.discharged",
    MISSED_CHECK_INS: "check-in.missed",
}


def covering(*categories: str, **overrides) -> Consent:
    return make_consent(categories=categories, **overrides)


@pytest.mark.parametrize("category", REPORT_CATEGORIES)
def test_each_category_reports_its_allowed_facts_only(category):
    facts = {
        **GOOD_FACTS[category],
        "participant_name": "Jane Doe",
        "date_of_birth": "1990-01-01",
        "medication": "buprenorphine",
        "clinical_note": "relapsed after a family conflict",
        "lab_accession": "LAB-123",
    }
    payload = build_report(category, facts, CASE, covering(category), "D-1", DURING)
    assert payload["type"] == EXPECTED_TYPES[category]
    assert payload["data"] == GOOD_FACTS[category]
    assert set(payload["data"]) <= set(FACT_KEYS[category])
    keys = all_keys(payload)
    assert not {"participant_name", "date_of_birth", "medication", "clinical_note", "lab_accession"} & keys
    assert not any(part in key.lower() for key in keys for part in PII_PARTS)


def test_report_envelope():
    payload = build_report(SCREENING_RESULTS, GOOD_FACTS[SCREENING_RESULTS], CASE, make_consent(), "D-1", DURING)
    assert payload["timestamp"] == DURING
    assert payload["disclosure_id"] == "D-1"
    assert payload["category"] == SCREENING_RESULTS
    assert payload["subject"] == CASE
    assert payload["redisclosure_notice"]["text"] == REDISCLOSURE_NOTICE
    assert "42 CFR 2.32" in payload["redisclosure_notice"]["citation"]
    assert payload["consent"] == {
        "consent_id": "C-12",
        "signed_at": SIGNED,
        "disclosing_program": "Riverside IOP",
        "purpose": "monitor progress in drug court",
        "categories": [SCREENING_RESULTS, MISSED_TESTS],
        "expires_at": EXPIRES,
        "expires_on_event": None,
    }
    assert "corrects" not in payload and "use_restriction" not in payload
    assert "participant" not in json.dumps(payload["consent"])  # the signer stays out
    assert json.loads(encode_payload(payload)) == payload


def test_a_correction_names_the_disclosure_it_corrects():
    facts = GOOD_FACTS[SCREENING_RESULTS]
    payload = build_report(SCREENING_RESULTS, facts, CASE, make_consent(), "D-2", DURING, corrects="D-1")
    assert payload["corrects"] == "D-1"
    with pytest.raises(ValueError, match="cannot correct itself"):
        build_report(SCREENING_RESULTS, facts, CASE, make_consent(), "D-2", DURING, corrects="D-2")


def test_completion_is_its_own_type():
    facts = {"status": "completed", "effective_on": "2026-05-14"}
    assert build_report(PROGRAM_STATUS, facts, CASE, covering(PROGRAM_STATUS), "D-1", DURING)["type"] == (
        "participant.completed"
    )


def test_a_criminal_justice_report_carries_the_use_restriction():
    facts = GOOD_FACTS[MISSED_TESTS]
    payload = build_report(MISSED_TESTS, facts, CASE, criminal_justice_consent(), "D-1", DURING)
    assert payload["use_restriction"] == CRIMINAL_JUSTICE_USE


def test_no_report_without_covering_consent():
    with pytest.raises(ConsentError, match="does not include refusals"):
        build_report(REFUSALS, GOOD_FACTS[REFUSALS], CASE, make_consent(), "D-1", DURING)
    with pytest.raises(ConsentError, match="expired on 2026-10-01"):
        build_report(MISSED_TESTS, GOOD_FACTS[MISSED_TESTS], CASE, make_consent(), "D-1", EXPIRES)
    revoked = revoke(make_consent(), DURING, "participant request")
    with pytest.raises(ConsentError, match="was revoked"):
        build_report(MISSED_TESTS, GOOD_FACTS[MISSED_TESTS], CASE, revoked, "D-1", DURING)


def test_identifiers_are_allow_listed_and_required():
    identifiers = {**CASE, "name": "Jane Doe", "dob": "1990-01-01", "phone": "555-0100", "home_address": "1 Main St"}
    payload = build_report(MISSED_TESTS, GOOD_FACTS[MISSED_TESTS], identifiers, make_consent(), "D-1", DURING)
    assert payload["subject"] == CASE
    with pytest.raises(ValueError, match="identifier the recipient already knows"):
        build_report(MISSED_TESTS, GOOD_FACTS[MISSED_TESTS], {"name": "Jane Doe"}, make_consent(), "D-1", DURING)


@pytest.mark.parametrize(
    ("facts", "message"),
    [
        ({"collected_on": "2026-05-14", "outcome": "positive"}, "with its basis"),
        ({"collected_on": "2026-05-14", "outcome": "positive", "confirmed": True}, "with its basis"),
        (
            {"collected_on": "2026-05-14", "outcome": "positive", "confirmed": True, "basis": "presumptive-screen"},
            "never as a confirmed positive",
        ),
        (
            {
                "collected_on": "2026-05-14",
                "outcome": "presumptive-positive",
                "confirmed": True,
                "basis": "presumptive-screen",
            },
            "never as a confirmed positive",
        ),
        (
            {"collected_on": "2026-05-14", "outcome": "positive", "confirmed": False, "basis": "laboratory-confirmed"},
            "confirmed must be True",
        ),
        (
            {"collected_on": "2026-05-14", "outcome": "positive", "confirmed": False, "basis": "admitted-use"},
            "witnessed",
        ),
        (
            {"collected_on": "2026-05-14", "outcome": "positive", "confirmed": True, "basis": "a clinician said so"},
            "with its basis",
        ),
        ({"collected_on": "2026-05-14", "outcome": "confirmed"}, "cannot be reported"),
        ({"outcome": "negative"}, "needs the fact"),
        ({"collected_on": "2026-05-14", "outcome": "negative", "positive_for": {"name": "x"}}, "must be text"),
        ({"collected_on": "2026-05-14", "outcome": "negative", "observed": float("nan")}, "must be text"),
    ],
)
def test_report_facts_are_checked(facts, message):
    with pytest.raises(ValueError, match=message):
        build_report(SCREENING_RESULTS, facts, CASE, make_consent(), "D-1", DURING)


def test_a_confirmed_positive_is_reported():
    facts = {
        "collected_on": "2026-05-14",
        "outcome": "positive",
        "confirmed": True,
        "positive_for": ["fentanyl"],
        "basis": "laboratory-confirmed",
    }
    payload = build_report(SCREENING_RESULTS, facts, CASE, make_consent(), "D-1", DURING, forensic=True)
    assert payload["data"]["positive_for"] == ["fentanyl"]
    assert payload["basis"] == "laboratory-confirmed" and payload["forensic"] is True


def test_a_presumptive_screen_is_worded_as_presumptive():
    from domain.result_basis import PRESUMPTIVE_WORDING

    facts = {
        "collected_on": "2026-05-14",
        "outcome": "presumptive-positive",
        "confirmed": False,
        "basis": "presumptive-screen",
        "statement": PRESUMPTIVE_WORDING,
    }
    payload = build_report(SCREENING_RESULTS, facts, CASE, make_consent(), "D-1", DURING)
    assert payload["data"]["statement"].startswith("presumptive positive") and payload["data"]["confirmed"] is False


def test_periodic_summary_goes_through_monthly_summary():
    with pytest.raises(ValueError, match="monthly_summary"):
        build_report(PERIODIC_SUMMARY, {}, CASE, covering(PERIODIC_SUMMARY), "D-1", DURING)


def test_notice_choice():
    assert redisclosure_notice() == REDISCLOSURE_NOTICE
    assert REDISCLOSURE_NOTICE.startswith("This record which has been disclosed to you is protected by Federal")
    assert redisclosure_notice(max_chars=160) == REDISCLOSURE_NOTICE_SHORT
    assert REDISCLOSURE_NOTICE_SHORT == "42 CFR part 2 prohibits unauthorized use or disclosure of these records."
    with pytest.raises(ValueError, match="cannot carry"):
        redisclosure_notice(max_chars=40)


# --- monthly summary and completion letter ---------------------------------------------------

MONTH_FACTS = {
    SCREENING_RESULTS: [{"outcome": "negative"}, {"outcome": "negative"}, {"outcome": "positive", "drug": "x"}],
    MISSED_TESTS: [{"scheduled_on": "2026-03-04"}],
    REFUSALS: [],
    MEDICATION_ADHERENCE: [{"doses_expected": 28, "doses_taken": 26}, {"doses_expected": 3, "doses_taken": 3}],
    PHASE_CHANGES: [
        {"to_phase": "phase-2", "effective_on": "2026-03-10"},
        {"to_phase": "phase-1", "effective_on": "2026-02-01"},
    ],
    ATTENDANCE: [{"attended": True}, {"attended": False, "excused": True}, {"attended": False}, {"status": "late"}],
    PROGRAM_STATUS: [],
    MISSED_CHECK_INS: [{"day": "2026-03-05"}, {"day": "2026-03-06"}],
}
EXPECTED_SECTIONS = {
    SCREENING_RESULTS: {"total": 3, "by_outcome": {"negative": 2, "positive": 1, "invalid": 0}},
    MISSED_TESTS: {"missed": 1},
    REFUSALS: {"refusals": 0},
    MEDICATION_ADHERENCE: {"doses_expected": 31, "doses_taken": 29, "adherence_ratio": 0.94},
    PHASE_CHANGES: {
        "phase": "phase-2",
        "since": "2026-03-10",
        "changes": [
            {"to_phase": "phase-1", "effective_on": "2026-02-01"},
            {"to_phase": "phase-2", "effective_on": "2026-03-10"},
        ],
    },
    ATTENDANCE: {"sessions": 4, "attended": 2, "late": 1, "excused": 1, "unexcused": 1},
    PROGRAM_STATUS: {"status": "active", "since": None},
    MISSED_CHECK_INS: {"missed_check_ins": 2},
}
EXPECTED_SENTENCES = {
    SCREENING_RESULTS: "Drug screens: 3 (2 negative, 1 positive, 0 invalid).",
    MISSED_TESTS: "Missed tests: 1.",
    REFUSALS: "Refusals to test: 0.",
    MEDICATION_ADHERENCE: "Medication: 29 of 31 expected doses taken (94%).",
    PHASE_CHANGES: "Final phase: phase-2.",
    ATTENDANCE: "Sessions: 2 of 4 attended (1 late); 1 excused and 1 unexcused absence(s).",
    MISSED_CHECK_INS: "Missed check-ins: 2.",
}


@pytest.mark.parametrize("category", REPORT_CATEGORIES)
def test_monthly_summary_holds_only_covered_categories(category):
    payload = monthly_summary(MONTH_FACTS, covering(PERIODIC_SUMMARY, category), "2026-03", CASE, "D-9", DURING)
    assert payload["type"] == "summary.monthly"
    assert payload["data"] == {"month": "2026-03", "sections": {category: EXPECTED_SECTIONS[category]}}
    assert "drug" not in all_keys(payload)
    assert payload["redisclosure_notice"]["text"] == REDISCLOSURE_NOTICE


def test_monthly_summary_with_everything_covered():
    payload = monthly_summary(MONTH_FACTS, covering(*CATEGORIES), "2026-03", CASE, "D-9", DURING)
    assert payload["data"]["sections"] == EXPECTED_SECTIONS


def test_monthly_summary_refusals():
    with pytest.raises(ConsentError, match="does not include periodic-summary"):
        monthly_summary(MONTH_FACTS, covering(SCREENING_RESULTS), "2026-03", CASE, "D-9", DURING)
    with pytest.raises(ValueError, match="no entries were given for it"):
        monthly_summary({}, covering(PERIODIC_SUMMARY, MISSED_TESTS), "2026-03", CASE, "D-9", DURING)
    with pytest.raises(ValueError, match="YYYY-MM"):
        monthly_summary(MONTH_FACTS, covering(PERIODIC_SUMMARY), "2026-13", CASE, "D-9", DURING)
    with pytest.raises(ValueError, match="doses taken but only"):
        bad = {MEDICATION_ADHERENCE: [{"doses_expected": 1, "doses_taken": 2}]}
        monthly_summary(bad, covering(PERIODIC_SUMMARY, MEDICATION_ADHERENCE), "2026-03", CASE, "D-9", DURING)


@pytest.mark.parametrize("category", [c for c in REPORT_CATEGORIES if c != PROGRAM_STATUS])
def test_completion_letter_holds_only_covered_categories(category):
    consent = covering(PROGRAM_STATUS, category)
    payload = completion_letter(MONTH_FACTS, consent, "2026-05-29", CASE, "D-10", DURING)
    data = payload["data"]
    assert payload["type"] == "letter.completion"
    assert data["status"] == "completed" and data["completed_on"] == "2026-05-29"
    assert data["sections"] == {category: EXPECTED_SECTIONS[category]}
    assert EXPECTED_SENTENCES[category] in data["text"]
    for other, sentence in EXPECTED_SENTENCES.items():
        if other != category:
            assert sentence.split(":")[0] not in data["text"]


def test_completion_letter_text():
    consent = covering(*CATEGORIES)
    text = completion_letter(MONTH_FACTS, consent, "2026-05-29", CASE, "D-10", DURING)["data"]["text"]
    assert text.startswith("Re: case number DC-2026-0042\n")
    headline = "Riverside IOP confirms that the participant completed its intensive outpatient program on 2026-05-29."
    assert headline in text
    assert all(sentence in text for sentence in EXPECTED_SENTENCES.values())
    assert "consent C-12, signed 2026-03-01, for this purpose: monitor progress in drug court" in text
    assert text.endswith(REDISCLOSURE_NOTICE)


def test_completion_letter_refusals():
    with pytest.raises(ConsentError, match="does not include program-status"):
        completion_letter(MONTH_FACTS, covering(SCREENING_RESULTS), "2026-05-29", CASE, "D-10", DURING)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        completion_letter(MONTH_FACTS, covering(PROGRAM_STATUS), "29/05/2026", CASE, "D-10", DURING)


# --- properties: find_covering_consent and can_revoke against an oracle ------------------------

BASE = datetime(2026, 1, 1, tzinfo=UTC)
OFFSETS = (UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=2)))
FEW_CATEGORIES = (SCREENING_RESULTS, MISSED_TESTS, REFUSALS)
EXPIRY_EVENTS = ("discharge", "completion", "final-disposition")
ALL_EVENTS = ("discharge", "completion", "final-disposition", "supervision-ended")


def moment(hour: int, offset: timezone) -> str:
    return (BASE + timedelta(hours=hour)).astimezone(offset).isoformat()


@dataclass
class Model:
    """A consent in whole hours since BASE, as the oracle sees it."""

    consent_id: str
    recipient: str
    categories: frozenset[str]
    signed: int
    effective: int
    expires: int | None
    expiry_event: str | None
    criminal_justice: bool
    revocable_after: int | None
    revocable_event: str | None
    revoked: int | None = None
    events: list[tuple[str, int]] = field(default_factory=list)

    def happened(self, event: str) -> int | None:
        # Completion is also a discharge.
        hours = [h for e, h in self.events if e == event or (event == "discharge" and e == "completion")]
        return min(hours) if hours else None

    def covers(self, recipient: str, category: str, hour: int) -> bool:
        ended_at = self.happened(self.expiry_event) if self.expiry_event is not None else None
        ended_by_event = ended_at is not None and ended_at <= hour
        return (
            self.recipient == recipient
            and category in self.categories
            and self.effective <= hour
            and not (self.revoked is not None and self.revoked <= hour)
            and not (self.expires is not None and self.expires <= hour)
            and not ended_by_event
        )

    def may_revoke(self, hour: int) -> bool:
        if self.revoked is not None or hour < self.signed:
            return False
        if not self.criminal_justice:
            return True
        moments = [self.happened("final-disposition"), self.revocable_after]
        if self.revocable_event is not None:
            moments.append(self.happened(self.revocable_event))
        known = [m for m in moments if m is not None]
        return bool(known) and min(known) <= hour


@st.composite
def grants(draw, index: int) -> Model:
    signed = draw(st.integers(0, 200))
    effective = signed + draw(st.integers(0, 24))
    by_date, by_event = draw(st.sampled_from([(True, False), (False, True), (True, True)]))
    criminal_justice = draw(st.booleans())
    revocable_after = revocable_event = None
    if criminal_justice:
        if draw(st.booleans()):
            revocable_after = signed + draw(st.integers(0, 300))
        else:
            revocable_event = draw(st.sampled_from(ALL_EVENTS))
    return Model(
        consent_id=f"C-{index}",
        recipient=draw(st.sampled_from(("R-1", "R-2"))),
        categories=frozenset(draw(st.sets(st.sampled_from(FEW_CATEGORIES), min_size=1))),
        signed=signed,
        effective=effective,
        expires=effective + draw(st.integers(1, 300)) if by_date else None,
        expiry_event=draw(st.sampled_from(EXPIRY_EVENTS)) if by_event else None,
        criminal_justice=criminal_justice,
        revocable_after=revocable_after,
        revocable_event=revocable_event,
    )


def to_consent(model: Model, offset: timezone) -> Consent:
    def at(hour):
        return None if hour is None else moment(hour, offset)

    return Consent(
        consent_id=model.consent_id,
        participant_id="P-1",
        recipient_id=model.recipient,
        recipient_kind="court" if model.criminal_justice else "employer",
        categories=tuple(c for c in FEW_CATEGORIES if c in model.categories),
        purpose="monitoring",
        disclosing_program="Riverside IOP",
        signer="participant",
        signed_at=at(model.signed),
        signature_method="wet-ink",
        effective_from=at(model.effective),
        expires_at=at(model.expires),
        expires_on_event=model.expiry_event,
        criminal_justice=model.criminal_justice,
        revocable_after=at(model.revocable_after),
        revocable_after_event=model.revocable_event,
    )


def boundaries(model: Model) -> list[int]:
    return [h for h in (model.signed, model.effective, model.expires, model.revocable_after) if h is not None]


@st.composite
def histories(draw):
    """Grants, then revocations and events, then queries. Moments are drawn often from the hours
    already in play, so that "at the exact instant" cases come up rather than once in a blue moon."""
    models = [draw(grants(i)) for i in range(draw(st.integers(0, 4)))]
    seen = [h for model in models for h in boundaries(model)]

    def hour():
        return draw(st.sampled_from(seen)) if seen and draw(st.booleans()) else draw(st.integers(0, 600))

    operations = []
    for _ in range(draw(st.integers(0, 8))):
        kind, index = draw(st.sampled_from(("revoke", "event"))), draw(st.integers(0, 3))
        operation = (kind, index, draw(st.sampled_from(ALL_EVENTS)), hour(), draw(st.sampled_from(OFFSETS)))
        seen.append(operation[3])
        operations.append(operation)
    queries = []
    for _ in range(draw(st.integers(1, 6))):
        recipient, category = draw(st.sampled_from(("R-1", "R-2"))), draw(st.sampled_from(FEW_CATEGORIES))
        queries.append((recipient, category, hour(), draw(st.sampled_from(OFFSETS))))
    return models, operations, queries


@settings(max_examples=300, deadline=None)
@given(history=histories(), offset=st.sampled_from(OFFSETS))
def test_find_covering_consent_agrees_with_the_oracle(history, offset):
    models, operations, queries = history
    consents = [to_consent(model, offset) for model in models]
    for kind, index, event, hour, op_offset in operations:
        if index >= len(models):
            continue
        model, at = models[index], moment(hour, op_offset)
        if kind == "event":
            consents[index] = record_event(consents[index], event, at)
            if (event, hour) not in model.events:
                model.events.append((event, hour))
            continue
        assert can_revoke(consents[index], at)[0] == model.may_revoke(hour)
        try:
            consents[index] = revoke(consents[index], at, "participant request")
        except ConsentError:
            continue
        model.revoked = hour

    for recipient, category, hour, query_offset in queries:
        found, reason = find_covering_consent(consents, recipient, category, moment(hour, query_offset))
        covering_ids = {m.consent_id for m in models if m.covers(recipient, category, hour)}
        if covering_ids:
            assert found is not None and found.consent_id in covering_ids, reason
        else:
            assert found is None, reason


# --- properties: build_report never sends a disallowed key -----------------------------------

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=8))
PII_KEYS = ("name", "first_name", "dob", "date_of_birth", "phone", "email", "address", "home_address")
ENVELOPE_KEYS = {"type", "timestamp", "disclosure_id", "category", "subject", "data", "consent", "redisclosure_notice"}
REFERENCE_KEYS = {
    "consent_id", "signed_at", "disclosing_program", "purpose", "categories", "expires_at", "expires_on_event",
    "text", "citation", "use_restriction", "corrects",
}  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    category=st.sampled_from(REPORT_CATEGORIES),
    extra_facts=st.dictionaries(st.one_of(st.text(min_size=1, max_size=12), st.sampled_from(PII_KEYS)), SCALARS),
    extra_identifiers=st.dictionaries(
        st.one_of(st.text(min_size=1, max_size=12), st.sampled_from(PII_KEYS)), st.text(min_size=1, max_size=8)
    ),
    criminal_justice=st.booleans(),
)
def test_build_report_never_includes_a_disallowed_key(category, extra_facts, extra_identifiers, criminal_justice):
    protected = set(REQUIRED_FACTS[category]) | {"outcome", "status", "confirmed"}
    facts = {**{k: v for k, v in extra_facts.items() if k not in protected}, **GOOD_FACTS[category]}
    identifiers = {**{k: v for k, v in extra_identifiers.items() if k not in SUBJECT_IDENTIFIER_KEYS}, **CASE}
    consent = criminal_justice_consent(categories=(category,)) if criminal_justice else covering(category)
    payload = build_report(category, facts, identifiers, consent, "D-1", DURING)
    assert set(payload["data"]) <= set(FACT_KEYS[category])
    assert set(payload["subject"]) <= set(SUBJECT_IDENTIFIER_KEYS)
    keys = all_keys(payload)
    allowed = ENVELOPE_KEYS | REFERENCE_KEYS | set(FACT_KEYS[category]) | set(SUBJECT_IDENTIFIER_KEYS)
    assert keys <= allowed, keys - allowed
    assert not any(part in key.lower() for key in keys for part in PII_PARTS)
    json.loads(encode_payload(payload))
