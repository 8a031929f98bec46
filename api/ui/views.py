"""Dashboard pages and actions. Every read and every change is a call to the JSON API (see
apiclient.py); what a user may see or do is what api/roles.py lets their role call."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Awaitable
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response

from api.tokens import TokenRejected
from api.ui import charts
from api.ui.apiclient import ApiError
from api.ui.sessions import COOKIE, COOKIE_PATH, LOGIN_COOKIE, FormState, store_for
from api.ui.web import (
    CLINIC_ZONE,
    COLLECTED,
    Ctx,
    authenticate_token,
    html,
    is_partial,
    query,
    redirect,
    safe_next,
    secure_cookies,
    signed_in,
    when,
)
from domain import search
from domain import worklist as wl
from domain.attendance import STATUSES as ATTENDANCE_STATUSES
from domain.calls import CallResult
from domain.consent import (
    CATEGORIES,
    CONSENT_EVENTS,
    EMPLOYMENT_ENDED,
    FINAL_DISPOSITION,
    SIGNATURE_METHODS,
    SUPERVISION_ENDED,
)
from domain.medication import DRUGS, ROUTES, UNITS, DispenseKind, ScheduleKind
from domain.plan import PHASES
from domain.program import SPECIMEN_TYPES
from domain.selection import SelectionReason
from domain.vocab import DischargeKind, DisclosureStatus, ReassessmentDecision, ReviewDecision, ScreeningStatus
from ingest.lab import QUARANTINE_REASONS
from workflows.contracts.results import REVIEW_DECISIONS
from workflows.contracts.screening import REFUSAL_KINDS, TAKES_COLLECTION

DISPENSE_KINDS = tuple(DispenseKind)
OPEN_SCREENING = (ScreeningStatus.SCHEDULED, ScreeningStatus.AWAITING_COLLECTION)
DISCHARGE_KINDS = tuple(DischargeKind)
SCHEDULE_KINDS = tuple(ScheduleKind)
CALENDAR_WEEKS = 12

LOGIN_REASONS = {
    "session": "Your session ended. Sign in again.",
    "revoked": "Your token has been revoked; ask an administrator for a new one.",
    "expired": "Your token has expired; ask an administrator for a new one.",
    "token": "Your token is no longer accepted. Sign in again.",
    "signed-out": "You are signed out.",
}


# --- sign-in -----------------------------------------------------------------------------------


def _login_page(request: Request, *, error: str | None = None, status: int = 200) -> Response:
    store = store_for(request.app)
    nonce, form_token = store.login_nonce()
    why = LOGIN_REASONS.get(query(request, "why"))
    response = html(
        "login.html",
        {
            "actor": None,
            "csrf": "",
            "can": lambda *_: False,
            "path": "/ui/login",
            "flashes": [],
            "login_token": form_token,
            "error": error,
            "notice": why,
            "next": safe_next(query(request, "next") or None),
        },
        status=status,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
        path=COOKIE_PATH,
        max_age=3600,
    )
    return response


async def login_form(request: Request) -> Response:
    if store_for(request.app).get(request.cookies.get(COOKIE)) is not None:
        return redirect(request, safe_next(query(request, "next") or None))
    return _login_page(request)


async def login(request: Request) -> Response:
    store = store_for(request.app)
    form = await request.form()
    presented = form.get("login_token")
    if not store.login_ok(request.cookies.get(LOGIN_COOKIE), presented):  # type: ignore[arg-type]  # a text field
        request.state.audit_detail = "dashboard sign-in refused: CSRF check failed"
        return _login_page(
            request,
            status=403,
            error="This sign-in form expired or did not come from this dashboard (are cookies enabled?). Try again.",
        )
    token = str(form.get("token") or "").strip()
    if not token:
        return _login_page(request, status=422, error="Enter your access token.")
    try:
        actor = await authenticate_token(request, token)
    except TokenRejected as exc:
        request.state.audit_detail = f"dashboard sign-in rejected: {exc}"
        text = str(exc)
        return _login_page(request, status=401, error=text[:1].upper() + text[1:] + ".")
    request.state.actor = actor
    request.state.audit_detail = "dashboard sign-in"
    old = store.get(request.cookies.get(COOKIE))
    if old is not None:
        store.end(old.id)
    session = store.create(token, actor)  # always a new id: no session fixation
    response = redirect(request, safe_next(str(form.get("next") or "") or None))
    response.set_cookie(
        COOKIE,
        store.sign(session.id),
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
        path=COOKIE_PATH,
    )
    response.delete_cookie(LOGIN_COOKIE, path=COOKIE_PATH)
    return response


@signed_in
async def logout(request: Request, ctx: Ctx) -> Response:
    store_for(request.app).end(ctx.session.id)
    request.state.audit_detail = "dashboard sign-out"
    response = redirect(request, "/ui/login?why=signed-out")
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


async def home(request: Request) -> Response:
    return redirect(request, "/ui/today")


# --- Today -------------------------------------------------------------------------------------


async def _who(ctx: Ctx):
    """A function from an actor (a token id, 'system', 'lab:...') to the words to show for it."""
    staff, _ = await ctx.api.maybe(ctx.api.get_all("/staff")) if ctx.can("GET", "/staff") else (None, None)
    names = {s["id"]: s["name"] for s in staff or []}

    def who(actor: str | None) -> str:
        """'eb3b38bf5bdf' or 'clinician:eb3b38bf5bdf' -> the token's name; 'system' -> 'the system'."""
        if not actor:
            return "—"
        role, _, ident = actor.rpartition(":")
        if ident in names:
            return names[ident]
        if ident == "system":
            return "the system"
        return ident if role == "lab" else actor

    return who


def _name(names: dict[str, str], participant_id: str) -> str:
    return names.get(participant_id, participant_id)


async def _names(ctx: Ctx) -> dict[str, str]:
    people, _ = await ctx.api.maybe(ctx.api.get_all("/participants", cap=5000))
    return {p["id"]: f"{p['family_name']}, {p['given_name']}" for p in people or []}


