"""`iop simulate --workflows`: a synthetic program on the time-skipping test server (the default,
in memory on the rules, is iop/rulesim.py).

The real ParticipantWorkflow and ScreeningWorkflow run on the real worker against a throwaway
SQLite records database; only the participants (synthetic ids, no realistic PHI) and their
attendance are invented. Each simulated day the clock stops once every selected participant has
been told and no collection window has closed yet; each screening awaiting collection is then
collected, through the real `record_collection` update, with probability 1 - no_show_rate, or left
for the workflow to mark missed. Every figure of the report is read back from the SQL tables
SelectionDraw and Screening, as a program manager's report would be.

The seed fixes the simulated attendance only: the draws are the workflows' own, as in production.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import tempfile
import time as wallclock
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from dataclasses import replace as _replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import func
from sqlmodel import Session, col, select

from domain.calendar import WEEKDAY_NAMES
from domain.clock import local_date, local_moment
from domain.plan import PHASES, TestingPlan, default_plan, hours_for, minutes_of_day
from domain.program import Program, plan_for, program_from_dict
from domain.vocab import ScreeningStatus
from store.models import Participant, Screening, SelectionDraw

MAX_DAYS = 730
MAX_UPDATES_IN_FLIGHT = 50
MAX_STARTS_IN_FLIGHT = 50
# The project's own packages a workflow may import: loaded once per run (see _simulation_worker).
FROZEN_MODULES = ("workflows", "activities", "domain", "store")
# Roughly 150 kB of memory each; past this many, the oldest idle workflows are replayed when next woken.
MAX_CACHED_WORKFLOWS = 20_000
# How long (real time) one simulated day may take before the run is declared stuck.
SKIP_DEADLINE = timedelta(minutes=5)
SITE = "sim"
PROGRAM = "iop"
WEEKDAYS = WEEKDAY_NAMES
SKIPPING = "workflows and activities (time skipping)"
UPDATING = "collection updates"
# Screenings not yet settled at the collection stage (collected ones are told by collected_at).
OPEN = (ScreeningStatus.SCHEDULED, ScreeningStatus.AWAITING_COLLECTION)
AWAITING_COLLECTION = ScreeningStatus.AWAITING_COLLECTION

# (days done, days in all, the program day just simulated)
Progress = Callable[[int, int, date], None]


@dataclass
class SimulationReport:
    participants: int
    days: int
    no_show_rate: float
    phase: str
    seed: int | None
    first_day: date
    last_day: date
    # Draws and testing load, from SelectionDraw.
    draws: int
    selected: int
    selected_per_day: list[int]  # one entry per program day, in order
    load_min: int
    load_mean: float
    load_p95: int
    load_max: int
    weekday_mean: dict[str, float]  # Mon..Sun: mean screenings selected on that weekday
    tests_per_participant_week: float
    plan_tests_per_week: float
    weekend_share: float  # of selected draws, on Saturday or Sunday
    expected_weekend_share: float
    # Outcomes, from Screening.
    screenings: int
    collected: int
    late_collections: int
    missed: int
    excused: int
    still_open: int
    other: int  # not collected and refused or cancelled (neither happens in a simulation)
    by_status: dict[str, int]  # every screening by its current status
    # What the simulator did.
    collections_sent: int
    collections_refused: int  # updates the workflow rejected (e.g. the window had closed)
    wall_seconds: float
    timing: dict[str, float] = field(default_factory=dict)  # wall seconds per stage
    # Per participant (every one, in id order): selected draws, and those on a Saturday or Sunday.
    selected_per_participant: list[int] = field(default_factory=list)
    weekend_per_participant: list[int] = field(default_factory=list)


def validate(
    participants: int, days: int, no_show_rate: float, phase: str, phases: tuple[str, ...] | list[str] = PHASES
) -> None:
    """Raise ValueError with a message fit for the command line."""
    if isinstance(participants, bool) or not isinstance(participants, int) or participants < 1:
        raise ValueError(f"--participants must be a whole number of at least 1; got {participants!r}")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise ValueError(f"--days must be a whole number from 1 to {MAX_DAYS}; got {days!r}")
    if not isinstance(no_show_rate, (int, float)) or not 0.0 <= no_show_rate <= 1.0:  # also rejects NaN
        raise ValueError(f"--no-show-rate must be between 0 and 1 (e.g. 0.15 for 15%); got {no_show_rate!r}")
    if phase not in phases:
        raise ValueError(f"--phase must be one of {', '.join(phases)}; got {phase!r}")


def collection_checkpoint(plan: TestingPlan) -> time:
    """A local time after every notice of the day and before any window of the day closes.

    Notices go out between opening and the last call (closing minus the window, at the latest);
    the earliest window closes a window's length after opening.
    """
    opens, closes = minutes_of_day(plan.opens_at), minutes_of_day(plan.closes_at)
    window = round(plan.collection_window_hours * 60)
    last_call = max(opens, closes - window)
    earliest_close = opens + window
    if last_call >= earliest_close:
        raise ValueError(
            f"plan {plan.phase}: with {plan.collection_window_hours} h windows in clinic hours "
            f"{plan.opens_at}-{plan.closes_at} no single daily moment sees every notice before any window closes"
        )
    minute = (last_call + earliest_close) // 2
    return time(minute // 60, minute % 60)


async def run_simulation(
    participants: int,
    days: int,
    no_show_rate: float = 0.0,
    phase: str = "phase-1",
    seed: int | None = None,
    progress: Progress | None = None,
    program: dict | None = None,
) -> SimulationReport:
    """Run `days` program days of `participants` synthetic participants; see the module's doc.
    `program` is a program definition (domain.program.program_to_dict): its first site's calendar and
    the phase's rates decide the draws, as for an enrolled participant."""
    definition = program_from_dict(program) if program is not None else None
    validate(participants, days, no_show_rate, phase, [p.name for p in definition.phases] if definition else PHASES)
    # Imported here: the command line loads this module only to run it.
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
    from temporalio.testing import WorkflowEnvironment

    from iop.binaries import server_binary
    from iop.codec import data_converter, new_key
    from store.migrate import upgrade
    from workflows import search

    started = wallclock.perf_counter()
    server = server_binary("temporal-test-server")
    run = _Run(participants, days, no_show_rate, phase, seed, progress, definition)
    with tempfile.TemporaryDirectory(prefix="iop-simulate-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'records.db'}"
        upgrade(url)
        engine = _records_engine(url)
        if definition is not None:
            from store.db import session_scope
            from store.programs import save_version

            with session_scope(engine) as session:
                save_version(session, definition, "simulate", "simulated")
        try:
            env = await WorkflowEnvironment.start_time_skipping(
                data_converter=data_converter([new_key("sim")]),  # a fresh key: nothing is kept
                test_server_existing_path=server,
                runtime=_quiet_runtime(),
            )
            try:
                await env.client.operator_service.add_search_attributes(
                    AddSearchAttributesRequest(
                        namespace="default",
                        search_attributes={
                            key.name: IndexedValueType.ValueType(key.indexed_value_type) for key in search.ALL
                        },
                    )
                )
                run.timing["setup"] = wallclock.perf_counter() - started
                await run.program(env, engine)
            finally:
                with run.timed("server shutdown"):
                    await env.shutdown()
            report = run.report(engine)
        finally:
            engine.dispose()
    report.wall_seconds = wallclock.perf_counter() - started
    return report


class _Run:
    """One simulation: its parameters, its attendance dice, and what it did."""

    def __init__(
        self,
        participants: int,
        days: int,
        no_show_rate: float,
        phase: str,
        seed: int | None,
        progress: Progress | None,
        definition: Program | None = None,
    ) -> None:
        self.participants, self.days, self.no_show_rate, self.phase, self.seed = (
            participants,
            days,
            no_show_rate,
            phase,
            seed,
        )
        self.progress = progress
        self.rng = random.Random(seed)
        self.definition = definition
        self.site = sorted(definition.sites)[0] if definition else SITE
        self.plan = plan_for(definition, 1, self.site, phase) if definition else default_plan(phase)
        self.checkpoint = time(12, 0)
        self.handled: set[str] = set()
        self.sent = self.refused = 0
        self.timing: dict[str, float] = {}
        self.first_day = self.last_day = date.min

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        mark = wallclock.perf_counter()
        try:
            yield
        finally:
            self.timing[stage] = self.timing.get(stage, 0.0) + wallclock.perf_counter() - mark

    def checkpoints_on(self, weekday: int) -> list[time]:
        """When to look for notified participants on an open weekday: the single checkpoint where one
        moment sees every notice before any window closes, else a checkpoint every half window from opening
        (so a notice is never left alone longer than half its window)."""
        opens, closes = hours_for(self.plan, weekday)
        try:
            return [collection_checkpoint(_replace(self.plan, opens_at=opens, closes_at=closes, weekday_hours=()))]
        except ValueError:
            step = max(15, round(self.plan.collection_window_hours * 30))
            first, last = minutes_of_day(opens) + 1, minutes_of_day(closes)
            return [time(m // 60, m % 60) for m in range(first + step, last, step)]

    def moment(self, day: date, clock: time) -> datetime:
        return local_moment(day, clock, self.plan.timezone)

    async def program(self, env, engine) -> None:
        task_queue = f"simulate-{uuid.uuid4().hex[:8]}"
        worker = _simulation_worker(env.client, engine, task_queue, self.participants)
        async with worker:
            # Begin just after midnight, so every participant's first draw is the first day's.
            self.first_day = local_date(await env.get_current_time(), self.plan.timezone) + timedelta(days=1)
            self.last_day = self.first_day + timedelta(days=self.days - 1)
            with self.timed("setup"):
                await skip_until(env, self.moment(self.first_day, time(0, 5)))
            with self.timed("enroll"):
                await _enroll(
                    env.client, engine, task_queue, self.participants, self.phase, self.first_day, self.plan, self.site
                )
            for offset in range(self.days):
                day = self.first_day + timedelta(days=offset)
                clocks = (
                    self.checkpoints_on(day.weekday())
                    if day.weekday() in self.plan.collection_weekdays
                    else [self.checkpoint]
                )
                for clock in clocks:
                    with self.timed(SKIPPING):
                        await skip_until(env, self.moment(day, clock))
                    with self.timed(UPDATING):
                        sent, refused = await _collect(env.client, engine, self.handled, self.rng, self.no_show_rate)
                    self.sent += sent
                    self.refused += refused
                if self.progress:
                    self.progress(offset + 1, self.days, day)
            # Let the last day's windows close, so every day's screenings are settled.
            with self.timed(SKIPPING):
                await skip_until(env, self.moment(self.last_day, time(23, 0)))
            shutdown = wallclock.perf_counter()
        self.timing["worker shutdown"] = wallclock.perf_counter() - shutdown

    def report(self, engine) -> SimulationReport:
        report = _report(
            engine,
            self.participants,
            self.days,
            self.no_show_rate,
            self.phase,
            self.seed,
            self.plan,
            self.first_day,
            self.last_day,
            self.sent,
            self.refused,
        )
        report.timing = dict(self.timing)
        return report


def _simulation_worker(client, engine, task_queue: str, participants: int):
    """The service's worker (build_worker: same workflows, activities, executor and timeouts) with
    two changes for a long single run:

    - the project's workflow modules are passed through the sandbox, i.e. loaded once for the
      run: every workflow runs the code the run began with, even if the files change meanwhile
      (a module re-imported from disk next to a passed-through one frozen at start can fail to
      import and stall the clock), and no workflow pays for re-importing its module;
    - a workflow cache big enough for every open workflow (each participant keeps about 15
      screenings open: a collected one waits weeks for a lab result that never comes here), so
      none is evicted and replayed from its history (up to MAX_CACHED_WORKFLOWS).
    """
    from dataclasses import replace

    from temporalio.worker import Worker
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

    from iop.worker import build_worker

    # A worker registers its task queue when built, so the service's one is built on a queue that
    # nothing uses, only to read its configuration; it never runs.
    config = build_worker(client, engine, f"{task_queue}-unused").config()
    config["task_queue"] = task_queue
    runner = config.get("workflow_runner")
    if isinstance(runner, SandboxedWorkflowRunner):
        config["workflow_runner"] = replace(
            runner, restrictions=runner.restrictions.with_passthrough_modules(*FROZEN_MODULES)
        )
    config["max_cached_workflows"] = max(
        config.get("max_cached_workflows") or 0, min(20 * participants + 1000, MAX_CACHED_WORKFLOWS)
    )
    config["client"] = client
    return Worker(**config)


def _records_engine(url: str):
    """The project's SQLite engine, tuned for one process writing a throwaway file.

    One pooled connection: activity threads queue for it in Python and take it the moment it is
    free, instead of colliding on SQLite's write lock and sleeping in its busy handler (1-100 ms
    back-offs, which the time-skipping server, waiting on every activity, turns into wall time).
    No fsync per commit: the file is deleted at the end.
    """
    from sqlalchemy import event

    from store.db import make_engine

    engine = make_engine(url, pool_size=1, max_overflow=0, pool_timeout=300)

    @event.listens_for(engine, "connect")
    def _no_fsync(dbapi_connection, _record) -> None:
        dbapi_connection.execute("PRAGMA synchronous=OFF")

    return engine


def _quiet_runtime():
    """A Temporal runtime whose core logs errors only (the test server lacks some newer
    capabilities and the core warns about it on every start). Failing workflow tasks are still
    logged, with their traceback, by the Python worker."""
    from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
        )
    )


class SimulationStalled(RuntimeError):
    """The test server could not skip time: some workflow work never finished."""


async def skip_until(env, moment: datetime) -> None:
    """Skip the test server's clock to `moment`, a day at most per call.

    This is env.sleep with a longer RPC deadline: a busy simulated day can take longer in real
    time than the default deadline allows.
    """
    from temporalio.api.testservice.v1 import SleepRequest
    from temporalio.service import RPCError

    while True:
        left = moment - await env.get_current_time()
        if left <= timedelta(0):
            return
        request = SleepRequest()
        request.duration.FromTimedelta(min(left, timedelta(days=1)))
        try:
            await env.client.test_service.unlock_time_skipping_with_sleep(request, timeout=SKIP_DEADLINE)
        except RPCError as exc:
            raise SimulationStalled(
                f"the test server could not skip time to {moment.isoformat()} ({exc}); time stands still while "
                "a workflow task or activity keeps failing: see the worker's errors logged above"
            ) from exc


def participant_id(index: int) -> str:
    return f"p-sim-{index:05d}"


async def _enroll(
    client,
    engine,
    task_queue: str,
    count: int,
    phase: str,
    start: date,
    plan: TestingPlan | None = None,
    site: str = SITE,
) -> None:
    from temporalio.common import SearchAttributePair, TypedSearchAttributes

    from store.db import session_scope
    from workflows import search
    from workflows.contracts.participant import ParticipantInput, ParticipantState
    from workflows.participant import ParticipantWorkflow, workflow_id

    plan = plan or default_plan(phase)
    program = plan.program_id or PROGRAM
    ids = [participant_id(i) for i in range(1, count + 1)]
    # The record first, status "enrolling", as enrollment does: the workflow confirms it.
    with session_scope(engine) as session:
        for i, pid in enumerate(ids, start=1):
            session.add(
                Participant(
                    id=pid,
                    given_name="Sim",
                    family_name=f"Participant {i}",
                    date_of_birth=date(1980, 1, 1),
                    site=site,
                    program=program,
                    phase=phase,
                    start_date=start,
                    timezone=plan.timezone,
                    case_numbers=[],
                    status="enrolling",
                )
            )
    started_on = datetime.combine(start, time(), tzinfo=UTC)  # as enrollment sets it
    limit = asyncio.Semaphore(MAX_STARTS_IN_FLIGHT)

    async def start_one(pid: str) -> None:
        state = ParticipantState(
            participant_id=pid,
            program=program,
            site=site,
            phase=phase,
            start_date=start.isoformat(),
            timezone=plan.timezone,
            plan=plan,
            phases=[plan.phase] if plan.program_id else [],
        )
        async with limit:
            await client.start_workflow(
                ParticipantWorkflow.run,
                ParticipantInput(state=state),
                id=workflow_id(pid),
                task_queue=task_queue,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(search.PARTICIPANT_ID, pid),
                        SearchAttributePair(search.STATUS, "active"),
                        SearchAttributePair(search.PHASE, phase),
                        SearchAttributePair(search.SITE, site),
                        SearchAttributePair(search.DAY, started_on),
                    ]
                ),
            )

    await asyncio.gather(*(start_one(pid) for pid in ids))


