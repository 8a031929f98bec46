"""Schemathesis against the app's own OpenAPI document: every route, called with valid tokens,
must never answer 5xx, and every answer must match the schema and content type it documents.

The app runs for real: uvicorn on a free 127.0.0.1 port, in a thread with its own event loop, its
own Temporal client and worker on the session's dev server, and its own migrated SQLite records
(data-changing routes create records there). Path parameters are sometimes random and sometimes
the ids of records made beforehand, so the routes are reached beyond their 404s.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

import hypothesis.strategies as st
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance
from temporalio.client import Client

from api.app import create_app
from iop.settings import Settings
from iop.worker import build_worker
from store.db import make_engine
from store.migrate import upgrade
from tests.conftest import TEST_CONVERTER, drop_schema, postgres_schema_url, unique
from tests.helpers import enrollment, issue_role_tokens

CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
MAX_EXAMPLES = 15  # per operation and mode; the whole module stays well under two minutes


@dataclass
class LiveApi:
    url: str
    openapi: dict[str, Any]
    tokens: dict[str, str]
    known: dict[str, list[str]] = field(default_factory=dict)  # path parameter -> real ids


class _Server(threading.Thread):
    """The app, a worker and uvicorn on one event loop in a thread of their own."""

    def __init__(self, target: str, records_url: str, data_dir, task_queue: str) -> None:
        super().__init__(name="schemathesis-api", daemon=True)
        self.target, self.records_url, self.data_dir, self.task_queue = target, records_url, data_dir, task_queue
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.live: LiveApi | None = None
        self.server: uvicorn.Server | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported to the fixture
            self.error = exc
        finally:
            self.ready.set()

    async def _serve(self) -> None:
        upgrade(self.records_url)
        engine = make_engine(self.records_url)
        temporal = await Client.connect(self.target, data_converter=TEST_CONVERTER)
        app = create_app(Settings(data_dir=self.data_dir, task_queue=self.task_queue), engine=engine, temporal=temporal)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        async with build_worker(temporal, engine, self.task_queue):
            serving = asyncio.create_task(self.server.serve(sockets=[sock]))
            while not self.server.started:
                if serving.done():
                    serving.result()
                await asyncio.sleep(0.05)
            self.live = LiveApi(f"http://127.0.0.1:{port}", app.openapi(), issue_role_tokens(engine))
            self.ready.set()
            await serving
        engine.dispose()

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        self.join(timeout=60)


def _seed(live: LiveApi) -> None:
    """Real records, so that generated path parameters can name them."""
    import httpx

    admin = {"Authorization": f"Bearer {live.tokens['admin']}"}
    with httpx.Client(base_url=live.url, headers=admin, timeout=30) as http:
        participant = http.post("/participants", json=enrollment(), headers={"Idempotency-Key": unique("k")})
        assert participant.status_code == 201, participant.text
        pid = participant.json()["id"]
        screening = http.post(f"/participants/{pid}/screenings", json={"reason": "schemathesis seed"})
        assert screening.status_code in (200, 201, 202), screening.text
        sid = screening.json()["screening_id"]
        tokens = http.get("/tokens", params={"limit": 200}).json()["items"]
    live.known = {
        "participant_id": [pid],
        "screening_id": [sid],
        "workflow_id": [f"participant-{pid}", f"screening-{sid}"],
        "token_id": [t["id"] for t in tokens if t["role"] not in ("admin", "auditor")],
    }


@pytest.fixture(scope="module")
def live_api(request, dev_env, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("schemathesis")
    # Records as the other API tests keep them: SQLite, or PostgreSQL with IOP_TEST_RECORDS=postgresql.
    admin_url, pg_schema = None, None
    if ON_POSTGRES:
        admin_url = request.getfixturevalue("postgres_admin_url")
        records_url, pg_schema = postgres_schema_url(admin_url)
    else:
        records_url = f"sqlite:///{data_dir / 'records.db'}"
    server = _Server(dev_env.client.service_client.config.target_host, records_url, data_dir, unique("tq"))
    server.start()
    server.ready.wait(timeout=120)
    if server.error or server.live is None:
        raise RuntimeError("the API did not start") from server.error
    try:
        assert server.live.openapi == DOCUMENT, "the running app documents itself differently"
        _seed(server.live)
        KNOWN.update(server.live.known)
        yield server.live
    finally:
        server.stop()
        if pg_schema:
            drop_schema(admin_url, pg_schema)


# The document is static, so it is loaded at collection (schemathesis parametrizes from it); the
# calls go to the live app. Known ids are read when a case is drawn, after the records exist.
KNOWN: dict[str, list[str]] = {}
# PostgreSQL refuses NUL characters in text; the API answers 422 for them (api/problems.py), and
# both databases are fuzzed with them.
ON_POSTGRES = os.environ.get("IOP_TEST_RECORDS") == "postgresql"
DOCUMENT = create_app(Settings()).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=MAX_EXAMPLES,
    database="none",
    with_security_parameters=False,
    allow_x00=True,
)
schema.config.phases.update(phases=["examples", "fuzzing"])


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """Half of the time, the path parameters name records that exist."""
    if not isinstance(path_parameters, dict):
        return st.just(path_parameters)
    known = {name: st.sampled_from(KNOWN[name]) for name in path_parameters if KNOWN.get(name)}
    if not known:
        return st.just(path_parameters)
    return st.one_of(st.just(path_parameters), st.fixed_dictionaries(known).map(lambda ids: {**path_parameters, **ids}))


def _bearer(live: LiveApi, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {live.tokens[role]}"}


@schema.parametrize()
@settings(deadline=None, max_examples=MAX_EXAMPLES, suppress_health_check=list(HealthCheck))
def test_every_route_as_admin(case, live_api):
    # The admin token may do everything, so every route is reached past its role check.
    case.call_and_validate(base_url=live_api.url, headers=_bearer(live_api, "admin"), checks=CHECKS, timeout=60)


@schema.include(method="GET").parametrize()
@settings(deadline=None, max_examples=MAX_EXAMPLES, suppress_health_check=list(HealthCheck))
def test_every_read_as_auditor(case, live_api):
    # Reads an auditor may make answer as documented; the others are refused as documented (403).
    case.call_and_validate(base_url=live_api.url, headers=_bearer(live_api, "auditor"), checks=CHECKS, timeout=60)


def test_nul_in_text_is_refused_not_a_server_error(live_api):
    import httpx

    with httpx.Client(base_url=live_api.url, headers=_bearer(live_api, "admin"), timeout=30) as http:
        for path in ("/participants?status=%00", "/screenings?site=%00", "/audit?actor=%00", "/participants/%00"):
            assert http.get(path).status_code < 500, path
