"""Standard Webhooks 1.0 signing (https://www.standardwebhooks.com/): HMAC-SHA256 over
"{msg_id}.{timestamp}.{body}", base64, versioned "v1,". The message id stays the same across retries
(the recipient's idempotency key); the timestamp is the attempt's, so each retry is signed afresh.

Pure and stdlib-only: the caller passes every moment and every random byte; nothing here reads a clock,
the environment or the network.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

WEBHOOK_SECRET_PREFIX = "whsec_"
# The specification asks for a random secret of at least 24 bytes (192 bits), at most 64 (512 bits).
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64


def new_webhook_secret(random_bytes: bytes) -> str:
    """A signing secret in the standard form, from randomness the caller drew (secrets.token_bytes)."""
    if not isinstance(random_bytes, bytes):
        raise ValueError("random_bytes must be bytes, e.g. secrets.token_bytes(32)")
    _check_secret_length(len(random_bytes))
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(random_bytes).decode("ascii")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature value: "v1," and the base64 HMAC-SHA256 of msg_id.timestamp.body."""
    key = _secret_key(secret)
    _check_message(msg_id, timestamp, body)
    signed_content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed_content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def webhook_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one delivery attempt of `body`."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes to sign and send: compact, key-sorted UTF-8 JSON, the same on every replay."""
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _secret_key(secret: str) -> bytes:
    if not isinstance(secret, str) or not secret.startswith(WEBHOOK_SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {WEBHOOK_SECRET_PREFIX!r} followed by base64")
    encoded = secret[len(WEBHOOK_SECRET_PREFIX) :]
    try:
        # Some issuers drop the base64 padding; put it back rather than reject their secret.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the webhook secret after 'whsec_' is not valid base64") from None
    _check_secret_length(len(key))
    return key


def _check_secret_length(length: int) -> None:
    if not MIN_SECRET_BYTES <= length <= MAX_SECRET_BYTES:
        raise ValueError(
            f"a webhook secret must hold {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} random bytes; this one holds {length}"
        )


def _check_message(msg_id: Any, timestamp: Any, body: Any) -> None:
    # A "." in the id would let one id/timestamp pair pass for another: the specification forbids it.
    if not isinstance(msg_id, str) or not msg_id or "." in msg_id or any(c.isspace() for c in msg_id):
        raise ValueError(f"webhook message id {msg_id!r} must be non-empty, without dots or spaces")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool) or timestamp < 0:
        raise ValueError(f"webhook timestamp must be whole seconds since the Unix epoch; got {timestamp!r}")
    if not isinstance(body, bytes):
        raise ValueError("the webhook body must be the exact bytes sent (see encode_payload)")