async def _collect(client, engine, handled: set[str], rng: random.Random, no_show_rate: float) -> tuple[int, int]:
    """Decide each newly notified screening: collected now, or left to be missed. (sent, refused)"""
    from temporalio.client import WorkflowUpdateFailedError

    from workflows.contracts.screening import Collection
    from workflows.screening import ScreeningWorkflow, workflow_id

    with Session(engine) as session:
        waiting = session.exec(
            select(Screening.id).where(Screening.status == AWAITING_COLLECTION).order_by(Screening.id)
        ).all()
    fresh = [sid for sid in waiting if sid not in handled]
    handled.update(fresh)
    # One roll per screening, in id order, so a seed gives the same attendance for the same draws.
    shows = [sid for sid in fresh if rng.random() >= no_show_rate]
    limit = asyncio.Semaphore(MAX_UPDATES_IN_FLIGHT)
    refused = 0

    async def collect(sid: str) -> None:
        nonlocal refused
        async with limit:
            handle = client.get_workflow_handle(workflow_id(sid))
            try:
                await handle.execute_update(
                    ScreeningWorkflow.record_collection,
                    Collection(specimen_type="urine", observed=True, collector="sim", actor="sim"),
                )
            except WorkflowUpdateFailedError:
                refused += 1

    await asyncio.gather(*(collect(sid) for sid in shows))
    return len(shows) - refused, refused


