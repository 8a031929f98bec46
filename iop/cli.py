"""The `iop` command: one entry point for the whole service."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from iop.settings import Settings, get_settings

app = typer.Typer(help="iop-workflows: screening and medication workflows for IOPs.", no_args_is_help=True)
db_app = typer.Typer(help="The records database.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
codec_app = typer.Typer(help="Payload encryption keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(token_app, name="token")
app.add_typer(codec_app, name="codec")
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
program_app = typer.Typer(
    help="Programs as data: sites, calendars, phases (each change a new version).", no_args_is_help=True
)
app.add_typer(program_app, name="program")
hl7_app = typer.Typer(help="HL7 v2 results over MLLP.", no_args_is_help=True)
selection_app = typer.Typer(help="Verifiable random selection: commit, beacon, reveal, verify.", no_args_is_help=True)
app.add_typer(selection_app, name="selection")
app.add_typer(hl7_app, name="hl7")

log = logging.getLogger("iop")


def _logging(settings: Settings) -> None:
    from iop.logs import configure

    configure(settings.log_level)


def _binary(name: str) -> str:
    """A server binary, or a usage error that says how to install it."""
    from iop.binaries import NotInstalled, server_binary

    try:
        return server_binary(name)
    except NotInstalled as exc:
        raise typer.BadParameter(str(exc)) from exc


# --- database ------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration to the configured database."""
    from store.migrate import upgrade

    settings = get_settings()
    upgrade(settings.resolved_database_url)
    typer.echo("database is at the latest migration")


# --- tokens --------------------------------------------------------------------------------


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="admin, staff, clinician, lab or auditor")],
    name: Annotated[str, typer.Option(help="Who or what holds it (no patient data)")],
    days: Annotated[int | None, typer.Option(help="Expire after this many days (1-3650); omit for no expiry")] = None,
    sender_app: Annotated[str | None, typer.Option(help="Lab tokens (required): the MSH-3 sending application")] = None,
    sender_facility: Annotated[
        str | None, typer.Option(help="Lab tokens (required): the MSH-4 sending facility (also the JSON lab_id)")
    ] = None,
) -> None:
    """Create a token; prints it once (only its hash is stored). A lab token is bound to the
    sender (MSH-3 / MSH-4) it may send as."""
    from api.tokens import expiry_after, issue_token
    from store.db import make_engine, session_scope

    settings = get_settings()
    try:
        expires = expiry_after(days, datetime.now(UTC))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--days") from exc
    with session_scope(make_engine(settings.resolved_database_url)) as session:
        try:
            _, plaintext = issue_token(
                session,
                name=name,
                role=role,
                expires_at=expires,
                sender_application=sender_app,
                sender_facility=sender_facility,
            )
        except ValueError as exc:
            flags = (
                str(exc).replace("sender_application", "--sender-app").replace("sender_facility", "--sender-facility")
            )
            raise typer.BadParameter(flags) from exc
    typer.echo(plaintext)


@token_app.command("revoke")
def token_revoke(token_id: str) -> None:
    """Revoke a token by its id (the part after iop_)."""
    from store.db import make_engine, session_scope
    from store.models import ApiToken, utcnow

    with session_scope(make_engine(get_settings().resolved_database_url)) as session:
        row = session.get(ApiToken, token_id)
        if row is None:
            raise typer.BadParameter(f"no token has the id {token_id}")
        row.revoked_at = row.revoked_at or utcnow()
        session.add(row)
    typer.echo(f"token {token_id} revoked")


def _cli_actor(by: str | None) -> str:
    """Who made a CLI edit: --by, else the operating-system user, as the API names a token."""
    return (by or f"cli:{os.environ.get('USER', '?')}")[:32]


