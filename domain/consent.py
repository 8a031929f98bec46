"""Written consent to disclose (42 CFR Part 2): what a consent must say, and whether it covers one
disclosure at one moment (42 CFR 2.31 consent elements, 2.32 notice, 2.35 criminal-justice consents).

A disclosure is checked at the moment it is made, against the consent as it stands then: signed
and in effect, not expired by date or by event, not revoked, naming this recipient and this kind
of information. Every refusal is a sentence a staff member can act on.

Pure and stdlib-only: imported inside Temporal's deterministic workflow sandbox. Moments are ISO
8601 date-times with a UTC offset, passed in by the caller (workflow.now()), never read from a clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from typing import Any

from domain.vocab import Vocabulary

# --- closed vocabularies ---------------------------------------------------------------------


class DisclosureCategory(Vocabulary):
    """What a consent lets the program disclose (42 CFR 2.31(a): the information to be disclosed)."""

    SCREENING_RESULTS = "screening-results"
    MISSED_TESTS = "missed-tests"
    REFUSALS = "refusals"
    MEDICATION_ADHERENCE = "medication-adherence"
    PHASE_CHANGES = "phase-changes"
    ATTENDANCE = "attendance"
    PROGRAM_STATUS = "program-status"  # completion or discharge
    PERIODIC_SUMMARY = "periodic-summary"
    # A daily check-in the program requires and the participant did not make by its deadline; reportable only
    # where the program says so (a phase's missed_check_in_reportable) and a consent names this category.
    MISSED_CHECK_INS = "missed-check-ins"


SCREENING_RESULTS = DisclosureCategory.SCREENING_RESULTS
MISSED_TESTS = DisclosureCategory.MISSED_TESTS
REFUSALS = DisclosureCategory.REFUSALS
MEDICATION_ADHERENCE = DisclosureCategory.MEDICATION_ADHERENCE
PHASE_CHANGES = DisclosureCategory.PHASE_CHANGES
ATTENDANCE = DisclosureCategory.ATTENDANCE
PROGRAM_STATUS = DisclosureCategory.PROGRAM_STATUS
PERIODIC_SUMMARY = DisclosureCategory.PERIODIC_SUMMARY
MISSED_CHECK_INS = DisclosureCategory.MISSED_CHECK_INS
CATEGORIES: tuple[str, ...] = tuple(DisclosureCategory)


class RecipientKind(Vocabulary):
    """Who receives reports. The first four are the recipients 42 CFR 2.35 is about: consent given as a
    condition of a criminal-justice process."""

    COURT = "court"
    PROBATION = "probation"
    PAROLE = "parole"
    PRETRIAL = "pretrial"
    EMPLOYER = "employer"
    OTHER = "other"


CRIMINAL_JUSTICE_KINDS: tuple[str, ...] = (
    RecipientKind.COURT,
    RecipientKind.PROBATION,
    RecipientKind.PAROLE,
    RecipientKind.PRETRIAL,
)
RECIPIENT_KINDS: tuple[str, ...] = tuple(RecipientKind)


class SignatureMethod(Vocabulary):
    """How a consent was signed (42 CFR 2.31(a)(8): an electronic signature is allowed)."""

    WET_INK = "wet-ink"
    ELECTRONIC = "electronic"


SIGNATURE_METHODS: tuple[str, ...] = tuple(SignatureMethod)


class ConsentEvent(Vocabulary):
    """Events a consent can end at (42 CFR 2.31(a)), or become revocable at (criminal-justice consents,
    42 CFR 2.35). A closed set: a misspelt event would never occur, and a consent meant to end would then never
    end."""

    COMPLETION = "completion"
    DISCHARGE = "discharge"
    FINAL_DISPOSITION = "final-disposition"
    SUPERVISION_ENDED = "supervision-ended"
    EMPLOYMENT_ENDED = "employment-ended"


COMPLETION = ConsentEvent.COMPLETION
DISCHARGE = ConsentEvent.DISCHARGE
FINAL_DISPOSITION = ConsentEvent.FINAL_DISPOSITION
SUPERVISION_ENDED = ConsentEvent.SUPERVISION_ENDED
EMPLOYMENT_ENDED = ConsentEvent.EMPLOYMENT_ENDED
CONSENT_EVENTS: tuple[str, ...] = tuple(ConsentEvent)

# Completing the program is also leaving it: a consent "until discharge" ends at completion too.
_ALSO_COUNTS_AS: dict[str, tuple[str, ...]] = {COMPLETION: (DISCHARGE,)}

_EXAMPLE_MOMENT = "2026-03-01T09:00:00-05:00"


class ConsentError(ValueError):
    """A disclosure or revocation the consent does not allow. `reason` is the sentence to show staff."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- the consent -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Consent:
    """One signed consent to disclose, with what has happened to it since (events, revocation).

    The participant is named by id only: the signed form with the name stays in the records
    system, and nothing that crosses Temporal carries a name.
    """

    consent_id: str
    participant_id: str
    recipient_id: str
    recipient_kind: str  # one of RECIPIENT_KINDS
    categories: tuple[str, ...]  # what may be disclosed, each one of CATEGORIES
    purpose: str
    disclosing_program: str  # who may disclose
    signer: str  # the participant, or their legal representative
    signed_at: str
    signature_method: str  # one of SIGNATURE_METHODS
    effective_from: str
    expires_at: str | None = None  # exclusive: at this instant the consent no longer covers
    expires_on_event: str | None = None  # one of CONSENT_EVENTS
    criminal_justice: bool = False  # a 42 CFR 2.35 consent
    # 2.35(d): a criminal-justice consent is revocable only after a stated time or event.
    revocable_after: str | None = None
    revocable_after_event: str | None = None
    revoked_at: str | None = None
    revocation_reason: str | None = None
    events_occurred: tuple[tuple[str, str], ...] = ()  # (event, moment), as recorded

    def __post_init__(self) -> None:
        _check_parties(self)
        _check_categories(self.categories)
        _check_signature(self)
        _check_expiry(self)
        _check_revocability(self)
        _check_revocation(self)
        _check_events(self.events_occurred)


