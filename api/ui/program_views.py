"""Dashboard pages for programs: staff read a program's calendar, phases and windows; admins edit them.

Every edit reads the program's current definition from the API, changes one part and saves it back with
PUT /programs/{program_id} (or POST .../closed-days), so it is checked, versioned and audited exactly as an API
edit; a refusal (422, with its arithmetic) comes back as the page's error message."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from api.ui.apiclient import ApiError
from api.ui.web import Ctx, redirect, signed_in
from domain.calendar import WEEKDAY_NAMES
from domain.program import SpecimenType

WEEKDAYS = tuple(name.lower() for name in WEEKDAY_NAMES)
WINDOW_KINDS = tuple(SpecimenType)
EDIT = ("PUT", "/programs/{program_id}")


def _page(program_id: str, anchor: str = "") -> str:
    return f"/ui/programs/{quote(program_id, safe='')}" + (f"#{anchor}" if anchor else "")


@signed_in
async def programs(request: Request, ctx: Ctx) -> Response:
    listed = await ctx.api.get_all("/programs")
    return ctx.render("programs.html", programs=listed)


@signed_in
async def program(request: Request, ctx: Ctx) -> Response:
    program_id = request.path_params["program_id"]
    found = await ctx.api.get(f"/programs/{quote(program_id, safe='')}")
    definition = found["definition"]
    colours = None
    if definition.get("mode") == "colour":
        colours, _ = await ctx.api.maybe(ctx.api.get(f"/programs/{quote(program_id, safe='')}/colours"))
    sites = []
    for code, site in definition["sites"].items():
        hours = [(day, site["hours"].get(day)) for day in WEEKDAYS]
        closed = sorted(site.get("closed", {}).items())
        sites.append({"code": code, "timezone": site["timezone"], "hours": hours, "closed": closed})
    return ctx.render(
        "program.html",
        program=found,
        definition=definition,
        sites=sites,
        weekdays=WEEKDAYS,
        window_kinds=WINDOW_KINDS,
        editable=ctx.can(*EDIT),
        colours=colours,
        add_closed=ctx.can("POST", "/programs/{program_id}/sites/{site}/closed-days"),
    )


async def _current(ctx: Ctx, program_id: str) -> dict[str, Any]:
    found = await ctx.api.get(f"/programs/{quote(program_id, safe='')}")
    return {**found["definition"]}


async def _save(ctx: Ctx, program_id: str, definition: dict[str, Any], note: str, anchor: str) -> Response:
    """PUT the whole definition back: the API checks it as a whole and keeps it as a new version."""
    back = _page(program_id, anchor)
    try:
        saved = (
            await ctx.api.request(
                "PUT", f"/programs/{quote(program_id, safe='')}", json={**definition, "note": note[:500]}
            )
        ).json()
    except ApiError as exc:
        return ctx.refused(exc, back)
    return ctx.done(
        back, f"Saved as version {saved['version']}: {note}. Participants take it from their next program day."
    )


def _number(ctx: Ctx, name: str, label: str, kind=float) -> Any:
    text = ctx.value(name)
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{label} must be a number; got {text!r}") from None


@signed_in
async def save_hours(request: Request, ctx: Ctx) -> Response:
    program_id = request.path_params["program_id"]
    site = ctx.value("site")
    definition = await _current(ctx, program_id)
    if site not in definition["sites"]:
        ctx.flash("error", f"Program {program_id} has no site {site!r}.")
        return redirect(request, _page(program_id))
    hours: dict[str, list[str]] = {}
    for day in WEEKDAYS:
        opens, closes = ctx.value(f"{day}-opens"), ctx.value(f"{day}-closes")
        if opens or closes:  # both blank: closed that weekday
            hours[day] = [opens, closes]
    definition["sites"][site] = {**definition["sites"][site], "hours": hours}
    open_days = ", ".join(d.capitalize() for d in hours) or "none"
    return await _save(ctx, program_id, definition, f"opening hours of {site}: {open_days}", f"site-{site}")


@signed_in
async def add_closed_day(request: Request, ctx: Ctx) -> Response:
    program_id, site = request.path_params["program_id"], ctx.value("site")
    day, label = ctx.value("day"), ctx.value("label") or "closed"
    back = _page(program_id, f"site-{site}")
    try:
        saved = await ctx.api.post(
            f"/programs/{quote(program_id, safe='')}/sites/{quote(site, safe='')}/closed-days",
            {"closed": {day: label}, "note": f"{site} closed on {day} ({label})"},
        )
    except ApiError as exc:
        return ctx.refused(exc, back)
    return ctx.done(back, f"Saved as version {saved['version']}: {site} closed on {day} ({label}).")


@signed_in
async def remove_closed_day(request: Request, ctx: Ctx) -> Response:
    program_id, site, day = request.path_params["program_id"], ctx.value("site"), ctx.value("day")
    definition = await _current(ctx, program_id)
    closed = dict(definition["sites"].get(site, {}).get("closed", {}))
    if day not in closed:
        ctx.flash("error", f"{day} is not a closed day of {site}.")
        return redirect(request, _page(program_id, f"site-{site}"))
    label = closed.pop(day)
    definition["sites"][site] = {**definition["sites"][site], "closed": closed}
    return await _save(ctx, program_id, definition, f"{site} open again on {day} (was: {label})", f"site-{site}")


@signed_in
async def save_phases(request: Request, ctx: Ctx) -> Response:
    program_id = request.path_params["program_id"]
    definition = await _current(ctx, program_id)
    try:
        for i, phase in enumerate(definition["phases"]):
            phase["tests_per_week"] = _number(ctx, f"phase-{i}-rate", f"{phase['name']}: tests per week")
            phase["min_per_rolling_week"] = _number(ctx, f"phase-{i}-floor", f"{phase['name']}: floor", int)
            phase["max_per_rolling_week"] = _number(ctx, f"phase-{i}-ceiling", f"{phase['name']}: ceiling", int)
    except ValueError as error:
        ctx.flash("error", f"{error}.")
        return redirect(request, _page(program_id, "phases"))
    return await _save(ctx, program_id, definition, "phase rates, floors and ceilings", "phases")


@signed_in
async def save_windows(request: Request, ctx: Ctx) -> Response:
    program_id = request.path_params["program_id"]
    definition = await _current(ctx, program_id)
    try:
        windows = {
            kind: _number(ctx, f"window-{kind}", f"the {kind} window")
            for kind in WINDOW_KINDS
            if ctx.value(f"window-{kind}")
        }
        definition["collection_windows"] = windows
        definition["make_up_hours"] = _number(ctx, "make-up-hours", "the make-up period")
        definition["reminder_hours_before_close"] = _number(ctx, "reminder-hours", "the reminder")
        if ctx.value("lab-turnaround-hours"):
            definition["lab_turnaround_hours"] = _number(ctx, "lab-turnaround-hours", "the lab turnaround target")
    except ValueError as error:
        ctx.flash("error", f"{error}.")
        return redirect(request, _page(program_id, "windows"))
    return await _save(
        ctx,
        program_id,
        definition,
        "collection windows, make-up period, reminders and lab turnaround target",
        "windows",
    )
