"""Small input checks shared by the domain modules; each raises ValueError with a message a
person can act on."""

from __future__ import annotations

import math
from datetime import date
from typing import Any


def parse_day(name: str, text: Any) -> date:
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


def require_text(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
