"""The facts of one reportable event, as they cross Temporal (workflows.contracts.disclosure.DisclosureEvent).

One flat, typed form for every category: each fact any category reports is a field, and a report's facts are
the fields that were given. The category does not fix the shape (a retraction, `retracted` and
`retraction_reason`, comes under any category; a screening result has several shapes), so there is no union of
per-category forms: the data converter would take the first member that constructs and drop the keys it does not
know.

A fact not given is absent, not null: `facts_dict` gives exactly the facts a producer named, as the dict they were
before this type existed. That dict is what is stored (store.models.Disclosure.facts), compared to decide whether
the same report is planned again (activities.disclosure), and trimmed into a report by the recipient's allow-list
(domain.report_content.allowed_facts); a form that wrote every absent fact as null would change all three. A fact
whose value is None (an adherence ratio when no dose was due, a phase change with no earlier phase, a breath test
with no recorded device) is given, and stays in the dict as null: `null_facts` names those.

Pure and stdlib-only: imported inside Temporal's deterministic workflow sandbox.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class PhaseChangeEntry:
    """One phase held in a period (a summary's or a discharge's phase_changes): which, and from when."""

    to_phase: str
    effective_on: str  # YYYY-MM-DD


class _Absent:
    """The default of every fact: not given (a given None is a fact whose value is null)."""

    def __repr__(self) -> str:
        return "ABSENT"


# Typed Any so it can be every field's default; __post_init__ turns it into None before anyone reads it.
_ABSENT: Any = _Absent()


@dataclass(frozen=True)
class ReportFacts:
    """The minimum facts of a reportable event (no PHI). Build it with the facts the event has; the rest stay
    absent. Read it back as a dict with `facts_dict`; build a changed copy from that dict, not with
    dataclasses.replace (which would give every absent fact as null)."""

    # screening-results (domain.report_content.FACT_KEYS); `statement` is added when it is planned
    collected_on: str | None = _ABSENT  # YYYY-MM-DD
    specimen_type: str | None = _ABSENT
    observed: bool | None = _ABSENT
    outcome: str | None = _ABSENT  # domain.report_content.ReportOutcome
    dilute: bool | None = _ABSENT
    positive_for: tuple[str, ...] | None = _ABSENT  # analytes, sorted
    basis: str | None = _ABSENT  # domain.result_basis.Basis
    confirmed: bool | None = _ABSENT
    statement: str | None = _ABSENT
    breath_alcohol: float | None = _ABSENT
    device_id: str | None = _ABSENT
    admission_witnessed_by: str | None = _ABSENT
    # missed-tests, missed-check-ins
    scheduled_on: str | None = _ABSENT
    window_closed_at: str | None = _ABSENT
    due_by: str | None = _ABSENT
    # refusals
    occurred_on: str | None = _ABSENT
    refusal_kind: str | None = _ABSENT
    # medication-adherence, attendance and periodic-summary periods
    month: str | None = _ABSENT  # YYYY-MM
    period_start: str | None = _ABSENT
    period_end: str | None = _ABSENT
    doses_expected: int | None = _ABSENT
    doses_taken: int | None = _ABSENT
    adherence_ratio: float | None = _ABSENT  # null when no dose was due
    # phase-changes, program-status
    from_phase: str | None = _ABSENT
    to_phase: str | None = _ABSENT
    effective_on: str | None = _ABSENT
    phase_changes: tuple[PhaseChangeEntry, ...] | None = _ABSENT
    status: str | None = _ABSENT  # domain.report_content.ReportedProgramStatus
    discharge_kind: str | None = _ABSENT
    # attendance: one session, or a period's counts
    session_on: str | None = _ABSENT
    session_kind: str | None = _ABSENT
    attendance_status: str | None = _ABSENT
    sessions_scheduled: int | None = _ABSENT
    sessions_attended: int | None = _ABSENT
    sessions_excused: int | None = _ABSENT
    # a retraction, in any category
    retracted: bool | None = _ABSENT
    retraction_reason: str | None = _ABSENT  # domain.report_content.RetractionReason
    # The facts given as None. Set here from what was given, and carried in the payload: the data converter
    # builds this class from the keys it finds and then restores this field, so an event written before this
    # type existed (a flat dict with only its own keys) reads with the facts that were null in it.
    null_facts: tuple[str, ...] = field(default=(), init=False)

    def __post_init__(self) -> None:
        given_null: list[str] = []
        for fact in _FACT_NAMES:
            value = getattr(self, fact)
            if value is _ABSENT:
                object.__setattr__(self, fact, None)
            elif value is None:
                given_null.append(fact)
            elif isinstance(value, list):  # built from a stored dict: the typed form holds tuples
                object.__setattr__(self, fact, tuple(_entry(item) for item in value))
        object.__setattr__(self, "null_facts", tuple(given_null))


def _entry(item: Any) -> Any:
    return PhaseChangeEntry(**item) if isinstance(item, dict) else item


_FACT_NAMES = tuple(f.name for f in fields(ReportFacts) if f.init)


def facts_dict(facts: ReportFacts) -> dict[str, Any]:
    """The facts given, as plain JSON values (lists, not tuples): the dict stored, compared and reported."""
    given: dict[str, Any] = {}
    for fact in _FACT_NAMES:
        value = getattr(facts, fact)
        if value is None and fact not in facts.null_facts:
            continue
        given[fact] = (
            [asdict(v) if isinstance(v, PhaseChangeEntry) else v for v in value] if isinstance(value, tuple) else value
        )
    return given
