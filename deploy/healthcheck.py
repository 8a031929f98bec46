"""Container health checks for the production stack (docker-compose.yml), run inside the app image.

    python /app/deploy/healthcheck.py api      # the API answers /readyz (database and Temporal ok)
    python /app/deploy/healthcheck.py worker   # this container's worker is polling its task queue
    python /app/deploy/healthcheck.py mllp     # the MLLP listener accepts TCP connections

Exit 0 when healthy, 1 with the reason on stderr otherwise. The worker check asks Temporal for
the pollers of the task queue and looks for one from this container: the SDK names each worker
`<pid>@<hostname>`, and a container's hostname is its own.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import urllib.request
from datetime import UTC, datetime, timedelta

# A worker long-polls for about a minute at a time; a poller not seen for longer than this is gone.
POLLER_FRESH = timedelta(seconds=150)


def api_ready(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=4) as answer:
            return None if answer.status == 200 else f"/readyz answered {answer.status}"
    except Exception as exc:  # noqa: BLE001 - any failure is the reason
        return f"/readyz: {exc}"


def mllp_listening(port: int) -> str | None:
    """A TCP connect from inside the container (loopback, on the listener's allowlist by default),
    closed without sending anything: no message, nothing stored."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=4):
            return None
    except OSError as exc:
        return f"MLLP port {port}: {exc}"


async def worker_polling(target: str, namespace: str, task_queue: str, hostname: str) -> str | None:
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
    from temporalio.client import Client

    client = await Client.connect(target, namespace=namespace)
    now = datetime.now(UTC)
    for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
        answer = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(namespace=namespace, task_queue=TaskQueue(name=task_queue), task_queue_type=kind),
            timeout=timedelta(seconds=4),
        )
        ours = [
            p
            for p in answer.pollers
            if p.identity.endswith(f"@{hostname}") and now - p.last_access_time.ToDatetime(UTC) < POLLER_FRESH
        ]
        if not ours:
            return f"no {TaskQueueType.Name(kind)} poller from {hostname} on task queue {task_queue!r}"
    return None


def main(argv: list[str]) -> int:
    from iop.settings import Settings

    settings = Settings()
    role = argv[1] if len(argv) > 1 else ""
    if role == "api":
        problem = api_ready(settings.api_port)
    elif role == "worker":
        try:
            problem = asyncio.run(
                worker_polling(
                    settings.temporal_target, settings.temporal_namespace, settings.task_queue, socket.gethostname()
                )
            )
        except Exception as exc:  # noqa: BLE001
            problem = f"Temporal: {type(exc).__name__}: {exc}"
    elif role == "mllp":
        problem = mllp_listening(settings.mllp_port)
    else:
        problem = "usage: healthcheck.py api|worker|mllp"
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
