"""A participant's history in the clinic's words: "Test ordered for cause", "Result confirmed",
"Consent recorded", never "POST /participants/{participant_id}/screenings" or "order_for_cause".

Each history entry has a kind, which says where a reader meets it:
- record: something that happened to the participant (shown on the dashboard's history);
- access: someone read the record (shown on request: "Include who read the record");
- technical: the audit line of a change the record already tells (the workflow's own event), or the
  workflow engine's housekeeping (a run continued, a child workflow started, a run closed). Kept in the
  API's history and its CSV, for auditors; not on the dashboard's history.

The raw action (the HTTP route, the workflow update's name) stays in the entry's `action`, for auditors.
"""

from __future__ import annotations

import re
from typing import Any

from domain.vocab import DisclosureStatus, ResultStatus, ReviewDecision

RECORD, ACCESS, TECHNICAL = "record", "access", "technical"

# Workflow updates and signals: the words, and a function of the decoded argument to the detail.
_REVIEW: dict[str, str] = {
    ReviewDecision.CONFIRM: "Result confirmed",
    ReviewDecision.EXCUSE: "Result excused (explained)",
    ReviewDecision.REQUEST_CONFIRMATION: "Confirmation test requested",
    ReviewDecision.REQUEST_RETEST: "Retest requested",
}
_RESULT: dict[str, str] = {
    ResultStatus.PRELIMINARY: "Preliminary lab result received",
    ResultStatus.FINAL: "Final lab result received",
    ResultStatus.CORRECTED: "Corrected lab result received",
}


def _get(args: dict[str, Any], *keys: str) -> str:
    return next((str(args[k]) for k in keys if args.get(k) not in (None, "", [])), "")


def _amount(args: dict[str, Any]) -> str:
    dose = args.get("dose")
    if dose in (None, ""):
        return ""
    number = f"{float(dose):g}" if isinstance(dose, (int, float)) else str(dose)
    return f"{number} {args.get('unit') or ''}".strip()


def _collection(args: dict[str, Any]) -> tuple[str, str]:
    specimen = args.get("specimen_type") or "specimen"
    seen = "observed" if args.get("observed") else "not observed"
    late = f"; late: {args['late_reason']}" if args.get("late_reason") else ""
    words = f"{'late ' if args.get('late') else ''}{specimen} specimen collected"
    return words[:1].upper() + words[1:], f"{seen}{late}"


UPDATES: dict[str, Any] = {
    "change_phase": lambda a: (f"Phase changed to {_get(a, 'phase') or 'a new phase'}", _get(a, "reason")),
    "discharge": lambda a: (f"Discharged ({_get(a, 'kind') or 'left the program'})", _get(a, "reason")),
    "pause": lambda a: (f"Random testing paused {_get(a, 'start')} to {_get(a, 'end')}", _get(a, "reason")),
    "check_in": lambda a: (f"Checked in ({_get(a, 'method') or 'at the desk'})", ""),
    "order_for_cause": lambda a: ("Test ordered for cause", _get(a, "reason")),
    "start_medication": lambda a: ("Medication order started", ""),
    "screen_final": lambda a: ("Final result passed to the medication order", _get(a, "result")),
    "record_collection": _collection,
    "excuse": lambda a: ("Test excused", _get(a, "reason")),
    "refuse": lambda a: (f"Refusal recorded ({_get(a, 'kind').replace('-', ' ') or 'refused'})", _get(a, "detail")),
    "record_result": lambda a: (_RESULT.get(_get(a, "result_status"), "Lab result received"), ""),
    "review": lambda a: (_REVIEW.get(_get(a, "decision"), "Result reviewed"), _get(a, "explanation")),
    "cancel": lambda a: ("Cancelled", _get(a, "reason")),
    "dispense": lambda a: (
        f"{_get(a, 'kind').replace('-', ' ').capitalize() or 'Dispense'} recorded",
        ", ".join(
            p for p in (_amount(a), f"{a['take_home_count']} take-home doses" if a.get("take_home_count") else "") if p
        ),
    ),
    "reassess": lambda a: (f"Reassessment: {_get(a, 'decision') or 'recorded'}", _get(a, "note")),
    "change_dose": lambda a: (f"Dose changed to {_amount(a)}" if _amount(a) else "Dose changed", _get(a, "reason")),
    "stop": lambda a: ("Medication order stopped", _get(a, "reason")),
    "record_pill_count": lambda a: ("Pill count recorded", _get(a, "note")),
    "attest_storage": lambda a: ("Safe storage attested", _get(a, "note")),
    "screen_result": lambda a: ("Screen result weighed for take-home doses", _get(a, "result")),
    "participant_discharged": lambda a: ("Medication order ended at discharge", ""),
}
ACTIVITIES = {
    "notify_participant": "Test notice sent to the participant",
    "raise_alert": "Alert raised for staff",
    "attempt_delivery": "Report delivery attempted",
    "confirm_enrollment": "Enrollment confirmed",
    "open_screening": "Screening opened",
    "record_draw": "Daily draw recorded",
    "open_order": "Medication order recorded",
    "record_dispense": "Dispense recorded",
    "plan_disclosures": "Reports to recipients planned",
    "record_consent_event": "Consented recipients told",
    "add_to_call_list": "Put on the staff call list",
}


