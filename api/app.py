"""The HTTP API."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.engine import Engine
from temporalio.client import Client

from api import problems, ui
from api.audit import AuditMiddleware
from api.deps import Services
from api.routers import audit, channel, disclosures, health, lab, medications, participants, programs, screenings
from ingest.lab import LabIngest
from iop.audit import audit_keys
from iop.settings import Settings
from iop.temporal import connect
from store.audit import use_keys
from store.db import make_engine


def create_app(settings: Settings, *, engine: Engine | None = None, temporal: Client | None = None) -> FastAPI:
    """Build the app. Tests pass their own engine and client; `iop api` lets it make both."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        own_engine = engine is None
        records = engine or make_engine(settings.resolved_database_url)
        # Production refuses to start without IOP_AUDIT_KEYS (iop/audit.py), like without IOP_CODEC_KEYS.
        use_keys(records, audit_keys(settings))
        # Lazy: the API starts (and /readyz says why it is not ready) while Temporal is down.
        client = temporal or await connect(settings, lazy=True)
        services = Services(settings=settings, engine=records, temporal=client, lab=LabIngest(records, client))
        app.state.services = services
        yield
        if own_engine:
            services.engine.dispose()

    app = FastAPI(
        title="iop-workflows",
        version="0.1.0",
        summary="Drug screening and medication management for Intensive Outpatient Programs.",
        lifespan=lifespan,
    )
    problems.install(app)
    app.add_middleware(AuditMiddleware)
    # Only the Temporal UI's origin may call the API from a browser (for the codec endpoint).
    app.add_middleware(CORSMiddleware, allow_origins=[settings.temporal_ui_origin], allow_methods=["POST", "OPTIONS"],
                       allow_headers=["Authorization", "Content-Type", "X-Namespace"], allow_credentials=True)
    app.include_router(health.router)
    app.include_router(participants.router)
    app.include_router(screenings.router)
    app.include_router(lab.router)
    app.include_router(medications.router)
    app.include_router(disclosures.router)
    app.include_router(audit.router)
    app.include_router(programs.router)
    app.include_router(channel.router)
    app.include_router(ui.router)  # the staff dashboard under /ui: a client of the routes above
    return app
