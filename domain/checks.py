"""Small input checks shared by the domain modules; each raises ValueError with a message a
person can act on."""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import TypeGuard


def parse_day(name: str, text: object) -> date:
    """A strict ISO date (YYYY-MM-DD). date.fromisoformat also takes "20250101"; only the dashed
    form is accepted, so stored records read the same."""
    if isinstance(text, str) and len(text) == 10:
        try:
            parsed = date.fromisoformat(text)
        except ValueError:
            pass
        else:
            if parsed.isoformat() == text:
                return parsed
    raise ValueError(f"{name} {text!r} is not an ISO date (YYYY-MM-DD)")


def require_text(name: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string")


def is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# Characters refused in any text a person or a system sends us: C0 controls (tab, line feed and
# carriage return only in free text), DEL, C1 controls, and the Unicode bidirectional embeddings,
# overrides and isolates (U+202A-U+202E, U+2066-U+2069) that make a name or a note display as
# something other than what is stored (Unicode TR #9; CVE-2021-42574 "Trojan Source").
_LINE_BREAKS = frozenset("\t\n\r")
_BIDI_CONTROLS = frozenset(chr(code) for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))


def control_character_problem(text: str, *, free_text: bool) -> str | None:
    """Why `text` may not be stored as it is, or None. `free_text` allows tabs and line breaks."""
    for position, char in enumerate(text):
        code = ord(char)
        if free_text and char in _LINE_BREAKS:
            continue
        if code < 0x20 or 0x7F <= code <= 0x9F or char in _BIDI_CONTROLS:
            kind = "a bidirectional-text control" if char in _BIDI_CONTROLS else "a control character"
            allowed = " (only tab and line breaks are allowed, in free text)" if code < 0x20 else ""
            return f"contains {kind} U+{code:04X} at position {position}{allowed}; remove it"
    return None


def date_window_problem(value: date, today: date, *, past_days: int, future_days: int) -> str | None:
    """Why `value` is not within `past_days` before and `future_days` after `today`, or None."""
    earliest, latest = today - timedelta(days=past_days), today + timedelta(days=future_days)
    if earliest <= value <= latest:
        return None
    return f"{value.isoformat()} is outside {earliest.isoformat()} .. {latest.isoformat()}"


def age_problem(born: date, today: date, *, youngest: int, oldest: int) -> str | None:
    """Why a birth date does not give an age from `youngest` to `oldest` years today, or None."""
    if born >= today:
        return f"{born.isoformat()} is not in the past"
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    if youngest <= age <= oldest:
        return None
    return f"{born.isoformat()} gives an age of {age}; expected {youngest} to {oldest} years"
