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

import httpx
import uvicorn
from sqlalchemy.engine import Engine
from temporalio.client import Client
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
    worker_pid: int | None = None  # the first worker process's, when the worker runs in its own
    worker_pids: list[int] = field(default_factory=list)
    api_pid: int | None = None
    extra: dict = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _child_env(**settings: str) -> dict[str, str]:
    """This environment, minus any IOP_ setting of the shell the bench runs in, plus the stack's settings."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("IOP_")}, **settings}


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


async def _ready(url: str, child: subprocess.Popen, log: Path, processes: int, timeout: float = 90) -> None:
    """Poll GET /readyz of an `iop api` child until it answers 200 (database and Temporal reachable) and each of
    its `processes` uvicorn processes has logged that its startup is complete (a 200 comes from whichever
    process accepted the connection), for at most `timeout` seconds; fail at once if the child exits."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as probe:
        while True:
            if child.poll() is not None:
                raise RuntimeError(f"`iop api` exited at start (code {child.returncode}):\n{_log_tail(log)}")
            with contextlib.suppress(httpx.TransportError):
                started = log.read_text(errors="replace").count("Application startup complete")
                if started >= processes and (await probe.get(url)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"`iop api` not ready after {timeout:.0f} s:\n{_log_tail(log)}")
            await asyncio.sleep(0.1)


