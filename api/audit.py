"""Every request that touches participant data, every rejected token: an audit event, written
before the answer leaves, with who, what, which subject, the outcome and the request id."""

from __future__ import annotations

import re
import uuid

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from sqlmodel import Session
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response

from iop import logs
from store.audit import AuditEntry, append
from store.models import ConsentRecord, MedicationOrderRecord, Screening

NOT_AUDITED = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/favicon.ico",
}
UNAUDITED_ASSETS = ("/ui/static", "/docs/assets/")  # the dashboard's and the API docs' static files
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Path parameter -> (subject type, how to find the participant it belongs to)
SUBJECTS = {
    "participant_id": ("participant", None),
    "screening_id": ("screening", Screening),
    "order_id": ("medication-order", MedicationOrderRecord),
    "consent_id": ("consent", ConsentRecord),
    "item_id": ("quarantine-item", None),
    "worklist_item_id": ("worklist-item", None),  # the route names the participant (audit_participant)
    "recipient_id": ("recipient", None),
    "mapping_id": ("code-mapping", None),
    "workflow_id": ("workflow", None),
    "token_id": ("token", None),
    "program_id": ("program", None),
    "entry_id": ("call-list-entry", None),
    "session_id": ("attendance-session", None),  # the route names the participant (audit_participant)
}


class AuditMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        given = request.headers.get("x-request-id", "")
        rid = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        reset = logs.request_id.set(rid)
        try:
            response = await call_next(request)
            if request.url.path not in NOT_AUDITED and not request.url.path.startswith(UNAUDITED_ASSETS):
                await run_in_threadpool(self._record, request, response.status_code, rid)
            response.headers["X-Request-ID"] = rid
            return response
        finally:
            logs.request_id.reset(reset)

    def _record(self, request: Request, status: int, rid: str) -> None:
        services = request.app.state.services
        actor = getattr(request.state, "actor", None)
        route = request.scope.get("route")
        params = request.scope.get("path_params") or {}
        subject_type = subject_id = participant_id = None
        for name, (kind, table) in SUBJECTS.items():
            if name in params:
                subject_type, subject_id = kind, str(params[name])
                participant_id = (
                    subject_id if kind == "participant" else self._owner(services.engine, table, subject_id)
                )
                break
        participant_id = getattr(request.state, "audit_participant", None) or participant_id
        if subject_type is None and getattr(request.state, "audit_subject", None):
            subject_type, subject_id = request.state.audit_subject  # a subject named in the body (POST /programs)
        if subject_type is None and participant_id:
            subject_type, subject_id = "participant", participant_id
        rejected = getattr(request.state, "rejected_token", None)  # (id, role) of a revoked or expired token
        shown = getattr(request.state, "audit_shown", None)
        append(
            services.engine,
            AuditEntry(
                actor=actor.token_id if actor else rejected[0] if rejected else "anonymous",
                role=actor.role if actor else rejected[1] if rejected else "-",
                action=f"{request.method} {route.path if route else request.url.path}",
                outcome=str(status),
                subject_type=subject_type,
                subject_id=subject_id,
                participant_id=participant_id,
                request_id=rid,
                source=request.client.host if request.client else None,
                detail=getattr(request.state, "audit_detail", None),
                shown=",".join(dict.fromkeys(shown)) if shown else None,
            ),
        )

    @staticmethod
    def _owner(engine, table, subject_id: str) -> str | None:
        if table is None:
            return None
        with Session(engine) as session:
            row = session.get(table, subject_id)
            return getattr(row, "participant_id", None) if row else None
