"""Record workflow histories for the replay test: `.venv/bin/python -m tests.workflows.record_histories`.

Run it when a workflow gains a new path worth guarding, and commit the new files next to the old
ones. Never re-record an existing file to make the replay test pass: that hides exactly the break
the test is there to catch (use workflow.patched() instead).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from iop.worker import build_worker
from store.db import make_engine
from store.migrate import upgrade
from tests.conftest import TEST_CONVERTER, binary
from tests.workflows.scenarios import phase_changes_then_discharge, start_participant
from workflows import search

HISTORIES = Path(__file__).parent / "histories"


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/records.db"
        upgrade(url)
        engine = make_engine(url)
        env = await WorkflowEnvironment.start_local(
            data_converter=TEST_CONVERTER, dev_server_existing_path=binary("temporal"), search_attributes=search.ALL,
        )
        try:
            async with build_worker(env.client, engine, "record-histories"):
                handle = await start_participant(env.client, engine, "record-histories")
                await phase_changes_then_discharge(handle, changes=3)
                await handle.result()
                await save(env, handle.id, "participant--phase-changes-and-discharge")
        finally:
            await env.shutdown()


async def save(env: WorkflowEnvironment, workflow_id: str, name: str) -> None:
    history = await env.client.get_workflow_handle(workflow_id).fetch_history()
    path = HISTORIES / f"{name}.json"
    if path.exists():
        raise SystemExit(f"{path} exists: histories are never re-recorded (see this module's docstring)")
    path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")
    print(f"saved {path}")


if __name__ == "__main__":
    asyncio.run(main())
