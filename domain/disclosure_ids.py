"""A disclosure's id: its webhook-id (the recipient keeps one copy per id), its row's key in the
accounting of disclosures (42 CFR 2.24) and the suffix of its workflow id. It names the participant
first: two participants' events of the same kind ("program-status", "phase-change-1",
"summary-2026-11") must never share a row, a workflow or a webhook-id.

Pure and stdlib-only: imported inside Temporal's deterministic workflow sandbox.
"""

from __future__ import annotations

import hashlib

from domain.checks import require_text as _require_text

MAX_DISCLOSURE_ID = 255
_ID_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def disclosure_id(
    participant_id: str, event_ref: str, category: str, recipient_id: str, corrects: str | None = None
) -> str:
    """`{participant}--{event}--{category}--{recipient}[--correction-{hash of corrected id}]`, in
    letters, digits, '_' and '-' only (no dots: Standard Webhooks signs "{id}.{timestamp}.{body}").
    At most MAX_DISCLOSURE_ID characters: a longer one keeps its head and ends in a digest of the whole."""
    for name, value in (
        ("participant_id", participant_id),
        ("event_ref", event_ref),
        ("category", category),
        ("recipient_id", recipient_id),
    ):
        _require_text(name, value)
    base = "--".join(_id_safe(part) for part in (participant_id, event_ref, category, recipient_id))
    whole = base if corrects is None else f"{base}--correction-{_short_digest(corrects)}"
    if len(whole) <= MAX_DISCLOSURE_ID:
        return whole
    return f"{whole[: MAX_DISCLOSURE_ID - 18]}--{hashlib.sha256(whole.encode()).hexdigest()[:16]}"


def legacy_disclosure_id(event_ref: str, category: str, recipient_id: str, corrects: str | None = None) -> str:
    """The id disclosures had before they named their participant (kept to find rows recorded then)."""
    base = f"{event_ref}--{category}--{recipient_id}".replace(".", "_")
    return base if corrects is None else f"{base}--correction-{_short_digest(corrects)}"


def _id_safe(part: str) -> str:
    return "".join(c if c in _ID_SAFE else "_" for c in part)


def _short_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]
