"""A whole embedded stack for benchmarks: dev server, worker, and the API on a real HTTP port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.app import create_app
from api.tokens import issue_token
from bench.noop import NoopActivities, NoopPipelineWorkflow, NoopWorkflow
from domain.vocab import Role
from iop.codec import data_converter, format_key, new_key
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
    env: WorkflowEnvironment
    worker_pid: int | None = None
    extra: dict = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.asynccontextmanager
async def embedded_stack(*, worker_process: bool = False) -> AsyncIterator[Stack]:
    """Everything `iop dev` runs, in a temporary folder. With worker_process the worker runs as
    `iop worker` in its own process, so that its memory can be measured on its own."""
    from iop.binaries import server_binary

    with tempfile.TemporaryDirectory(prefix="iop-bench-") as tmp:
        data_dir = Path(tmp)
        url = f"sqlite:///{data_dir / 'records.db'}"
        upgrade(url)
        engine = make_engine(url)
        key = new_key("bench")
        env = await WorkflowEnvironment.start_local(
            data_converter=data_converter([key]),
            dev_server_existing_path=server_binary("temporal"),
            dev_server_database_filename=str(data_dir / "temporal.db"),
            search_attributes=search.ALL,
            dev_server_log_level="error",
        )
        task_queue = "bench"
        with session_scope(engine) as session:
            # The lab token is registered to the sender bench/lab_ingest.py's messages name.
            lab = {"sender_application": "BENCHLAB", "sender_facility": "BENCH LAB"}
            tokens: dict[str, str] = {
                role: issue_token(
                    session,
                    name=f"bench {role}",
                    role=role,
                    sender_application=lab["sender_application"] if role == "lab" else None,
                    sender_facility=lab["sender_facility"] if role == "lab" else None,
                )[1]
                for role in Role
            }
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(Settings(data_dir=data_dir, task_queue=task_queue), engine=engine, temporal=env.client),
                host="127.0.0.1",
                port=port,
                log_level="warning",
            )
        )
        child = None
        if worker_process:
            child = subprocess.Popen(
                [sys.executable, "-m", "iop.cli", "worker"],
                env={
                    **os.environ,
                    "IOP_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
                    "IOP_DATABASE_URL": url,
                    "IOP_TASK_QUEUE": task_queue,
                    "IOP_CODEC_KEYS": format_key(key),
                    "IOP_LOG_LEVEL": "ERROR",
                },
            )
        workers = contextlib.AsyncExitStack()
        try:
            if not worker_process:
                await workers.enter_async_context(build_worker(env.client, engine, task_queue))
            await workers.enter_async_context(
                Worker(
                    env.client,
                    task_queue="bench-noop",
                    activities=NoopActivities().all(),
                    workflows=[NoopWorkflow, NoopPipelineWorkflow],
                )
            )
            serving = asyncio.create_task(server.serve())
            while not server.started:
                await asyncio.sleep(0.05)  # uvicorn has no awaitable start signal
            limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120, limits=limits) as http:
                yield Stack(env.client, engine, http, tokens, task_queue, data_dir, env, child.pid if child else None)
            server.should_exit = True
            await serving
        finally:
            await workers.aclose()
            if child:
                child.terminate()
                child.wait(30)
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


async def result_once_started(client: Client, workflow_id: str, timeout: float = 120) -> Any:
    """The result of a workflow that another one starts soon (a disclosure after a final result):
    polled until it exists, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await client.get_workflow_handle(workflow_id).result()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.02)


def rss_mib(pid: int | None = None) -> float:
    """Resident memory of a process (this one by default), from /proc."""
    with open(f"/proc/{pid or 'self'}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")
