"""Colour (group-code) mode: a program publishes a daily colour, and everyone of a drawn colour tests.

Many treatment courts run random testing this way: each participant is assigned a colour (or group code);
every open day the clinic draws colours, participants call in, and those whose colour is called report to
test that day. Randomness and fairness rest on the draw, so each colour is drawn like a participant
(domain.selection.draw_day): the same probability on every open day, weekends and holidays included where
the site is open (All Rise (NADCP) Adult Treatment Court Best Practice Standards, Standard VII, drug and
alcohol testing: testing is random and weekends and holidays are not predictable days off), no draw on a
closed day, and a floor and a ceiling per rolling 7 days for each colour.

Pure and stdlib-only: imported inside Temporal's deterministic workflow sandbox. Rolls come in as
arguments (HMAC rolls of the period's committed seed in the worker: domain/verifiable.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date

from domain.plan import TestingPlan
from domain.selection import CLINIC_CLOSED, NOT_SELECTED, PAUSED, SELECTED, Draw, draw_day, is_collection_day

MAX_COLOURS = 26
NO_COLOUR = "no-colour"  # a participant of a colour-mode program whom staff have not given a colour


@dataclass(frozen=True, kw_only=True)
class ColourGroup:
    """One colour (group code) and how often it is drawn."""

    name: str
    tests_per_week: float
    min_per_rolling_week: int = 0
    max_per_rolling_week: int = 7


def check_colour_name(name: object) -> str | None:
    """What is wrong with a colour's name (lower-case letters, digits and '-', 1 to 32), or None."""
    if (
        not isinstance(name, str)
        or not 1 <= len(name) <= 32
        or not name.replace("-", "").isalnum()
        or name != name.lower()
        or not name.isascii()
    ):
        return f"colour name {name!r} must be 1 to 32 lower-case letters, digits or '-', e.g. 'red' or 'group-b'"
    return None


def colour_roll_subject(site: str, colour: str) -> str:
    """Who a colour's verifiable roll is for: in place of a participant id (domain.verifiable.roll)."""
    return f"colour:{site}:{colour}"


def colour_plan(site_plan: TestingPlan, group: ColourGroup) -> TestingPlan:
    """The site's calendar and hours with the colour's rate, floor and ceiling: a colour is drawn like a
    participant under this plan."""
    return replace(
        site_plan,
        phase=group.name,
        tests_per_week=float(group.tests_per_week),
        min_per_rolling_week=group.min_per_rolling_week,
        max_per_rolling_week=group.max_per_rolling_week,
        source=f"colour {group.name}",
    )


def draw_colours(
    site_plan: TestingPlan,
    groups: Sequence[ColourGroup],
    day: date,
    rolls: Mapping[str, float],
    recent: Mapping[str, Sequence[date]],
    history_start: date | None = None,
) -> list[Draw]:
    """Each colour's draw on `day` (in the order of `groups`): one roll per colour, consumed whatever the outcome.
    `recent` holds each colour's drawn days before `day`; `history_start` the first day colours were drawn at
    this site (windows starting earlier are exempt from the floor, as for a participant)."""
    missing = [g.name for g in groups if g.name not in rolls]
    if missing:
        raise ValueError(f"no roll for colour(s) {', '.join(missing)}")
    return [
        draw_day(
            colour_plan(site_plan, g), day, rolls[g.name], list(recent.get(g.name, ())), history_start=history_start
        )
        for g in groups
    ]


def drawn(draws: Sequence[Draw], groups: Sequence[ColourGroup]) -> list[str]:
    """The colours called: those whose draw selected them, in the program's order."""
    return [g.name for g, d in zip(groups, draws, strict=True) if d.selected]


@dataclass(frozen=True)
class ColourVerdict:
    """Whether one participant tests on a day of a colour-mode program."""

    selected: bool
    reason: str  # domain.selection REASONS, or NO_COLOUR
    detail: str


def participant_verdict(own: str | None, colours: Sequence[str], open_day: bool, paused: bool) -> ColourVerdict:
    """Everyone whose colour is called tests; nobody else does. A paused participant does not, whatever their
    colour; on a closed day no colour is called."""
    called = ", ".join(colours) or "none"
    if paused:
        return ColourVerdict(False, PAUSED, f"participant paused; colours called: {called}")
    if not open_day:
        return ColourVerdict(False, CLINIC_CLOSED, "clinic closed: no colour is called")
    if own is None:
        return ColourVerdict(False, NO_COLOUR, f"no colour assigned (staff assign one); colours called: {called}")
    if own in colours:
        return ColourVerdict(True, SELECTED, f"colour {own} called ({called})")
    return ColourVerdict(False, NOT_SELECTED, f"colour {own} not called ({called})")


def is_colour_day(site_plan: TestingPlan, day: date) -> bool:
    return is_collection_day(site_plan, day)
