"""Rules of lab intake that decide before any filing: is a resend the same message, and may
this lab send as the sender its message names.

Pure code (no I/O). HL7 v2.5.1 §2.10.1 (original acknowledgement mode): a receiver recognises a
resent message by MSH-10 (message control id), which the sender must make unique for each
message; §2.14.9.3 defines MSH-3/MSH-4 (sending application / facility) as the HD that names
the sender. A control id says nothing about content, so a resend is taken for the same message
only when its normalised body is the same (`body_digest`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from domain.hl7 import split_batch

__all__ = ["SenderBinding", "body_digest", "normalised_body", "sender_refusal", "UNREGISTERED_TOKEN"]


def normalised_body(text: str) -> str:
    """The message as the parser reads it, so that only differences the parser would see count.

    Normalised (HL7 v2 §2.5: segments end in CR; MLLP framing is not part of the message):
    line endings (CR, LF, CRLF) become one CR per segment; blank lines are dropped; whitespace
    at either end of a segment line is dropped; MLLP framing bytes (0x0b, 0x1c), a byte-order
    mark and batch envelope segments (FHS/BHS/BTS/FTS) are dropped; a free-text line a sender
    wrapped onto its own line is joined to its segment with one space. Nothing inside a segment
    changes: any other difference, a single character of a field, makes it another message.
    """
    try:
        parts = split_batch(text)
    except Exception:  # noqa: BLE001 - text we cannot split is compared as received
        return text
    return "".join(parts) if parts else text


def body_digest(text: str) -> str:
    """SHA-256 (hex) of the normalised body; NUL and unpaired surrogates are hashed as UTF-8
    with replacement, the same way on every path."""
    return hashlib.sha256(normalised_body(text).encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class SenderBinding:
    """What a lab token may send as: MSH-3 and MSH-4 namespace ids, registered by an admin.
    `any_sender` is for administrators re-entering a lab's message by hand."""

    application: str | None
    facility: str | None
    any_sender: bool = False

    @property
    def registered(self) -> bool:
        return self.any_sender or bool(self.facility and self.application)


UNREGISTERED_TOKEN = (
    "this lab token is not registered to a sending facility; ask the clinic's administrator "
    "to register it (a lab token names the MSH-3 sending application and MSH-4 sending "
    "facility it sends as)"
)


def _namespace(value: str | None) -> str:
    """The HD's namespace id (its first component), which names the sender."""
    return (value or "").split("^", 1)[0].strip()


def sender_refusal(binding: SenderBinding, application: str | None, facility: str | None) -> str | None:
    """Why a message naming this sender (MSH-3, MSH-4) is refused for this token, or None.

    Compared: the namespace id (first component) of each, exactly (HD namespace ids are
    case-sensitive). The text quotes only sender names, never message content."""
    if binding.any_sender:
        return None
    if not binding.registered:
        return UNREGISTERED_TOKEN
    claimed = (_namespace(application), _namespace(facility))
    if claimed == (_namespace(binding.application), _namespace(binding.facility)):
        return None
    shown = " / ".join(f"'{value[:60]}'" if value else "(empty)" for value in claimed)
    return (
        f"this lab token is registered to send as '{_namespace(binding.application)}' / "
        f"'{_namespace(binding.facility)}' (MSH-3 / MSH-4), but the message names {shown}; send it with "
        "your own sender, or ask the clinic's administrator for a token registered to that sender"
    )
