"""What a report to a court, probation officer or employer may say (42 CFR 2.13(a) minimum
necessary, 2.31 consent, 2.32 notice, 2.35 criminal justice).

A report carries the minimum necessary: per information category an explicit allow-list of facts
(anything else the caller passes is dropped, never sent), the identifiers the recipient already
knows (never a name, birth date or contact detail), the 42 CFR 2.32 redisclosure notice, and a
reference to the consent it goes out under. Every builder checks that consent again at the moment
of issue, so no report can be built for information the consent does not cover.

How a report is identified, signed and delivered lives beside it: domain.disclosure_ids,
domain.webhook_signing, domain.delivery_retry; what a reported positive rests on: domain.result_basis.

Pure and stdlib-only: imported inside Temporal's deterministic workflow sandbox. The caller passes
every moment; nothing here reads a clock, the environment or the network.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from typing import Any

from domain.attendance import AttendanceStatus
from domain.attendance import check_status as check_attendance_status
from domain.attendance import summarize as summarize_attendance
from domain.checks import require_text as _require_text
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
    check_category,
    coverage,
)
from domain.result_basis import BASES, CONFIRMING_BASES, PRESUMPTIVE_WORDING, Basis
from domain.vocab import Vocabulary

# --- the redisclosure notice (42 CFR 2.32) ---------------------------------------------------

NOTICE_CITATION = "42 CFR 2.32(a), as amended by the 2024 final rule (89 FR 12472)"

# 2.32(a)(1), "Statement 1", word for word: the regulation prescribes this text.
REDISCLOSURE_NOTICE = (
    "This record which has been disclosed to you is protected by Federal confidentiality rules "
    "(42 CFR part 2). These rules prohibit you from using or disclosing this record, or testimony "
    "that describes the information contained in this record, in any civil, criminal, administrative, "
    "or legislative proceedings by any Federal, State, or local authority, against the patient, unless "
    "authorized by the consent of the patient, except as provided at 42 CFR 2.12(c)(5) or as authorized "
    "by a court in accordance with 42 CFR 2.64 or 2.65. In addition, the Federal rules prohibit you "
    "from making any other use or disclosure of this record unless at least one of the following applies:\n"
    "(i) Further use or disclosure is expressly permitted by the written consent of the individual whose "
    "information is being disclosed in this record or as otherwise permitted by 42 CFR part 2.\n"
    "(ii) You are a covered entity or business associate and have received the record for treatment, "
    "payment, or health care operations, or\n"
    "(iii) You have received the record from a covered entity or business associate as permitted by "
    "45 CFR part 164, subparts A and E.\n"
    "A general authorization for the release of medical or other information is NOT sufficient to meet "
    "the required elements of written consent to further use or redisclose the record (see 42 CFR 2.31)."
)

# 2.32(a)(2), "Statement 2". The 2024 rule added "use or"; the pre-2024 wording was
# "42 CFR part 2 prohibits unauthorized disclosure of these records."
REDISCLOSURE_NOTICE_SHORT = "42 CFR part 2 prohibits unauthorized use or disclosure of these records."

# 2.35(d), in our words: what a criminal-justice recipient may do with what it receives.
CRIMINAL_JUSTICE_USE = (
    "Under 42 CFR 2.35(d) this information may be used and redisclosed only to carry out official "
    "duties with regard to the participant's conditional release or other action in connection with "
    "which the participant gave consent."
)


def redisclosure_notice(max_chars: int | None = None) -> str:
    """The notice for a channel: the standard statement, or the short form when it cannot fit.

    Either satisfies 2.32(a); the standard one tells a recipient unfamiliar with Part 2 what it may
    not do, so it is sent wherever it fits (every JSON report and letter).
    """
    if max_chars is None or len(REDISCLOSURE_NOTICE) <= max_chars:
        return REDISCLOSURE_NOTICE
    if len(REDISCLOSURE_NOTICE_SHORT) <= max_chars:
        return REDISCLOSURE_NOTICE_SHORT
    raise ValueError(
        f"a channel of {max_chars} characters cannot carry even the short redisclosure notice "
        f"({len(REDISCLOSURE_NOTICE_SHORT)} characters); use another channel"
    )


# --- what a report may say --------------------------------------------------------------------

# Facts each category may carry: everything else the caller passes is dropped. Left out on purpose:
# medication names (adherence is the information consented to, not the prescription), clinical
# notes, lab and specimen ids, collector names, and any internal participant id.
FACT_KEYS: dict[str, tuple[str, ...]] = {
    # "confirmed": confirmed by a second method or verified by a clinician/MRO.
    SCREENING_RESULTS: (
        "collected_on",
        "specimen_type",
        "observed",
        "outcome",
        "positive_for",
        "confirmed",
        "dilute",
        "basis",
        "statement",
        "breath_alcohol",
        "device_id",
        "admission_witnessed_by",
    ),
    MISSED_TESTS: ("scheduled_on", "window_closed_at"),
    REFUSALS: ("occurred_on", "refusal_kind"),
    MEDICATION_ADHERENCE: ("period_start", "period_end", "doses_expected", "doses_taken", "adherence_ratio"),
    PHASE_CHANGES: ("from_phase", "to_phase", "effective_on"),
    # One session's record (session_on, session_kind, attendance_status) or a period's counts.
    ATTENDANCE: (
        "period_start",
        "period_end",
        "sessions_scheduled",
        "sessions_attended",
        "sessions_excused",
        "session_on",
        "session_kind",
        "attendance_status",
    ),
    PROGRAM_STATUS: ("status", "effective_on", "discharge_kind"),
    # The program day whose required check-in was not made, and when it was due.
    MISSED_CHECK_INS: ("scheduled_on", "due_by"),
}

# Without these a report says nothing the recipient can use.
REQUIRED_FACTS: dict[str, tuple[str, ...]] = {
    SCREENING_RESULTS: ("collected_on", "outcome"),
    MISSED_TESTS: ("scheduled_on",),
    REFUSALS: ("occurred_on",),
    MEDICATION_ADHERENCE: ("period_start", "period_end", "doses_expected", "doses_taken"),
    PHASE_CHANGES: ("to_phase", "effective_on"),
    ATTENDANCE: ("period_start", "period_end", "sessions_scheduled", "sessions_attended"),
    PROGRAM_STATUS: ("status", "effective_on"),
    MISSED_CHECK_INS: ("scheduled_on",),
}
# Categories whose report may instead carry another complete set of facts: one attended (or missed) session.
ALTERNATIVE_FACTS: dict[str, tuple[str, ...]] = {ATTENDANCE: ("session_on", "attendance_status")}

REPORT_TYPES: dict[str, str] = {
    SCREENING_RESULTS: "screening.result",
    MISSED_TESTS: "screening.missed",
    REFUSALS: "screening.refusal",
    MEDICATION_ADHERENCE: "medication.adherence",
    PHASE_CHANGES: "participant.phase-changed",
    ATTENDANCE: "attendance.period",
    PROGRAM_STATUS: "participant.discharged",  # "participant.completed" when the status is completed
    PERIODIC_SUMMARY: "summary.monthly",
    MISSED_CHECK_INS: "check-in.missed",
}
COMPLETED_TYPE = "participant.completed"
COMPLETION_LETTER_TYPE = "letter.completion"
# What each report type is called on paper (the document's title), beside the type it names.
REPORT_TITLES: dict[str, str] = {
    REPORT_TYPES[SCREENING_RESULTS]: "Screening result",
    REPORT_TYPES[MISSED_TESTS]: "Missed test",
    REPORT_TYPES[REFUSALS]: "Refused test",
    REPORT_TYPES[MEDICATION_ADHERENCE]: "Medication adherence",
    REPORT_TYPES[PHASE_CHANGES]: "Phase change",
    REPORT_TYPES[ATTENDANCE]: "Attendance",
    REPORT_TYPES[PROGRAM_STATUS]: "Discharge",
    COMPLETED_TYPE: "Program completion",
    REPORT_TYPES[PERIODIC_SUMMARY]: "Monthly summary",
    REPORT_TYPES[MISSED_CHECK_INS]: "Missed check-in",
    COMPLETION_LETTER_TYPE: "Letter of completion",
}


class ReportOutcome(Vocabulary):
    """A screening result as a report states it. A presumptive positive never reaches a recipient as positive:
    "positive" needs confirmed=true."""

    NEGATIVE = "negative"
    POSITIVE = "positive"
    PRESUMPTIVE_POSITIVE = "presumptive-positive"
    INVALID = "invalid"


class RetractionReason(Vocabulary):
    """Why an amendment says the earlier report no longer stands (never free text)."""

    EXCUSED = "excused"
    CORRECTED = "corrected"
    NOT_REPORTABLE = "not-reportable"
    VOIDED = "voided"


class ReportedProgramStatus(Vocabulary):
    """How a program-status report says the participant left."""

    COMPLETED = "completed"
    DISCHARGED = "discharged"


SCREENING_OUTCOMES: tuple[str, ...] = tuple(ReportOutcome)
RETRACTION_REASONS: tuple[str, ...] = tuple(RetractionReason)
RETRACTED_TYPE_SUFFIX = ".retracted"
PROGRAM_STATUSES: tuple[str, ...] = tuple(ReportedProgramStatus)

# The identifiers a recipient already holds for the participant. Anything else is dropped.
SUBJECT_IDENTIFIER_KEYS: tuple[str, ...] = (
    "case_number",
    "docket_number",
    "supervision_id",
    "employee_id",
    "recipient_reference",
)

# Last line of defence against a future allow-list edit: no key in a payload may look like these.
_IDENTIFYING_KEY_PARTS: tuple[str, ...] = ("name", "dob", "birth", "phone", "email", "address", "ssn")


def build_report(
    category: str,
    facts: Mapping[str, Any],
    recipient_identifiers: Mapping[str, Any],
    consent: Consent,
    disclosure_id: str,
    issued_at: str,
    *,
    corrects: str | None = None,
    forensic: bool | None = None,
) -> dict[str, Any]:
    """The JSON payload disclosing one fact of `category` under `consent`, issued at `issued_at`.

    Raises ConsentError when the consent does not cover the category at that moment, ValueError
    when the facts lack what the category needs. `corrects` names the disclosure this one replaces.
    """
    check_category(category)
    if category == PERIODIC_SUMMARY:
        raise ValueError("a periodic-summary report is built by monthly_summary, not build_report")
    data = allowed_facts(category, facts)
    payload = _envelope(
        report_type=_report_type(category, data),
        category=category,
        data=data,
        recipient_identifiers=recipient_identifiers,
        consent=consent,
        disclosure_id=disclosure_id,
        issued_at=issued_at,
        corrects=corrects,
    )
    if forensic is not None:
        payload["forensic"] = forensic
    if category == SCREENING_RESULTS:
        payload["basis"] = data.get("basis")
    return payload


def build_retraction(
    category: str,
    reason: str,
    recipient_identifiers: Mapping[str, Any],
    consent: Consent,
    disclosure_id: str,
    issued_at: str,
    *,
    amends: str,
) -> dict[str, Any]:
    """A report that withdraws an earlier one (`amends`): what it said no longer stands, for `reason`
    (RETRACTION_REASONS). It carries no new fact, only that the earlier report is withdrawn."""
    check_category(category)
    if reason not in RETRACTION_REASONS:
        raise ValueError(f"retraction reason {reason!r} is not one of {', '.join(RETRACTION_REASONS)}")
    _require_text("amends", amends)
    return _envelope(
        report_type=REPORT_TYPES[category] + RETRACTED_TYPE_SUFFIX,
        category=category,
        data={"retracted": True, "retraction_reason": reason},
        recipient_identifiers=recipient_identifiers,
        consent=consent,
        disclosure_id=disclosure_id,
        issued_at=issued_at,
        corrects=amends,
    )


# Reports about one event that speak to the same question: a later one amends or withdraws the earlier.
# A miss stays a miss when a late specimen is tested; a result and a refusal (substituted, adulterated)
# answer the same question, so a positive corrected to "substituted" amends the positive.
_AMENDMENT_SLOTS: dict[str, str] = {SCREENING_RESULTS: "outcome", REFUSALS: "outcome", MISSED_TESTS: "missed"}


def amendment_slot(category: str) -> str:
    """Which earlier reports of the same event a report of `category` amends: those in the same slot."""
    check_category(category)
    return _AMENDMENT_SLOTS.get(category, category)


def slot_categories(category: str) -> tuple[str, ...]:
    slot = amendment_slot(category)
    return tuple(c for c in CATEGORIES if amendment_slot(c) == slot)


def allowed_facts(category: str, facts: Mapping[str, Any]) -> dict[str, Any]:
    """The facts of `category` a report may carry: the allow-listed keys only, checked."""
    if not isinstance(facts, Mapping):
        raise ValueError("facts must be a mapping of fact name to value")
    missing = [key for key in REQUIRED_FACTS[category] if facts.get(key) is None]
    alternative = ALTERNATIVE_FACTS.get(category)
    if missing and alternative and all(facts.get(key) is not None for key in alternative):
        missing = []
    if missing:
        raise ValueError(f"a {category} report needs the fact(s) {', '.join(missing)}")
    kept = {key: _plain_value(key, facts[key]) for key in FACT_KEYS[category] if key in facts}
    _check_fact_values(category, kept)
    return kept


def _report_type(category: str, data: Mapping[str, Any]) -> str:
    if category == PROGRAM_STATUS and data["status"] == "completed":
        return COMPLETED_TYPE
    return REPORT_TYPES[category]


def _check_fact_values(category: str, data: Mapping[str, Any]) -> None:
    if category == SCREENING_RESULTS:
        if data["outcome"] not in SCREENING_OUTCOMES:
            raise ValueError(
                f"screening outcome {data['outcome']!r} cannot be reported; use one of {', '.join(SCREENING_OUTCOMES)}"
            )
        _check_basis(data)
    if category == ATTENDANCE and "attendance_status" in data:
        check_attendance_status(data["attendance_status"])
    if category == PROGRAM_STATUS and data["status"] not in PROGRAM_STATUSES:
        raise ValueError(f"program status {data['status']!r} is not one of {', '.join(PROGRAM_STATUSES)}")


def _check_basis(data: Mapping[str, Any]) -> None:
    """A positive states its basis; "confirmed" is true exactly when the basis confirms; a presumptive screen
    is worded as presumptive and never reported as a plain positive."""
    outcome, basis = data["outcome"], data.get("basis")
    if outcome not in (ReportOutcome.POSITIVE, ReportOutcome.PRESUMPTIVE_POSITIVE):
        if basis is not None and basis not in BASES:
            raise ValueError(f"basis {basis!r} is not one of {', '.join(BASES)}")
        return
    if basis not in BASES:
        raise ValueError(f"a {outcome} result is reported with its basis, one of {', '.join(BASES)}; got {basis!r}")
    if basis == Basis.PRESUMPTIVE_SCREEN:
        if outcome != "presumptive-positive" or data.get("confirmed") is not False:
            raise ValueError(
                "a presumptive screen is reported as outcome presumptive-positive with confirmed "
                "false, never as a confirmed positive: wait for the lab's confirmation or report it "
                "as presumptive"
            )
        if data.get("statement") != PRESUMPTIVE_WORDING:
            raise ValueError("a presumptive-positive report carries the presumptive statement (PRESUMPTIVE_WORDING)")
        return
    if outcome != "positive":
        raise ValueError(f"a result with basis {basis} is reported as outcome positive")
    if data.get("confirmed") is not (basis in CONFIRMING_BASES):
        raise ValueError(f"confirmed must be {basis in CONFIRMING_BASES} for basis {basis}")
    if basis == Basis.ADMITTED_USE and not data.get("admission_witnessed_by"):
        raise ValueError("an admitted-use result names who witnessed the admission (admission_witnessed_by)")


def _plain_value(key: str, value: Any) -> Any:
    """A JSON scalar or a list of them. A nested object could carry keys no allow-list has seen."""
    if isinstance(value, list | tuple):
        return [_plain_scalar(key, item) for item in value]
    return _plain_scalar(key, value)


def _plain_scalar(key: str, value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise ValueError(f"fact {key} must be text, a number, true/false or a list of those; got {type(value).__name__}")


# --- the envelope every report shares ----------------------------------------------------------


def _envelope(
    *,
    report_type: str,
    category: str,
    data: dict[str, Any],
    recipient_identifiers: Mapping[str, Any],
    consent: Consent,
    disclosure_id: str,
    issued_at: str,
    corrects: str | None,
) -> dict[str, Any]:
    require_coverage(consent, category, issued_at)
    _require_text("disclosure_id", disclosure_id)
    payload: dict[str, Any] = {
        "type": report_type,
        "timestamp": issued_at,
        "disclosure_id": disclosure_id,
        "category": category,
        "subject": subject_identifiers(recipient_identifiers),
        "data": data,
        "consent": consent_reference(consent),
        "redisclosure_notice": {"text": redisclosure_notice(), "citation": NOTICE_CITATION},
    }
    if consent.criminal_justice:
        payload["use_restriction"] = CRIMINAL_JUSTICE_USE
    if corrects is not None:
        _require_text("corrects", corrects)
        if corrects == disclosure_id:
            raise ValueError(f"disclosure {disclosure_id} cannot correct itself; give the id of the one it replaces")
        payload["corrects"] = corrects
        # "amends": the id of the report this one amends or withdraws (the recipient's earlier webhook-id).
        payload["amends"] = corrects
    _refuse_identifying_keys(payload)
    return payload


def require_coverage(consent: Consent, category: str, at: str) -> None:
    """Raise ConsentError unless `consent` covers `category` for its own recipient at `at`."""
    result = coverage(consent, consent.recipient_id, category, at)
    if not result.covered:
        raise ConsentError(result.reason)


def subject_identifiers(recipient_identifiers: Mapping[str, Any]) -> dict[str, str]:
    """The identifiers the recipient already knows, allow-listed. At least one is needed."""
    if not isinstance(recipient_identifiers, Mapping):
        raise ValueError("recipient_identifiers must be a mapping, e.g. {'case_number': 'DC-2026-0042'}")
    kept = {key: recipient_identifiers[key] for key in SUBJECT_IDENTIFIER_KEYS if key in recipient_identifiers}
    for key, value in kept.items():
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"identifier {key} must be non-empty text")
    if not kept:
        raise ValueError(
            "a report needs an identifier the recipient already knows, one of "
            f"{', '.join(SUBJECT_IDENTIFIER_KEYS)}; record it on the recipient's enrolment"
        )
    return kept


def consent_reference(consent: Consent) -> dict[str, Any]:
    """The consent's scope, as 2.32(b) asks to accompany each disclosure. The signer (a name) stays out."""
    return {
        "consent_id": consent.consent_id,
        "signed_at": consent.signed_at,
        "disclosing_program": consent.disclosing_program,
        "purpose": consent.purpose,
        "categories": list(consent.categories),
        "expires_at": consent.expires_at,
        "expires_on_event": consent.expires_on_event,
    }


