"""Temporal event histories, decoded through the codec and told as the clinic's events."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC
from typing import Any

from google.protobuf.json_format import MessageToDict
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from api import timeline_words as words
from domain.delivery_retry import DeliveryDecision
from domain.vocab import DisclosureStatus

# Arguments worth showing, by name (never PHI: workflows carry none).
SHOWN = (
    "phase",
    "kind",
    "reason",
    "method",
    "specimen_type",
    "observed",
    "decision",
    "explanation",
    "result_status",
    "specimen_id",
    "dose",
    "unit",
    "take_home_count",
    "note",
    "start",
    "end",
    "category",
    "recipient_id",
    "detail",
    "result",
    "status",
)
# Workflow types as a clinic would name them.
WORKFLOWS = {
    "ParticipantWorkflow": "Testing program",
    "ScreeningWorkflow": "Screening",
    "MedicationWorkflow": "Medication order",
    "DisclosureWorkflow": "Report to a recipient",
    "DiscloseEventWorkflow": "Reports of an event",
}
_REPORT = {
    DeliveryDecision.DELIVERED: "Report delivered",
    DisclosureStatus.BLOCKED: "Report not sent (the consent does not cover it)",
    DeliveryDecision.RETRY: "Report not delivered yet; retrying",
    "waiting": "Report waiting for the recipient",
    DeliveryDecision.DISABLE_RECIPIENT: "Report not delivered: the recipient is disabled",
    DeliveryDecision.STOP_AND_SURFACE: "Report not delivered: staff must act",
}


@dataclass
class TimelineEntry:
    at: str
    source: str  # workflow | audit | draw
    workflow_id: str
    event: str  # in the clinic's words (api/timeline_words.py)
    actor: str  # a token id here; the API shows the name it was issued to (actor_id keeps the id)
    detail: str
    kind: str = words.RECORD  # record | access | technical
    action: str = ""  # the raw action: the HTTP route, the workflow update's or activity's name
    actor_id: str = ""
    role: str = ""
    outcome: str = ""
    request_id: str = ""


async def decoded(client: Client, payloads) -> list[Any]:
    if not payloads or not payloads.payloads:
        return []
    try:
        return await client.data_converter.decode(payloads.payloads)
    except Exception:  # noqa: BLE001 - a payload from a retired key: shown as such, never guessed
        return ["<payload not decodable with the configured keys>"]


def _describe(values: list[Any]) -> tuple[str, str]:
    """(actor, detail) from decoded arguments."""
    actor, parts = "", []
    for value in values:
        if isinstance(value, dict):
            actor = actor or str(value.get("actor") or "")
            parts += [f"{k}={value[k]}" for k in SHOWN if value.get(k) not in (None, "", [])]
        elif value is not None:
            parts.append(str(value))
    return actor, ", ".join(parts)[:500]


def _first(values: list[Any]) -> dict[str, Any]:
    return next((v for v in values if isinstance(v, dict)), {})


def _workflow_words(type_name: str) -> str:
    return WORKFLOWS.get(type_name) or re.sub(r"(?<!^)(?=[A-Z])", " ", type_name.removesuffix("Workflow")).capitalize()


async def render(client: Client, workflow_id: str, events: list[HistoryEvent]) -> list[TimelineEntry]:
    entries: list[TimelineEntry] = []
    scheduled: dict[int, str] = {}

    def add(
        event: HistoryEvent,
        what: str,
        actor: str = "system",
        detail: str = "",
        kind: str = words.RECORD,
        action: str = "",
    ) -> None:
        at = event.event_time.ToDatetime(tzinfo=UTC).isoformat()
        entries.append(TimelineEntry(at, "workflow", workflow_id, what, actor or "system", detail, kind, action))

    for event in events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            attrs = event.workflow_execution_started_event_attributes
            name = attrs.workflow_type.name
            if attrs.continued_execution_run_id:
                add(
                    event,
                    f"{_workflow_words(name)}: history continued in a new run",
                    kind=words.TECHNICAL,
                    action=f"{name} continued",
                )
            elif name == "ParticipantWorkflow":
                add(event, "Testing program started", action=f"{name} started")
            else:
                add(event, f"{_workflow_words(name)} opened", kind=words.TECHNICAL, action=f"{name} started")
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request
            what, actor, detail = words.update_words(request.input.name, await decoded(client, request.input.args))
            add(event, what, actor, detail, action=request.input.name)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            outcome = event.workflow_execution_update_completed_event_attributes.outcome
            if outcome.HasField("failure"):
                add(
                    event,
                    "Not done: the change was refused",
                    detail=outcome.failure.message[:300],
                    action="update failed",
                )
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            signal = event.workflow_execution_signaled_event_attributes
            what, actor, detail = words.update_words(signal.signal_name, await decoded(client, signal.input))
            add(event, what, actor, detail, action=signal.signal_name)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            task = event.activity_task_scheduled_event_attributes
            name = task.activity_type.name
            scheduled[event.event_id] = name
            if name in ("notify_participant", "raise_alert"):
                args = _first(await decoded(client, task.input))
                detail = (
                    str(args.get("kind") or "").replace("-", " ")
                    if name == "notify_participant"
                    else f"{str(args.get('kind') or '').replace('-', ' ')}: {args.get('detail') or ''}"
                )
                add(event, words.activity_words(name), detail=detail[:500], action=name)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            done = event.activity_task_completed_event_attributes
            name = scheduled.get(done.scheduled_event_id, "")
            if name == "attempt_delivery":
                result = _first(await decoded(client, done.result))
                status = str(result.get("kind") or "")
                # The audit trail tells every attempt with its recipient by name ("Report of ... delivered").
                add(
                    event,
                    _REPORT.get(status, words.activity_words(name)),
                    detail=str(result.get("reason") or "")[:500],
                    kind=words.TECHNICAL,
                    action=name,
                )
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
            failed = event.activity_task_failed_event_attributes
            name = scheduled.get(failed.scheduled_event_id, "activity")
            add(
                event,
                f"Not done yet, will be retried: {words.activity_words(name).lower()}",
                detail=failed.failure.message[:300],
                action=f"{name} failed",
            )
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            details = event.marker_recorded_event_attributes.details
            # Local activities record a "data" payload; version markers (workflow.patched) record none.
            payloads = details["data"].payloads if "data" in details else []
            marker = json.loads(payloads[0].data or b"{}") if payloads else {}
            name = marker.get("activity_type", "")
            if name in ("open_screening", "open_order", "plan_disclosures", "record_consent_event"):
                add(event, words.activity_words(name), action=name)
        elif kind == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            child = event.start_child_workflow_execution_initiated_event_attributes
            add(
                event,
                f"{_workflow_words(child.workflow_type.name)} started",
                detail=child.workflow_id,
                kind=words.TECHNICAL,
                action=f"{child.workflow_type.name} started",
            )
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            _, detail = _describe(await decoded(client, event.workflow_execution_completed_event_attributes.result))
            add(event, "Closed", detail=detail, kind=words.TECHNICAL, action="closed")
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            add(
                event,
                "History continued in a new run (state carried over)",
                kind=words.TECHNICAL,
                action="continued as new",
            )
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
            add(
                event,
                "Stopped by an administrator",
                detail=event.workflow_execution_terminated_event_attributes.reason,
                action="terminated",
            )
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
            add(
                event,
                "Stopped by an error",
                detail=event.workflow_execution_failed_event_attributes.failure.message[:300],
                action="failed",
            )
    return entries


async def runs(client: Client, workflow_id: str) -> list[str | None]:
    """Every run of a workflow (continue-as-new makes several), oldest first."""
    found = []
    quoted = workflow_id.replace("\\", "\\\\").replace("'", "\\'")  # a literal in Temporal's query language
    async for execution in client.list_workflows(f"WorkflowId = '{quoted}'"):
        found.append((execution.start_time, execution.run_id))
    return [run for _, run in sorted(found)] or [None]


async def workflow_events(client: Client, workflow_id: str) -> list[list[HistoryEvent]]:
    histories = []
    for run_id in await runs(client, workflow_id):
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        histories.append(list(history.events))
    return histories


async def raw_history(client: Client, workflow_id: str) -> list[dict[str, Any]]:
    """The full event history with every payload decoded: for auditors and administrators."""
    out = []
    for events in await workflow_events(client, workflow_id):
        for event in events:
            entry = MessageToDict(event)
            await _decode_in_place(client, entry)
            out.append(_withhold_rolls(entry))
    return out


WITHHELD = "<withheld: a selection roll; the day's draw record shows it once drawn>"


def _withhold_rolls(node: Any) -> Any:
    """Selection rolls out of a raw history (admins and auditors): the minute's roll is taken before the draw
    minute (the selection_roll local activity's result, and pending_time_roll in the workflow's state carried by
    updates' results and continue-as-new), and nobody may read it early. Every roll is in the draws once made."""
    if isinstance(node, dict):
        marker = node.get("markerRecordedEventAttributes")
        if marker and "selection_roll" in json.dumps(marker.get("details", {}).get("data"), default=str):
            marker["details"]["result"] = {"decoded": [WITHHELD]}
        return {k: (None if k == "pending_time_roll" else _withhold_rolls(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_withhold_rolls(value) for value in node]
    return node


async def _decode_in_place(client: Client, node: Any) -> None:
    if isinstance(node, dict):
        if "payloads" in node and isinstance(node["payloads"], list):
            decoded_values = []
            for item in node["payloads"]:
                payload = Payload()
                payload.metadata.update({k: base64.b64decode(v) for k, v in item.get("metadata", {}).items()})
                payload.data = base64.b64decode(item.get("data", ""))
                try:
                    [value] = await client.data_converter.decode([payload])
                except Exception:  # noqa: BLE001
                    value = "<not decodable>"
                decoded_values.append(value)
            node["decoded"] = decoded_values
            del node["payloads"]
            return
        for value in node.values():
            await _decode_in_place(client, value)
    elif isinstance(node, list):
        for value in node:
            await _decode_in_place(client, value)


def as_dict(entry: TimelineEntry) -> dict[str, str]:
    return asdict(entry)
