"""The `iop selection` commands an auditor or a defence lawyer runs (README "Proving the selection was random"),
as real processes against a real stack (the time-skipping Temporal server, a worker, the records database), and
through the CLI entry point where only the database is involved: open ahead, beacon, reveal, verify and export,
check a file; a tampered export is caught with a non-zero exit naming the mismatch, by `iop selection check` and
by the standalone docs/verify_selection.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from domain import verifiable
from domain.clock import local_date
from iop import cli
from iop.codec import format_key
from iop.settings import get_settings
from iop.worker import build_worker
from store import selection
from tests.conftest import TEST_KEYS, unique
from tests.workflows.test_program_calendar import ZONE, enroll, store_program
from tests.workflows.test_selection_notices import move_to_day, skip_until
from workflows.contracts.selection import selection_period_workflow_id

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "verify_selection.py"


@pytest.fixture
async def world(time_env, records_engine, task_queue, tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "400",
        "IOP_DATABASE_URL": records_engine.url.render_as_string(hide_password=False),
        "IOP_CODEC_KEYS": format_key(TEST_KEYS[0]),
        "IOP_DATA_DIR": str(tmp_path),
        "IOP_TASK_QUEUE": task_queue,
        "IOP_TEMPORAL_ADDRESS": time_env.client.service_client.config.target_host,
    }
    async with build_worker(time_env.client, records_engine, task_queue):
        yield time_env, records_engine, task_queue, env


def iop(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "iop.cli", "selection", *args], env=env, capture_output=True, text=True, timeout=120
    )


def entry_point(env: dict, *args: str):
    """The same command through the CLI's entry point in this process (database only, no Temporal)."""
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(cli.app, ["selection", *args], env=env)
    finally:
        get_settings.cache_clear()


async def test_an_auditor_opens_fixes_the_beacon_verifies_and_catches_a_tampered_export(world, tmp_path):
    env, engine, queue, shell = world
    await move_to_day(env, 27)
    program = unique("court-c")
    store_program(engine, program, {})
    today = local_date(await env.get_current_time(), ZONE)
    period = f"{today:%Y-%m}"
    following = f"{verifiable.period_end(period) + timedelta(days=1):%Y-%m}"

    # Open the next period ahead, as a process: committed, and its workflow started on the worker's queue.
    opened = iop(shell, "open", "--program", program, "--period", following)
    assert opened.returncode == 0, opened.stderr
    with Session(engine) as session:
        row = selection.find(session, program, following)
    assert f"commitment {row.commitment}" in opened.stdout
    the_round = verifiable.beacon_round(row.published_at)
    assert f"drand quicknet round {the_round}" in opened.stdout
    described = await env.client.get_workflow_handle(selection_period_workflow_id(queue, program, following)).describe()
    assert described.task_queue == queue

    wrong = entry_point(
        shell,
        "beacon",
        "--program",
        program,
        "--period",
        following,
        "--round",
        str(the_round + 1),
        "--randomness",
        "a" * 64,
    )
    assert wrong.exit_code == 2 and f"round {the_round}" in wrong.output, wrong.output
    fixed = entry_point(
        shell,
        "beacon",
        "--program",
        program,
        "--period",
        following,
        "--round",
        str(the_round),
        "--randomness",
        "A" * 64,
    )
    assert fixed.exit_code == 0 and f"beacon drand:quicknet:{the_round}:{'a' * 64}" in fixed.output, fixed.output
    early = entry_point(shell, "reveal", "--program", program, "--period", period)
    assert early.exit_code == 2 and "can be revealed from" in early.output

    handle = await enroll(env, engine, queue, program, today)
    await skip_until(env, verifiable.reveal_moment(period) + timedelta(hours=1))
    await handle.terminate("test over")

    # Verify the revealed period from the database and write the export.
    export = tmp_path / "export.json"
    verified = entry_point(shell, "verify", "--program", program, "--period", period, "--export", str(export))
    assert verified.exit_code == 0, verified.output
    data = json.loads(export.read_text())
    assert f"all {len(data['draws'])} draws follow" in verified.output and data["draws"] and data["seed"]
    published = ["--seed", data["seed"], "--commitment", data["commitment"], "--beacon", ""]
    clean = entry_point(shell, "check", str(export), *published)
    assert clean.exit_code == 0, clean.output

    # One outcome flipped in the file: `iop selection check` (a process) and the standalone script both name it.
    draw = next(d for d in data["draws"] if d["reason"] in ("selected", "not-selected"))
    draw["selected"] = not draw["selected"]
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(data))
    caught = iop(shell, "check", str(tampered), *published)
    where = f"MISMATCH {draw['participant_id']} {draw['day']}: selected"
    assert caught.returncode == 1 and where in caught.stderr, (caught.stdout, caught.stderr)
    script = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            str(tampered),
            "--seed",
            data["seed"],
            "--commitment",
            data["commitment"],
            "--beacon",
            "",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", "")},
    )
    assert (
        script.returncode == 1
        and f"MISMATCH {draw['participant_id']} {draw['day']}: selected recorded" in script.stdout
    ), script.stdout + script.stderr
    other_seed = entry_point(shell, "check", str(export), "--seed", "00" * 32, "--commitment", data["commitment"])
    assert other_seed.exit_code == 1 and "MISMATCH commitment" in other_seed.output
    other_beacon = entry_point(shell, "check", str(export), "--beacon", f"drand:quicknet:{the_round}:{'b' * 64}")
    assert other_beacon.exit_code == 1 and "MISMATCH beacon: the export says None" in other_beacon.output
