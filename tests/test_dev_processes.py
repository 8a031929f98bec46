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

ROOT = Path(__file__).resolve().parents[1]
STARTUP_SECONDS = 90  # a loaded 2-core machine; the loop ends as soon as /readyz answers


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _environment(tmp_path: Path) -> tuple[dict[str, str], dict[str, int]]:
    ports = {"IOP_API_PORT": _free_port(), "IOP_TEMPORAL_DEV_PORT": _free_port(), "IOP_TEMPORAL_UI_PORT": _free_port()}
    env = {key: value for key, value in os.environ.items() if not key.startswith("IOP_")}
    env.update({key: str(port) for key, port in ports.items()})
    env.update(IOP_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT), IOP_LOG_LEVEL="WARNING")
    return env, ports


def _start(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "iop.cli", "dev"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigkill_of_iop_dev_takes_the_temporal_dev_server_with_it(tmp_path):
    env, ports = _environment(tmp_path)
    dev = _start(env)
    temporal: list[int] = []
    try:
        _wait_ready(dev, ports["IOP_API_PORT"])
        temporal = [pid for pid, command in _children(dev.pid) if "start-dev" in command]
        assert len(temporal) == 1, _children(dev.pid)
        dev.send_signal(signal.SIGKILL)
        dev.wait(timeout=10)
        deadline = time.monotonic() + 15
        while _alive(temporal[0]) and time.monotonic() < deadline:
            time.sleep(0.05)  # bounded poll for the child's exit
        assert not _alive(temporal[0]), "the Temporal dev server outlived iop dev (orphaned)"
    finally:
        _kill_if_alive(dev.pid)
        for pid in temporal:
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
            done = subprocess.run([sys.executable, "-m", "iop.cli", "dev"], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail("iop dev did not refuse the taken port (it hung)")
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert f"port {ports[taken]}" in output and taken in output, output
    assert not (tmp_path / "data" / "temporal.db").exists()
