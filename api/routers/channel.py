"""The participant channel: an SMS/IVR gateway posts here (no staff token: the gateway's signature
proves who sent it), and staff manage PINs and the call list.

- POST /channel/inbound: a participant texts or keys in their PIN; the answer says in plain words
  whether they test today and by when. Form posts (Twilio: From, Body or Digits) are verified with
  X-Twilio-Signature; JSON posts ({"from": ..., "text": ...}) with Standard Webhooks headers. A wrong
  PIN, an unknown number and a locked number all get the same answer; each is audited, and a run of
  wrong PINs locks the number (and the participant's PIN) for a while.
- POST /channel/receipts: the gateway's delivery receipts for notices (Twilio MessageSid/MessageStatus,
  or JSON {"id", "status"}); an undelivered notice puts the participant on the staff call list.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Annotated
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func
from sqlmodel import Session, col, select

from api.deps import ServicesDep, SessionDep, require
from api.idempotency import REPLAYED, IdempotentRoute, Replay, _answered, _claim, _release
from api.inputs import RequestModel
from api.lookups import participant_or_404
from api.pages import Page, PagingDep
from api.problems import ProblemError, responses
from api.tokens import Actor
from api.workflow_calls import workflow_call
from domain import calls
from domain.calendar import hours_on
from domain.calls import CallResult
from domain.channel import (
    NOT_RECOGNISED,
    Lockout,
    after_failure,
    check_pin_format,
    colour_answer,
    hash_pin,
    is_locked,
    parse_message,
    pin_matches,
    verify_standard_webhook,
    verify_twilio,
)
from domain.clock import local_clock
from domain.vocab import GatewayStatus, NoticeStatus
from store.colours import stored_colours
from store.db import session_scope
from store.models import (
    CallListEntry,
    ChannelLockout,
    NotificationAttempt,
    NotificationRecord,
    Participant,
    ParticipantPin,
    utcnow,
)
from store.programs import current_program
from workflows.contracts.participant import CheckIn
from workflows.participant import ParticipantWorkflow
from workflows.participant import workflow_id as participant_workflow_id

router = APIRouter(route_class=IdempotentRoute, tags=["participant channel"], responses=responses(422))

FrontDesk = Annotated[Actor, Depends(require("admin", "staff"))]
MAX_BODY = 16_000
# Verifying a PIN costs the same whether or not the number is known: no timing tells them apart.
_DUMMY_HASH = hash_pin("48213", b"timing-equaliser")


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


class Inbound(BaseModel):
    sender: str
    text: str
    form: bool
    voice: bool


async def _verified(request: Request, services: ServicesDep) -> dict[str, str]:
    """The post's fields, if its signature holds; otherwise 403 (audited, nothing processed)."""
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ProblemError(413, f"The body is larger than {MAX_BODY} bytes.")
    settings = services.settings
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        params = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
        url = str(request.url)
        if settings.channel_public_url:
            url = (
                settings.channel_public_url.rstrip("/")
                + request.url.path
                + (f"?{request.url.query}" if request.url.query else "")
            )
        signature = request.headers.get("x-twilio-signature")
        if not verify_twilio(settings.channel_twilio_auth_token, url, params, signature):
            request.state.audit_detail = "forged or missing gateway signature (Twilio)"
            raise ProblemError(403, "The gateway signature does not match this request.")
        return dict(params)
    if kind == "application/json":
        ok = verify_standard_webhook(
            settings.channel_webhook_secret,
            request.headers.get("webhook-id"),
            request.headers.get("webhook-timestamp"),
            request.headers.get("webhook-signature"),
            raw,
            _now(),
        )
        if not ok:
            request.state.audit_detail = "forged, stale or missing gateway signature (Standard Webhooks)"
            raise ProblemError(403, "The gateway signature does not match this request.")
        try:
            data = json.loads(raw)
        except ValueError:
            raise ProblemError(422, "The body is not JSON.") from None
        if not isinstance(data, dict):
            raise ProblemError(422, "The body must be a JSON object.")
        return {str(k): str(v) for k, v in data.items() if isinstance(v, (str, int))} | {"_json": "1"}
    raise ProblemError(415, "Send application/x-www-form-urlencoded (Twilio) or application/json (Standard Webhooks).")


# --- a gateway's retry is answered once --------------------------------------------------------------
# A gateway that got no answer (a timeout, a dropped connection) posts the same message again, with the same
# message id and no Idempotency-Key. The first answer is stored under that id (in idempotent_answers, with the
# gateway as the actor) and given again: one check-in, one PIN failure counted, one receipt applied.