@dataclass(frozen=True)
class Coverage:
    covered: bool
    reason: str


# --- is a disclosure covered? ----------------------------------------------------------------


def coverage(consent: Consent, recipient_id: str, category: str, at: str) -> Coverage:
    """Whether `consent` covers disclosing `category` to `recipient_id` at the moment `at`."""
    check_category(category)
    moment = parse_moment("at", at)
    name = f"consent {consent.consent_id}"
    if recipient_id != consent.recipient_id:
        return Coverage(False, f"{name} names recipient {consent.recipient_id}, not {recipient_id}")
    if category not in consent.categories:
        return Coverage(False, f"{name} does not include {category} (it covers {', '.join(consent.categories)})")
    ended = not_in_force_reason(consent, moment)
    if ended is not None:
        return Coverage(False, ended)
    return Coverage(True, f"{name} covers {category} for recipient {recipient_id} until {describe_expiry(consent)}")


def find_covering_consent(
    consents: Iterable[Consent], recipient_id: str, category: str, at: str
) -> tuple[Consent | None, str]:
    """The consent under which `category` may go to `recipient_id` at `at`, or None and why not.

    When several cover, the most recently signed wins: it is the participant's latest word, and
    the choice must not depend on the order the caller listed them in (workflow replay).
    """
    check_category(category)
    parse_moment("at", at)
    naming_recipient = [c for c in consents if c.recipient_id == recipient_id]
    with_category = [c for c in naming_recipient if category in c.categories]
    if not with_category:
        return None, _no_consent_names(recipient_id, category, naming_recipient)
    refusals = []
    for consent in sorted(with_category, key=_newest_first):
        result = coverage(consent, recipient_id, category, at)
        if result.covered:
            return consent, result.reason
        refusals.append(result.reason)
    return None, f"no consent in force for recipient {recipient_id} and {category} at {at}: " + "; ".join(refusals)


