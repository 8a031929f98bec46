"""`iop dev` as a real process: its children die with it, it refuses ports it does not own, and the
SQLite files it creates are readable by their owner only."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
STARTUP_SECONDS = 90  # a loaded 2-core machine; the loop ends as soon as /readyz answers


def _environment(tmp_path: Path) -> tuple[dict[str, str], dict[str, int]]:
    ports = {"IOP_API_PORT": free_port(), "IOP_TEMPORAL_DEV_PORT": free_port(), "IOP_TEMPORAL_UI_PORT": free_port()}
    env = {key: value for key, value in os.environ.items() if not key.startswith("IOP_")}
    env.update({key: str(port) for key, port in ports.items()})
    env.update(IOP_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT), IOP_LOG_LEVEL="WARNING")
    return env, ports


def _start(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "iop.cli", "dev"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_ready(process: subprocess.Popen, api_port: int) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, f"iop dev exited early:\n{process.stdout.read()}"
        try:
            if httpx.get(f"http://127.0.0.1:{api_port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)  # polling interval of a bounded wait, not synchronisation by sleeping
    raise AssertionError("iop dev did not become ready")


def _alive(pid: int) -> bool:
    """Running, not a zombie (a reaped-later orphan counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _children(pid: int) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        if parent == pid:
            found.append((int(entry.name), command))
    return found


def _kill_if_alive(pid: int) -> None:
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def _pollers(target: str, task_queue: str) -> set[str]:
    """The identities (`pid@host`) polling the task queue's workflow and activity tasks, as Temporal sees them."""
    import asyncio

    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
    from temporalio.client import Client

    async def describe() -> set[str]:
        client = await Client.connect(target)
        seen: list[set[str]] = []
        for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
            answer = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace="default", task_queue=TaskQueue(name=task_queue), task_queue_type=kind
                )
            )
            seen.append({poller.identity for poller in answer.pollers})
        return seen[0] & seen[1]

    from temporalio.service import RPCError

    try:
        return asyncio.run(describe())
    except RPCError:  # the question timed out on a loaded server: nobody seen this time, the caller asks again
        return set()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_iop_dev_runs_iop_workers_processes_that_poll_and_die_with_it(tmp_path):
    """IOP_WORKERS=3: this process and two `iop worker` children poll the task queue; a SIGKILL of
    `iop dev` takes the children and the Temporal dev server with it."""
    env, ports = _environment(tmp_path)
    env["IOP_WORKERS"] = "3"
    dev = _start(env)
    children: list[int] = []
    try:
        _wait_ready(dev, ports["IOP_API_PORT"])
        temporal = [pid for pid, command in _children(dev.pid) if "start-dev" in command]
        workers = [pid for pid, command in _children(dev.pid) if "iop.cli worker" in command]
        children = temporal + workers
        assert len(temporal) == 1 and len(workers) == 2, _children(dev.pid)
        expected = {dev.pid, *workers}
        deadline = time.monotonic() + STARTUP_SECONDS
        polling: set[int] = set()
        while time.monotonic() < deadline:
            polling = {
                int(identity.split("@")[0])
                for identity in _pollers(f"127.0.0.1:{ports['IOP_TEMPORAL_DEV_PORT']}", "iop")
            }
            if polling >= expected:
                break
            time.sleep(0.5)  # bounded poll: a child worker starts polling a few seconds after it starts
        assert polling == expected, (polling, expected)
        dev.send_signal(signal.SIGKILL)
        dev.wait(timeout=10)
        deadline = time.monotonic() + 15
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.05)  # bounded poll for the children's exit
        assert not [pid for pid in children if _alive(pid)], "a child outlived iop dev (orphaned)"
    finally:
        _kill_if_alive(dev.pid)
        for pid in children:
            _kill_if_alive(pid)
        dev.stdout.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sqlite_files_and_data_dir_are_private(tmp_path):
    env, ports = _environment(tmp_path)
    dev = _start(env)
    try:
        _wait_ready(dev, ports["IOP_API_PORT"])
        data = tmp_path / "data"
        databases = sorted(data.glob("*.db"))
        assert {path.name for path in databases} >= {"iop.db", "temporal.db"}
        modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in data.iterdir()}
        assert all(mode & 0o077 == 0 for mode in modes.values()), modes
        assert stat.S_IMODE(data.stat().st_mode) & 0o077 == 0
        dev.send_signal(signal.SIGINT)
        assert dev.wait(timeout=60) == 0
    finally:
        _kill_if_alive(dev.pid)
        dev.stdout.close()


@pytest.mark.parametrize("taken", ["IOP_API_PORT", "IOP_TEMPORAL_DEV_PORT", "IOP_TEMPORAL_UI_PORT"])
def test_iop_dev_refuses_a_port_someone_else_holds(tmp_path, taken):
    env, ports = _environment(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports[taken]))
        squatter.listen()
        try:
            done = subprocess.run(
                [sys.executable, "-m", "iop.cli", "dev"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
            )
        except subprocess.TimeoutExpired:
            pytest.fail("iop dev did not refuse the taken port (it hung)")
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert f"port {ports[taken]}" in output and taken in output, output
    assert not (tmp_path / "data" / "temporal.db").exists()
