"""The HTTP API."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from opentelemetry.trace import Tracer
from sqlalchemy.engine import Engine
from temporalio.client import Client

from api import docs, problems, ui
from api.audit import AuditMiddleware
from api.body_limit import BodyLimit
from api.deps import Services
from api.idempotency import SettleIdempotentAnswers
from api.observability import Metrics, Observe
from api.observability import router as metrics_router
from api.routers import (
    attendance,
    audit,
    channel,
    disclosures,
    equity,
    fhir,
    health,
    lab,
    medications,
    participants,
    programs,
    screenings,
    selection,
    staff,
    worklist,
)
from ingest import offload
from ingest.lab import LabIngest
from iop import takehome_rules, telemetry
from iop.audit import audit_keys
from iop.settings import Settings
from iop.temporal import connect
from store.audit import use_keys
from store.db import make_engine

LAB_INTAKE = frozenset({"/lab/hl7", "/lab/results"})
# The resources the operations are grouped by in /docs and /redoc, in this order.
TAGS = [
    {
        "name": "participants",
        "description": "Enrollment, program phases and discharge; a participant's record as a FHIR R4 Bundle.",
    },
    {
        "name": "screenings",
        "description": "Random selection for drug tests (the daily draw), check-ins, "
        "collection, excuses, refusals, for-cause tests and pauses.",
    },
    {
        "name": "lab",
        "description": "Results from labs (HL7 v2 ORU^R01 or JSON), the quarantine of what cannot be "
        "filed, code mappings, analytes, result review and lab turnaround.",
    },
    {
        "name": "medications",
        "description": "Medication orders (MOUD), dispensing, missed doses and reassessment, "
        "take-home eligibility and diversion control.",
    },
    {
        "name": "disclosures",
        "description": "Recipients (courts, probation, employers), 42 CFR part 2 consents, the "
        "case events they end at, and the accounting of disclosures.",
    },
    {
        "name": "attendance",
        "description": "Group and individual treatment sessions, their rosters, and attendance "
        "recorded by staff or a kiosk (present, late, excused, absent), reported "
        "under consent.",
    },
    {
        "name": "audit",
        "description": "The tamper-evident audit trail, histories, API tokens and the Temporal UI's remote codec.",
    },
    {"name": "equity", "description": "Optional demographic answers, given with consent, and the equity report."},
    {
        "name": "selection",
        "description": "Random selection anyone can verify: each period's commitment to its "
        "secret seed, and the seed once the period is over (docs/verify_selection.py "
        "recomputes every draw).",
    },
    {
        "name": "worklist",
        "description": "What staff have to do: every alert, held lab message and blocked report as "
        "an item to claim, comment on and resolve, escalated when nobody does.",
    },
    {"name": "staff", "description": "The names and roles behind the token ids that records and histories carry."},
    {
        "name": "programs",
        "description": "Programs as data: sites with their hours and closed days, phases and "
        "collection windows; every edit is a new version.",
    },
    {
        "name": "participant channel",
        "description": "Check-in by SMS or phone with a PIN through a signed gateway, "
        "the gateway's delivery receipts, PINs and the staff call list "
        "for notices that were not delivered.",
    },
    {"name": "health", "description": "Liveness and readiness probes."},
]


def create_app(
    settings: Settings, *, engine: Engine | None = None, temporal: Client | None = None, tracer: Tracer | None = None
) -> FastAPI:
    """Build the app. Tests pass their own engine, client and tracer; `iop api` lets it make them."""

    takehome_rules.install()  # validated at start: a malformed rule file stops the API here
    takehome_rules.default_rule_set(settings.takehome_rules)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        own_engine = engine is None
        records = engine or make_engine(settings.resolved_database_url)
        # Production refuses to start without IOP_AUDIT_KEYS (iop/audit.py), like without IOP_CODEC_KEYS.
        use_keys(records, audit_keys(settings))
        # Lazy: the API starts (and /readyz says why it is not ready) while Temporal is down.
        client = temporal or await connect(settings, lazy=True, service="iop-api")
        services = Services(
            settings=settings, engine=records, temporal=client, lab=LabIngest(records, client, settings.task_queue)
        )
        app.state.services = services
        yield
        await run_in_threadpool(offload.shutdown)  # the lab parser's worker process, if one was started
        if own_engine:
            services.engine.dispose()

    app = FastAPI(
        title="iop-workflows",
        version="0.1.0",
        summary="Drug screening and medication management for Intensive Outpatient Programs.",
        lifespan=lifespan,
        openapi_tags=TAGS,
        docs_url=None,  # served by api/docs.py from the app's own assets, not a CDN
        redoc_url=None,
    )
    problems.install(app)
    docs.install(app)
    # Inside the audit middleware, so a refused body is audited like any other answer.
    app.add_middleware(BodyLimit, paths=LAB_INTAKE, limit=settings.lab_max_body_bytes)
    app.add_middleware(SettleIdempotentAnswers)
    app.add_middleware(AuditMiddleware)
    # Only the Temporal UI's origin may call the API from a browser (for the codec endpoint).
    app.add_middleware(
        CORSMiddleware,
        allow_origins=[settings.temporal_ui_origin],
        allow_methods=["POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "X-Namespace"],
        allow_credentials=True,
    )
    app.state.metrics, app.state.metrics_token = Metrics(), settings.metrics_token
    # Outermost: times everything below, refusals included; opens the request's trace span.
    app.add_middleware(Observe, metrics=app.state.metrics, tracer=tracer or telemetry.tracer(settings, "iop-api"))
    app.include_router(health.router)
    app.include_router(metrics_router)
    app.include_router(participants.router)
    app.include_router(screenings.router)
    app.include_router(lab.router)
    app.include_router(medications.router)
    app.include_router(disclosures.router)
    app.include_router(attendance.router)
    app.include_router(worklist.router)
    app.include_router(staff.router)
    app.include_router(audit.router)
    app.include_router(fhir.router)
    app.include_router(equity.router)
    app.include_router(programs.router)
    app.include_router(selection.router)
    app.include_router(channel.router)
    app.include_router(ui.router)  # the staff dashboard under /ui: a client of the routes above
    return app


def create_app_from_env() -> FastAPI:
    """The factory each `iop api` process calls when IOP_API_WORKERS > 1 (uvicorn imports it by name)."""
    from iop.logs import configure
    from iop.settings import get_settings

    settings = get_settings()
    configure(settings.log_level)
    return create_app(settings)
