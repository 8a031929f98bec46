"""Verifiable selection (domain/verifiable.py) in the worker: the roll (the period's seed is opened here and
only the resulting number goes back into the workflow's history), and the period's life around it: its
commitment, its reveal and the notices to subscribing recipients (signed webhooks, or mail through the relay).

The first roll of a period in a worker process makes sure the period's SelectionPeriodWorkflow runs; that
workflow publishes the commitment notice, waits on a durable timer for the period to end, reveals the seed and
sends the reveal notice. None of it carries the seed through a workflow history.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime
from email.message import EmailMessage

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio import activity
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.disclosure import SmtpSettings, send_mail
from domain import verifiable
from domain.delivery_retry import DELIVERED, RETRY, Decision, classify_response
from domain.vocab import DisclosureStatus
from domain.webhook_signing import encode_payload, webhook_headers
from iop.codec import CodecKey, open_text
from store import audit, selection
from store.db import session_scope
from store.models import Recipient, SelectionNotice, utcnow
from workflows.contracts.delivery import AttemptResult
from workflows.contracts.participant import RollRequest
from workflows.contracts.selection import (
    NoticePlan,
    PeriodOpened,
    RevealRequest,
    SelectionPeriodInput,
    selection_period_workflow_id,
)

log = logging.getLogger(__name__)

PERIOD_WORKFLOW = "SelectionPeriodWorkflow"  # workflows/selection.py (named, not imported: it imports us)


class SelectionActivities:
    def __init__(self, engine: Engine, keys: Sequence[CodecKey], *, smtp: SmtpSettings | None = None) -> None:
        self.engine = engine
        self.keys = list(keys)
        self.smtp = smtp
        self._watched: set[tuple[str, str]] = set()  # periods whose workflow this process knows to be started

    # --- the roll ---------------------------------------------------------------------------

    @activity.defn
    async def selection_roll(self, request: RollRequest) -> float:
        """HMAC roll of the day's period seed; opens (commits) the period on its first roll."""
        period = verifiable.period_of(date.fromisoformat(request.day))
        seed, beacon = await asyncio.to_thread(selection.seed_for_roll, self.engine, self.keys, request.program, period)
        await self._watch(request.program, period)
        return verifiable.roll(seed, request.program, request.participant_id, request.day, request.purpose, beacon)

    async def _watch(self, program: str, period: str) -> None:
        """Start the period's workflow unless this process already knows it runs (or ran: ids are not reused)."""
        if (program, period) in self._watched:
            return
        await ensure_period_workflow(activity.client(), activity.info().task_queue, program, period)
        self._watched.add((program, period))

    # --- the period's workflow ----------------------------------------------------------------

    @activity.defn
    def open_selection_period(self, request: SelectionPeriodInput) -> PeriodOpened:
        """The period's commitment, committing a fresh seed if it has none yet (audited: selection.commit)."""
        row = selection.open_period(self.engine, self.keys, request.program, request.period)
        published = row.published_at if row.published_at.tzinfo else row.published_at.replace(tzinfo=UTC)
        return PeriodOpened(row.commitment, published.isoformat(), verifiable.reveal_moment(row.period).isoformat())

    @activity.defn
    def reveal_selection_period(self, request: RevealRequest) -> str:
        """Publish the seed (audited: selection.reveal by system); the time it was revealed."""
        row = selection.reveal(
            self.engine,
            self.keys,
            request.program,
            request.period,
            actor="system",
            role="system",
            today=datetime.fromisoformat(request.at).astimezone(UTC).date(),
        )
        assert row.revealed_at is not None  # reveal() sets it or refuses
        return row.revealed_at.isoformat()

    @activity.defn
    def plan_selection_notices(self, plan: NoticePlan) -> list[str]:
        """One notice per subscribing recipient (store.selection.plan_notices); idempotent."""
        return selection.plan_notices(self.engine, plan.program, plan.period, plan.kind)

    # --- one notice, one attempt ------------------------------------------------------------------

    @activity.defn
    def attempt_selection_notice(self, notice_id: str) -> AttemptResult:
        now = datetime.now(UTC)
        with Session(self.engine) as session:
            row = session.get(SelectionNotice, notice_id)
            recipient = session.get(Recipient, row.recipient_id) if row else None
            period = selection.find(session, row.program, row.period) if row else None
        if row is None or recipient is None or period is None:
            return self._settle(notice_id, "blocked", "the notice, its recipient or its period record is gone")
        if row.status in (DisclosureStatus.DELIVERED, DisclosureStatus.BLOCKED, DisclosureStatus.FAILED):
            return AttemptResult(row.status, row.reason or row.status)  # decided on an earlier attempt
        if recipient.status != "active":
            return self._settle(
                notice_id, "blocked", f"recipient {recipient.id} is disabled: {recipient.disabled_reason}"
            )
        if verifiable.SELECTION_COMMITMENTS not in (recipient.notices or []):
            return self._settle(
                notice_id,
                "blocked",
                f"recipient {recipient.id} no longer subscribes to {verifiable.SELECTION_COMMITMENTS}",
            )
        published = period.published_at if period.published_at.tzinfo else period.published_at.replace(tzinfo=UTC)
        payload = verifiable.build_notice(
            row.kind,
            row.id,
            row.program,
            row.period,
            period.commitment,
            published.isoformat(),
            now.isoformat(),
            beacon_text=period.beacon,
            seed_hex=period.seed_revealed if row.kind == verifiable.NoticeKind.REVEAL else None,
            revealed_at=period.revealed_at.isoformat() if period.revealed_at and row.kind == "reveal" else None,
        )
        if recipient.delivery == "email":
            decision, status = self._email(recipient, row.id, payload), None
        else:
            status, retry_after = self._post(recipient, row.id, payload, now)
            decision = classify_response(status, retry_after, now)
        self._record(row.id, payload, status, decision)
        audit.append(
            self.engine,
            audit.AuditEntry(
                actor="system",
                role="system",
                action=f"selection.notice.{row.kind}",
                outcome=decision.kind if status is None else f"{decision.kind} ({status})",
                subject_type="selection-notice",
                subject_id=row.id,
                detail=f"to {recipient.id} for {row.program} {row.period}: {decision.reason}"[:1000],
            ),
        )
        if decision.kind == "disable-recipient":
            with session_scope(self.engine) as session:
                disabled = session.get_one(Recipient, recipient.id)
                disabled.status, disabled.disabled_reason = "disabled", decision.reason
                session.add(disabled)
        return AttemptResult(decision.kind, decision.reason, decision.delay_s, status)

    @activity.defn
    def settle_selection_notice(self, notice_id: str, status: str, reason: str) -> None:
        """The retry schedule is spent: recorded (GET /selection/notices) and audited."""
        self._settle(notice_id, status, reason)

    def _post(
        self, recipient: Recipient, notice_id: str, payload: dict, now: datetime
    ) -> tuple[int | None, str | None]:
        body = encode_payload(payload)
        assert recipient.url is not None and recipient.secret_sealed is not None  # a webhook recipient has both
        headers = {
            "Content-Type": "application/json",
            **webhook_headers(open_text(self.keys, recipient.secret_sealed), notice_id, int(now.timestamp()), body),
        }
        try:
            response = httpx.post(recipient.url, content=body, headers=headers, timeout=15.0, follow_redirects=False)
        except httpx.HTTPError as exc:
            log.info(
                "selection notice %s: no answer from recipient %s (%s)", notice_id, recipient.id, type(exc).__name__
            )
            return None, None
        return response.status_code, response.headers.get("retry-after")

    def _email(self, recipient: Recipient, notice_id: str, payload: dict) -> Decision:
        """The notice as a readable mail with the notice itself attached as JSON; delivered when the relay accepts."""
        if self.smtp is None or not self.smtp.host:
            return Decision(RETRY, None, "no mail relay is configured (IOP_SMTP_HOST): the notice waits, retried")
        message = EmailMessage()
        kind = (
            "seed revealed"
            if payload["type"] == verifiable.NOTICE_TYPES[verifiable.NoticeKind.REVEAL]
            else "commitment"
        )
        message["From"], message["To"] = self.smtp.sender, recipient.email
        message["Subject"] = f"Random selection {kind}: {payload['program']} {payload['period']}"
        message["Message-ID"] = f"<{notice_id}@iop-workflows>"
        message.set_content(notice_text(payload))
        message.add_attachment(
            json.dumps(payload, indent=1, sort_keys=True).encode(),
            maintype="application",
            subtype="json",
            filename=f"{notice_id}.json",
        )
        refused = send_mail(self.smtp, message)
        if refused is not None:
            return refused
        return Decision(DELIVERED, None, "the mail relay accepted the notice (SMTP 250)")

    def _record(self, notice_id: str, payload: dict, status: int | None, decision: Decision) -> None:
        with session_scope(self.engine) as session:
            row = session.get_one(SelectionNotice, notice_id)
            row.payload, row.last_status_code, row.reason = payload, status, decision.reason
            row.attempts += 1
            statuses: dict[str, str] = {DELIVERED: "delivered", RETRY: "retrying"}
            row.status = statuses.get(decision.kind, "failed")
            if decision.kind == DELIVERED:
                row.delivered_at = utcnow()
            row.updated_at = utcnow()
            session.add(row)

    def _settle(self, notice_id: str, status: str, reason: str) -> AttemptResult:
        with session_scope(self.engine) as session:
            row = session.get(SelectionNotice, notice_id)
            if row is not None and row.status != "delivered":
                row.status, row.reason, row.updated_at = status, reason, utcnow()
                session.add(row)
        audit.append(
            self.engine,
            audit.AuditEntry(
                actor="system",
                role="system",
                action="selection.notice",
                outcome=status,
                subject_type="selection-notice",
                subject_id=notice_id,
                detail=reason[:1000],
            ),
        )
        return AttemptResult(status, reason)

    def all(self) -> list:
        return [
            self.selection_roll,
            self.open_selection_period,
            self.reveal_selection_period,
            self.plan_selection_notices,
            self.attempt_selection_notice,
            self.settle_selection_notice,
        ]