def _percentile(values: list[int], share: float) -> int:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _report(
    engine,
    participants: int,
    days: int,
    no_show_rate: float,
    phase: str,
    seed: int | None,
    plan: TestingPlan,
    first_day: date,
    last_day: date,
    sent: int,
    refused: int,
) -> SimulationReport:
    with Session(engine) as session:
        draws = session.exec(select(func.count()).select_from(SelectionDraw)).one()
        per_day = dict(
            session.exec(
                select(col(SelectionDraw.day), func.count())
                .where(SelectionDraw.selected)
                .group_by(col(SelectionDraw.day))
            ).all()
        )
        by_status = dict(session.exec(select(col(Screening.status), func.count()).group_by(Screening.status)).all())
        # A collected screening moves on through result statuses; its collection time stays.
        collected = session.exec(
            select(func.count()).select_from(Screening).where(col(Screening.collected_at).is_not(None))
        ).one()
        uncollected = Counter(
            dict(
                session.exec(
                    select(col(Screening.status), func.count())
                    .where(col(Screening.collected_at).is_(None))
                    .group_by(Screening.status)
                ).all()
            )
        )
        late = session.exec(select(func.count()).select_from(Screening).where(Screening.late_collection)).one()
        chosen = session.exec(
            select(col(SelectionDraw.participant_id), col(SelectionDraw.day)).where(SelectionDraw.selected)
        ).all()
    ids = [participant_id(i) for i in range(1, participants + 1)]
    per_participant = Counter(p for p, _ in chosen)
    weekend_per_participant = Counter(p for p, d in chosen if d.weekday() >= 5)
    program_days = [first_day + timedelta(days=i) for i in range(days)]
    loads = [per_day.get(day, 0) for day in program_days]
    selected = sum(per_day.values())
    by_weekday: dict[int, list[int]] = {w: [] for w in range(7)}
    for day, load in zip(program_days, loads, strict=True):
        by_weekday[day.weekday()].append(load)
    weekend = sum(count for day, count in per_day.items() if day.weekday() >= 5)
    still_open = sum(uncollected[s] for s in OPEN)
    known = {
        *OPEN,
        ScreeningStatus.MISSED,
        ScreeningStatus.EXCUSED,
        ScreeningStatus.NOT_NOTIFIED,
        ScreeningStatus.WINDOW_LOST,
    }
    return SimulationReport(
        participants=participants,
        days=days,
        no_show_rate=no_show_rate,
        phase=phase,
        seed=seed,
        first_day=first_day,
        last_day=last_day,
        draws=draws,
        selected=selected,
        selected_per_day=loads,
        load_min=min(loads),
        load_mean=statistics.fmean(loads),
        load_p95=_percentile(loads, 0.95),
        load_max=max(loads),
        weekday_mean={WEEKDAYS[w]: statistics.fmean(v) for w, v in by_weekday.items() if v},
        tests_per_participant_week=selected / (participants * days / 7),
        plan_tests_per_week=plan.tests_per_week,
        weekend_share=weekend / selected if selected else 0.0,
        expected_weekend_share=sum(1 for d in plan.collection_weekdays if d >= 5) / len(plan.collection_weekdays),
        screenings=sum(by_status.values()),
        collected=collected,
        late_collections=late,
        missed=uncollected["missed"],
        excused=uncollected["excused"],
        still_open=still_open,
        other=sum(n for s, n in uncollected.items() if s not in known),
        by_status=by_status,
        collections_sent=sent,
        collections_refused=refused,
        wall_seconds=0.0,
        selected_per_participant=[per_participant[p] for p in ids],
        weekend_per_participant=[weekend_per_participant[p] for p in ids],
    )