def not_in_force_reason(consent: Consent, moment: datetime) -> str | None:
    """Why the consent as a whole covers nothing at `moment`, or None while it is in force."""
    name = f"consent {consent.consent_id}"
    if moment < parse_moment("effective_from", consent.effective_from):
        starts = describe_moment(consent.effective_from)
        return f"{name} takes effect on {starts}; nothing may be disclosed under it before then"
    if consent.revoked_at is not None and parse_moment("revoked_at", consent.revoked_at) <= moment:
        return f"{name} was revoked on {describe_moment(consent.revoked_at)}" + _in_brackets(consent.revocation_reason)
    if consent.expires_at is not None and parse_moment("expires_at", consent.expires_at) <= moment:
        expired = describe_moment(consent.expires_at)
        return f"{name} expired on {expired}; ask the participant whether they wish to sign a new one"
    if consent.expires_on_event is not None:
        ended_at = event_moment(consent.expires_on_event, consent.events_occurred)
        if ended_at is not None and ended_at <= moment:
            return f"{name} ended at {consent.expires_on_event} on {describe_moment(ended_at.isoformat())}"
    return None


def _no_consent_names(recipient_id: str, category: str, naming_recipient: Sequence[Consent]) -> str:
    reason = f"no consent names recipient {recipient_id} for {category}"
    if naming_recipient:
        ordered = sorted(naming_recipient, key=_newest_first)
        held = "; ".join(f"{c.consent_id} ({', '.join(c.categories)})" for c in ordered)
        reason += f"; the consents naming {recipient_id} cover only: {held}"
    return reason


def _newest_first(consent: Consent) -> tuple[float, str]:
    # Negated timestamp, so one ascending sort gives newest first with ties broken by id.
    return (-parse_moment("signed_at", consent.signed_at).timestamp(), consent.consent_id)


# --- revocation and events -------------------------------------------------------------------


def can_revoke(consent: Consent, at: str, events: Iterable[Sequence[str]] = ()) -> tuple[bool, str]:
    """Whether the participant may revoke `consent` at `at`, and why (or why not).

    `events` are events known to the caller but not yet recorded on the consent, as (event, moment).
    """
    moment = parse_moment("at", at)
    name = f"consent {consent.consent_id}"
    if consent.revoked_at is not None:
        return False, f"{name} was already revoked on {describe_moment(consent.revoked_at)}"
    if moment < parse_moment("signed_at", consent.signed_at):
        return False, f"{name} was signed on {describe_moment(consent.signed_at)}; it cannot be revoked before then"
    if not consent.criminal_justice:
        return True, f"{name} may be revoked at any time (42 CFR 2.31)"
    occurred = consent.events_occurred + _checked_events(events)
    since = revocable_since(consent, occurred)
    if since is not None and since <= moment:
        return True, f"{name} has been revocable since {describe_moment(since.isoformat())} (42 CFR 2.35(d))"
    return False, (
        f"{name} is a criminal-justice consent (42 CFR 2.35) and cannot be revoked until "
        f"{_describe_revocable_condition(consent)}; it stays in effect until then"
    )


def revocable_since(consent: Consent, occurred: Sequence[Sequence[str]]) -> datetime | None:
    """The first moment a criminal-justice consent became revocable, or None if it is not yet.

    2.35(d) lets that moment be no later than final disposition, so final disposition always
    counts, whatever time or event the form states.
    """
    candidates = [event_moment(FINAL_DISPOSITION, occurred)]
    if consent.revocable_after is not None:
        candidates.append(parse_moment("revocable_after", consent.revocable_after))
    if consent.revocable_after_event is not None:
        candidates.append(event_moment(consent.revocable_after_event, occurred))
    known = [moment for moment in candidates if moment is not None]
    return min(known, default=None)


def revoke(consent: Consent, at: str, reason: str, events: Iterable[Sequence[str]] = ()) -> Consent:
    """The consent revoked at `at`. Raises ConsentError with the reason when it may not be.

    `events` the revocation relied on are recorded on the consent, so the record shows why it was allowed.
    """
    events = _checked_events(events)
    allowed, why = can_revoke(consent, at, events)
    if not allowed:
        raise ConsentError(why)
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("give a revocation reason, e.g. 'participant asked in writing on 2026-03-01'")
    for event, moment in events:
        consent = record_event(consent, event, moment)
    return replace(consent, revoked_at=at, revocation_reason=reason.strip())


def record_event(consent: Consent, event: str, at: str) -> Consent:
    """The consent with `event` recorded as having happened at `at`. Recording it twice changes nothing."""
    pair = _checked_event(event, at)
    if pair in consent.events_occurred:
        return consent  # a retried activity must not record the event twice
    return replace(consent, events_occurred=consent.events_occurred + (pair,))