async def _site_zone(ctx: Ctx, site: str) -> ZoneInfo:
    """The site's time zone: the one most of its participants' programs run in; the clinic's default otherwise."""
    if not site or not ctx.can("GET", "/participants"):
        return CLINIC_ZONE
    page, _ = await ctx.api.maybe(ctx.api.get("/participants", site=site, limit=200))
    zones = Counter(p["timezone"] for p in (page or {}).get("items", []))
    return _zone({"timezone": zones.most_common(1)[0][0]}) if zones else CLINIC_ZONE


@signed_in
async def today(request: Request, ctx: Ctx) -> Response:
    if "site" in request.query_params:  # the site filter is remembered for this sign-in
        ctx.session.site = query(request, "site") or None
    site = ctx.session.site or ""
    zone = await _site_zone(ctx, site)
    try:
        day = date.fromisoformat(query(request, "date")) if query(request, "date") else None
    except ValueError:
        day = None
    day = day or datetime.now(zone).date()
    api = ctx.api
    screenings_ok, disclosures_ok = ctx.can("GET", "/screenings"), ctx.can("GET", "/disclosures")
    answers = await _sections(
        ctx,
        {
            "names": _names(ctx) if ctx.can("GET", "/participants") else None,
            "screenings": api.get_all("/screenings", date=day.isoformat(), site=site) if screenings_ok else None,
            "review": api.get_all("/screenings", status="awaiting-review") if screenings_ok else None,
            "results": api.get_all("/screenings", status="awaiting-result") if screenings_ok else None,
            "preliminary": api.get_all("/screenings", status="preliminary") if screenings_ok else None,
            "dosing": api.get_all("/dispensing/today", site=site) if ctx.can("GET", "/dispensing/today") else None,
            "quarantine": api.get("/lab/quarantine", limit=100) if ctx.can("GET", "/lab/quarantine") else None,
            DisclosureStatus.BLOCKED: api.get_all("/disclosures", status=DisclosureStatus.BLOCKED, cap=200)
            if disclosures_ok
            else None,
            DisclosureStatus.FAILED: api.get_all("/disclosures", status=DisclosureStatus.FAILED, cap=200)
            if disclosures_ok
            else None,
            "worklist": api.get("/worklist", limit=1, site=site) if ctx.can("GET", "/worklist") else None,
            "worklist_overdue": api.get("/worklist", limit=1, site=site, overdue="true")
            if ctx.can("GET", "/worklist")
            else None,
            "worklist_mine": api.get("/worklist", limit=1, site=site, mine="true")
            if ctx.can("GET", "/worklist")
            else None,
            DisclosureStatus.RETRYING: api.get_all("/disclosures", status=DisclosureStatus.RETRYING, cap=200)
            if disclosures_ok
            else None,
            "calls": api.get("/call-list", site=site, limit=1) if ctx.can("GET", "/call-list") else None,
        },
    )
    names = answers["names"][0] or {}
    errors = [e for _, e in answers.values() if e is not None]
    screenings = answers["screenings"][0]
    groups = None
    if screenings is not None:
        groups = {
            "awaiting": [s for s in screenings if s["status"] in OPEN_SCREENING],
            "collected": [s for s in screenings if s["status"] in COLLECTED],
            "missed": [s for s in screenings if s["status"] == "missed"],
            "other": [
                s
                for s in screenings
                if s["status"] in (ScreeningStatus.EXCUSED, ScreeningStatus.REFUSED, ScreeningStatus.CANCELLED)
            ],
        }
    overdue = None
    if answers["results"][0] is not None:
        overdue = [s for s in (answers["results"][0] or []) + (answers["preliminary"][0] or []) if s["result_overdue"]]
    disclosures = None
    if answers["blocked"][0] is not None:
        disclosures = (answers["blocked"][0] or []) + (answers["failed"][0] or []) + (answers["retrying"][0] or [])
    calls = (answers["calls"][0] or {}).get("total") if answers["calls"][0] is not None else None
    recipients = {}
    if disclosures and ctx.can("GET", "/recipients"):
        found, _ = await api.maybe(api.get_all("/recipients"))
        recipients = {r["id"]: r["name"] for r in found or []}
    return ctx.render(
        "today.html",
        day=day,
        is_today=day == datetime.now(zone).date(),
        site=site,
        previous_day=day - timedelta(days=1),
        next_day=day + timedelta(days=1),
        zone=str(zone),
        names=names,
        name=lambda pid: _name(names, pid),
        groups=groups,
        screenings=screenings,
        dosing=answers["dosing"][0],
        overdue=overdue,
        review=answers["review"][0],
        quarantine=answers["quarantine"][0],
        disclosures=disclosures,
        recipients=recipients,
        worklist={k: (answers[f"worklist{k}"][0] or {}).get("total") for k in ("", "_overdue", "_mine")}
        if answers["worklist"][0]
        else None,
        calls=calls,
        errors=errors,
    )


async def _sections(ctx: Ctx, calls: dict[str, Any]) -> dict[str, tuple[Any, ApiError | None]]:
    """Run the reads a page needs at once; a read the role may not make (None) answers (None, None)."""
    wanted = {k: c for k, c in calls.items() if c is not None}
    answers = dict(zip(wanted, await ctx.api.gather(list(wanted.values())), strict=True))
    return {k: answers.get(k, (None, None)) for k in calls}


# --- participants ------------------------------------------------------------------------------


@signed_in
async def participants(request: Request, ctx: Ctx) -> Response:
    try:
        offset = max(int(query(request, "offset") or 0), 0)
    except ValueError:
        offset = 0
    filters = {
        "status": query(request, "status"),
        "phase": query(request, "phase"),
        "site": query(request, "site"),
        "q": query(request, "q"),
    }
    page = await ctx.api.get("/participants", limit=50, offset=offset, **filters)
    return ctx.render("participants.html", page=page, filters=filters, phases=PHASES)


@signed_in
async def enroll_form(request: Request, ctx: Ctx) -> Response:
    state = ctx.form_state("enroll")
    values = {"phase": "phase-1", "timezone": str(CLINIC_ZONE), **state.values}
    if not values.get("idempotency_key"):
        values["idempotency_key"] = "ui-" + secrets.token_hex(12)
    return ctx.render("enroll.html", values=values, errors=state.errors, phases=PHASES)


