"""Telling a participant they must test: the message goes through an adapter.

The default adapter only records the message (staff see it and call); the webhook adapter hands it
to an SMS/voice gateway. Either way the notification id is stable across retries, so a gateway can
drop duplicates, and the record is written once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Protocol

import httpx


class Notifier(Protocol):
    channel: str

    def send(self, notification_id: str, phone: str | None, message: str) -> None: ...


class RecordingNotifier:
    """Records only: the Today list shows the message to staff."""

    channel = "recorded"

    def send(self, notification_id: str, phone: str | None, message: str) -> None:
        return None


class WebhookNotifier:
    """POSTs {id, to, message} to an SMS/voice gateway, signed with HMAC-SHA256."""

    channel = "sms-gateway"

    def __init__(self, url: str, secret: str, *, timeout: float = 15.0) -> None:
        self.url = url
        self.secret = secret.encode()
        self.timeout = timeout

    def send(self, notification_id: str, phone: str | None, message: str) -> None:
        if not phone:
            raise ValueError("the participant has no phone number on record; staff must call or record another way")
        body = json.dumps({"id": notification_id, "to": phone, "message": message}).encode()
        signature = hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        response = httpx.post(
            self.url,
            content=body,
            headers={"Content-Type": "application/json", "Idempotency-Key": notification_id,
                     "X-Signature-SHA256": signature},
            timeout=self.timeout,
            follow_redirects=False,
        )
        response.raise_for_status()
