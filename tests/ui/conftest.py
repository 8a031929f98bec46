"""The dashboard against a live stack: a real Temporal dev server, a worker, uvicorn serving the
whole app on 127.0.0.1, SQLite records, a real webhook receiver, and Debian's Chromium driven by
Playwright (never a downloaded browser).

Without /usr/bin/chromium the browser tests are skipped, and the summary says why; with
REQUIRE_BROWSER=1 (as .ci/run sets) they fail instead."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from sqlalchemy.engine import Engine
from temporalio.client import Client

from api.app import create_app
from api.tokens import issue_token
from iop.settings import Settings
from iop.worker import build_worker
from store.db import make_engine, session_scope
from store.migrate import upgrade
from tests.helpers import issue_role_tokens
from tests.receiver import Receiver, webhook_receiver

CHROMIUM = Path(os.environ.get("IOP_TEST_CHROMIUM", "/usr/bin/chromium"))
# The bound of every wait on the page (an assertion retried until it holds, never a sleep): a step that starts or
# updates a workflow can take tens of seconds on a loaded 2-core machine running the whole suite; an idle one
# passes each assertion at once.
BROWSER_WAIT_MS = 60_000
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
COURT_CASE_SYSTEM = "county-drug-court"


def browser_unavailable() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is not installed (Debian: apt-get install -y chromium)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="session")
def chromium_path() -> str:
    reason = browser_unavailable()
    if reason:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"REQUIRE_BROWSER=1 but the dashboard's browser tests cannot run: {reason}")
        pytest.skip(f"dashboard browser tests need Chromium: {reason}; REQUIRE_BROWSER=1 makes this a failure")
    return str(CHROMIUM)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """`make test` does not list skip reasons; say here that the browser tests did not run, and why."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "tests/ui/" in r.nodeid]
    if not skipped:
        return
    longrepr = skipped[0].longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    terminalreporter.write_sep("-", "dashboard browser tests skipped")
    terminalreporter.write_line(f"{len(skipped)} test(s) in tests/ui were skipped: {reason.removeprefix('Skipped: ')}")


# --- the live stack ---------------------------------------------------------------------------


@dataclass
class LiveStack:
    base_url: str
    engine: Engine
    temporal: Client
    tokens: dict[str, str]
    court: Receiver
    court_id: str

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, timeout=30)

    def new_token(self, role: str) -> tuple[str, str]:
        """(token id, token) of a fresh token, for a test that revokes or signs out."""
        with session_scope(self.engine) as session:
            row, token = issue_token(session, name=f"ui test {role}", role=role)
            return row.id, token


async def _started(server: uvicorn.Server, task: asyncio.Task, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
            raise RuntimeError("uvicorn stopped before it started")
        if time.monotonic() > deadline:
            raise TimeoutError("uvicorn did not start")
        await asyncio.sleep(0.02)


@pytest_asyncio.fixture(scope="package")
async def live(dev_env, tmp_path_factory) -> AsyncIterator[LiveStack]:
    tmp = tmp_path_factory.mktemp("ui-stack")
    url = f"sqlite:///{tmp / 'records.db'}"
    upgrade(url)
    engine = make_engine(url)
    task_queue = f"tq-ui-{uuid.uuid4().hex[:10]}"
    app = create_app(Settings(data_dir=tmp, task_queue=task_queue), engine=engine, temporal=dev_env.client)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False))
    with webhook_receiver() as court:
        async with build_worker(dev_env.client, engine, task_queue):
            task = asyncio.create_task(server.serve(sockets=[sock]))
            try:
                await _started(server, task)
                base_url = f"http://127.0.0.1:{port}"
                tokens = issue_role_tokens(engine)
                async with httpx.AsyncClient(base_url=base_url) as http:
                    # Recipients are an administrator's business (API only); the dashboard takes consents.
                    response = await http.post(
                        "/recipients",
                        headers={"Authorization": f"Bearer {tokens['admin']}"},
                        json={
                            "name": "County Drug Court, Part 3",
                            "kind": "court",
                            "delivery": "webhook",
                            "url": court.url,
                            "case_number_system": COURT_CASE_SYSTEM,
                            "categories": ["screening-results", "missed-tests"],
                        },
                    )
                    assert response.status_code == 201, response.text
                court.secret = response.json()["signing_secret"]
                yield LiveStack(base_url, engine, dev_env.client, tokens, court, response.json()["id"])
            finally:
                server.should_exit = True
                await task
    engine.dispose()


# --- the browser ------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module")
async def browser(chromium_path) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Screenshots of this run only (CI keeps the folder)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)  # emptied once per run, by tests/conftest.py
    return ARTIFACTS


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