def event_moment(event: str, occurred: Iterable[Sequence[str]]) -> datetime | None:
    """When `event` first happened among (event, moment) pairs, counting events that imply it."""
    moments = [
        parse_moment(f"moment of {name}", at)
        for name, at in occurred
        if name == event or event in _ALSO_COUNTS_AS.get(name, ())
    ]
    return min(moments, default=None)


# --- descriptions ----------------------------------------------------------------------------


def describe_expiry(consent: Consent) -> str:
    by_date = describe_moment(consent.expires_at) if consent.expires_at else None
    by_event = consent.expires_on_event
    if by_date and by_event:
        return f"{by_date} or {by_event}, whichever comes first"
    return by_date or str(by_event)  # validation guarantees one of them


def describe_moment(text: str) -> str:
    """A stored moment as staff read it: the date alone when it is midnight, else as written."""
    moment = parse_moment("moment", text)
    if (moment.hour, moment.minute, moment.second, moment.microsecond) == (0, 0, 0, 0):
        return moment.date().isoformat()
    return text


def _describe_revocable_condition(consent: Consent) -> str:
    stated = [describe_moment(consent.revocable_after)] if consent.revocable_after else []
    if consent.revocable_after_event:
        stated.append(consent.revocable_after_event)
    if FINAL_DISPOSITION not in stated:
        stated.append(FINAL_DISPOSITION)
    return " or ".join(stated) + ", whichever comes first"


def _in_brackets(text: str | None) -> str:
    return f" ({text})" if text else ""


# --- validation ------------------------------------------------------------------------------


def check_category(category: str) -> None:
    if category not in CATEGORIES:
        raise ValueError(f"unknown information category {category!r}; known categories are {', '.join(CATEGORIES)}")


def parse_moment(name: str, text: Any) -> datetime:
    """An ISO 8601 date-time with a UTC offset. Without an offset two moments cannot be compared."""
    if not isinstance(text, str):
        raise ValueError(
            f"{name} must be an ISO 8601 date-time with a UTC offset, e.g. {_EXAMPLE_MOMENT}; got {text!r}"
        )
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not an ISO 8601 date-time, e.g. {_EXAMPLE_MOMENT}") from None
    if moment.utcoffset() is None:
        raise ValueError(f"{name} {text!r} has no UTC offset; write it with one, e.g. {_EXAMPLE_MOMENT}")
    return moment


def _check_parties(consent: Consent) -> None:
    for name in ("consent_id", "participant_id", "recipient_id", "disclosing_program", "purpose"):
        _require_text(name, getattr(consent, name))
    if consent.recipient_kind not in RECIPIENT_KINDS:
        raise ValueError(
            f"unknown recipient kind {consent.recipient_kind!r}; known kinds are {', '.join(RECIPIENT_KINDS)}"
        )


def _check_categories(categories: Any) -> None:
    if not isinstance(categories, tuple) or not categories:
        raise ValueError(
            "a consent must say what information may be disclosed: categories must be a non-empty tuple "
            f"of {', '.join(CATEGORIES)}"
        )
    for category in categories:
        check_category(category)
    if len(set(categories)) != len(categories):
        raise ValueError(f"categories lists a category twice: {', '.join(categories)}")


def _check_signature(consent: Consent) -> None:
    _require_text("signer", consent.signer)
    if consent.signature_method not in SIGNATURE_METHODS:
        raise ValueError(
            f"unknown signature method {consent.signature_method!r}; use one of {', '.join(SIGNATURE_METHODS)}"
        )
    signed = parse_moment("signed_at", consent.signed_at)
    if parse_moment("effective_from", consent.effective_from) < signed:
        raise ValueError(
            f"effective_from {consent.effective_from} is before signed_at {consent.signed_at}: "
            "a consent cannot cover anything before it was signed"
        )


def _check_expiry(consent: Consent) -> None:
    if consent.expires_at is None and consent.expires_on_event is None:
        raise ValueError("a consent must say when it expires: give expires_at (a date-time), expires_on_event, or both")
    if consent.expires_at is not None:
        if parse_moment("expires_at", consent.expires_at) <= parse_moment("effective_from", consent.effective_from):
            raise ValueError(
                f"expires_at {consent.expires_at} must be later than effective_from {consent.effective_from}"
            )
    if consent.expires_on_event is not None:
        _check_event_name("expires_on_event", consent.expires_on_event)


