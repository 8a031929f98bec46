"""Dashboard plumbing: templates, security headers, the signed-in request context, CSRF."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi.concurrency import run_in_threadpool
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlmodel import Session
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from api.roles import matrix
from api.tokens import Actor, TokenRejected, authenticate
from api.ui import charts
from api.ui.apiclient import Api, ApiError
from api.ui.sessions import COOKIE, COOKIE_PATH, Flash, FormState, UiSession, csrf_ok, store_for
from domain.medication import ExpectedKind, ScheduleKind
from domain.vocab import ParticipantStatus, ReassessmentDecision, ResultStatus, ReviewDecision
from domain.vocab import ScreeningStatus as S
from domain.worklist import Status as WorklistStatus
from store.models import ParticipantCreate

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
STATIC = HERE / "static"
ROLE_MATRIX = matrix()
# The clinic's day for the Today page: the programs' default time zone.
CLINIC_ZONE = ZoneInfo(ParticipantCreate.model_fields["timezone"].default)

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

STATUS_LABELS = {
    S.SCHEDULED: "Selected, not yet notified",
    S.AWAITING_COLLECTION: "Awaiting collection",
    S.AWAITING_RESULT: "Collected, awaiting result",
    S.COMPLETED: "Completed",
    S.MISSED: "Missed",
    S.EXCUSED: "Excused",
    S.REFUSED: "Refused",
    S.CANCELLED: "Cancelled",
    S.PRELIMINARY: "Preliminary result",
    S.AWAITING_REVIEW: "Awaiting review",
    S.FINAL: "Final",
    S.NO_RESULT: "No result from lab",
}
COLLECTED = (S.AWAITING_RESULT, S.COMPLETED, S.PRELIMINARY, S.AWAITING_REVIEW, S.FINAL, S.NO_RESULT)


# --- formatting ----------------------------------------------------------------------------


def parse_moment(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def when(value: Any, zone: str | None = None) -> str:
    moment = parse_moment(value)
    if moment is None:
        return "—"
    local = moment.astimezone(ZoneInfo(zone) if zone else CLINIC_ZONE)
    return f"{local:%a %d %b %Y, %H:%M} {local.tzname()}"


def clock(value: Any, zone: str | None = None) -> str:
    """'13:06 EST': a time of today, in the zone, named."""
    moment = parse_moment(value)
    if moment is None:
        return "—"
    local = moment.astimezone(ZoneInfo(zone) if zone else CLINIC_ZONE)
    return f"{local:%H:%M} {local.tzname()}"


def day_label(value: Any) -> str:
    if value in (None, ""):
        return "—"
    try:
        day = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
    except ValueError:
        return str(value)
    return f"{day:%a %d %b %Y}"


def duration(seconds: float) -> str:
    minutes = int(abs(seconds) // 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


def time_left(value: Any, now: datetime | None = None) -> str:
    moment = parse_moment(value)
    if moment is None:
        return "—"
    seconds = (moment - (now or datetime.now(UTC))).total_seconds()
    return f"{duration(seconds)} left" if seconds > 0 else f"window closed {duration(seconds)} ago"


PENDING_REVIEW = "needs clinician review before it is final"
# Choices of the dashboard's forms, (value, words), from the vocabularies.
REVIEW_CHOICES = [
    (ReviewDecision.CONFIRM, "Confirm the result"),
    (ReviewDecision.EXCUSE, "Excuse it (documented explanation)"),
    (ReviewDecision.REQUEST_CONFIRMATION, "Request a confirmation test"),
    (ReviewDecision.REQUEST_RETEST, "Request a retest"),
]
# Reversing the review that decided a final result: it is decided anew, confirm or excuse.
REVERSAL_CHOICES = [
    (ReviewDecision.CONFIRM, "Confirm the result after all"),
    (ReviewDecision.EXCUSE, "Excuse it after all (documented explanation)"),
]
REASSESS_CHOICES = [
    (ReassessmentDecision.RESUME, "Release the hold: resume dosing"),
    (ReassessmentDecision.KEEP_HOLDING, "Keep holding"),
]
SCHEDULE_CHOICES = [
    (ScheduleKind.DAILY_OBSERVED, "daily observed"),
    (ScheduleKind.OBSERVED_PLUS_TAKE_HOME, "observed plus take-home"),
    (ScheduleKind.INJECTION, "injection"),
]
WORKLIST_STATUS_CHOICES = [
    ("", "to do"),
    (WorklistStatus.OPEN, "not claimed"),
    (WorklistStatus.CLAIMED, "claimed"),
    (WorklistStatus.RESOLVED, "resolved"),
    ("all", "all"),
]
RESULT_STATUS_WORDS = {
    ResultStatus.PRELIMINARY: "Preliminary",
    ResultStatus.FINAL: "Final",
    ResultStatus.CORRECTED: "Corrected",
}
# What the calendar expects today that a nurse gives at the window.
DOSE_DUE = (ExpectedKind.OBSERVED_DOSE, ExpectedKind.INJECTION_DUE, ExpectedKind.INJECTION_OVERDUE)
REVIEW_WORDS = {
    ReviewDecision.CONFIRM: "confirmed",
    ReviewDecision.EXCUSE: "excused",
    ReviewDecision.REQUEST_CONFIRMATION: "sent for confirmation",
    ReviewDecision.REQUEST_RETEST: "sent for a retest",
}


def result_summary(summary: str, live: dict[str, Any] | None) -> str:
    """A result's summary as it reads now: once reviewed (or final), no longer 'needs review'."""
    live = live or {}
    if PENDING_REVIEW not in (summary or "") or live.get("status") == "awaiting-review":
        return summary
    reviews = live.get("reviews") or []
    if reviews:
        decision = reviews[-1].get("decision", "")
        return summary.replace(PENDING_REVIEW, f"reviewed: {REVIEW_WORDS.get(decision, decision)}")
    if live.get("status") == "final":
        return summary.replace(PENDING_REVIEW, "final")
    return summary