def format_report(report: SimulationReport) -> str:
    r = report
    seed = "random" if r.seed is None else str(r.seed)
    rows: list[tuple[str, str]] = [
        ("Simulation", ""),
        ("  participants", f"{r.participants}"),
        ("  program days", f"{r.days} ({r.first_day} .. {r.last_day})"),
        ("  phase", r.phase),
        ("  no-show rate", f"{r.no_show_rate:.0%} (seed {seed})"),
        ("Testing load (screenings selected per day)", ""),
        ("  min / mean / p95 / max", f"{r.load_min} / {r.load_mean:.1f} / {r.load_p95} / {r.load_max}"),
        *((f"  mean on {name}", f"{mean:.1f}") for name, mean in r.weekday_mean.items()),
        ("Selection", ""),
        ("  draws / selected", f"{r.draws} / {r.selected}"),
        (
            "  tests per participant-week",
            f"{r.tests_per_participant_week:.2f} (plan for {r.phase}: {r.plan_tests_per_week:g})",
        ),
        ("  weekend share of selected days", f"{r.weekend_share:.1%} (expected {r.expected_weekend_share:.1%})"),
        ("Outcomes (screenings)", f"{r.screenings}"),
        ("  collected", f"{r.collected}" + (f" ({r.late_collections} late)" if r.late_collections else "")),
        ("  missed", f"{r.missed}"),
        ("  excused", f"{r.excused}"),
        ("  still open", f"{r.still_open}"),
    ]
    if r.other:
        rows.append(("  other (refused, cancelled)", f"{r.other}"))
    if r.collections_refused:
        rows.append(("  collections refused by the workflow", f"{r.collections_refused}"))
    rows.append(("Wall time", f"{r.wall_seconds:.1f} s"))
    rows.extend((f"  {stage}", f"{seconds:.1f} s") for stage, seconds in r.timing.items() if seconds >= 0.05)
    width = max(len(label) for label, _ in rows) + 2
    return "\n".join(f"{label:<{width}}{value}".rstrip() for label, value in rows)