def _save_program(data: dict, note: str | None, by: str | None, action: str | None = None) -> None:
    """Save a program version and write the audit event the API writes for the same edit (action, program id,
    outcome as the HTTP status the API would answer), with the CLI's user as the actor."""
    from sqlmodel import Session

    from domain.program import program_from_dict
    from store import audit
    from store.db import make_engine, session_scope
    from store.models import ProgramRecord
    from store.programs import save_version

    engine = make_engine(get_settings().resolved_database_url)
    actor, program_id = _cli_actor(by), str(data.get("program_id") or "?")[:64]
    with Session(engine) as session:
        exists = session.get(ProgramRecord, program_id) is not None
    action = action or ("PUT /programs/{program_id}" if exists else "POST /programs")

    def record(outcome: str, detail: str) -> None:
        audit.append(
            engine,
            audit.AuditEntry(
                actor=actor,
                role="admin",
                action=action,
                outcome=outcome,
                subject_type="program",
                subject_id=program_id,
                source="cli",
                detail=detail[:500],
            ),
        )

    try:
        program = program_from_dict({k: v for k, v in data.items() if k != "note"})
    except ValueError as exc:
        record("422", f"refused: {exc}")
        raise typer.BadParameter(str(exc)) from exc
    with session_scope(engine) as session:
        version = save_version(session, program, actor, note or data.get("note"))
    record("200" if exists else "201", f"version {version} saved")
    typer.echo(f"program {program.program_id} version {version} saved; participants take it from their next day")


ByOpt = Annotated[
    str | None, typer.Option("--by", help="Who makes the edit, as the audit trail records it (default cli:$USER)")
]


@program_app.command("save")
def program_save(
    path: Annotated[Path, typer.Argument(help="A program definition, JSON as POST /programs takes")],
    note: Annotated[str | None, typer.Option(help="Why this version")] = None,
    by: ByOpt = None,
) -> None:
    """Create a program, or save a new version of it (audited like POST/PUT /programs)."""
    import json

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path} must hold a JSON object")
    _save_program(data, note, by)


@program_app.command("show")
def program_show(program_id: str) -> None:
    """Print the current version of a program as JSON."""
    import json

    from sqlmodel import Session

    from domain.program import program_to_dict
    from store.db import make_engine
    from store.programs import current_program

    with Session(make_engine(get_settings().resolved_database_url)) as session:
        found = current_program(session, program_id)
    if found is None:
        raise typer.BadParameter(f"no program {program_id}")
    typer.echo(json.dumps({"version": found[1], **program_to_dict(found[0])}, indent=2))


@program_app.command("import-ics")
def program_import_ics(
    program_id: str,
    site: str,
    path: Annotated[Path, typer.Argument(help="An iCalendar (.ics) file of closed days")],
    by: ByOpt = None,
) -> None:
    """Add the all-day events of an iCalendar file to a site's closed days (a new version, audited like
    POST /programs/{program_id}/sites/{site}/closed-days)."""
    from sqlmodel import Session

    from domain.calendar import calendar_to_dict, parse_ics, with_closed
    from domain.program import program_to_dict
    from store.db import make_engine
    from store.programs import current_program

    with Session(make_engine(get_settings().resolved_database_url)) as session:
        found = current_program(session, program_id)
    if found is None or site not in found[0].sites:
        raise typer.BadParameter(f"no program {program_id} with site {site}")
    try:
        days = parse_ics(path.read_text())
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    data = program_to_dict(found[0])
    data["sites"][site] = calendar_to_dict(with_closed(found[0].sites[site], days))
    _save_program(
        data,
        f"{len(days)} closed day(s) imported from {path.name}",
        by,
        action="POST /programs/{program_id}/sites/{site}/closed-days",
    )