def percent(ratio: Any) -> str:
    return "—" if ratio is None else f"{round(float(ratio) * 100)}%"


def _asset_version(name: str) -> str:
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]


_VERSIONS: dict[str, str] = {}


def static_url(name: str) -> str:
    if name not in _VERSIONS:
        _VERSIONS[name] = _asset_version(name)
    return f"/ui/static/{name}?v={_VERSIONS[name]}"


templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters.update(
    when=when,
    clock=clock,
    day=day_label,
    time_left=time_left,
    percent=percent,
    result_summary=result_summary,
    status_label=lambda s: STATUS_LABELS.get(s, s),
)
templates.globals.update(
    static=static_url,
    swatch=charts.swatch,
    adherence_swatch=charts.adherence_swatch,
    calendar_kinds=charts.CALENDAR_KINDS,
    adherence_kinds=charts.ADHERENCE_KINDS,
    adherence_text=charts.adherence_text,
    participant_statuses=tuple(ParticipantStatus),
    open_screening=(S.SCHEDULED, S.AWAITING_COLLECTION),
    dose_due=DOSE_DUE,
    result_status_words=RESULT_STATUS_WORDS,
    review_choices=REVIEW_CHOICES,
    reversal_choices=REVERSAL_CHOICES,
    reassess_choices=REASSESS_CHOICES,
    schedule_choices=SCHEDULE_CHOICES,
    worklist_status_choices=WORKLIST_STATUS_CHOICES,
)


