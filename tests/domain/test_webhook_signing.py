"""Standard Webhooks 1.0 signing (domain.webhook_signing), checked against the reference package."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from domain.consent import SCREENING_RESULTS
from domain.report_content import build_report
from domain.webhook_signing import encode_payload, new_webhook_secret, sign, webhook_headers
from tests.domain.test_consent import CASE, DURING, GOOD_FACTS, make_consent

SECRET = new_webhook_secret(bytes(range(32)))


def test_signature_verifies_with_the_standardwebhooks_package():
    payload = build_report(SCREENING_RESULTS, GOOD_FACTS[SCREENING_RESULTS], CASE, make_consent(), "D-1", DURING)
    body = encode_payload(payload)
    headers = webhook_headers(SECRET, "D-1", int(time.time()), body)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert Webhook(SECRET).verify(body, headers) == payload
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body.replace(b"negative", b"positive"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_webhook_secret(bytes(32))).verify(body, headers)


def test_signature_matches_the_reference_signer():
    body = '{"type":"x","data":"é"}'.encode()
    moment = datetime.fromtimestamp(1674087231, tz=UTC)
    expected = Webhook(SECRET).sign("msg_1", moment, body.decode())
    assert sign(SECRET, "msg_1", 1674087231, body) == expected
    unpadded = SECRET.rstrip("=")
    assert sign(unpadded, "msg_1", 1674087231, body) == expected


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: new_webhook_secret(bytes(16)), "24 to 64 random bytes"),
        (lambda: new_webhook_secret("x" * 32), "must be bytes"),
        (lambda: sign("secret", "m", 1, b""), "starts with 'whsec_'"),
        (lambda: sign("whsec_!!!!", "m", 1, b""), "not valid base64"),
        (lambda: sign(SECRET, "m.1", 1, b""), "without dots"),
        (lambda: sign(SECRET, "m", -1, b""), "whole seconds"),
        (lambda: sign(SECRET, "m", 1, "text"), "exact bytes"),
    ],
)
def test_signing_inputs_are_checked(call, message):
    with pytest.raises(ValueError, match=message):
        call()