@audit_app.command("verify")
def audit_verify(
    checkpoints: Annotated[
        Path | None,
        typer.Option(help="Signed checkpoints to compare against (default: IOP_AUDIT_CHECKPOINT_FILE if it exists)"),
    ] = None,
) -> None:
    """Walk the chain against its keys and checkpoints; exit 1 naming the first missing or changed event."""
    from iop.audit import audit_keys
    from store.audit import CheckpointError, read_checkpoints, verify
    from store.db import make_engine

    settings = get_settings()
    path = checkpoints or settings.audit_checkpoint_path
    if checkpoints is not None and not checkpoints.exists():
        raise typer.BadParameter(f"{checkpoints} does not exist")
    try:
        points = read_checkpoints(path) if path.exists() else []
    except CheckpointError as exc:
        raise typer.BadParameter(str(exc)) from exc
    result = verify(make_engine(settings.resolved_database_url), keys=audit_keys(settings), checkpoints=points)
    against = f"{result.checkpoints} checkpoints from {path}" if points else "no checkpoints (the end is not pinned)"
    if result.ok:
        typer.echo(f"audit trail intact: {result.checked} events checked against {against}")
        return
    typer.echo(
        f"audit trail BROKEN at event {result.first_broken_seq}: {result.problem} "
        f"({result.checked} events before it are intact; compared against {against})",
        err=True,
    )
    raise typer.Exit(1)


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the chain's head now: append it to the checkpoint file (and POST it to the auditor's webhook)."""
    from iop.audit import audit_keys, write_checkpoint
    from store.audit import use_keys
    from store.db import make_engine

    settings = get_settings()
    engine = make_engine(settings.resolved_database_url)
    use_keys(engine, audit_keys(settings))
    point = write_checkpoint(engine, settings)
    typer.echo(
        f"checkpoint at event {point.seq} ({point.hash[:16]}...) written to {settings.audit_checkpoint_path}"
        + (" and sent to the auditor's webhook" if settings.audit_checkpoint_url else "")
    )


@audit_app.command("new-key")
def audit_new_key(key_id: Annotated[str | None, typer.Option(help="Key id; random if omitted")] = None) -> None:
    """Print a new key entry for IOP_AUDIT_KEYS (put it first to rotate; keep old ones after it)."""
    from iop.audit import format_audit_key, new_audit_key

    typer.echo(format_audit_key(new_audit_key(key_id)))


# --- verifiable selection ------------------------------------------------------------------

ProgramOpt = Annotated[str, typer.Option(help="The program (participants' program name)")]
PeriodOpt = Annotated[str, typer.Option(help="The period, a month: YYYY-MM")]


def _selection_engine():
    from iop.temporal import codec_keys
    from store.db import make_engine

    settings = get_settings()
    return make_engine(settings.resolved_database_url), codec_keys(settings)


@selection_app.command("open")
def selection_open(program: ProgramOpt, period: PeriodOpt) -> None:
    """Commit a fresh seed for the period now and start its workflow (the commitment notice to subscribing
    recipients, the reveal once the period is over). The first draw of a period does this itself."""
    from activities.selection import ensure_period_workflow
    from iop.temporal import connect
    from store.selection import SelectionError, open_period

    engine, keys = _selection_engine()
    try:
        row = open_period(engine, keys, program, period, actor="cli", role="admin")
    except SelectionError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"{program} {row.period} commitment {row.commitment} (published {row.published_at:%Y-%m-%d %H:%M} UTC)")

    async def start() -> None:
        settings = get_settings()
        await ensure_period_workflow(
            await connect(settings, service="iop-cli"), settings.task_queue, program, row.period
        )

    try:
        asyncio.run(start())
    except Exception as exc:  # noqa: BLE001 - Temporal unreachable: the commitment stands; say what to do
        typer.echo(
            f"the period's workflow could not be started ({type(exc).__name__}: {exc}); the commitment is "
            "recorded: run this command again once Temporal is up (nothing is committed twice)",
            err=True,
        )
        raise typer.Exit(1) from exc
    from domain.verifiable import beacon_round, round_url

    the_round = beacon_round(row.published_at)
    typer.echo(
        f"beacon, if one is used: drand quicknet round {the_round} ({round_url(the_round)}), "
        "to be entered before the period's first draw"
    )


@selection_app.command("beacon")
def selection_beacon(
    program: ProgramOpt,
    period: PeriodOpt,
    round_number: Annotated[
        int, typer.Option("--round", help="The drand quicknet round the commitment names (beacon_round)")
    ],
    randomness: Annotated[str, typer.Option(help="That round's randomness, 64 hex digits")],
) -> None:
    """Mix the period's public beacon into every roll; only before its first roll, only once."""
    from domain.verifiable import drand_beacon
    from store.selection import SelectionError, set_beacon

    engine, _ = _selection_engine()
    try:
        row = set_beacon(engine, program, period, drand_beacon(round_number, randomness).text, actor="cli")
    except (SelectionError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"{program} {row.period}: beacon {row.beacon}")


@selection_app.command("reveal")
def selection_reveal(program: ProgramOpt, period: PeriodOpt) -> None:
    """Reveal the period's seed now (only after the period has ended; its workflow does it on its own two days
    after the period's last day); served at GET /selection/commitments."""
    from store.selection import SelectionError, reveal

    engine, keys = _selection_engine()
    try:
        row = reveal(engine, keys, program, period, actor="cli", role="admin")
    except SelectionError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"{program} {row.period} seed {row.seed_revealed}")


