"""A whole embedded stack for benchmarks: dev server, worker, and the API on a real HTTP port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.app import create_app
from api.tokens import issue_token
from bench.noop import NoopWorkflow
from iop.codec import data_converter, new_key
from iop.settings import Settings
from iop.worker import build_worker
from store.db import make_engine, session_scope
from store.migrate import upgrade
from workflows import search


@dataclass
class Stack:
    client: Client
    engine: Engine
    http: httpx.AsyncClient
    token: dict[str, str]
    task_queue: str
    data_dir: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.asynccontextmanager
async def embedded_stack(database_url: str | None = None) -> AsyncIterator[Stack]:
    from iop.cli import _binary

    with tempfile.TemporaryDirectory(prefix="iop-bench-") as tmp:
        data_dir = Path(tmp)
        url = database_url or f"sqlite:///{data_dir / 'records.db'}"
        upgrade(url)
        engine = make_engine(url)
        env = await WorkflowEnvironment.start_local(
            data_converter=data_converter([new_key("bench")]), dev_server_existing_path=_binary("temporal"),
            dev_server_database_filename=str(data_dir / "temporal.db"), search_attributes=search.ALL,
        )
        task_queue = "bench"
        with session_scope(engine) as session:
            _, admin = issue_token(session, name="bench admin", role="admin")
            _, lab = issue_token(session, name="bench lab", role="lab")
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(
            create_app(Settings(data_dir=data_dir, task_queue=task_queue), engine=engine, temporal=env.client),
            host="127.0.0.1", port=port, log_level="warning"))
        server.install_signal_handlers = lambda: None
        try:
            async with build_worker(env.client, engine, task_queue), \
                    Worker(env.client, task_queue="bench-noop", workflows=[NoopWorkflow]):
                serving = asyncio.create_task(server.serve())
                while not server.started:
                    await asyncio.sleep(0.05)
                limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60, limits=limits) as http:
                    yield Stack(env.client, engine, http, {"admin": admin, "lab": lab}, task_queue, data_dir)
                server.should_exit = True
                await serving
        finally:
            await env.shutdown()
            engine.dispose()


async def timed(jobs: Iterable[Callable[[], Awaitable[object]]], concurrency: int) -> float:
    """Run the jobs `concurrency` at a time; the wall time in seconds."""
    queue = list(jobs)
    semaphore = asyncio.Semaphore(concurrency)

    async def one(job):
        async with semaphore:
            await job()

    started = time.perf_counter()
    await asyncio.gather(*(one(job) for job in queue))
    return time.perf_counter() - started