async def _pollers(client: Client, task_queue: str, expected: int, timeout: float = 60) -> None:
    """Wait until `expected` worker processes poll the task queue's workflow tasks (each process is one
    poller identity), for at most `timeout` seconds: the first measurement must not start with one."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    deadline = time.monotonic() + timeout
    while True:
        described = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        if len({poller.identity for poller in described.pollers}) >= expected:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(described.pollers)} of {expected} worker processes poll {task_queue}")
        await asyncio.sleep(0.1)


def _stop(children: list[subprocess.Popen]) -> None:
    """SIGTERM to every child first (they stop in parallel), then wait; SIGKILL whoever outlasts 30 s."""
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(30)


@contextlib.asynccontextmanager
async def embedded_stack(
    *, worker_processes: int = 0, api_processes: int = 0, worker_process: bool = False
) -> AsyncIterator[Stack]:
    """Everything `iop dev` runs, in a temporary folder: the dev server, the worker, the API, and the
    no-op baseline worker (always in this process, beside the load generator).

    worker_processes=0 runs the worker in this process; N > 0 runs N `iop worker` processes on the task
    queue instead (what `iop dev` does with IOP_WORKERS=N, its first worker there being a child too), so
    that they use more cores and their memory can be measured on their own. worker_process=True is
    worker_processes=1. api_processes=0 serves the API from this process (uvicorn); N > 0 runs `iop api`
    with IOP_API_WORKERS=N on a free port instead. Every child is stopped on the way out, error or not."""
    from iop.audit import audit_keys
    from iop.binaries import server_binary
    from iop.processes import start_child

    worker_processes = worker_processes or int(worker_process)
    with tempfile.TemporaryDirectory(prefix="iop-bench-") as tmp:
        data_dir = Path(tmp)
        url = f"sqlite:///{data_dir / 'records.db'}"
        upgrade(url)
        engine = make_engine(url)
        settings = Settings(data_dir=data_dir, task_queue="bench", database_url=url)
        audit_keys(settings)  # the development audit key, made once here for every process of the stack
        key = new_key("bench")
        env = await WorkflowEnvironment.start_local(
            data_converter=data_converter([key]),
            dev_server_existing_path=server_binary("temporal"),
            dev_server_database_filename=str(data_dir / "temporal.db"),
            search_attributes=search.ALL,
            dev_server_log_level="error",
        )
        task_queue = settings.task_queue
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
        child_env = _child_env(
            IOP_DATA_DIR=str(data_dir),
            IOP_TEMPORAL_ADDRESS=env.client.service_client.config.target_host,
            IOP_DATABASE_URL=url,
            IOP_TASK_QUEUE=task_queue,
            IOP_CODEC_KEYS=format_key(key),
            IOP_LOG_LEVEL="ERROR",
        )
        children: list[subprocess.Popen] = []
        logs = []
        workers = contextlib.AsyncExitStack()
        server: uvicorn.Server | None = None
        serving: asyncio.Task | None = None
        try:
            # The schedules (reconciler, checkpoints) are left out, as they are for the worker in this process.
            for index in range(worker_processes):
                log = open(data_dir / f"worker-{index}.log", "wb")  # noqa: SIM115 - closed below
                logs.append(log)
                children.append(
                    start_child(
                        [sys.executable, "-m", "iop.cli", "worker", "--index", str(index), "--no-schedules"],
                        env=child_env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            api_child = None
            if api_processes:
                log = open(data_dir / "api.log", "wb")  # noqa: SIM115 - closed below
                logs.append(log)
                api_child = start_child(
                    [sys.executable, "-m", "iop.cli", "api"],
                    env={
                        **child_env,
                        "IOP_API_HOST": "127.0.0.1",
                        "IOP_API_PORT": str(port),
                        "IOP_API_WORKERS": str(api_processes),
                    },
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                children.append(api_child)
            else:
                server = uvicorn.Server(
                    uvicorn.Config(
                        create_app(settings, engine=engine, temporal=env.client),
                        host="127.0.0.1",
                        port=port,
                        log_level="warning",
                    )
                )
            if not worker_processes:
                await workers.enter_async_context(build_worker(env.client, engine, task_queue))
            await workers.enter_async_context(
                Worker(
                    env.client,
                    task_queue="bench-noop",
                    activities=NoopActivities().all(),
                    workflows=[NoopWorkflow, NoopPipelineWorkflow],
                )
            )
            if server:
                serving = asyncio.create_task(server.serve())
                while not server.started:
                    if serving.done():
                        serving.result()  # raises why it could not start
                        raise RuntimeError("the API stopped at start")
                    await asyncio.sleep(0.05)  # uvicorn has no awaitable start signal
            if api_child:
                await _ready(f"http://127.0.0.1:{port}/readyz", api_child, data_dir / "api.log", api_processes)
            if worker_processes:
                await _pollers(env.client, task_queue, worker_processes)
            limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120, limits=limits) as http:
                yield Stack(
                    env.client,
                    engine,
                    http,
                    tokens,
                    task_queue,
                    data_dir,
                    env,
                    children[0].pid if worker_processes else None,
                    worker_pids=[child.pid for child in children[:worker_processes]],
                    api_pid=api_child.pid if api_child else None,
                )
        finally:
            if server and serving and not serving.done():  # a server that failed at start raised above
                server.should_exit = True
                await serving
            await workers.aclose()
            await asyncio.to_thread(_stop, children)
            for log in logs:
                log.close()
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


def rss_mib(pid: int | None = None) -> float:
    """Resident memory of a process (this one by default), from /proc."""
    with open(f"/proc/{pid or 'self'}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{parent}/task"):
                with open(f"/proc/{parent}/task/{task}/children") as children:
                    todo += [int(child) for child in children.read().split()]
        found.append(parent)
    return found


def _cpu_of(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # it has exited
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (proc(5))


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU seconds used so far (Linux /proc) by the bench process (load generator, no-op worker, and the API and
    the worker when they run here), the worker processes, the API processes, and the other children (the
    Temporal dev server); subtract two readings for a measurement's share."""
    own = set(stack.worker_pids) | {stack.api_pid}
    api = _descendants(stack.api_pid) if stack.api_pid else []
    others = [pid for pid in _descendants(os.getpid())[1:] if pid not in own and pid not in api]
    return {
        "bench process": _cpu_of(os.getpid()),
        "worker processes": sum(_cpu_of(pid) for pid in stack.worker_pids),
        "API processes": sum(_cpu_of(pid) for pid in api),
        "Temporal dev server and other children": sum(_cpu_of(pid) for pid in others),
    }


def cpu_share(before: dict[str, float], after: dict[str, float], wall: float) -> str:
    """Each part's CPU over a measurement's wall time, in cores (1.0: one core busy all along)."""
    return ", ".join(
        f"{name} {(after[name] - before[name]) / wall:.2f}" for name in after if after[name] - before[name] > 0.005
    )