ENROLL_FIELDS = {
    "case_numbers.0.system": "case_system",
    "case_numbers.0.value": "case_value",
    "case_numbers": "case_value",
}


@signed_in
async def enroll(request: Request, ctx: Ctx) -> Response:
    body: dict[str, Any] = {k: ctx.value(k) for k in ("given_name", "family_name", "date_of_birth", "site", "phase")}
    for optional in ("phone", "email", "referral_source", "start_date", "timezone"):
        if ctx.value(optional):
            body[optional] = ctx.value(optional)
    system, number = ctx.value("case_system"), ctx.value("case_value")
    body["case_numbers"] = [{"system": system, "value": number}] if system or number else []
    key = ctx.value("idempotency_key") or "ui-" + secrets.token_hex(12)
    if ctx.value("not_duplicate") != "yes":
        duplicates = await _likely_duplicates(ctx, body)
        if duplicates:
            values = {k: ctx.value(k) for k in ctx.form.keys() if k != "csrf_token"} if ctx.form else {}
            ctx.session.form = FormState("enroll", {**values, "_duplicates": duplicates}, {})
            ctx.flash(
                "error",
                f"{len(duplicates)} existing record(s) look like the same person. Open them to check, "
                f"or confirm this is someone else and enroll again.",
            )
            return redirect(request, "/ui/participants/new#duplicates")
    try:
        created = await ctx.api.post("/participants", body, headers={"Idempotency-Key": key})
    except ApiError as exc:
        return ctx.refused(exc, "/ui/participants/new", "enroll", ENROLL_FIELDS)
    return ctx.done(
        f"/ui/participants/{created['id']}",
        f"Enrolled {created['given_name']} {created['family_name']} ({created['id']}); the program has started.",
    )


async def _likely_duplicates(ctx: Ctx, body: dict[str, Any]) -> list[dict[str, str]]:
    """Records with the same name and birth date, or the same phone number (domain.search.duplicate_reason)."""
    try:
        born = date.fromisoformat(body.get("date_of_birth") or "")
    except ValueError:
        born = None
    new = search.Person(body.get("given_name") or "", body.get("family_name") or "", born, body.get("phone"))
    reads: list[Awaitable[Any]] = []
    if born:
        reads.append(ctx.api.get_all("/participants", cap=200, date_of_birth=born.isoformat()))
    if len(search.phone_digits(new.phone)) >= 7:
        reads.append(ctx.api.get_all("/participants", cap=200, phone=new.phone))
    found: dict[str, dict[str, str]] = {}
    for rows, _ in await ctx.api.gather(reads):
        for row in rows or []:
            old = search.Person(
                row["given_name"], row["family_name"], date.fromisoformat(row["date_of_birth"]), row.get("phone")
            )
            reason = search.duplicate_reason(new, old)
            if reason and row["id"] not in found:
                found[row["id"]] = {
                    "id": row["id"],
                    "name": f"{row['given_name']} {row['family_name']}",
                    "born": row["date_of_birth"],
                    "status": row["status"],
                    "site": row["site"],
                    "reason": reason,
                }
    return list(found.values())


def _zone(participant: dict[str, Any] | None) -> ZoneInfo:
    try:
        return ZoneInfo((participant or {}).get("timezone") or str(CLINIC_ZONE))
    except (KeyError, ValueError):
        return CLINIC_ZONE


def _calendar(
    screenings: list[dict[str, Any]],
    details: dict[str, dict[str, Any]],
    draws: list[dict[str, Any]],
    pauses: list[dict[str, Any]],
    first: date,
    last: date,
) -> dict[date, charts.DayMark]:
    marks: dict[date, charts.DayMark] = {}
    for draw in draws:
        day = date.fromisoformat(draw["day"])
        if not draw["selected"]:
            marks[day] = charts.DayMark(day, "not-selected", draw.get("reason") or "")
    for pause in pauses:
        start, end = date.fromisoformat(pause["start"]), date.fromisoformat(pause["end"])
        day = max(start, first)
        while day <= min(end, last):
            if day not in marks or marks[day].kind == "not-selected":
                marks[day] = charts.DayMark(day, "paused", pause.get("reason") or "")
            day += timedelta(days=1)
    for screening in screenings:
        day = date.fromisoformat(screening["day"])
        if not first <= day <= last:
            continue
        detail = details.get(screening["id"]) or {}
        kind = charts.screening_kind(screening["status"], detail.get("final_outcome"))
        note = screening["reason"]
        previous = marks.get(day)
        if previous is not None and previous.kind in (SelectionReason.NOT_SELECTED, SelectionReason.PAUSED):
            previous = None
        marks[day] = charts.worse(previous, charts.DayMark(day, kind, note))
    return marks


def _flags(detail: dict[str, Any] | None) -> list[dict[str, str]]:
    if not detail:
        return []
    current = [r for r in detail.get("results", []) if r.get("superseded_by") is None]
    return [flag for result in current[-1:] for flag in result.get("interpretation", {}).get("flags", [])]


