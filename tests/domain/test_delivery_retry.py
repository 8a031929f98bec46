"""What to do after a delivery attempt, and when to try again (domain.delivery_retry)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from domain.delivery_retry import (
    DELIVERED,
    DISABLE_RECIPIENT,
    RETRY,
    STOP_AND_SURFACE,
    Decision,
    DeliveryPolicy,
    classify_response,
    decision_from_dict,
    decision_to_dict,
    policy_from_dict,
    policy_to_dict,
    retry_delay,
)

NOW = datetime(2026, 5, 15, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "retry_after", "kind", "delay"),
    [
        (200, None, DELIVERED, None),
        (202, None, DELIVERED, None),
        (299, None, DELIVERED, None),
        (301, None, STOP_AND_SURFACE, None),
        (302, None, STOP_AND_SURFACE, None),
        (307, None, STOP_AND_SURFACE, None),
        (308, None, STOP_AND_SURFACE, None),
        (410, None, DISABLE_RECIPIENT, None),
        (400, None, STOP_AND_SURFACE, None),
        (401, None, STOP_AND_SURFACE, None),
        (403, None, STOP_AND_SURFACE, None),
        (404, None, STOP_AND_SURFACE, None),
        (422, None, STOP_AND_SURFACE, None),
        (408, None, RETRY, None),
        (429, None, RETRY, None),
        (429, "120", RETRY, 120.0),
        (429, " 0 ", RETRY, 0.0),
        (503, "Fri, 15 May 2026 12:05:00 GMT", RETRY, 300.0),
        (503, "Friday, 15-May-26 12:00:30 GMT", RETRY, 30.0),
        (503, "Fri May 15 12:01:00 2026", RETRY, 60.0),
        (503, "Thu, 14 May 2026 12:00:00 GMT", RETRY, 0.0),
        (503, "soon", RETRY, None),
        (503, None, RETRY, None),
        (500, None, RETRY, None),
        (502, None, RETRY, None),
        (504, "60", RETRY, None),  # only 429 and 503 are read for Retry-After
        (None, None, RETRY, None),
        (102, None, STOP_AND_SURFACE, None),
    ],
)
def test_classify_response(status, retry_after, kind, delay):
    decision = classify_response(status, retry_after, now=NOW)
    assert (decision.kind, decision.delay_s) == (kind, delay)
    assert decision.reason


def test_classify_response_reasons_say_what_to_do():
    assert "confirm the recipient's current webhook URL" in classify_response(302, None).reason
    assert "410 Gone" in classify_response(410, None).reason
    assert "signing secret" in classify_response(401, None).reason
    assert "retrying after 120 s as it asked" in classify_response(429, "120").reason


def test_an_http_date_needs_now():
    with pytest.raises(ValueError, match="pass now"):
        classify_response(429, "Fri, 15 May 2026 12:05:00 GMT")
    with pytest.raises(ValueError, match="status must be"):
        classify_response(True, None)


def test_default_policy_reaches_three_days():
    policy = DeliveryPolicy()
    assert policy.timeout_s == 15.0
    assert policy.total_s >= 3 * 24 * 3600
    assert policy.schedule[0] == 5.0 and policy.schedule[-1] == 24 * 3600


def test_policy_rejects_a_short_schedule():
    with pytest.raises(ValueError, match="at least 72 h"):
        DeliveryPolicy(schedule=(5.0, 300.0, 3600.0))
    with pytest.raises(ValueError, match="positive number"):
        DeliveryPolicy(schedule=(0.0, 300000.0))
    with pytest.raises(ValueError, match="timeout_s"):
        DeliveryPolicy(timeout_s=0)


def test_retry_delay_follows_the_schedule_then_gives_up():
    policy = DeliveryPolicy()
    plain = classify_response(500, None)
    delays = [retry_delay(policy, done, plain) for done in range(len(policy.schedule) + 1)]
    assert delays[:-1] == list(policy.schedule)
    assert delays[-1] is None
    assert retry_delay(policy, 0, classify_response(429, "120")) == 120.0
    assert retry_delay(policy, 0, classify_response(429, "9999999")) == policy.retry_after_cap_s
    with pytest.raises(ValueError, match="only a retry decision"):
        retry_delay(policy, 0, classify_response(200, None))


def test_policy_and_decision_round_trip_through_json():
    policy = replace(DeliveryPolicy(), timeout_s=20.0)
    assert policy_from_dict(json.loads(json.dumps(policy_to_dict(policy)))) == policy
    with pytest.raises(ValueError, match="unknown delivery-policy field"):
        policy_from_dict({"timeout": 10})
    decision = Decision(RETRY, 30.0, "asked")
    assert decision_from_dict(json.loads(json.dumps(decision_to_dict(decision)))) == decision