SeedOpt = Annotated[str | None, typer.Option(help="The seed as revealed (GET /selection/commitments, the notice)")]
CommitmentOpt = Annotated[str | None, typer.Option(help="The commitment as published at the start of the period")]
BeaconOpt = Annotated[str | None, typer.Option(help="The beacon as published ('' for none)")]


def _report(data: dict, findings: list, what: str) -> None:
    for finding in findings:
        typer.echo(f"MISMATCH {finding.where}: {finding.problem}", err=True)
    if findings:
        typer.echo(f"{what}: {len(findings)} mismatch(es)", err=True)
        raise typer.Exit(1)
    colour_days = data.get("colour_days", [])
    typer.echo(
        f"{what}: all {len(data['draws'])} draws"
        + (f" and {len(colour_days)} colour days" if colour_days else "")
        + " follow from the revealed seed and its commitment"
        + (f" with the beacon {data['beacon']}" if data.get("beacon") else "")
    )


@selection_app.command("verify")
def selection_verify(
    program: ProgramOpt,
    period: PeriodOpt,
    export: Annotated[
        Path | None, typer.Option("--export", help="Write every draw of the period with its inputs to this JSON file")
    ] = None,
) -> None:
    """Recompute every draw of a revealed period from its seed; exit 1 naming each mismatch."""
    from sqlmodel import Session

    from domain.verifiable import verify_export
    from store.selection import SelectionError
    from store.selection import export as export_period

    engine, _ = _selection_engine()
    try:
        with Session(engine) as session:
            data = export_period(session, program, period)
    except SelectionError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if export is not None:
        export.write_text(json.dumps(data, indent=1) + "\n")
        typer.echo(
            f"{len(data['draws'])} draws, {len(data['colour_days'])} colour days and "
            f"{len(data['for_cause'])} for-cause tests written to {export}"
        )
    if data["seed"] is None:
        typer.echo(f"{program} {period}: the seed is not revealed yet (iop selection reveal)", err=True)
        raise typer.Exit(2)
    _report(data, verify_export(data), f"{program} {period}")


@selection_app.command("check")
def selection_check(
    export: Annotated[Path, typer.Argument(help="An export (iop selection verify --export)")],
    seed: SeedOpt = None,
    commitment: CommitmentOpt = None,
    beacon: BeaconOpt = None,
) -> None:
    """Check an export file someone gave you, with no database: every draw recomputed from the seed, against the
    commitment, seed and beacon as published; exit 1 naming each mismatch (docs/verify_selection.py does the same
    with the standard library only)."""
    from domain.verifiable import verify_export

    try:
        data = json.loads(export.read_text())
        findings = verify_export(data, seed, commitment_hex=commitment, beacon_text=beacon)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise typer.BadParameter(f"{export} is not a readable selection export: {exc}") from exc
    _report(data, findings, f"{data['program']} {data['period']}")


# --- keys ----------------------------------------------------------------------------------


@codec_app.command("new-key")
def codec_new_key(key_id: Annotated[str | None, typer.Option(help="Key id; random if omitted")] = None) -> None:
    """Print a new key entry for IOP_CODEC_KEYS (put it first to rotate; keep old ones after it)."""
    from iop.codec import format_key, new_key

    typer.echo(format_key(new_key(key_id)))


# --- processes -----------------------------------------------------------------------------


@app.command()
def worker(
    index: Annotated[int, typer.Option(hidden=True, help="Which of `iop dev`'s workers (metrics port offset)")] = 0,
    schedules: Annotated[bool, typer.Option(hidden=True, help="Create the reconciler and checkpoint schedules")] = True,
) -> None:
    """Run the worker against the configured Temporal (stops cleanly on SIGTERM/SIGINT)."""
    settings = get_settings()
    _logging(settings)
    asyncio.run(_run_worker(settings, index=index, schedules=schedules))