def _gateway_key(request: Request, fields: dict[str, str], route: str) -> tuple[str, str] | None:
    """(gateway, message id) of a signed post, or None when the gateway gives no id to tell a retry by."""
    if fields.get("_json"):
        # Standard Webhooks: webhook-id is the same on every retry of a message and is covered by the signature.
        key = request.headers.get("webhook-id")
        return ("webhooks", key) if key else None
    if route == "receipts":
        # Twilio posts one status callback per status of a message: the status is part of the id.
        sid, status = fields.get("MessageSid") or fields.get("SmsSid"), fields.get("MessageStatus")
        return ("twilio", f"{sid}:{status}") if sid and status else None
    sid = fields.get("MessageSid") or fields.get("SmsSid")  # an inbound text; a call's digits have none
    return ("twilio", sid) if sid else None


def _digest(fields: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


async def _once(
    request: Request,
    services: ServicesDep,
    fields: dict[str, str],
    route: str,
    handle: Callable[[str | None], Awaitable[Response]],
) -> Response:
    """Run `handle` once per gateway message id; a retry gets the stored answer (Idempotent-Replayed: true).
    `handle` gets a Temporal update id derived from the message id (None without one)."""
    gateway = _gateway_key(request, fields, route)
    if gateway is None:
        return await handle(None)
    actor, key = f"gateway:{gateway[0]}", gateway[1]
    if len(key) > 200:
        key = hashlib.sha256(key.encode()).hexdigest()
    try:
        record_id, _ = await run_in_threadpool(
            _claim, services.engine, actor, f"channel-{route}", "", key, _digest(fields), False
        )
    except Replay as replay:
        stored = replay.answer or {}
        return Response(
            stored.get("body") or None,
            status_code=replay.status_code,
            media_type=stored.get("media_type"),
            headers={REPLAYED: "true"},
        )
    scoped = hashlib.sha256(f"{actor}\0{key}".encode()).hexdigest()[:32]
    update_id = f"channel-{route}-{scoped}"  # a retry after a crash joins the first attempt's check-in
    try:
        response = await handle(update_id)
    except BaseException:
        await run_in_threadpool(_release, services.engine, record_id)  # nothing answered: the retry is a first
        raise
    body = bytes(response.body).decode() if response.body else ""
    await run_in_threadpool(
        _answered, services.engine, record_id, response.status_code, {"media_type": response.media_type, "body": body}
    )
    return response


def _reply(fields: dict[str, str], text: str, status: int = 200) -> Response:
    if fields.get("_json"):
        return Response(json.dumps({"reply": text}), status_code=status, media_type="application/json")
    verb = "Say" if "Digits" in fields and "Body" not in fields else "Message"
    twiml = f'<?xml version="1.0" encoding="UTF-8"?><Response><{verb}>{escape(text)}</{verb}></Response>'
    return Response(twiml, status_code=status, media_type="application/xml")


def _number_key(number: str) -> str:
    return hashlib.sha256(b"iop-channel:" + number.encode()).hexdigest()


def _identify(engine, number: str, pin: str) -> tuple[str | None, bool]:
    """(participant id, locked): the active participant with this phone whose PIN matches."""
    now = _now()
    with session_scope(engine) as session:
        lock = session.get(ChannelLockout, _number_key(number)) or ChannelLockout(key=_number_key(number))
        state = Lockout(lock.failures, _aware(lock.window_start), _aware(lock.locked_until))
        if is_locked(state, now):
            return None, True
        candidates = (
            session.exec(select(Participant).where(Participant.phone == number, Participant.status == "active")).all()
            if number
            else []
        )
        pins = [session.get(ParticipantPin, p.id) for p in candidates]
        matched = None
        for participant, stored in zip(candidates, pins, strict=True):
            if stored is None:
                continue
            own = Lockout(stored.failures, _aware(stored.window_start), _aware(stored.locked_until))
            if pin and pin_matches(pin, stored.pin_hash) and not is_locked(own, now):
                matched = participant.id
                stored.failures, stored.window_start = 0, None
                session.add(stored)
                break
        if not any(pins):
            pin_matches(pin or "0000", _DUMMY_HASH)
        if matched is None:
            state = after_failure(state, now)
            lock.failures, lock.window_start, lock.locked_until = state.failures, state.window_start, state.locked_until
            session.add(lock)
            for stored in pins:
                if stored is not None:
                    own = after_failure(
                        Lockout(stored.failures, _aware(stored.window_start), _aware(stored.locked_until)), now
                    )
                    stored.failures, stored.window_start, stored.locked_until = (
                        own.failures,
                        own.window_start,
                        own.locked_until,
                    )
                    session.add(stored)
        return matched, False


@router.post(
    "/channel/inbound",
    responses=responses(403, 409, 413, 415, 429, 503),
    summary="A participant checks in by SMS or phone (signed by the gateway)",
)
async def inbound(request: Request, services: ServicesDep) -> Response:
    """The SMS or phone gateway forwards a participant's text (or the digits keyed in on a call): their PIN, and
    optionally a word such as 'colour'. The answer, in the gateway's format (TwiML for Twilio, JSON otherwise),
    tells them in plain words whether they must test today and by when. The post must be signed by the gateway
    (X-Twilio-Signature, or Standard Webhooks headers): otherwise 403. A wrong PIN and an unknown number get the
    same answer; a run of wrong PINs locks the number for a while (429). A retry of the same message (same
    MessageSid or webhook-id) gets the first answer again and checks in once."""
    fields = await _verified(request, services)
    return await _once(
        request, services, fields, "inbound", lambda update_id: _check_in(request, services, fields, update_id)
    )


async def _check_in(request: Request, services: ServicesDep, fields: dict[str, str], update_id: str | None) -> Response:
    sender = fields.get("From") or fields.get("from") or ""
    text = fields.get("Body") or fields.get("Digits") or fields.get("text") or ""
    pin, command = parse_message(text)
    participant_id, locked = await run_in_threadpool(_identify, services.engine, sender, pin)
    if locked:
        request.state.audit_detail = "check-in refused: too many wrong PINs from this number"
        return _reply(fields, NOT_RECOGNISED, 429)
    if participant_id is None:
        request.state.audit_detail = "check-in refused: unknown number or wrong PIN"
        return _reply(fields, NOT_RECOGNISED)
    request.state.audit_participant = participant_id
    method = "ivr" if "Digits" in fields and "Body" not in fields else "sms"
    handle = services.temporal.get_workflow_handle(participant_workflow_id(participant_id))
    async with workflow_call("participant"):
        answer = await handle.execute_update(
            ParticipantWorkflow.check_in, CheckIn(method=method, actor="channel"), id=update_id
        )
    if answer.must_test and answer.screening_id:
        await run_in_threadpool(_record_told, services.engine, participant_id, answer.screening_id, method)
    request.state.audit_detail = f"checked in by {method}; must test: {answer.must_test}"
    words = await run_in_threadpool(_colour_words, services.engine, participant_id, answer)
    if words is None:
        words = answer.message
        if command == "colour":
            words = f"{words} (This program does not publish daily colours; your PIN check-in is what counts.)"
    return _reply(fields, words)


def _colour_words(engine, participant_id: str, answer) -> str | None:
    """In a colour-mode program: today's colours and whether the participant's is called (None otherwise)."""
    with Session(engine) as session:
        participant = session.get(Participant, participant_id)
        if participant is None:
            return None
        found = current_program(session, participant.program)
        if found is None or found[0].mode != "colour" or participant.site not in found[0].sites:
            return None
        today = date.fromisoformat(answer.day)
        hours = hours_on(found[0].sites[participant.site], today)
        row = stored_colours(session, found[0].program_id, participant.site, today) if hours else None
        own, zone = participant.colour, participant.timezone
    by = local_clock(datetime.fromisoformat(answer.report_by), zone) if answer.must_test and answer.report_by else None
    return colour_answer(
        answer.day,
        hours is not None,
        hours[0].strftime("%H:%M") if hours else None,
        list(row.colours) if row is not None else None,
        own,
        by,
    )


def _record_told(engine, participant_id: str, screening_id: str, method: str) -> None:
    """The check-in told the participant to test: a notice in its own right (domain.misses)."""
    with session_scope(engine) as session:
        session.add(
            NotificationAttempt(
                notification_id=f"{screening_id}:test-required",
                participant_id=participant_id,
                screening_id=screening_id,
                channel=f"check-in-{method}",
                status="told",
            )
        )


# The gateway's word -> what became of the notice.
RECEIPT_STATUSES: dict[str, NoticeStatus] = {
    GatewayStatus.DELIVERED: NoticeStatus.DELIVERED,
    GatewayStatus.FAILED: NoticeStatus.FAILED,
    GatewayStatus.UNDELIVERED: NoticeStatus.UNDELIVERED,
    GatewayStatus.SENT: NoticeStatus.ACCEPTED,
    GatewayStatus.QUEUED: NoticeStatus.ACCEPTED,
    GatewayStatus.ACCEPTED: NoticeStatus.ACCEPTED,
    GatewayStatus.READ: NoticeStatus.DELIVERED,
}


@router.post(
    "/channel/receipts",
    status_code=204,
    responses=responses(403, 404, 409, 413, 415),
    summary="Delivery receipts from the SMS gateway (signed)",
)
async def receipt(request: Request, services: ServicesDep) -> Response:
    """The SMS gateway reports what became of a notice it was given (Twilio status callback: MessageSid and
    MessageStatus, or JSON {"id", "status"}), signed like /channel/inbound. A notice reported failed or undelivered
    puts the participant on the staff call list. A retry of the same receipt is answered again, applied once."""
    fields = await _verified(request, services)
    return await _once(request, services, fields, "receipts", lambda _: _receipt(request, services, fields))


async def _receipt(request: Request, services: ServicesDep, fields: dict[str, str]) -> Response:
    reference = fields.get("MessageSid") or fields.get("id") or ""
    status = RECEIPT_STATUSES.get((fields.get("MessageStatus") or fields.get("status") or "").lower())
    if not reference or status is None:
        raise ProblemError(
            422,
            f"A receipt needs the message id (MessageSid or id) and a known status ({', '.join(RECEIPT_STATUSES)}).",
        )
    found = await run_in_threadpool(_apply_receipt, services.engine, reference, status)
    if not found:
        raise ProblemError(404, "No notice was sent with this message id.")
    request.state.audit_participant = found
    request.state.audit_detail = f"delivery receipt: {status}"
    return Response(status_code=204)


def _apply_receipt(engine, reference: str, status: str) -> str | None:
    with session_scope(engine) as session:
        attempt = session.exec(select(NotificationAttempt).where(NotificationAttempt.provider_ref == reference)).first()
        if attempt is None:
            return None
        if attempt.status != "delivered":  # a late "sent" never undoes "delivered"
            attempt.status, attempt.receipt_at = status, utcnow()
            session.add(attempt)
        if status in (NoticeStatus.FAILED, NoticeStatus.UNDELIVERED):
            sent = session.get(NotificationRecord, attempt.notification_id)
            exists = session.exec(
                select(CallListEntry).where(CallListEntry.subject_id == attempt.notification_id)
            ).first()
            if exists is None:
                session.add(
                    CallListEntry(
                        subject_id=attempt.notification_id,
                        participant_id=attempt.participant_id,
                        screening_id=attempt.screening_id,
                        reason=f"the gateway reports the notice {status}; tell them by phone",
                        window_closes_at=sent.report_by if sent else None,
                    )
                )
        return attempt.participant_id


# --- staff: PINs and the call list ----------------------------------------------------------------


class PinRequest(RequestModel):
    """A participant's new PIN for checking in by text or phone."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"pin": "4821"}]})

    pin: str = Field(
        min_length=4, max_length=8, pattern=r"^[0-9]+$", description="4 to 8 digits, told to the participant in person"
    )


@router.put(
    "/participants/{participant_id}/pin",
    status_code=204,
    responses=responses(401, 403, 404, 422),
    summary="Set a participant's check-in PIN",
)
def set_pin(participant_id: str, body: PinRequest, actor: FrontDesk, session: SessionDep) -> Response:
    """Sets (or replaces) the PIN the participant texts or keys in to check in; it is stored only as a salted hash.
    Setting it clears any lock-out after wrong PINs. Tell the PIN to the participant in person."""
    participant_or_404(session, participant_id)
    try:
        check_pin_format(body.pin)
    except ValueError as error:
        raise ProblemError(422, f"{error}.") from None
    row = session.get(ParticipantPin, participant_id) or ParticipantPin(participant_id=participant_id, pin_hash="")
    row.pin_hash, row.failures, row.window_start, row.locked_until = (
        hash_pin(body.pin, secrets.token_bytes(16)),
        0,
        None,
        None,
    )
    row.updated_at = utcnow()
    session.add(row)
    session.commit()
    return Response(status_code=204)


STAFF_CALL = "staff-call"  # the channel of a call from the call list, in notification_attempts


class CallAttempt(BaseModel):
    """One call recorded on a call-list entry."""

    at: datetime = Field(description="When it was recorded")
    result: str = Field(description="told (reached and told to test), message-left or not-reached")


class ColourRequest(RequestModel):
    """The colour (group code) a participant of a colour-mode program is assigned."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"colour": "red"}]})

    colour: str | None = Field(
        max_length=32,
        description="One of the program's colours; null takes the colour away (the participant is then never called)",
    )


class ColourOut(BaseModel):
    """A participant's colour."""

    participant_id: str = Field(description="The participant")
    colour: str | None = Field(description="Their colour; they test on the days it is called")


@router.put(
    "/participants/{participant_id}/colour",
    response_model=ColourOut,
    responses=responses(401, 403, 404, 422),
    summary="Assign a participant's colour (colour-mode programs)",
)
def set_colour(
    participant_id: str, body: ColourRequest, request: Request, actor: FrontDesk, session: SessionDep
) -> ColourOut:
    """In a program that publishes daily colours, the participant tests on every day their colour is called.
    The colour must be one of the program's; it applies from the next daily draw (at opening)."""
    participant = participant_or_404(session, participant_id)
    found = current_program(session, participant.program)
    if found is None or found[0].mode != "colour":
        raise ProblemError(
            422,
            f"Program {participant.program} is not in colour mode: its participants are drawn "
            "one by one and have no colour.",
        )
    names = [c.name for c in found[0].colours]
    if body.colour is not None and body.colour not in names:
        raise ProblemError(
            422,
            f"{body.colour!r} is not a colour of program {participant.program}; its colours are {', '.join(names)}.",
        )
    row = session.get_one(Participant, participant_id)
    row.colour, row.updated_at = body.colour, utcnow()
    session.add(row)
    session.commit()
    request.state.audit_detail = f"colour set to {body.colour}"
    return ColourOut(participant_id=participant_id, colour=body.colour)


class CallListItemOut(BaseModel):
    """A participant staff must phone because a notice to test could not be delivered."""

    id: int = Field(description="The call-list entry's id")
    participant_id: str = Field(description="The participant to call")
    name: str = Field(description="Shown to staff only")
    phone: str | None = Field(description="Shown to staff only; never sent to Temporal")
    site: str | None = Field(description="The participant's site")
    timezone: str | None = Field(description="The participant's time zone (show times in it)")
    screening_id: str | None = Field(description="The screening the undelivered notice was about, if any")
    reason: str = Field(description="Why they are on the list, in plain words")
    window_closes_at: datetime | None = Field(description="When the collection window closes: call before then")
    created_at: datetime = Field(description="When the entry was made")
    resolved_at: datetime | None = Field(
        description="When the entry came off the list (a call that reached them or "
        "not, or the system when the window closed); null while open"
    )
    outcome: str | None = Field(
        description="What staff recorded about the calls, latest last (a message left "
        "while the entry is still open), and how it was closed"
    )
    attempts: list[CallAttempt] = Field(description="Every call recorded, oldest first")


class CallResolution(RequestModel):
    """What came of the call. `result` says what it settles (domain/calls.py): reached (told: a notice from now
    on; off the list), message-left (not a notice; the entry stays on the list until they are reached or the
    window closes) or not-reached (off the list). Without `result`, an outcome starting with 'told' or 'reached'
    is reached, one starting with 'left a message' or 'called, left a message' is message-left, any other
    not-reached."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"outcome": "told by phone at 10:05", "result": "reached"},
                {"outcome": "called, left a message on voicemail", "result": "message-left"},
            ]
        }
    )

    outcome: str = Field(min_length=1, max_length=400, description="What happened: reached and told, no answer...")
    result: CallResult | None = Field(
        default=None,
        description="reached, message-left or not-reached; read from the outcome's first words when absent",
    )


def _item(
    entry: CallListEntry, participant: Participant | None, attempts: list[NotificationAttempt]
) -> CallListItemOut:
    assert entry.id is not None  # a stored row
    return CallListItemOut(
        id=entry.id,
        participant_id=entry.participant_id,
        name=f"{participant.given_name} {participant.family_name}" if participant else "?",
        phone=participant.phone if participant else None,
        site=participant.site if participant else None,
        timezone=participant.timezone if participant else None,
        screening_id=entry.screening_id,
        reason=entry.reason,
        window_closes_at=entry.window_closes_at,
        created_at=entry.created_at,
        resolved_at=entry.resolved_at,
        outcome=entry.outcome,
        attempts=[CallAttempt(at=a.at, result=a.status) for a in attempts],
    )


def _attempts(session: Session, entries: list[CallListEntry]) -> dict[str, list[NotificationAttempt]]:
    found: dict[str, list[NotificationAttempt]] = {}
    subjects = [e.subject_id for e in entries]
    if subjects:
        for attempt in session.exec(
            select(NotificationAttempt)
            .where(col(NotificationAttempt.notification_id).in_(subjects), NotificationAttempt.channel == STAFF_CALL)
            .order_by(col(NotificationAttempt.id))
        ).all():
            found.setdefault(attempt.notification_id, []).append(attempt)
    return found


@router.get(
    "/call-list",
    response_model=Page[CallListItemOut],
    responses=responses(401, 403, 422),
    summary="Participants to phone about an undelivered notice",
)
def call_list(
    request: Request,
    actor: FrontDesk,
    session: SessionDep,
    pages: PagingDep,
    include_resolved: Annotated[bool, Query(description="Also list the entries already off the list")] = False,
    resolved_since: Annotated[
        datetime | None,
        Query(
            description="Also list the entries that came off the list at or after this moment (today's calls "
            "made), besides the open ones"
        ),
    ] = None,
    site: Annotated[str | None, Query(max_length=64, description="Only this site's participants")] = None,
) -> Page[CallListItemOut]:
    """Everyone whose notice to test the SMS gateway reports as failed or undelivered, soonest window closing
    first, with the name and phone number to call (front desk only). An entry with a message left stays on the
    list until the participant is reached or the window closes."""
    query = select(CallListEntry, Participant).join(Participant, col(Participant.id) == CallListEntry.participant_id)
    if resolved_since is not None and not include_resolved:
        since = resolved_since if resolved_since.tzinfo else resolved_since.replace(tzinfo=UTC)
        query = query.where(
            col(CallListEntry.resolved_at).is_(None) | (col(CallListEntry.resolved_at) >= since.astimezone(UTC))
        )
    elif not include_resolved:
        query = query.where(CallListEntry.resolved_at == None)  # noqa: E711
    if site:
        query = query.where(Participant.site == site)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(
        query.order_by(col(CallListEntry.window_closes_at), col(CallListEntry.id))
        .offset(pages.offset)
        .limit(pages.limit)
    ).all()
    attempts = _attempts(session, [entry for entry, _ in rows])
    items = [_item(entry, participant, attempts.get(entry.subject_id, [])) for entry, participant in rows]
    request.state.audit_shown = [e.participant_id for e in items]
    return pages.page(items, total)


@router.post(
    "/call-list/{entry_id}/resolve",
    response_model=CallListItemOut,
    responses=responses(401, 403, 404, 409),
    summary="Record a call made to a participant on the call list",
)
def resolve_call(
    entry_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    body: CallResolution,
    request: Request,
    actor: FrontDesk,
    session: SessionDep,
) -> CallListItemOut:
    """Records what came of the call. Reached (told to test) counts as a notice from now on and takes the entry
    off the list; a message left is noted and keeps the entry on the list (call again, or record reached when
    they call back) until the window closes, when the system closes it and the screening goes to the worklist as
    not notified; not reached takes it off the list."""
    entry = session.get(CallListEntry, entry_id)
    if entry is None:
        raise ProblemError(404, f"No call-list entry has the id {entry_id}.")
    request.state.audit_participant = entry.participant_id
    if entry.resolved_at is not None:
        raise ProblemError(
            409,
            f"This entry is off the call list already ({entry.outcome or 'done'}); nothing was "
            "recorded. Add a note to the participant's worklist item instead.",
        )
    result = body.result or calls.result_of(body.outcome)
    entry.outcome = (f"{entry.outcome}; {body.outcome}" if entry.outcome else body.outcome)[-400:]
    if calls.closes_entry(result):
        entry.resolved_at, entry.resolved_by = utcnow(), actor.token_id
    session.add(entry)
    # Every call is an attempt to tell the participant; only "reached" is a notice (domain.misses, domain.calls).
    session.add(
        NotificationAttempt(
            notification_id=entry.subject_id,
            participant_id=entry.participant_id,
            screening_id=entry.screening_id,
            channel=STAFF_CALL,
            status="told" if calls.counts_as_told(result) else str(result),
        )
    )
    session.commit()
    participant = session.get(Participant, entry.participant_id)
    return _item(entry, participant, _attempts(session, [entry]).get(entry.subject_id, []))