@signed_in
async def participant(request: Request, ctx: Ctx) -> Response:
    pid = request.path_params["participant_id"]
    api = ctx.api
    record = await api.get(f"/participants/{pid}")
    zone = _zone(record)
    today_local = datetime.now(zone).date()
    answers = await _sections(
        ctx,
        {
            "screenings": api.get_all(f"/participants/{pid}/screenings"),
            "draws": api.get_all(
                f"/participants/{pid}/draws", since=(today_local - timedelta(weeks=CALENDAR_WEEKS)).isoformat()
            ),
            "orders": api.get_all(f"/participants/{pid}/medications"),
            "consents": api.get_all(f"/participants/{pid}/consents"),
            "recipients": api.get_all("/recipients") if ctx.can("GET", "/recipients") else None,
            "disclosures": api.get_all("/disclosures", participant_id=pid, cap=200),
            "attendance": api.get(f"/participants/{pid}/attendance", limit=20),
            "attendance_summary": api.get(f"/participants/{pid}/attendance/summary"),
            "case_events": api.get_all(f"/participants/{pid}/case-events")
            if ctx.can("GET", "/participants/{participant_id}/case-events")
            else None,
        },
    )
    screenings = answers["screenings"][0] or []
    orders = answers["orders"][0] or []
    first = max(
        date.fromisoformat(record["start_date"]), today_local - timedelta(weeks=CALENDAR_WEEKS) + timedelta(days=1)
    )
    last = today_local
    first = min(first, last)  # a program that starts in the future shows this week
    recent = [s for s in screenings if first <= date.fromisoformat(s["day"]) <= last][:60]
    detail_answers = await api.gather(
        [api.get(f"/screenings/{s['id']}") for s in recent] + [api.get(f"/medications/{o['id']}") for o in orders]
    )
    details = {
        s["id"]: (answer or {}).get("workflow") or {}
        for s, (answer, _) in zip(recent, detail_answers[: len(recent)], strict=True)
    }
    medications = [
        {"order": o, "live": (answer or {}).get("workflow"), "error": error}
        for o, (answer, error) in zip(orders, detail_answers[len(recent) :], strict=True)
    ]
    workflow = record.get("workflow") or {}
    marks = _calendar(screenings, details, answers["draws"][0] or [], workflow.get("pauses") or [], first, last)
    recipients = answers["recipients"][0] or []
    consent_state = ctx.form_state("consent")
    consent_values = {
        "signed_at": datetime.now(zone).strftime("%Y-%m-%dT%H:%M"),
        "signature_method": "electronic",
        **consent_state.values,
    }
    for_cause = ctx.form_state("for-cause")
    charts_by_order = {
        m["order"]["id"]: charts.adherence_chart(
            charts.ledger_days(m["live"] or {}),
            today_local,
            (m["live"] or {}).get("adherence_7d") or {},
            (m["live"] or {}).get("adherence_30d") or {},
            ident=f"adherence-{m['order']['id']}",
        )
        for m in medications
    }
    errors = [e for _, e in answers.values() if e is not None]
    errors += [e for _, e in detail_answers[: len(recent)] if e is not None][:1]
    return ctx.render(
        "participant.html",
        p=record,
        workflow=workflow,
        zone=str(zone),
        screenings=screenings,
        details=details,
        flags=_flags,
        medications=medications,
        adherence_charts=charts_by_order,
        consents=answers["consents"][0],
        recipients=recipients,
        recipient_names={r["id"]: r["name"] for r in recipients},
        disclosures=answers["disclosures"][0],
        calendar=charts.testing_calendar(marks, first, last, today_local),
        calendar_marks=marks,
        legend=charts.legend_kinds(marks),
        calendar_rows=sorted(
            (m for m in marks.values() if m.kind not in ("not-selected",)), key=lambda m: m.day, reverse=True
        ),
        first=first,
        last=last,
        categories=CATEGORIES,
        consent_events=CONSENT_EVENTS,
        signature_methods=SIGNATURE_METHODS,
        consent_values=consent_values,
        consent_errors=consent_state.errors,
        for_cause_values=for_cause.values,
        for_cause_errors=for_cause.errors,
        dispense_kinds=DISPENSE_KINDS,
        units=UNITS,
        errors=errors,
        today_local=today_local,
        phases=PHASES,
        drugs=DRUGS,
        routes=ROUTES,
        discharge_kinds=DISCHARGE_KINDS,
        attendance={**answers["attendance"][0], "summary": answers["attendance_summary"][0]}
        if answers["attendance"][0]
        else None,
        attendance_statuses=ATTENDANCE_STATUSES,
        case_events=answers["case_events"][0],
        case_event_kinds=CASE_EVENT_KINDS,
        case_systems=[c.get("system") for c in record.get("case_numbers") or [] if c.get("system")],
        form_values=_forms(ctx, "phase", "pause", "discharge", "medication-order", "case-event"),
    )


def _forms(ctx: Ctx, *names: str) -> dict[str, Any]:
    """The refused form's values and errors, under its name; the others empty."""
    out: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {name: ({}, {}) for name in names}
    for name in names:
        state = ctx.session.take_form(name)
        if state is not None:
            out[name] = (state.values, state.errors)
    return out


@signed_in
async def timeline(request: Request, ctx: Ctx) -> Response:
    pid = request.path_params["participant_id"]
    reads = query(request, "reads") == "1"
    entries = await ctx.api.get_all(f"/participants/{pid}/history", cap=20000)
    # The history in the clinic's words (api/timeline_words.py): what happened, and on request who read the
    # record. The audit lines of changes the record already tells, and the workflow engine's housekeeping
    # ("technical"), stay in the API's history and its CSV for auditors.
    shown = [e for e in entries if e.get("kind") == "record" or (reads and e.get("kind") == "access")]
    shown.reverse()  # newest first
    record, _ = await ctx.api.maybe(ctx.api.get(f"/participants/{pid}"))
    context = {
        "pid": pid,
        "entries": shown,
        "total": len(entries),
        "reads": reads,
        "who": await _who(ctx),
        "zone": str(_zone(record)),
    }
    if is_partial(request):
        return ctx.render("timeline.html", **context)
    return ctx.render("timeline_page.html", p=record, **context)