async def _run_worker(settings: Settings, *, index: int = 0, schedules: bool = True) -> None:
    from iop import telemetry
    from iop.audit import audit_keys, ensure_checkpoint_schedule
    from iop.temporal import connect
    from iop.worker import (
        build_worker,
        ensure_reconciler_schedule,
        ensure_worklist_workflow,
        notifier_for,
        pager_for,
        smtp_for,
    )
    from store.audit import use_keys
    from store.db import make_engine

    client = await connect(settings, service="iop-worker", worker_index=index)
    engine = make_engine(settings.resolved_database_url)
    use_keys(engine, audit_keys(settings))  # production: refuses to start without IOP_AUDIT_KEYS
    stop = _stop_event()
    async with build_worker(
        client,
        engine,
        settings.task_queue,
        notifier=notifier_for(settings),
        pager=pager_for(settings),
        smtp=smtp_for(settings),
        letterhead=settings.report_letterhead,
    ):
        if schedules:
            log.info("reconciler schedule %s in place", await ensure_reconciler_schedule(client, settings))
            log.info("worklist escalations run in %s", await ensure_worklist_workflow(client, settings.task_queue))
            await ensure_checkpoint_schedule(client, settings.task_queue, settings.audit_checkpoint_minutes)
        log.info("worker polling task queue %s", settings.task_queue)
        await stop.wait()
        log.info("worker stopping: finishing activities in progress")
    engine.dispose()
    telemetry.shutdown()


@hl7_app.command("listen")
def hl7_listen(
    host: Annotated[str | None, typer.Option(help="Address to listen on [IOP_MLLP_HOST, 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port [IOP_MLLP_PORT, 2575: HL7's registered port]")] = None,
    lab_token: Annotated[
        str,
        typer.Option(
            envvar="IOP_MLLP_LAB_TOKEN",
            help="Id of the lab token (`iop token create --role lab ...`) whose registered sender this listener "
            "accepts; MLLP has no credentials [IOP_MLLP_LAB_TOKEN]",
        ),
    ] = ...,  # type: ignore[assignment]  # typer: ... means required
) -> None:
    """Receive ORU^R01 over MLLP for one lab; each message is stored, filed or quarantined, and ACKed.
    Only peers on IOP_MLLP_ALLOW may connect; put a TLS proxy in front for anything beyond this host."""
    settings = get_settings()
    _logging(settings)
    asyncio.run(_run_hl7_listener(settings, host or settings.mllp_host, port or settings.mllp_port, lab_token))


async def _run_hl7_listener(settings: Settings, host: str, port: int, lab_token: str) -> None:
    from ingest import offload
    from ingest.lab import LabIngest
    from ingest.mllp import parse_allowlist, serve_mllp
    from iop.temporal import connect
    from store.db import make_engine

    try:
        allow = parse_allowlist(settings.mllp_allow)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    engine = make_engine(settings.resolved_database_url)
    if LabIngest(engine, None).sender_for_token(lab_token).refused:  # type: ignore[arg-type]  # no Temporal needed
        raise typer.BadParameter(f"no usable lab token has the id {lab_token} (revoked, expired or unknown)")
    server = await serve_mllp(
        LabIngest(engine, await connect(settings), settings.task_queue), host, port, token_id=lab_token, allow=allow
    )
    stop = _stop_event()
    log.info("MLLP listener on %s:%s, accepting %s", host, port, ", ".join(map(str, allow.networks)) or "no one")
    async with server:
        await stop.wait()
    await asyncio.to_thread(offload.shutdown)
    engine.dispose()


@app.command()
def api() -> None:
    """Run the HTTP API: IOP_API_WORKERS processes (uvicorn workers) on one port."""
    import uvicorn

    settings = get_settings()
    _logging(settings)
    if settings.api_workers == 1:
        from api.app import create_app

        uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_level="info")
        return
    import tempfile

    # prometheus_client's multiprocess mode: each process writes its samples under this folder and
    # /metrics (in any of them) adds them up. It must be set before the processes import the client.
    with tempfile.TemporaryDirectory(prefix="iop-api-metrics-") as samples:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = samples
        uvicorn.run(
            "api.app:create_app_from_env",
            factory=True,
            workers=settings.api_workers,
            host=settings.api_host,
            port=settings.api_port,
            log_level="info",
        )


@app.command()
def dev() -> None:
    """The whole embedded stack: Temporal dev server, migrations, worker and API. Ctrl-C stops it.

    Refuses to start (exit 2) when one of its ports is taken: an orphaned dev server from an earlier
    run must not be silently attached to. The dev server dies with `iop dev`, even on kill -9 (Linux).
    """
    from iop.processes import Port, port_problems

    settings = get_settings()
    _logging(settings)
    problems = port_problems(
        [
            Port("IOP_API_PORT", "API", settings.api_host, settings.api_port),
            Port("IOP_TEMPORAL_DEV_PORT", "Temporal dev server", "127.0.0.1", settings.temporal_dev_port),
            Port("IOP_TEMPORAL_UI_PORT", "Temporal UI", "127.0.0.1", settings.temporal_ui_port),
        ]
    )
    if problems:
        for problem in problems:
            typer.echo(f"iop dev cannot start: {problem}", err=True)
        raise typer.Exit(2)
    try:
        asyncio.run(_run_dev(settings))
    except KeyboardInterrupt:
        pass