def _refuse_identifying_keys(value: Any, path: str = "payload") -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            lowered = str(key).lower()
            if any(part in lowered for part in _IDENTIFYING_KEY_PARTS):
                raise ValueError(f"{path}.{key} looks like a personal identifier and may not be disclosed")
            _refuse_identifying_keys(item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            _refuse_identifying_keys(item, path)


# --- monthly summary and completion letter -----------------------------------------------------


def monthly_summary(
    facts_by_category: Mapping[str, list[Mapping[str, Any]]],
    consent: Consent,
    month: str,
    recipient_identifiers: Mapping[str, Any],
    disclosure_id: str,
    issued_at: str,
    *,
    corrects: str | None = None,
) -> dict[str, Any]:
    """A month's summary, with a section for each category the consent covers and no other.

    The consent must cover periodic-summary. `facts_by_category` maps a category to that month's
    entries (see the section builders); a covered category needs an entry, [] when nothing happened,
    so a forgotten list is never reported as "none".
    """
    _check_month(month)
    sections = covered_sections(facts_by_category, consent, skip=(PERIODIC_SUMMARY,))
    return _envelope(
        report_type=REPORT_TYPES[PERIODIC_SUMMARY],
        category=PERIODIC_SUMMARY,
        data={"month": month, "sections": sections},
        recipient_identifiers=recipient_identifiers,
        consent=consent,
        disclosure_id=disclosure_id,
        issued_at=issued_at,
        corrects=corrects,
    )


def completion_letter(
    facts_by_category: Mapping[str, list[Mapping[str, Any]]],
    consent: Consent,
    completed_on: str,
    recipient_identifiers: Mapping[str, Any],
    disclosure_id: str,
    issued_at: str,
    *,
    corrects: str | None = None,
) -> dict[str, Any]:
    """A letter confirming completion: readable `text` plus the same facts as fields.

    The consent must cover program-status (the letter's subject); every other covered category
    adds a section over the whole program, uncovered ones are left out entirely.
    """
    _check_date("completed_on", completed_on)
    sections = covered_sections(facts_by_category, consent, skip=(PERIODIC_SUMMARY, PROGRAM_STATUS))
    identifiers = subject_identifiers(recipient_identifiers)
    text = _letter_text(consent, completed_on, identifiers, sections)
    return _envelope(
        report_type=COMPLETION_LETTER_TYPE,
        category=PROGRAM_STATUS,
        data={"status": "completed", "completed_on": completed_on, "sections": sections, "text": text},
        recipient_identifiers=recipient_identifiers,
        consent=consent,
        disclosure_id=disclosure_id,
        issued_at=issued_at,
        corrects=corrects,
    )


def covered_sections(
    facts_by_category: Mapping[str, list[Mapping[str, Any]]], consent: Consent, skip: Iterable[str] = ()
) -> dict[str, dict[str, Any]]:
    """A section per category the consent includes, in CATEGORIES order; entries of others are ignored."""
    skipped = set(skip)
    sections = {}
    for category in CATEGORIES:
        if category in skipped or category not in consent.categories:
            continue
        if category not in facts_by_category:
            raise ValueError(f"the consent covers {category} but no entries were given for it; pass [] if none")
        entries = facts_by_category[category]
        if not isinstance(entries, list | tuple) or any(not isinstance(e, Mapping) for e in entries):
            raise ValueError(f"entries for {category} must be a list of mappings")
        sections[category] = _SECTION_BUILDERS[category](entries)
    return sections


def _screening_section(entries: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Screens counted by outcome. Entries: {"outcome": "negative" | "positive" | "invalid"}."""
    counts: dict[str, int] = {}
    for entry in entries:
        outcome = entry.get("outcome")
        if outcome not in SCREENING_OUTCOMES:
            raise ValueError(
                f"screening outcome {outcome!r} cannot be summarised; use one of {', '.join(SCREENING_OUTCOMES)}"
            )
        counts[outcome] = counts.get(outcome, 0) + 1
    shown = [o for o in SCREENING_OUTCOMES if o != "presumptive-positive" or counts.get(o)]
    return {"total": len(entries), "by_outcome": {outcome: counts.get(outcome, 0) for outcome in shown}}


def _missed_section(entries: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Unexcused missed tests: one entry each (excused absences are not missed tests)."""
    return {"missed": len(entries)}


def _refusals_section(entries: list[Mapping[str, Any]]) -> dict[str, Any]:
    return {"refusals": len(entries)}


def _missed_check_ins_section(entries: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Required check-ins not made (on days the program made them reportable): one entry each."""
    return {"missed_check_ins": len(entries)}


def _adherence_section(entries: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Doses taken over doses expected. Entries: {"doses_expected": int, "doses_taken": int}."""
    expected = sum(_count(entry, "doses_expected") for entry in entries)
    taken = sum(_count(entry, "doses_taken") for entry in entries)
    if taken > expected:
        raise ValueError(f"{taken} doses taken but only {expected} expected; check the medication entries")
    ratio = round(taken / expected, 2) if expected else None
    return {"doses_expected": expected, "doses_taken": taken, "adherence_ratio": ratio}


def _phase_section(entries: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The phase held at the end. Entries: {"to_phase", "effective_on"}, including the phase held
    when the period began, so a month without a change still says which phase it was."""
    changes = [{"to_phase": _text(e, "to_phase"), "effective_on": _text(e, "effective_on")} for e in entries]
    changes.sort(key=lambda change: change["effective_on"])
    latest = changes[-1] if changes else {"to_phase": None, "effective_on": None}
    return {"phase": latest["to_phase"], "since": latest["effective_on"], "changes": changes}


def _attendance_section(entries: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Sessions, counted by domain.attendance.summarize. Entries: {"status": present | late | excused | absent},
    one per recorded session (or the older form {"attended": bool, "excused": bool})."""
    statuses = []
    for entry in entries:
        if "status" in entry:
            statuses.append(check_attendance_status(entry["status"]))
        elif _flag(entry, "attended"):
            statuses.append(AttendanceStatus.PRESENT)
        else:
            statuses.append(
                AttendanceStatus.EXCUSED if _flag(entry, "excused", default=False) else AttendanceStatus.ABSENT
            )
    summary = summarize_attendance(statuses)
    return {
        "sessions": summary.sessions,
        "attended": summary.attended,
        AttendanceStatus.LATE: summary.late,
        AttendanceStatus.EXCUSED: summary.excused,
        "unexcused": summary.absent,
    }


def _status_section(entries: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The latest program status. Entries: {"status", "effective_on"}; none means still active."""
    if not entries:
        return {"status": "active", "since": None}
    latest = max(entries, key=lambda entry: _text(entry, "effective_on"))
    return {"status": _text(latest, "status"), "since": _text(latest, "effective_on")}


_SECTION_BUILDERS: dict[str, Callable[[list[Mapping[str, Any]]], dict[str, Any]]] = {
    SCREENING_RESULTS: _screening_section,
    MISSED_TESTS: _missed_section,
    REFUSALS: _refusals_section,
    MEDICATION_ADHERENCE: _adherence_section,
    PHASE_CHANGES: _phase_section,
    ATTENDANCE: _attendance_section,
    PROGRAM_STATUS: _status_section,
    MISSED_CHECK_INS: _missed_check_ins_section,
}


def _letter_text(
    consent: Consent, completed_on: str, identifiers: Mapping[str, str], sections: Mapping[str, Any]
) -> str:
    regarding = ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in identifiers.items())
    lines = [
        f"Re: {regarding}",
        "",
        f"{consent.disclosing_program} confirms that the participant completed its intensive outpatient "
        f"program on {completed_on}.",
    ]
    summary = [_SECTION_SENTENCES[category](section) for category, section in sections.items()]
    if summary:
        lines += ["", *summary]
    lines += [
        "",
        f"This letter is disclosed with the participant's written consent {consent.consent_id}, signed "
        f"{consent.signed_at[:10]}, for this purpose: {consent.purpose.rstrip('.')}.",
        "",
        redisclosure_notice(),
    ]
    return "\n".join(lines)


def _screening_sentence(section: Mapping[str, Any]) -> str:
    if not section["total"]:
        return "Drug screens: none."
    counts = ", ".join(f"{count} {outcome}" for outcome, count in section["by_outcome"].items())
    return f"Drug screens: {section['total']} ({counts})."


def _adherence_sentence(section: Mapping[str, Any]) -> str:
    if section["adherence_ratio"] is None:
        return "Medication: no doses were expected."
    percent = round(section["adherence_ratio"] * 100)
    return f"Medication: {section['doses_taken']} of {section['doses_expected']} expected doses taken ({percent}%)."


def _attendance_sentence(section: Mapping[str, Any]) -> str:
    late = f" ({section['late']} late)" if section.get("late") else ""
    return (
        f"Sessions: {section['attended']} of {section['sessions']} attended{late}; "
        f"{section['excused']} excused and {section['unexcused']} unexcused absence(s)."
    )


_SECTION_SENTENCES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    SCREENING_RESULTS: _screening_sentence,
    MISSED_TESTS: lambda section: f"Missed tests: {section['missed']}.",
    REFUSALS: lambda section: f"Refusals to test: {section['refusals']}.",
    MEDICATION_ADHERENCE: _adherence_sentence,
    PHASE_CHANGES: lambda section: f"Final phase: {section['phase'] or 'not recorded'}.",
    ATTENDANCE: _attendance_sentence,
    MISSED_CHECK_INS: lambda section: f"Missed check-ins: {section['missed_check_ins']}.",
}


def _count(entry: Mapping[str, Any], key: str) -> int:
    value = entry.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{key} must be a whole number of at least 0; got {value!r}")
    return value


def _text(entry: Mapping[str, Any], key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"each entry needs {key} as non-empty text; got {value!r}")
    return value


def _flag(entry: Mapping[str, Any], key: str, default: bool | None = None) -> bool:
    value = entry.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"each entry needs {key} as true or false; got {value!r}")
    return value


def _check_month(month: Any) -> None:
    ok = isinstance(month, str) and len(month) == 7 and month[4] == "-" and month[:4].isdigit() and month[5:].isdigit()
    if not ok or not 1 <= int(month[5:]) <= 12:
        raise ValueError(f"month {month!r} must be written YYYY-MM, e.g. 2026-03")


def _check_date(name: str, value: Any) -> None:
    try:
        valid = isinstance(value, str) and date.fromisoformat(value).isoformat() == value
    except ValueError:
        valid = False
    if not valid:
        raise ValueError(f"{name} {value!r} must be an ISO date written YYYY-MM-DD, e.g. 2026-05-29")
