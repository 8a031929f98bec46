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
    # True when the gateway reports delivery later (a receipt): only a "delivered" receipt then counts
    # as the participant having been told. False: acceptance by the gateway counts.
    expects_receipts: bool

    def send(self, notification_id: str, phone: str | None, message: str) -> str | None:
        """Hand the message over; returns the gateway's reference for its receipts, if any."""
        ...


class RecordingNotifier:
    """Records only: the Today list shows the message to staff, who tell the participant."""

    channel = "recorded"
    expects_receipts = False

    def send(self, notification_id: str, phone: str | None, message: str) -> str | None:
        return None


class WebhookNotifier:
    """POSTs {id, to, message} to an SMS/voice gateway, signed with HMAC-SHA256."""

    channel = "sms-gateway"

    def __init__(
        self, url: str, secret: str, *, timeout: float = 15.0, expects_receipts: bool = True, receipt_url: str = ""
    ) -> None:
        self.url = url
        self.secret = secret.encode()
        self.timeout = timeout
        self.expects_receipts = expects_receipts
        self.receipt_url = receipt_url

    def send(self, notification_id: str, phone: str | None, message: str) -> str | None:
        if not phone:
            raise ValueError("the participant has no phone number on record; staff must call or record another way")
        payload = {"id": notification_id, "to": phone, "message": message}
        if self.receipt_url:
            payload["status_callback"] = self.receipt_url
        body = json.dumps(payload).encode()
        signature = hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        response = httpx.post(
            self.url,
            content=body,
            headers={
                "Content-Type": "application/json",
                "Idempotency-Key": notification_id,
                "X-Signature-SHA256": signature,
            },
            timeout=self.timeout,
            follow_redirects=False,
        )
        response.raise_for_status()
        try:
            reference = response.json().get("id") if response.content else None
        except ValueError:
            reference = None
        return str(reference)[:120] if reference else notification_id