async def _start_dev_server(settings: Settings):
    """The Temporal dev server as our own child (not the SDK's), so it can be told to die with us."""
    import subprocess

    from iop.processes import dev_server_command, start_child
    from iop.temporal import connect
    from store.db import tighten
    from workflows import search

    database = settings.data_dir / "temporal.db"
    # The dev server creates its schema only in a file it creates, so the file is not made here: the
    # child's umask (077) makes it private; a file from an older run is tightened.
    tighten(database)
    command = dev_server_command(
        _binary("temporal"),
        namespace=settings.temporal_namespace,
        port=settings.temporal_dev_port,
        ui_port=settings.temporal_ui_port,
        database=database,
        search_attributes=[(key.name, key._metadata_type) for key in search.ALL],
    )
    child = start_child(command, stdin=subprocess.DEVNULL)
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        if child.poll() is not None:
            typer.echo(
                f"iop dev: the Temporal dev server exited at start (code {child.returncode}); its messages are above",
                err=True,
            )
            raise typer.Exit(1)
        try:
            client = await connect(settings, service="iop-dev", worker_index=0)
            await client.workflow_service.get_system_info(_system_info_request())
            return child, client
        except RuntimeError:
            if asyncio.get_running_loop().time() > deadline:
                from iop.processes import stop_child

                stop_child(child)
                raise
            await asyncio.sleep(0.25)  # bounded wait for the child's port to open


def _system_info_request():
    from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

    return GetSystemInfoRequest()


async def _run_dev(settings: Settings) -> None:
    import uvicorn

    from api.app import create_app
    from iop.audit import audit_keys, ensure_checkpoint_schedule
    from iop.processes import PRIVATE_UMASK, private_dir, stop_child
    from iop.worker import (
        build_worker,
        ensure_reconciler_schedule,
        ensure_worklist_workflow,
        notifier_for,
        pager_for,
        smtp_for,
    )
    from store.audit import use_keys
    from store.db import make_engine
    from store.migrate import upgrade

    os.umask(PRIVATE_UMASK)  # everything under data_dir holds PHI or keys
    private_dir(settings.data_dir)
    upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    use_keys(engine, audit_keys(settings))
    _dev_token(settings, engine)

    log.info("starting the Temporal dev server (data in %s)", settings.data_dir / "temporal.db")
    temporal, client = await _start_dev_server(settings)
    stop = _stop_event()
    workers: list = []
    try:
        workers = _start_worker_processes(settings)
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings, engine=engine, temporal=client),
                host=settings.api_host,
                port=settings.api_port,
                log_level="warning",
            )
        )
        async with build_worker(
            client,
            engine,
            settings.task_queue,
            notifier=notifier_for(settings),
            pager=pager_for(settings),
            smtp=smtp_for(settings),
            letterhead=settings.report_letterhead,
        ):
            await ensure_reconciler_schedule(client, settings)
            await ensure_worklist_workflow(client, settings.task_queue)
            await ensure_checkpoint_schedule(client, settings.task_queue, settings.audit_checkpoint_minutes)
            serving = asyncio.create_task(server.serve())
            base = f"http://{settings.api_host}:{settings.api_port}"
            typer.echo(
                "\n".join(
                    [
                        "",
                        "iop-workflows is running:",
                        f"  API          {base}   (docs: {base}/docs)",
                        f"  Temporal UI  http://127.0.0.1:{settings.temporal_ui_port}",
                        f"  Temporal     127.0.0.1:{settings.temporal_dev_port}",
                        f"  workers      {len(workers) + 1} processes (IOP_WORKERS)",
                        f"  dev token    {settings.data_dir / 'dev-token'}  (admin)",
                        f'  try: curl -H "Authorization: Bearer $(cat {settings.data_dir / "dev-token"})" '
                        f"{base}/participants",
                        "Ctrl-C stops everything; data stays in " + str(settings.data_dir),
                        "",
                    ]
                )
            )
            await stop.wait()
            typer.echo("stopping: API, workers, Temporal dev server")
            server.should_exit = True
            await serving
    finally:
        await asyncio.gather(*(asyncio.to_thread(stop_child, child) for child in workers))
        await asyncio.to_thread(stop_child, temporal)
        engine.dispose()


