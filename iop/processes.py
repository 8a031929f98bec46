"""Child processes of `iop dev` and the files they keep: children die with their parent, ports are
checked before anything starts, data files are the owner's alone.

Linux: each child asks the kernel for SIGTERM when its parent dies (prctl PR_SET_PDEATHSIG, see
prctl(2)), so a `kill -9` of `iop dev` takes the Temporal dev server with it. Elsewhere (macOS has no
parent-death signal) children stay in `iop dev`'s process group, so Ctrl-C in the terminal reaches
them all; a `kill -9` of `iop dev` alone can then still leave one behind, which the port check of the
next `iop dev` reports instead of attaching to it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PRIVATE_UMASK = 0o077


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):
        return None


def child_setup() -> Callable[[], None]:
    """A preexec_fn: private umask, and on Linux death with the parent. Everything it needs is
    looked up before the fork; the child only makes system calls."""
    prctl = _prctl()
    parent = os.getpid()

    def setup() -> None:
        os.umask(PRIVATE_UMASK)
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
            if os.getppid() != parent:  # the parent died between fork and prctl
                os._exit(1)

    return setup


@dataclass(frozen=True)
class Port:
    setting: str  # the environment variable that moves it
    what: str
    host: str
    port: int


def port_problem(port: Port) -> str | None:
    """Why `port` cannot be ours, or None when nothing listens on it."""
    with socket.socket(socket.AF_INET6 if ":" in port.host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT is free
        try:
            probe.bind((port.host, port.port))
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise
            return (
                f"port {port.port} ({port.setting}, the {port.what}) on {port.host} is already in use by a process "
                "`iop dev` did not start. If it is a Temporal dev server or API left over from an earlier "
                f"`iop dev`, stop it (`ss -ltnp 'sport = :{port.port}'` or `lsof -i :{port.port}` shows its pid); "
                f"or choose another port, e.g. {port.setting}={_suggest(port.port)} iop dev"
            )
    return None


def _suggest(port: int) -> int:
    return port + 10 if port + 10 < 65536 else port - 10


def port_problems(ports: Sequence[Port]) -> list[str]:
    return [problem for port in ports if (problem := port_problem(port))]


def private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)


def dev_server_command(
    binary: str,
    *,
    namespace: str,
    port: int,
    ui_port: int,
    database: Path,
    search_attributes: Sequence[tuple[str, str]],
    log_level: str = "error",
) -> list[str]:
    command = [
        binary,
        "server",
        "start-dev",
        "--namespace",
        namespace,
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--db-filename",
        str(database),
        "--log-level",
        log_level,
    ]
    for name, kind in search_attributes:
        command += ["--search-attribute", f"{name}={kind}"]
    return command


def start_child(command: Sequence[str], **kwargs) -> subprocess.Popen:
    """Start a child that dies with this process (Linux) and creates private files."""
    return subprocess.Popen(list(command), preexec_fn=child_setup(), **kwargs)  # noqa: PLW1509 - no threads yet


def stop_child(child: subprocess.Popen, timeout: float = 15.0) -> None:
    if child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(timeout=timeout)
