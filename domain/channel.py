"""The participant channel: gateway signatures, PINs, and the plain-words answers.

Signatures, both checked in constant time:
- Standard Webhooks (https://www.standardwebhooks.com/): HMAC-SHA256 over "{id}.{timestamp}.{body}",
  base64, "v1," prefix, in the webhook-signature header (several space-separated values allowed),
  with a timestamp tolerance against replays.
- Twilio (https://www.twilio.com/docs/usage/security#validating-requests): HMAC-SHA1 keyed with the
  auth token over the full request URL followed by every POST parameter, sorted by name, as name
  and value with no delimiters; base64, in X-Twilio-Signature.

PINs are stored as scrypt hashes (RFC 7914) with a per-PIN salt; a wrong PIN counts against the
calling number and the participant, and a run of them locks the channel for a while.

Pure and stdlib-only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.webhook_signing import sign as standard_webhooks_sign

TIMESTAMP_TOLERANCE_S = 300
PIN_LENGTHS = range(4, 9)
MAX_FAILURES = 5  # wrong PINs from one number (or for one participant) within FAILURE_WINDOW
FAILURE_WINDOW = timedelta(minutes=15)
LOCKOUT = timedelta(minutes=30)
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    data = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_twilio(auth_token: str, url: str, params: Iterable[tuple[str, str]], header: str | None) -> bool:
    if not auth_token or not header:
        return False
    return hmac.compare_digest(twilio_signature(auth_token, url, list(params)).encode(), header.strip().encode())


def verify_standard_webhook(
    secret: str, msg_id: str | None, timestamp: str | None, signatures: str | None, body: bytes, now: datetime
) -> bool:
    """True when one of the space-separated "v1,<base64>" signatures matches and the timestamp is fresh."""
    if not secret or not msg_id or not timestamp or not signatures or not timestamp.isdigit():
        return False
    if abs(now.timestamp() - int(timestamp)) > TIMESTAMP_TOLERANCE_S:
        return False
    try:
        expected = standard_webhooks_sign(secret, msg_id, int(timestamp), body).encode()
    except ValueError:
        return False
    return any(hmac.compare_digest(expected, candidate.encode()) for candidate in signatures.split())


# --- PINs ---------------------------------------------------------------------------------------


def check_pin_format(pin: str) -> None:
    if not isinstance(pin, str) or not pin.isdigit() or len(pin) not in PIN_LENGTHS or not pin.isascii():
        raise ValueError(f"a PIN is {PIN_LENGTHS.start} to {PIN_LENGTHS.stop - 1} digits")
    if len(set(pin)) == 1 or pin in "0123456789" or pin in "9876543210":
        raise ValueError("a PIN must not be one digit repeated or a run like 1234; choose another")


def hash_pin(pin: str, salt: bytes) -> str:
    """scrypt$n$r$p$salt$hash, salt drawn by the caller (secrets.token_bytes(16))."""
    check_pin_format(pin)
    digest = hashlib.scrypt(pin.encode(), salt=salt, dklen=32, **_SCRYPT)
    b64: Callable[[bytes], str] = lambda raw: base64.b64encode(raw).decode("ascii")  # noqa: E731
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt)}${b64(digest)}"


def pin_matches(pin: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        candidate = hashlib.scrypt(pin.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(candidate, base64.b64decode(digest))


@dataclass(frozen=True)
class Lockout:
    failures: int
    window_start: datetime | None
    locked_until: datetime | None


def after_failure(current: Lockout, now: datetime) -> Lockout:
    """Count a wrong PIN; the MAX_FAILURES-th within FAILURE_WINDOW locks for LOCKOUT."""
    if current.window_start is None or now - current.window_start > FAILURE_WINDOW:
        current = Lockout(0, now, None)
    failures = current.failures + 1
    return Lockout(failures, current.window_start, now + LOCKOUT if failures >= MAX_FAILURES else current.locked_until)


def is_locked(current: Lockout, now: datetime) -> bool:
    return current.locked_until is not None and now < current.locked_until


# --- what the participant hears ----------------------------------------------------------------

# One answer for every refusal (unknown number, wrong PIN, locked): nothing tells a caller which it was.
NOT_RECOGNISED = "Sorry, we could not check you in. Check your PIN and try again, or call the clinic."


def parse_message(text: str) -> tuple[str, str]:
    """(pin, command) from an SMS body or IVR digits: "1234", "1234 colour", "#1234#"."""
    words = text.replace("#", " ").replace("*", " ").split()
    pin = next((w for w in words if w.isdigit()), "")
    rest = " ".join(w.lower() for w in words if not w.isdigit())
    command = "colour" if rest.startswith(("colour", "color")) else "check-in"
    return pin, command


def must_test_words(site: str, by_clock: str, by_day: str) -> str:
    return f"Yes, you must test today. Come to the {site} clinic by {by_clock} ({by_day})."


def colour_words(today: str, colours: list[str], own: str | None) -> str:
    listed = ", ".join(colours) if colours else "none"
    if own is None:
        return f"Colours testing today ({today}): {listed}."
    verdict = "Your colour is called: you must test today." if own in colours else "Your colour is not called today."
    return f"Colours testing today ({today}): {listed}. {verdict}"


def colour_answer(
    today: str, open_day: bool, opens: str | None, colours: list[str] | None, own: str | None, must_test_by: str | None
) -> str:
    """What a participant of a colour-mode program hears when checking in: today's colours, whether theirs is
    called and by when to test, in plain words. `colours` None: not called yet today (before opening)."""
    if not open_day:
        return f"The clinic is closed today ({today}): no colours are called. Check in again on the next open day."
    if colours is None:
        return f"Today's colours are called when the clinic opens ({opens}); check in again then."
    listed = ", ".join(colours) if colours else "none"
    if own is None:
        return f"Colours testing today ({today}): {listed}. No colour is assigned to you: call the clinic."
    if must_test_by:
        return (
            f"Colours testing today ({today}): {listed}. Your colour ({own}) is called: test today by {must_test_by}."
        )
    if own in colours:
        return (
            f"Colours testing today ({today}): {listed}. Your colour ({own}) is called, but no test is ordered for "
            f"you today (testing may be paused for you); call the clinic if unsure."
        )
    return f"Colours testing today ({today}): {listed}. Your colour ({own}) is not called: no test today."