def _start_worker_processes(settings: Settings) -> list:
    """Workers 2..IOP_WORKERS of `iop dev` (the first runs in this process): `iop worker` children on
    the dev server that die with this process (iop/processes.py). The GIL keeps one process to one core;
    the schedules are this process's to create."""
    import subprocess

    from iop.processes import start_child

    env = {
        **os.environ,
        "IOP_TEMPORAL_ADDRESS": settings.temporal_target,
        "IOP_TEMPORAL_NAMESPACE": settings.temporal_namespace,
        "IOP_TASK_QUEUE": settings.task_queue,
        "IOP_DATA_DIR": str(settings.data_dir.resolve()),
    }
    return [
        start_child(
            [sys.executable, "-m", "iop.cli", "worker", "--index", str(index), "--no-schedules"],
            env=env,
            stdin=subprocess.DEVNULL,
        )
        for index in range(1, settings.worker_processes)
    ]


@app.command()
def simulate(
    participants: Annotated[int, typer.Option(help="Synthetic participants to enroll")],
    days: Annotated[int, typer.Option(help="Program days to simulate (1-730)")],
    no_show_rate: Annotated[float, typer.Option(help="Share of selected tests nobody shows up for (0-1)")] = 0.0,
    phase: Annotated[str, typer.Option(help="Phase every participant is in")] = "phase-1",
    seed: Annotated[
        int | None,
        typer.Option(help="Seed of the run (the rules' draws and who shows up; with --workflows who shows up only)"),
    ] = None,
    program: Annotated[
        Path | None,
        typer.Option(
            help="A program definition (JSON, as POST /programs takes): its first site's calendar and the phase's rates"
        ),
    ] = None,
    workflows: Annotated[
        bool,
        typer.Option(
            "--workflows", help="Run the real workflows on the time-skipping server instead (slow: small sizes only)"
        ),
    ] = False,
    positive_rate: Annotated[float, typer.Option(help="Share of collected screens sent to confirmation")] = 0.15,
    female_share: Annotated[
        float,
        typer.Option(
            help="Share of participants who are women (observed collections need a collector of the same sex)"
        ),
    ] = 0.35,
    observed_share: Annotated[float, typer.Option(help="Share of collections directly observed")] = 1.0,
    minutes_per_collection: Annotated[float, typer.Option(help="Staff minutes per collection")] = 15.0,
    medication_share: Annotated[float, typer.Option(help="Share of participants with a medication order")] = 0.3,
    take_home_share: Annotated[
        float, typer.Option(help="Of those, share observed Mon/Wed/Fri with take-home doses (the rest observed daily)")
    ] = 0.5,
    minutes_per_dose: Annotated[float, typer.Option(help="Staff minutes per observed dose")] = 5.0,
    cost_per_screen: Annotated[
        float | None, typer.Option(help="Lab price of a screen (default: setting IOP_SIM_COST_PER_SCREEN)")
    ] = None,
    cost_per_confirmation: Annotated[
        float | None, typer.Option(help="Lab price of a confirmation (default: IOP_SIM_COST_PER_CONFIRMATION)")
    ] = None,
    start: Annotated[str | None, typer.Option(help="First program day, YYYY-MM-DD (default tomorrow)")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the summary and the days as JSON")] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write one row per day as CSV")] = None,
    svg_out: Annotated[Path | None, typer.Option("--svg", help="Write the tests-per-day chart as SVG")] = None,
    daily: Annotated[bool, typer.Option(help="Print the per-day table after the summary")] = True,
) -> None:
    """Capacity planning: the program's rules in memory (default), or the real workflows (--workflows)."""
    from iop.simulate import format_report, run_simulation, validate

    definition = None
    try:
        if program is not None:
            from domain.program import program_from_dict

            definition = {k: v for k, v in json.loads(program.read_text()).items() if k != "note"}
            phases: tuple[str, ...] | list[str] = [p.name for p in program_from_dict(definition).phases]
        else:
            from domain.plan import PHASES as phases
        validate(participants, days, no_show_rate, phase, phases)
        if workflows:
            if any(option is not None for option in (json_out, csv_out, svg_out)):
                raise ValueError("--json, --csv and --svg come with the simulation on the rules; drop --workflows")
        else:
            assumptions = _simulation_assumptions(
                no_show_rate=no_show_rate,
                positive_rate=positive_rate,
                female_share=female_share,
                observed_share=observed_share,
                minutes_per_collection=minutes_per_collection,
                medication_share=medication_share,
                take_home_share=take_home_share,
                minutes_per_dose=minutes_per_dose,
                cost_per_screen=cost_per_screen,
                cost_per_confirmation=cost_per_confirmation,
            )
            first_day = _iso_day("--start", start) if start else None
    except (ValueError, OSError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    bar = _StderrBar()
    if workflows:
        report = asyncio.run(
            run_simulation(
                participants,
                days,
                no_show_rate,
                phase,
                seed,
                progress=lambda done, total, day: bar(done, total, "days"),
                program=definition,
            )
        )
        bar.done()
        typer.echo(format_report(report))
        return
    from domain.program import program_from_dict
    from iop import rulesim

    rules = rulesim.run_rules(
        participants,
        days,
        phase,
        seed,
        assumptions,
        program_from_dict(definition) if definition is not None else None,
        first_day,
        progress=lambda done, total: bar(done, total, "participants"),
    )
    bar.done()
    for path, text in ((json_out, rulesim.to_json), (csv_out, rulesim.to_csv), (svg_out, rulesim.to_svg)):
        if path is not None:
            path.write_text(text(rules))
    typer.echo(rulesim.format_rules_report(rules, daily_table=daily))


def _simulation_assumptions(*, cost_per_screen: float | None, cost_per_confirmation: float | None, **values):
    from iop.rulesim import Assumptions

    settings = get_settings()
    values["cost_per_screen"] = settings.sim_cost_per_screen if cost_per_screen is None else cost_per_screen
    values["cost_per_confirmation"] = (
        settings.sim_cost_per_confirmation if cost_per_confirmation is None else cost_per_confirmation
    )
    for name in ("positive_rate", "female_share", "observed_share", "medication_share", "take_home_share"):
        if not 0.0 <= values[name] <= 1.0:  # also rejects NaN
            raise ValueError(f"--{name.replace('_', '-')} must be between 0 and 1; got {values[name]!r}")
    for name in ("minutes_per_collection", "minutes_per_dose", "cost_per_screen", "cost_per_confirmation"):
        if not 0.0 <= values[name] < float("inf"):
            raise ValueError(f"--{name.replace('_', '-')} must be a number of at least 0; got {values[name]!r}")
    return Assumptions(**values)


def _iso_day(option: str, text: str):
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{option} must be a date written YYYY-MM-DD; got {text!r}") from None


class _StderrBar:
    """A one-line progress bar on stderr (only when stderr is a terminal, or IOP_PROGRESS=1)."""

    def __init__(self, width: int = 30) -> None:
        self.width = width
        self.shown = sys.stderr.isatty() or os.environ.get("IOP_PROGRESS") == "1"
        self.started = datetime.now(UTC)

    def __call__(self, done: int, total: int, unit: str) -> None:
        if not self.shown:
            return
        filled = round(self.width * done / total) if total else self.width
        seconds = (datetime.now(UTC) - self.started).total_seconds()
        sys.stderr.write(
            f"\rsimulating [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} {unit} {seconds:.0f} s"
        )
        sys.stderr.flush()

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _dev_token(settings: Settings, engine) -> str:
    """Reuse the dev admin token if it still works, else issue a new one into .data/dev-token."""
    from api.tokens import TokenRejected, authenticate, issue_token
    from store.db import session_scope

    path = settings.data_dir / "dev-token"
    with session_scope(engine) as session:
        if path.exists():
            try:
                authenticate(session, path.read_text().strip())
                return path.read_text().strip()
            except TokenRejected:
                pass
        _, plaintext = issue_token(session, name="dev admin (iop dev)", role="admin")
    path.write_text(plaintext + "\n")
    path.chmod(0o600)
    return plaintext


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def main() -> None:
    """`iop`: run the command, then end the process without interpreter finalisation. A command that
    used a Temporal client leaves the SDK's native (Rust) threads behind, and finalising Python under
    them can abort a finished command at exit ("PyGILState_Release: thread state must be current").
    Every command has flushed and closed what it owns by the time it returns."""
    try:
        app()
        code: int = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        if isinstance(done.code, str):
            print(done.code, file=sys.stderr)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