def html(
    template: str, context: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> HTMLResponse:
    body = templates.get_template(template).render(**context)
    return HTMLResponse(body, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


def is_partial(request: Request) -> bool:
    """An htmx request for a fragment (not a boosted whole-page navigation)."""
    return request.headers.get("hx-request") == "true" and request.headers.get("hx-boosted") != "true"


def safe_next(value: str | None, default: str = "/ui/today") -> str:
    """Only paths of this dashboard: never an open redirect."""
    if value and value.startswith("/ui/") and not value.startswith("//") and "\\" not in value and "\n" not in value:
        return value
    return default


def secure_cookies(request: Request) -> bool:
    services = getattr(request.app.state, "services", None)
    production = services is not None and services.settings.env == "production"
    return request.url.scheme == "https" or production


def redirect(request: Request, url: str) -> Response:
    """303 to a dashboard page; htmx fragment requests are told to navigate instead."""
    if is_partial(request):
        return Response(status_code=204, headers={"HX-Redirect": url, **SECURITY_HEADERS})
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


def to_login(request: Request, why: str | None = None) -> Response:
    params = {"next": request.url.path + (f"?{request.url.query}" if request.url.query else "")}
    if why:
        params["why"] = why
    response = redirect(request, "/ui/login?" + urlencode(params, quote_via=quote))
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


def _authenticate(request: Request, token: str) -> Actor:
    # The API's own token check, against the same table: revoked or expired tokens end the session.
    with Session(request.app.state.services.engine) as session:
        return authenticate(session, token)


async def authenticate_token(request: Request, token: str) -> Actor:
    return await run_in_threadpool(_authenticate, request, token)


# --- the signed-in request -------------------------------------------------------------------


@dataclass
class Ctx:
    request: Request
    session: UiSession
    actor: Actor
    api: Api
    form: FormData | None = None

    def can(self, method: str, path: str) -> bool:
        """Whether the role matrix (api/roles.py) lets this user call that API route."""
        return self.actor.role in ROLE_MATRIX.get((method, path), frozenset())

    def value(self, name: str, default: str = "") -> str:
        value = self.form.get(name) if self.form is not None else None
        return value.strip() if isinstance(value, str) else default

    def values(self, name: str) -> list[str]:
        return [v for v in (self.form.getlist(name) if self.form is not None else []) if isinstance(v, str)]

    def flash(self, kind: str, text: str, link: tuple[str, str] | None = None) -> None:
        self.session.flashes.append(Flash(kind, text, link))

    def render(self, template: str, status: int = 200, **data: Any) -> HTMLResponse:
        headers = {}
        if status >= 400:
            headers["HX-Push-Url"] = "false"
        context = {
            "actor": self.actor,
            "csrf": self.session.csrf,
            "can": self.can,
            "path": self.request.url.path,
            "flashes": self.session.take_flashes(),
            "now": datetime.now(UTC),
            **data,
        }
        return html(template, context, status=status, headers=headers)

    def form_state(self, form: str) -> FormState:
        return self.session.take_form(form) or FormState(form, {}, {})

    def refused(
        self, error: ApiError, back: str, form: str | None = None, names: dict[str, str] | None = None
    ) -> Response:
        """The API said no: show its detail, keep what was typed, go back to the form."""
        self.flash("error", error.detail)
        if form is not None and self.form is not None:
            values = {
                k: (self.form.getlist(k) if len(self.form.getlist(k)) > 1 else self.form.get(k))
                for k in self.form.keys()
                if k not in ("csrf_token",)
            }
            self.session.form = FormState(form, values, error.field_errors(names))
        return redirect(self.request, back)

    def done(self, url: str, text: str, link: tuple[str, str] | None = None) -> Response:
        self.flash("success", text, link)
        return redirect(self.request, url)


Handler = Callable[[Request, Ctx], Awaitable[Response]]


def error_page(
    request: Request, status: int, title: str, detail: str, actor: Actor | None = None, csrf: str = ""
) -> HTMLResponse:
    return html(
        "error.html",
        {
            "actor": actor,
            "csrf": csrf,
            "can": lambda *_: False,
            "path": request.url.path,
            "flashes": [],
            "title": title,
            "error": ApiError(status, detail),
        },
        status=status,
        headers={"HX-Push-Url": "false"},
    )


def signed_in(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Pages and actions for a signed-in user: session, token still valid, CSRF on every POST.
    Whatever the API refuses is shown with the API's own detail."""

    @wraps(handler)
    async def endpoint(request: Request) -> Response:
        store = store_for(request.app)
        session = store.get(request.cookies.get(COOKIE))
        if session is None:
            return to_login(request, "session" if request.cookies.get(COOKIE) else None)
        try:
            actor = await authenticate_token(request, session.token)
        except TokenRejected as exc:
            store.end(session.id)
            request.state.audit_detail = f"dashboard session ended: {exc}"
            why = "revoked" if "revoked" in str(exc) else "expired" if "expired" in str(exc) else "token"
            return to_login(request, why)
        request.state.actor = session.actor = actor  # the audit trail names who used the dashboard
        form = None
        if request.method == "POST":
            form = await request.form()
            presented = form.get("csrf_token") or request.headers.get("x-csrf-token")
            cross_site = request.headers.get("sec-fetch-site") == "cross-site"
            if cross_site or not csrf_ok(session, presented if isinstance(presented, str) else None):
                request.state.audit_detail = "dashboard CSRF check failed"
                return error_page(
                    request,
                    403,
                    "Form refused",
                    "This form did not come from this dashboard, or it is from an earlier sign-in. "
                    "Reload the page and try again.",
                    actor,
                    session.csrf,
                )
        api = Api(request, session.token)
        ctx = Ctx(request, session, actor, api, form)
        try:
            return await handler(request, ctx)
        except ApiError as exc:
            if exc.status == 401:  # the token went bad between our check and the API's
                store.end(session.id)
                return to_login(request, "token")
            return ctx.render("error.html", status=exc.status, title="Not available", error=exc)
        except Exception as exc:  # a page must still answer with a page; the trace is in the log
            log.error("dashboard %s %s failed: %s", request.method, request.url.path, type(exc).__name__, exc_info=exc)
            return ctx.render(
                "error.html",
                status=500,
                title="Something went wrong",
                error=ApiError(
                    500, "This page could not be shown; the error has been logged. Try again, or go back to Today."
                ),
            )
        finally:
            await api.close()

    return endpoint


def query(request: Request, name: str, default: str = "") -> str:
    return request.query_params.get(name, default).strip()
