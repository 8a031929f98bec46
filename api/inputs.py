"""Bounds every request body shares: no control characters in text, dates within sensible windows,
recipient URLs that cannot point the worker at the clinic's own network. A refusal is a 422
problem document naming the field (api/problems.py renders pydantic's errors with their location).

Every request model inherits `CleanText` (tests/api/test_inputs.py checks that none is missed).
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, date, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ValidationInfo, field_validator

from domain.checks import age_problem, control_character_problem, date_window_problem

# Fields whose text may run over several lines (notes, reasons); every other text field is one line.
FREE_TEXT_FIELDS = frozenset(
    {
        "note",
        "notes",
        "reason",
        "explanation",
        "detail",
        "custody_notes",
        "late_reason",
        "purpose",
        "override_reason",
    }
)


def text_problem(text: str, *, free_text: bool) -> str | None:
    return control_character_problem(text, free_text=free_text)


def _check_text(value: Any, free_text: bool) -> None:
    if isinstance(value, str):
        problem = text_problem(value, free_text=free_text)
        if problem:
            raise ValueError(problem)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            try:
                _check_text(item, free_text)
            except ValueError as exc:
                raise ValueError(f"item {index} {exc}") from None


class CleanText:
    """Mixin for request models (pydantic or SQLModel): every text field, including text in lists,
    is refused when it holds control characters. Nested models check their own fields."""

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any, info: ValidationInfo) -> Any:
        _check_text(value, info.field_name in FREE_TEXT_FIELDS)
        return value


class RequestModel(CleanText, BaseModel):
    """Base of the API's request bodies."""


# --- dates -------------------------------------------------------------------------------------

# A program runs about 90 days; dates entered for it (start, pauses, orders) lie within two years
# either side of today. Birth dates give an age of 10 to 120: adolescent IOPs admit from about 12.
PROGRAM_WINDOW_DAYS = 730


def _today() -> date:
    return datetime.now(UTC).date()


def _window(past_days: int, future_days: int):
    def check(value: date | datetime | None) -> date | datetime | None:
        if value is None:
            return None
        day = value.date() if isinstance(value, datetime) else value  # a day either way is close enough
        problem = date_window_problem(day, _today(), past_days=past_days, future_days=future_days)
        if problem:
            raise ValueError(problem)
        return value

    return check


def _plausible_birth(value: date | None) -> date | None:
    if value is None:
        return None
    problem = age_problem(value, _today(), youngest=10, oldest=120)
    if problem:
        raise ValueError(f"date_of_birth must be a real past date giving an age of 10 to 120: {problem}")
    return value


ProgramDay = Annotated[date, AfterValidator(_window(PROGRAM_WINDOW_DAYS, PROGRAM_WINDOW_DAYS))]
# A medication order may have begun treatment long before this program (a transfer from an OTP).
TreatmentDay = Annotated[date, AfterValidator(_window(40 * 365, PROGRAM_WINDOW_DAYS))]
# Consents run for years (42 CFR 2.31(a)(6): an expiration date, event or condition).
ConsentMoment = Annotated[datetime, AfterValidator(_window(10 * 366, 10 * 366))]
ProgramMoment = Annotated[datetime, AfterValidator(_window(PROGRAM_WINDOW_DAYS, PROGRAM_WINDOW_DAYS))]
BirthDate = Annotated[date, AfterValidator(_plausible_birth)]


# --- recipient URLs ------------------------------------------------------------------------------


def _address_kind(host: str) -> str | None:
    """What kind of non-public address `host` is, or None. Only literal addresses and 'localhost'
    are judged: a DNS name is not resolved here (the answer at creation time says nothing about
    the answer at delivery time), so a name that resolves to a private address is not caught."""
    lowered = host.lower().rstrip(".")
    if lowered == "localhost" or lowered.endswith(".localhost"):
        return "loopback"
    try:
        address = ipaddress.ip_address(lowered.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    for kind, flag in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if flag:
            return kind
    return None


def recipient_url_problem(url: str, *, production: bool, allow_private: bool) -> str | None:
    """Why reports must not be sent to `url`, or None.

    https only in production; in development plain http only to loopback (the test receivers).
    No user name or password in the URL (it would be stored and logged as the address).
    Loopback, link-local, private, multicast and reserved addresses are refused unless the
    administrator allows them (IOP_ALLOW_PRIVATE_RECIPIENTS=1, for an on-premise court system);
    in development loopback is allowed without it.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        return f"the url cannot be read: {exc}"
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "the url carries credentials (user:password@); give the recipient's signing secret instead"
    if parts.scheme not in ("https", "http"):
        return "the url must be https://"
    if not host:
        return "the url has no host name"
    kind = _address_kind(host)
    if parts.scheme == "http" and (production or kind != "loopback"):
        return (
            "the url must be https:// (plain http is allowed only to a loopback address in development)"
            if not production
            else "the url must be https:// in production"
        )
    if kind is None or allow_private:
        return None
    if kind == "loopback" and not production:
        return None
    return (
        f"the url points at a {kind} address ({host}); reports go to public https endpoints unless an "
        "administrator sets IOP_ALLOW_PRIVATE_RECIPIENTS=1 for an on-premise recipient"
    )
