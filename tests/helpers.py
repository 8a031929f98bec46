"""Shared test plumbing: a whole API stack on a real Temporal server."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.app import create_app
from api.tokens import ROLES, issue_token
from iop.settings import Settings
from iop.worker import build_worker
from store.db import session_scope


@dataclass
class Stack:
    http: httpx.AsyncClient
    engine: Engine
    temporal: Client
    task_queue: str
    tokens: dict[str, str] = field(default_factory=dict)
    app: Any = None

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    async def enroll(self, role: str = "staff", **overrides: Any) -> dict[str, Any]:
        response = await self.http.post("/participants", json=enrollment(**overrides), headers=self.auth(role))
        assert response.status_code == 201, response.text
        return response.json()


async def result_once_started(client: Client, workflow_id: str, timeout: float = 60, every: float = 0.05) -> Any:
    """The result of a workflow another one starts after answering its caller (a screening's
    disclosures start once the lab's result has been answered): polled every `every` seconds until it
    exists, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await client.get_workflow_handle(workflow_id).result()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
        await asyncio.sleep(every)


def enrollment(**overrides: Any) -> dict[str, Any]:
    body = {
        "given_name": "Marisol",
        "family_name": "Quintanilla-Verhoeven",
        "date_of_birth": date(1987, 3, 14).isoformat(),
        "phone": "+15555550123",
        "site": "north",
        "referral_source": "county drug court",
        "case_numbers": [{"system": "county-drug-court", "value": "DC-2026-0917"}],
        "phase": "phase-1",
    }
    body.update(overrides)
    return body


# The sender the test lab token is registered to (MSH-3 / MSH-4, and the JSON lab_id).
LAB_APPLICATION, LAB_FACILITY = "ACMELAB", "ACME REFERENCE LAB"


def issue_role_tokens(engine: Engine) -> dict[str, str]:
    tokens = {}
    with session_scope(engine) as session:
        for role in ROLES:
            sender = {"sender_application": LAB_APPLICATION, "sender_facility": LAB_FACILITY} if role == "lab" else {}
            _, tokens[role] = issue_token(session, name=f"test {role}", role=role, **sender)
    return tokens


@contextlib.asynccontextmanager
async def api_stack(
    temporal: Client,
    engine: Engine,
    task_queue: str,
    tmp_path,
    *,
    with_worker: bool = True,
    tracer=None,
    **settings_overrides: Any,
):
    settings = Settings(data_dir=tmp_path, task_queue=task_queue, **settings_overrides)
    app = create_app(settings, engine=engine, temporal=temporal, tracer=tracer)
    worker = build_worker(temporal, engine, task_queue) if with_worker else contextlib.nullcontext()
    async with worker, app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://iop.test") as http:
            stack = Stack(http, engine, temporal, task_queue, issue_role_tokens(engine))
            stack.app = app
            yield stack


@contextlib.contextmanager
def refused(pattern: str):
    """The update must be refused by its validator with a reason matching `pattern`."""
    with pytest.raises(WorkflowUpdateFailedError) as info:
        yield info
    assert re.search(pattern, str(info.value.cause)), str(info.value.cause)


@contextlib.contextmanager
def refused_unread(pattern: str):
    """The update must be refused because its argument cannot be read as its domain type: the domain's own
    checks (a frozen dataclass's __post_init__) reject it while it is decoded, before any validator runs. The
    reason is somewhere in the failure's chain of causes."""
    with pytest.raises(WorkflowUpdateFailedError) as info:
        yield info
    reasons, cause = [], info.value.cause
    while cause is not None:
        reasons.append(str(cause))
        cause = cause.cause
    assert re.search(pattern, " | ".join(reasons)), reasons