async def ensure_period_workflow(client, task_queue: str, program: str, period: str) -> None:
    """Start the period's SelectionPeriodWorkflow unless it runs or ran (its id is never reused)."""
    try:
        await client.start_workflow(
            PERIOD_WORKFLOW,
            SelectionPeriodInput(program, period),
            id=selection_period_workflow_id(task_queue, program, period),
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        pass


def notice_text(payload: dict) -> str:
    """The notice for a reader: what was published, and how to check it."""
    lines = [
        f"Random drug-test selection, program {payload['program']}, period {payload['period']}.",
        "",
        f"Commitment (published {payload['published_at']}):",
        f"  {payload['commitment']}",
        f"  = {payload['formula']['commitment']}",
    ]
    if payload.get("beacon"):
        lines += ["", f"Public beacon mixed into every roll: {payload['beacon']}"]
    else:
        lines += [
            "",
            f"If a public beacon is used for this period it is drand quicknet round {payload['beacon_round']}"
            f" ({payload['beacon_round_url']}).",
        ]
    if payload.get("seed"):
        lines += [
            "",
            f"Seed (revealed {payload['revealed_at']}):",
            f"  {payload['seed']}",
            "Check it and every draw of the period with docs/verify_selection.py (README: Proving the selection "
            "was random).",
        ]
    else:
        lines += ["", f"The seed will be revealed on {payload['reveal_on']}; keep this notice to compare."]
    lines += [
        "",
        f"Each roll: {payload['formula']['roll']}.",
        "",
        "This notice holds no information about any participant.",
    ]
    return "\n".join(lines) + "\n"
