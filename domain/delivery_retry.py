"""What to do after an attempt to deliver a report or a notice: delivered, retry (when, on the
Standard Webhooks 1.0 schedule or as the recipient asked with Retry-After, RFC 9110 §10.2.3), disable the
recipient, or stop and surface to staff.

Pure and stdlib-only: imported inside Temporal's deterministic workflow sandbox. The caller passes
every moment; nothing here reads a clock, the environment or the network.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from domain.checks import is_finite_number
from domain.vocab import Vocabulary


class DeliveryDecision(Vocabulary):
    """What to do after an attempt to deliver a report."""

    DELIVERED = "delivered"
    RETRY = "retry"
    DISABLE_RECIPIENT = "disable-recipient"
    STOP_AND_SURFACE = "stop-and-surface"


DELIVERED = DeliveryDecision.DELIVERED
RETRY = DeliveryDecision.RETRY
DISABLE_RECIPIENT = DeliveryDecision.DISABLE_RECIPIENT
STOP_AND_SURFACE = DeliveryDecision.STOP_AND_SURFACE
DECISION_KINDS: tuple[str, ...] = tuple(DeliveryDecision)

# Delays after each failed attempt: the Standard Webhooks 1.0 example schedule (5 s, 5 min, 30 min,
# 2 h, 5 h, 10 h, 14 h, 20 h, 24 h), 75 h 35 min 5 s in all, so a recipient down over a long
# weekend still gets its report.
STANDARD_WEBHOOKS_SCHEDULE_S: tuple[float, ...] = (
    5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0,
)  # fmt: skip
# The program's own floor: a schedule measured in days, at least 3, so a recipient down over a long weekend
# still gets its report (the Standard Webhooks example schedule above spans about 75 h).
MIN_RETRY_SPAN_S = 3 * 24 * 3600.0


@dataclass(frozen=True, kw_only=True)
class DeliveryPolicy:
    # Standard Webhooks recommends a request timeout between 15 and 30 s.
    timeout_s: float = 15.0
    schedule: tuple[float, ...] = STANDARD_WEBHOOKS_SCHEDULE_S
    # A recipient's Retry-After is honoured up to a day, so one header cannot park a report for weeks.
    retry_after_cap_s: float = 24 * 3600.0
    source: str = "Standard Webhooks 1.0 (timeout, retry schedule); span of at least 3 days: MIN_RETRY_SPAN_S"

    def __post_init__(self) -> None:
        if not is_finite_number(self.timeout_s) or not 0 < self.timeout_s <= 120:
            raise ValueError(f"timeout_s must be above 0 and at most 120 seconds; got {self.timeout_s!r}")
        if not isinstance(self.schedule, tuple) or not self.schedule:
            raise ValueError("schedule must be a non-empty tuple of delays in seconds")
        if any(not is_finite_number(delay) or delay <= 0 for delay in self.schedule):
            raise ValueError(f"every retry delay must be a positive number of seconds; got {self.schedule}")
        if sum(self.schedule) < MIN_RETRY_SPAN_S:
            raise ValueError(
                f"the retry schedule spans {sum(self.schedule) / 3600:.1f} h; it must reach at least "
                f"{MIN_RETRY_SPAN_S / 3600:.0f} h so a recipient down for a long weekend still gets its report"
            )
        if not is_finite_number(self.retry_after_cap_s) or self.retry_after_cap_s <= 0:
            raise ValueError(f"retry_after_cap_s must be a positive number of seconds; got {self.retry_after_cap_s!r}")

    @property
    def total_s(self) -> float:
        return float(sum(self.schedule))


@dataclass(frozen=True)
class Decision:
    kind: str  # one of DECISION_KINDS
    # For a retry: the delay the recipient asked for (Retry-After), or None to follow the schedule.
    delay_s: float | None
    reason: str


def classify_response(status: int | None, retry_after: str | None = None, now: datetime | None = None) -> Decision:
    """What to do after one delivery attempt. `status` None means no response (connection error or
    timeout). `now` (timezone-aware) is needed when Retry-After is an HTTP-date."""
    if status is not None and (not isinstance(status, int) or isinstance(status, bool)):
        raise ValueError(f"status must be an HTTP status code or None; got {status!r}")
    if status is None:
        return Decision(RETRY, None, "no answer from the recipient (connection failed or timed out); retrying")
    if 200 <= status <= 299:
        return Decision(DELIVERED, None, f"the recipient accepted the report (HTTP {status})")
    if 300 <= status <= 399:
        return Decision(STOP_AND_SURFACE, None, _redirect_reason(status))
    if status == 410:
        return Decision(
            DISABLE_RECIPIENT,
            None,
            "the recipient answered HTTP 410 Gone: it no longer takes reports at this address; its endpoint "
            "is disabled until staff confirm a new one with the recipient",
        )
    if status in (429, 503):
        return _asked_to_wait(status, retry_after, now)
    if status == 408:  # the recipient's own timeout: the same as no answer
        return Decision(RETRY, None, "the recipient timed out reading the report (HTTP 408); retrying")
    if 400 <= status <= 499:
        return Decision(STOP_AND_SURFACE, None, _refused_reason(status))
    if 500 <= status <= 599:
        return Decision(RETRY, None, f"the recipient failed with HTTP {status}; retrying on the schedule")
    unexpected = f"the recipient answered an unexpected HTTP status {status}; not resent automatically"
    return Decision(STOP_AND_SURFACE, None, unexpected)


def retry_delay(policy: DeliveryPolicy, retries_done: int, decision: Decision) -> float | None:
    """Seconds to wait before the next attempt, or None when the schedule is spent (surface to staff)."""
    if decision.kind != RETRY:
        raise ValueError(f"only a retry decision has a delay; this one is {decision.kind}")
    if not isinstance(retries_done, int) or retries_done < 0:
        raise ValueError(f"retries_done must be a whole number of at least 0; got {retries_done!r}")
    if retries_done >= len(policy.schedule):
        return None
    if decision.delay_s is not None:
        return min(decision.delay_s, policy.retry_after_cap_s)
    return policy.schedule[retries_done]


def parse_retry_after(value: str, now: datetime | None) -> float | None:
    """Seconds to wait from a Retry-After value (delay-seconds or HTTP-date, RFC 9110 §10.2.3),
    or None when it cannot be read (the schedule applies instead). A date in the past means now."""
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if now is None or now.utcoffset() is None:
        raise ValueError("Retry-After is an HTTP-date: pass now, a timezone-aware datetime, to compare it with")
    if when.tzinfo is None:  # asctime form: HTTP-dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _asked_to_wait(status: int, retry_after: str | None, now: datetime | None) -> Decision:
    what = "too many requests" if status == 429 else "service unavailable"
    delay = parse_retry_after(retry_after, now) if retry_after is not None else None
    if delay is None:
        return Decision(RETRY, None, f"the recipient answered HTTP {status} ({what}); retrying on the schedule")
    asked = f"the recipient answered HTTP {status} ({what}); retrying after {delay:g} s as it asked"
    return Decision(RETRY, delay, asked)


def _redirect_reason(status: int) -> str:
    return (
        f"the recipient answered HTTP {status}, a redirect; redirects are not followed, so a report only "
        "goes to the address staff set up: confirm the recipient's current webhook URL, update it and resend"
    )


def _refused_reason(status: int) -> str:
    hint = {
        401: "it did not accept the signature: check the signing secret it holds",
        403: "it did not accept the signature: check the signing secret it holds",
        404: "the address is wrong: confirm the recipient's webhook URL",
        413: "the report was too large for it",
    }.get(status, "ask the recipient what it expects")
    return f"the recipient refused the report with HTTP {status}; it is not resent automatically: {hint}, then resend"


# --- payloads --------------------------------------------------------------------------------


def policy_to_dict(policy: DeliveryPolicy) -> dict[str, Any]:
    data = asdict(policy)
    data["schedule"] = list(policy.schedule)
    return data


def policy_from_dict(data: Mapping[str, Any]) -> DeliveryPolicy:
    """Inverse of policy_to_dict. Rejects unknown keys so a misspelt override is not silently dropped."""
    known = {f.name for f in fields(DeliveryPolicy)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(
            f"unknown delivery-policy field(s): {', '.join(unknown)}; known fields are {', '.join(sorted(known))}"
        )
    values = dict(data)
    if isinstance(values.get("schedule"), list):
        schedule = values["schedule"]
        values["schedule"] = tuple(float(delay) if is_finite_number(delay) else delay for delay in schedule)
    return DeliveryPolicy(**values)


def decision_to_dict(decision: Decision) -> dict[str, Any]:
    return asdict(decision)


def decision_from_dict(data: Mapping[str, Any]) -> Decision:
    if data.get("kind") not in DECISION_KINDS:
        raise ValueError(f"unknown decision kind {data.get('kind')!r}; known kinds are {', '.join(DECISION_KINDS)}")
    return Decision(kind=data["kind"], delay_s=data.get("delay_s"), reason=data.get("reason", ""))