def _check_revocability(consent: Consent) -> None:
    if not isinstance(consent.criminal_justice, bool):
        raise ValueError("criminal_justice must be true or false")
    if not consent.criminal_justice:
        if consent.revocable_after is not None or consent.revocable_after_event is not None:
            raise ValueError(
                "only a criminal-justice consent (42 CFR 2.35) may delay revocation; "
                "clear revocable_after and revocable_after_event, or mark the consent criminal_justice"
            )
        return
    if consent.recipient_kind not in CRIMINAL_JUSTICE_KINDS:
        raise ValueError(
            f"a criminal-justice consent (42 CFR 2.35) must name a {', '.join(CRIMINAL_JUSTICE_KINDS)} recipient; "
            f"this one names a {consent.recipient_kind}"
        )
    if consent.revocable_after is None and consent.revocable_after_event is None:
        raise ValueError(
            "a criminal-justice consent (42 CFR 2.35(d)) must state when it becomes revocable: give "
            "revocable_after (a date-time) or revocable_after_event (e.g. final-disposition), "
            "no later than final disposition"
        )
    if consent.revocable_after is not None:
        parse_moment("revocable_after", consent.revocable_after)
    if consent.revocable_after_event is not None:
        _check_event_name("revocable_after_event", consent.revocable_after_event)


def _check_revocation(consent: Consent) -> None:
    if consent.revoked_at is None:
        if consent.revocation_reason is not None:
            raise ValueError("revocation_reason is set but revoked_at is not: give both or neither")
        return
    if parse_moment("revoked_at", consent.revoked_at) < parse_moment("signed_at", consent.signed_at):
        raise ValueError(f"revoked_at {consent.revoked_at} is before signed_at {consent.signed_at}")


def _check_events(events: Any) -> None:
    if not isinstance(events, tuple):
        raise ValueError("events_occurred must be a tuple of (event, moment) pairs")
    for pair in events:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise ValueError(f"events_occurred holds {pair!r}; each entry must be an (event, moment) pair")
        _checked_event(*pair)


def _checked_events(events: Iterable[Sequence[str]]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for pair in events:
        if isinstance(pair, str) or len(pair) != 2:
            raise ValueError(f"events holds {pair!r}; each entry must be an (event, moment) pair")
        pairs.append(_checked_event(pair[0], pair[1]))
    return tuple(pairs)


def _checked_event(event: str, at: str) -> tuple[str, str]:
    _check_event_name("event", event)
    parse_moment(f"moment of {event}", at)
    return (event, at)


def _check_event_name(name: str, event: Any) -> None:
    if event not in CONSENT_EVENTS:
        raise ValueError(f"{name} {event!r} is not a known event; known events are {', '.join(CONSENT_EVENTS)}")


def _require_text(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"a consent must give its {name}: {name} must be a non-empty string")


# --- payloads --------------------------------------------------------------------------------
# A consent crosses Temporal as JSON: tuples become lists.


def consent_to_dict(consent: Consent) -> dict[str, Any]:
    data = asdict(consent)
    data["categories"] = list(consent.categories)
    data["events_occurred"] = [list(pair) for pair in consent.events_occurred]
    return data


def consent_from_dict(data: Mapping[str, Any]) -> Consent:
    """Inverse of consent_to_dict. Rejects unknown keys so a misspelt field is not silently dropped."""
    known = {f.name for f in fields(Consent)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown consent field(s): {', '.join(unknown)}; known fields are {', '.join(sorted(known))}")
    values = dict(data)
    if isinstance(values.get("categories"), list):
        values["categories"] = tuple(values["categories"])
    if isinstance(values.get("events_occurred"), list):
        pairs = values["events_occurred"]
        values["events_occurred"] = tuple(tuple(pair) if isinstance(pair, list) else pair for pair in pairs)
    try:
        return Consent(**values)
    except TypeError as error:  # a required field is missing
        raise ValueError(f"incomplete consent: {error}") from None