def update_words(name: str, values: list[Any]) -> tuple[str, str, str]:
    """(event, actor id, detail) of a workflow update or signal and its decoded arguments."""
    args = next((v for v in values if isinstance(v, dict)), {})
    actor = str(args.get("actor") or "")
    if name in UPDATES:
        event, detail = UPDATES[name](args)
    else:
        event, detail = humanize(name), ""
    return event, actor, detail[:500]


def activity_words(name: str) -> str:
    return ACTIVITIES.get(name, humanize(name))


def humanize(name: str) -> str:
    """'record_pill_count' or 'bottle-returns' -> 'Record pill count' / 'Bottle returns'."""
    words = re.sub(r"[_\-.]+", " ", name).strip()
    return words[:1].upper() + words[1:] if words else "Recorded"


# --- the audit trail -----------------------------------------------------------------------------

# (method, route) -> (words, the record tells it already). Words for a change are what was done; a read
# is "Record read: <what>".
ROUTES: dict[tuple[str, str], tuple[str, bool]] = {
    ("POST", "/participants"): ("Enrolled", False),
    ("POST", "/participants/{participant_id}/phase"): ("Phase change", True),
    ("POST", "/participants/{participant_id}/discharge"): ("Discharge", True),
    ("POST", "/participants/{participant_id}/screenings"): ("Test ordered for cause", True),
    ("POST", "/participants/{participant_id}/pauses"): ("Random testing paused", True),
    ("POST", "/check-ins"): ("Check-in", True),
    ("POST", "/screenings/{screening_id}/collection"): ("Specimen collected", True),
    ("POST", "/screenings/{screening_id}/excuse"): ("Test excused", True),
    ("POST", "/screenings/{screening_id}/refusal"): ("Refusal recorded", True),
    ("POST", "/screenings/{screening_id}/review"): ("Result reviewed", True),
    ("POST", "/screenings/{screening_id}/make-up"): ("Make-up test ordered", False),
    ("PUT", "/screenings/{screening_id}/forensic"): ("Screening set as forensic or clinical", False),
    ("POST", "/participants/{participant_id}/medications"): ("Medication order started", True),
    ("POST", "/medications/{order_id}/dispenses"): ("Dispense recorded", True),
    ("POST", "/medications/{order_id}/reassessment"): ("Reassessment", True),
    ("POST", "/medications/{order_id}/dose-change"): ("Dose changed", True),
    ("POST", "/medications/{order_id}/stop"): ("Medication order stopped", True),
    ("POST", "/medications/{order_id}/pill-counts"): ("Pill count recorded", True),
    ("POST", "/medications/{order_id}/storage-attestation"): ("Safe storage attested", True),
    ("POST", "/medications/{order_id}/bottle-returns"): ("Take-home bottles returned", False),
    ("POST", "/medications/{order_id}/callbacks"): ("Callback for a bottle count", False),
    ("POST", "/medications/{order_id}/guest-dosing"): ("Guest dosing at another site", False),
    ("POST", "/medications/{order_id}/closed-days"): ("Clinic closed days set for the order", False),
    ("POST", "/participants/{participant_id}/consents"): ("Consent recorded", False),
    ("POST", "/consents/{consent_id}/revoke"): ("Consent revoked", False),
    ("PUT", "/participants/{participant_id}/demographics"): ("Demographics recorded", False),
    ("PUT", "/participants/{participant_id}/pin"): ("Check-in PIN set", False),
    ("POST", "/call-list/{entry_id}/resolve"): ("Phone call recorded", False),
    ("POST", "/lab/quarantine/{item_id}/resolve"): ("Held lab message settled", False),
    ("POST", "/worklist/{worklist_item_id}/claim"): ("Worklist item claimed", False),
    ("POST", "/worklist/{worklist_item_id}/release"): ("Worklist item released", False),
    ("POST", "/worklist/{worklist_item_id}/comments"): ("Worklist comment added", False),
    ("POST", "/worklist/{worklist_item_id}/resolve"): ("Worklist item resolved", False),
    ("POST", "/lab/hl7"): ("Lab message received", True),
    ("POST", "/lab/results"): ("Lab results received", True),
    ("POST", "/channel/inbound"): ("Participant checked in by text or phone", True),
    ("POST", "/channel/receipts"): ("Text message receipt from the gateway", False),
}
READS = {
    "/participants/{participant_id}": "the participant's record",
    "/participants/{participant_id}/screenings": "screenings",
    "/participants/{participant_id}/draws": "daily draws",
    "/participants/{participant_id}/medications": "medication orders",
    "/participants/{participant_id}/consents": "consents",
    "/participants/{participant_id}/history": "the history",
    "/participants/{participant_id}/fhir": "the record, exported as FHIR",
    "/participants/{participant_id}/demographics": "demographics",
    "/screenings/{screening_id}": "a screening",
    "/medications/{order_id}": "a medication order",
    "/worklist/{worklist_item_id}": "a worklist item",
    "/lab/quarantine/{item_id}": "a held lab message",
    "/call-list": "the call list",
    "/participants": "the participant list",
    "/screenings": "the screening list",
    "/dispensing/today": "today's dosing list",
    "/disclosures": "reports to recipients",
    "/worklist": "the worklist",
}
_OUTCOME_WORDS: dict[str, str] = {
    DisclosureStatus.DELIVERED: "delivered",
    DisclosureStatus.BLOCKED: "not sent (consent)",
    DisclosureStatus.FAILED: "not delivered",
    DisclosureStatus.RETRYING: "not delivered yet, retrying",
}