@signed_in
async def history_csv(request: Request, ctx: Ctx) -> Response:
    pid = request.path_params["participant_id"]
    answer = await ctx.api.request("GET", f"/participants/{pid}/history", params={"format": "csv"})
    return Response(
        answer.content,
        media_type="text/csv",
        headers={
            "Content-Disposition": answer.headers.get(
                "content-disposition", f'attachment; filename="history-{pid}.csv"'
            ),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@signed_in
async def order_for_cause(request: Request, ctx: Ctx) -> Response:
    pid = request.path_params["participant_id"]
    back = f"/ui/participants/{pid}"
    try:
        ref = await ctx.api.post(f"/participants/{pid}/screenings", {"reason": ctx.value("reason")})
    except ApiError as exc:
        return ctx.refused(exc, back + "#for-cause", "for-cause")
    return ctx.done(
        back,
        f"For-cause test ordered ({ref['screening_id']}); the participant must report by {when(ref['report_by'])}.",
        (f"/ui/screenings/{ref['screening_id']}", "Open the screening to record the collection"),
    )


# --- consents ----------------------------------------------------------------------------------


CASE_EVENT_KINDS = (FINAL_DISPOSITION, SUPERVISION_ENDED, EMPLOYMENT_ENDED)


def _local_iso(value: str, zone: ZoneInfo, *, end_of_day: bool = False) -> str | None:
    """A date or datetime-local field, read in the participant's time zone, as ISO with offset."""
    if not value:
        return None
    try:
        if len(value) == 10:
            moment = datetime.combine(date.fromisoformat(value), time(23, 59, 59) if end_of_day else time(0, 0))
        else:
            moment = datetime.fromisoformat(value)
    except ValueError:
        return value  # the API names the field and what it needs
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).isoformat()


@signed_in
async def add_consent(request: Request, ctx: Ctx) -> Response:
    pid = request.path_params["participant_id"]
    back = f"/ui/participants/{pid}#consents"
    record, error = await ctx.api.maybe(ctx.api.get(f"/participants/{pid}"))
    zone = _zone(record)
    body: dict[str, Any] = {
        "recipient_id": ctx.value("recipient_id"),
        "categories": ctx.values("categories"),
        "purpose": ctx.value("purpose"),
        "disclosing_program": ctx.value("disclosing_program"),
        "signer": ctx.value("signer"),
        "signed_at": _local_iso(ctx.value("signed_at"), zone),
        "signature_method": ctx.value("signature_method"),
        "expires_at": _local_iso(ctx.value("expires_at"), zone, end_of_day=True),
        "expires_on_event": ctx.value("expires_on_event") or None,
        "criminal_justice": ctx.value("criminal_justice") == "yes",
        "revocable_after": _local_iso(ctx.value("revocable_after"), zone),
        "revocable_after_event": ctx.value("revocable_after_event") or None,
    }
    try:
        consent = await ctx.api.post(f"/participants/{pid}/consents", body)
    except ApiError as exc:
        return ctx.refused(exc, back, "consent")
    return ctx.done(back, f"Consent {consent['id']} recorded.")


@signed_in
async def record_attendance(request: Request, ctx: Ctx) -> Response:
    session_id = request.path_params["session_id"]
    back = safe_next(ctx.value("next") or None)
    body = {
        "participant_id": ctx.value("participant_id"),
        "status": ctx.value("status"),
        "note": ctx.value("note") or None,
        "method": "staff",
    }
    return await _act(
        ctx, f"/attendance-sessions/{session_id}/attendance", body, back, "Attendance recorded: {status}."
    )


@signed_in
async def record_case_event(request: Request, ctx: Ctx) -> Response:
    pid = request.path_params["participant_id"]
    back = f"/ui/participants/{pid}#consents"
    record, _ = await ctx.api.maybe(ctx.api.get(f"/participants/{pid}"))
    body = {
        "kind": ctx.value("kind"),
        "occurred_at": _local_iso(ctx.value("occurred_at"), _zone(record)),
        "case_system": ctx.value("case_system") or None,
        "note": ctx.value("note") or None,
    }
    return await _act(
        ctx,
        f"/participants/{pid}/case-events",
        body,
        back,
        "Recorded {kind}: consents that end at it no longer cover any report.",
        "case-event",
    )


@signed_in
async def revoke_consent(request: Request, ctx: Ctx) -> Response:
    consent_id = request.path_params["consent_id"]
    back = safe_next(ctx.value("next") or None)
    try:
        await ctx.api.post(f"/consents/{consent_id}/revoke", {"reason": ctx.value("reason")})
    except ApiError as exc:
        return ctx.refused(exc, back)
    return ctx.done(back, f"Consent {consent_id} revoked; deliveries waiting under it are stopped.")


# --- screenings --------------------------------------------------------------------------------


@signed_in
async def screening(request: Request, ctx: Ctx) -> Response:
    sid = request.path_params["screening_id"]
    answer = await ctx.api.get(f"/screenings/{sid}")
    live = answer.get("workflow") or {}
    record, _ = await ctx.api.maybe(ctx.api.get(f"/participants/{answer['participant_id']}"))
    collection = ctx.form_state("collection")
    review = ctx.form_state("review")
    return ctx.render(
        "screening.html",
        s=answer,
        live=live,
        p=record,
        zone=str(_zone(record)),
        who=await _who(ctx),
        takes_collection=answer["status"] in TAKES_COLLECTION,
        awaiting_review=live.get("status") == "awaiting-review",
        # A final result decided by a review can have that review reversed (the API says if not).
        reversible=live.get("status") == "final"
        and any(
            r.get("decision") in (ReviewDecision.CONFIRM, ReviewDecision.EXCUSE) for r in live.get("reviews") or []
        ),
        specimen_types=SPECIMEN_TYPES,
        decisions=REVIEW_DECISIONS,
        collection_values={"specimen_type": "urine", "observed": "yes", **collection.values},
        collection_errors=collection.errors,
        review_values=review.values,
        review_errors=review.errors,
        refusal_kinds=REFUSAL_KINDS,
        form_values=_forms(ctx, "excuse", "refusal"),
    )


def _bool_choice(value: str) -> bool | None:
    return {"yes": True, "no": False}.get(value)


@signed_in
async def record_collection(request: Request, ctx: Ctx) -> Response:
    sid = request.path_params["screening_id"]
    back = f"/ui/screenings/{sid}"
    body: dict[str, Any] = {
        "specimen_type": ctx.value("specimen_type"),
        "observed": ctx.value("observed") == "yes",
        "collector": ctx.value("collector"),
        "temperature_in_range": _bool_choice(ctx.value("temperature_in_range")),
        "late": ctx.value("late") == "yes",
    }
    for optional in ("temperature_f", "breath_alcohol", "custody_notes", "late_reason"):
        if ctx.value(optional):
            body[optional] = ctx.value(optional)
    if ctx.value("collected_at"):
        current, _ = await ctx.api.maybe(ctx.api.get(f"/screenings/{sid}"))
        record, _ = await ctx.api.maybe(ctx.api.get(f"/participants/{(current or {}).get('participant_id')}"))
        body["collected_at"] = _local_iso(ctx.value("collected_at"), _zone(record))
    try:
        state = await ctx.api.post(f"/screenings/{sid}/collection", body)
    except ApiError as exc:
        return ctx.refused(exc, back + "#collection", "collection")
    return ctx.done(
        back, f"Collection recorded: specimen {state['specimen_id']}. The screening now waits for the lab result."
    )


@signed_in
async def review_result(request: Request, ctx: Ctx) -> Response:
    sid = request.path_params["screening_id"]
    back = f"/ui/screenings/{sid}"
    try:
        state = await ctx.api.post(
            f"/screenings/{sid}/review",
            {
                "decision": ctx.value("decision"),
                "explanation": ctx.value("explanation"),
                "reverses": ctx.value("reverses") == "true",
            },
        )
    except ApiError as exc:
        return ctx.refused(exc, back + "#review", "review")
    outcome = state.get("final_outcome")
    return ctx.done(
        back,
        f"Review recorded ({ctx.value('decision')}); the screening is now "
        f"{state['status']}{f', outcome {outcome}' if outcome else ''}.",
    )


# --- medications -------------------------------------------------------------------------------


@signed_in
async def dispense(request: Request, ctx: Ctx) -> Response:
    order_id = request.path_params["order_id"]
    back = safe_next(ctx.value("next") or None)
    body: dict[str, Any] = {"kind": ctx.value("kind")}
    for optional in ("dose", "unit", "lot", "site", "note"):
        if ctx.value(optional):
            body[optional] = ctx.value(optional)
    if ctx.value("take_home_count"):
        body["take_home_count"] = ctx.value("take_home_count")
    try:
        await ctx.api.post(f"/medications/{order_id}/dispenses", body)
    except ApiError as exc:
        return ctx.refused(exc, back)
    label = ctx.value("who") or order_id
    return ctx.done(back, f"Recorded {body['kind'].replace('-', ' ')} for {label}.")


# --- lab quarantine ----------------------------------------------------------------------------


@signed_in
async def quarantine(request: Request, ctx: Ctx) -> Response:
    resolved = query(request, "resolved") == "1"
    reason = query(request, "reason") or None
    filters = {"reason_code": reason} if reason else {}
    page = await ctx.api.get("/lab/quarantine", resolved=str(resolved).lower(), limit=200, **filters)
    state = ctx.form_state("resolve")
    held = [] if resolved else page["items"][:QUARANTINE_DETAILS]
    answers = await ctx.api.gather([ctx.api.get(f"/lab/quarantine/{q['id']}") for q in held])
    details = {q["id"]: answer for q, (answer, _) in zip(held, answers, strict=True) if answer}
    return ctx.render(
        "quarantine.html",
        page=page,
        resolved=resolved,
        reason=reason,
        reasons=QUARANTINE_REASONS,
        values=state.values,
        errors=state.errors,
        who=await _who(ctx),
        details=details,
        held_rows=_held_rows,
    )


def _quarantine_page(reason: str) -> str:
    return f"/ui/quarantine?reason={quote(reason)}" if reason in QUARANTINE_REASONS else "/ui/quarantine"


QUARANTINE_DETAILS = 30  # items shown with the held message and suggested screenings
HELD_LABELS = {
    "placer": "Placer order number",
    "filler": "Filler order number",
    "specimen": "Specimen id",
    "patient_name": "Name",
    "patient_dob": "Date of birth",
    "result_status": "Result status",
    "collected_at": "Collected",
    "lab_id": "Lab",
}


def _held_rows(fields: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The held order's fields as the lab sent them, plain values only, labelled where we know the field."""
    rows = []
    for key, value in (fields or {}).items():
        if isinstance(value, (str, int, float)) and str(value).strip():
            rows.append((HELD_LABELS.get(key, key.replace("_", " ")), str(value)))
    return rows[:20]


@signed_in
async def resolve_quarantine(request: Request, ctx: Ctx) -> Response:
    item_id = request.path_params["item_id"]
    back = _quarantine_page(ctx.value("reason"))
    body: dict[str, Any] = {"action": ctx.value("action"), "note": ctx.value("note")}
    if ctx.value("screening_id"):
        body["screening_id"] = ctx.value("screening_id")
    try:
        item = await ctx.api.post(f"/lab/quarantine/{item_id}/resolve", body)
    except ApiError as exc:
        return ctx.refused(exc, f"{back}#item-{item_id}", "resolve")
    return ctx.done(back, f"Quarantined result {item_id} {item['resolution']}.")


# --- lab turnaround ----------------------------------------------------------------------------


@signed_in
async def lab_turnaround(request: Request, ctx: Ctx) -> Response:
    """Per lab: collection to received and received to final, against each participant's program's target (a
    program setting, edited on the program's page). A target typed here overrides it for this view; it is
    passed to the API as typed, which refuses a bad one with its own detail."""
    target = query(request, "target_hours")
    labs = await ctx.api.get_all("/reports/lab-turnaround", target_hours=target)  # empty: not sent
    return ctx.render("lab_turnaround.html", labs=labs, target=target)


# --- equity report -----------------------------------------------------------------------------


def _period(request: Request) -> str:
    return query(request, "period") or datetime.now(CLINIC_ZONE).strftime("%Y-%m")


@signed_in
async def equity(request: Request, ctx: Ctx) -> Response:
    """The equity report (GET /reports/equity): random and for-cause testing apart, by group."""
    period = _period(request)
    report = await ctx.api.get("/reports/equity", period=period)
    labels = {m["key"]: m for m in report["metrics"]}
    return ctx.render("equity.html", report=report, labels=labels, period=period)


@signed_in
async def equity_pdf(request: Request, ctx: Ctx) -> Response:
    period = _period(request)
    answer = await ctx.api.request("GET", "/reports/equity.pdf", params={"period": period})
    return Response(
        answer.content,
        media_type="application/pdf",
        headers={"Content-Disposition": answer.headers.get("content-disposition", "attachment")},
    )


# --- the day's other actions ---------------------------------------------------------------------


async def _act(ctx: Ctx, path: str, body: dict[str, Any], back: str, done: str, form: str | None = None) -> Response:
    """One API call for one form; the API's refusal goes back to the form with what was typed."""
    try:
        answer = await ctx.api.post(path, body)
    except ApiError as exc:
        return ctx.refused(exc, back, form)
    return ctx.done(back, done.format(**(answer if isinstance(answer, dict) else {})))


@signed_in
async def check_in(request: Request, ctx: Ctx) -> Response:
    pid = request.path_params["participant_id"]
    back = f"/ui/participants/{pid}"
    try:
        answer = await ctx.api.post("/check-ins", {"participant_id": pid, "method": "staff"})
    except ApiError as exc:
        return ctx.refused(exc, back)
    if answer["must_test"]:
        return ctx.done(
            back,
            f"Checked in. {answer['message']}",
            (f"/ui/screenings/{answer['screening_id']}", "Open the screening to record the collection"),
        )
    return ctx.done(back, f"Checked in. {answer['message']}")


@signed_in
async def change_phase(request: Request, ctx: Ctx) -> Response:
    pid = request.path_params["participant_id"]
    return await _act(
        ctx,
        f"/participants/{pid}/phase",
        {"phase": ctx.value("phase"), "reason": ctx.value("reason")},
        f"/ui/participants/{pid}#program",
        "Phase changed to {phase}.",
        "phase",
    )


@signed_in
async def pause(request: Request, ctx: Ctx) -> Response:
    pid = request.path_params["participant_id"]
    body = {"start": ctx.value("start"), "end": ctx.value("end"), "reason": ctx.value("reason")}
    return await _act(
        ctx,
        f"/participants/{pid}/pauses",
        body,
        f"/ui/participants/{pid}#program",
        f"Random testing paused from {ctx.value('start')} to {ctx.value('end')}.",
        "pause",
    )


@signed_in
async def discharge(request: Request, ctx: Ctx) -> Response:
    pid = request.path_params["participant_id"]
    body = {"kind": ctx.value("kind"), "reason": ctx.value("reason")}
    return await _act(
        ctx,
        f"/participants/{pid}/discharge",
        body,
        f"/ui/participants/{pid}",
        "Discharged ({status}); random testing has stopped.",
        "discharge",
    )


@signed_in
async def excuse(request: Request, ctx: Ctx) -> Response:
    sid = request.path_params["screening_id"]
    return await _act(
        ctx,
        f"/screenings/{sid}/excuse",
        {"reason": ctx.value("reason")},
        f"/ui/screenings/{sid}",
        "Screening excused.",
        "excuse",
    )


@signed_in
async def refusal(request: Request, ctx: Ctx) -> Response:
    sid = request.path_params["screening_id"]
    body = {"kind": ctx.value("kind"), "detail": ctx.value("detail")}
    return await _act(ctx, f"/screenings/{sid}/refusal", body, f"/ui/screenings/{sid}", "Refusal recorded.", "refusal")


@signed_in
async def order_medication(request: Request, ctx: Ctx) -> Response:
    pid = request.path_params["participant_id"]
    schedule: dict[str, Any] = {"kind": ctx.value("schedule")}
    if ctx.value("every_days"):
        schedule["every_days"] = ctx.value("every_days")
    body: dict[str, Any] = {
        "drug": ctx.value("drug"),
        "dose": ctx.value("dose"),
        "unit": ctx.value("unit"),
        "route": ctx.value("route"),
        "schedule": schedule,
        "start_date": ctx.value("start_date"),
        "prescriber": ctx.value("prescriber"),
    }
    if ctx.value("override_reason"):
        body["override_reason"] = ctx.value("override_reason")
    return await _act(
        ctx,
        f"/participants/{pid}/medications",
        body,
        f"/ui/participants/{pid}#medications",
        f"Medication order recorded: {ctx.value('drug')} {ctx.value('dose')} {ctx.value('unit')}.",
        "medication-order",
    )


@signed_in
async def change_dose(request: Request, ctx: Ctx) -> Response:
    order_id = request.path_params["order_id"]
    body = {"dose": ctx.value("dose"), "unit": ctx.value("unit"), "reason": ctx.value("reason")}
    if ctx.value("override_reason"):
        body["override_reason"] = ctx.value("override_reason")
    return await _act(
        ctx,
        f"/medications/{order_id}/dose-change",
        body,
        safe_next(ctx.value("next") or None),
        f"Dose changed to {ctx.value('dose')} {ctx.value('unit')}.",
    )


@signed_in
async def stop_medication(request: Request, ctx: Ctx) -> Response:
    order_id = request.path_params["order_id"]
    return await _act(
        ctx,
        f"/medications/{order_id}/stop",
        {"reason": ctx.value("reason")},
        safe_next(ctx.value("next") or None),
        "Medication order stopped.",
    )


@signed_in
async def reassess(request: Request, ctx: Ctx) -> Response:
    order_id = request.path_params["order_id"]
    body = {"decision": ctx.value("decision") or "resume", "note": ctx.value("note")}
    outcomes: dict[str, str] = {
        ReassessmentDecision.RESUME: "Hold released: dosing resumes.",
        ReassessmentDecision.KEEP_HOLDING: "The hold stays.",
        ReassessmentDecision.HOLD: "Dosing is held.",
    }
    words = outcomes.get(body["decision"] or "", "Reassessment recorded.")
    return await _act(ctx, f"/medications/{order_id}/reassessment", body, safe_next(ctx.value("next") or None), words)


# --- worklist ----------------------------------------------------------------------------------

WORKLIST_FILTERS = ("site", "kind", "status", "mine", "overdue")


def worklist_link(item: dict[str, Any]) -> tuple[str, str] | None:
    """Where staff go to do what the item asks: (href, words)."""
    if item["subject_type"] == "screening":
        return f"/ui/screenings/{item['subject_id']}", "Open the screening"
    if item["subject_type"] == "lab-message" and item["source"] == wl.Source.QUARANTINE:
        return f"/ui/quarantine#item-{item['source_ref']}", "Open the held lab message"
    if item["kind"] == wl.WorklistKind.ENROLLMENT_ROLLED_BACK:  # the record is gone: its id leads nowhere
        return "/ui/participants/new", "Enroll again"
    if item.get("participant_id"):
        anchor = (
            "#medications"
            if item["subject_type"] == "medication-order"
            else "#disclosures"
            if item["subject_type"] == "disclosure"
            else ""
        )
        return f"/ui/participants/{item['participant_id']}{anchor}", "Open the participant"
    return None


@signed_in
async def worklist(request: Request, ctx: Ctx) -> Response:
    filters = {name: query(request, name) for name in WORKLIST_FILTERS}
    filters["site"] = filters["site"] or (ctx.session.site or "")
    if "site" in request.query_params:  # remembered for this sign-in
        ctx.session.site = query(request, "site")
        filters["site"] = ctx.session.site
    try:
        offset = max(int(query(request, "offset") or 0), 0)
    except ValueError:
        offset = 0
    params = {
        "site": filters["site"],
        "kind": filters["kind"],
        "status": filters["status"] or "unresolved",
        "mine": "true" if filters["mine"] else None,
        "overdue": "true" if filters["overdue"] else None,
    }
    page = await ctx.api.get("/worklist", limit=50, offset=offset, **params)
    return ctx.render(
        "worklist.html",
        page=page,
        filters=filters,
        kinds=[k.value for k in wl.WorklistKind],
        outcomes=wl.STAFF_OUTCOMES,
        needs_note=sorted(wl.NEEDS_NOTE),
        link=worklist_link,
        back=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
    )


async def _worklist_action(request: Request, ctx: Ctx, what: str, body: dict[str, Any], done: str) -> Response:
    item_id = request.path_params["worklist_item_id"]
    back = safe_next(ctx.value("next") or None, "/ui/worklist")
    try:
        item = await ctx.api.post(f"/worklist/{item_id}/{what}", body)
    except ApiError as exc:
        return ctx.refused(exc, back)
    who = item.get("participant_name") or f"{item['subject_type'].replace('-', ' ')} {item['subject_id']}"
    return ctx.done(back, f"{item['title']} ({who}): {done}.")


@signed_in
async def claim_item(request: Request, ctx: Ctx) -> Response:
    return await _worklist_action(
        request, ctx, "claim", {"take_over": ctx.value("take_over") == "yes"}, "claimed by you"
    )


@signed_in
async def comment_item(request: Request, ctx: Ctx) -> Response:
    return await _worklist_action(request, ctx, "comments", {"note": ctx.value("note")}, "comment added")


@signed_in
async def resolve_item(request: Request, ctx: Ctx) -> Response:
    body = {"outcome": ctx.value("outcome"), "note": ctx.value("note") or None}
    return await _worklist_action(request, ctx, "resolve", body, f"resolved ({ctx.value('outcome').replace('-', ' ')})")


# --- call list ---------------------------------------------------------------------------------

# One click per outcome, each the API's call result (domain/calls.py): reached is a notice and takes the entry
# off the list; a message left keeps it on the list until they are reached or the window closes.
CALL_OUTCOMES = {
    CallResult.REACHED: "reached and told to test",
    "called": "called, left a message",
    CallResult.NOT_REACHED: "not reached",
}
CALL_RESULTS = {
    CallResult.REACHED: CallResult.REACHED,
    "called": CallResult.MESSAGE_LEFT,
    CallResult.NOT_REACHED: CallResult.NOT_REACHED,
}


@signed_in
async def call_list(request: Request, ctx: Ctx) -> Response:
    """Today's calls: who must be told by phone, the number, when the window closes (the participant's zone)."""
    if "site" in request.query_params:  # the same remembered site as Today
        ctx.session.site = query(request, "site") or None
    site = ctx.session.site or ""
    zone = await _site_zone(ctx, site)
    today = datetime.now(zone).date()
    midnight = datetime.combine(today, time.min, tzinfo=zone)  # the list is today's; the rest is in the audit trail
    entries = await ctx.api.get_all("/call-list", site=site or None, resolved_since=midnight.isoformat())
    shown = [{**e, "timezone": e.get("timezone") or str(zone)} for e in entries]
    waiting = [e for e in shown if not e["resolved_at"]]
    called = sorted((e for e in shown if e["resolved_at"]), key=lambda e: e["resolved_at"], reverse=True)
    return ctx.render(
        "call_list.html", waiting=waiting, called=called, site=site, day=today, zone=str(zone), outcomes=CALL_OUTCOMES
    )


@signed_in
async def resolve_call(request: Request, ctx: Ctx) -> Response:
    entry_id = request.path_params["entry_id"]
    words = CALL_OUTCOMES.get(ctx.value("outcome"))
    if words is None:
        ctx.flash("error", "Choose what happened: " + " or ".join(f"“{w}”" for w in CALL_OUTCOMES.values()) + ".")
        return redirect(request, "/ui/call-list")
    note = ctx.value("note")
    try:
        entry = await ctx.api.post(
            f"/call-list/{entry_id}/resolve",
            {"outcome": f"{words}: {note}" if note else words, "result": CALL_RESULTS[ctx.value("outcome")]},
        )
    except ApiError as exc:
        return ctx.refused(exc, "/ui/call-list")
    still = "" if entry["resolved_at"] else " They stay on the list until reached or the window closes."
    return ctx.done("/ui/call-list", f"Call to {entry['name']} recorded: {words}.{still}")


# --- not found ---------------------------------------------------------------------------------


@signed_in
async def not_found(request: Request, ctx: Ctx) -> Response:
    return ctx.render(
        "error.html",
        status=404,
        title="Page not found",
        error=ApiError(404, f"There is no dashboard page at {request.url.path}."),
    )