def audit_words(action: str, outcome: str) -> tuple[str, str]:
    """(event, kind) of an audit line: "POST /participants/{participant_id}/screenings", "201"."""
    method, _, route = action.partition(" ")
    done = outcome[:1] in ("2", "3")
    if route.startswith("/") and method.isupper():
        if route.startswith("/ui/"):
            return ("Dashboard page opened" if method == "GET" else "Dashboard form sent"), TECHNICAL
        if method == "GET":
            what = READS.get(route) or humanize(route.rstrip("/").rsplit("/", 1)[-1]).lower()
            return (f"Record read: {what}" if done else f"Not shown ({outcome}): {what}"), ACCESS
        words, told = ROUTES.get((method, route), (_route_words(method, route), False))
        if done:
            return words, TECHNICAL if told else RECORD
        why = "refused" if outcome[:1] == "4" else "failed"
        return f"Not done ({why}): {words[:1].lower() + words[1:]}", RECORD
    kind, _, rest = action.partition(".")
    if kind == "disclosure":
        state = outcome.split(" ", 1)[0]
        return f"Report of {rest.replace('-', ' ')} {_OUTCOME_WORDS.get(state, state)}", RECORD
    if kind == "worklist":
        return {
            "opened": f"Worklist item opened ({outcome.replace('-', ' ')})",
            "escalated": f"Worklist item escalated {outcome}",
            "paged": "Urgent worklist item paged",
        }.get(rest, f"Worklist: {humanize(rest).lower()}"), RECORD
    if action.startswith("MLLP"):
        return "Lab message received (MLLP)", TECHNICAL
    return humanize(action), RECORD


def _route_words(method: str, route: str) -> str:
    """'POST /medications/{order_id}/bottle-returns' -> 'Bottle returns recorded' (a route not listed)."""
    last = next((part for part in reversed(route.split("/")) if part and not part.startswith("{")), "record")
    verb = {"POST": "recorded", "PUT": "changed", "PATCH": "changed", "DELETE": "removed"}.get(method, "done")
    return f"{humanize(last)} {verb}"


def actor_name(actor: str, names: dict[str, str]) -> str:
    """A token id -> the name it was issued to; 'system' -> 'the system'; never a bare token id if known."""
    if not actor or actor in ("system", "-"):
        return "the system"
    if actor == "anonymous":
        return "someone not signed in"
    return names.get(actor, actor)


# Ids in free text: recipients and consents are named by the caller where known.
_RECIPIENT = re.compile(r"\br-[0-9a-f]{8}\b")


def name_ids(text: str, recipients: dict[str, str]) -> str:
    text = _RECIPIENT.sub(lambda m: recipients.get(m.group(0), "a recipient"), text)
    return re.sub(r"\s*under consent c-[0-9a-f]+", " under the participant's consent", text)
