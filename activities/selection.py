"""The verifiable roll (domain/verifiable.py): the period's seed is opened here, in the worker, and only
the resulting number goes back into the workflow's history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy.engine import Engine
from temporalio import activity

from domain import verifiable
from iop.codec import CodecKey
from store.selection import seed_for_roll
from workflows.contracts import RollRequest


class SelectionActivities:
    def __init__(self, engine: Engine, keys: Sequence[CodecKey]) -> None:
        self.engine = engine
        self.keys = list(keys)

    @activity.defn
    def selection_roll(self, request: RollRequest) -> float:
        """HMAC roll of the day's period seed; opens (commits) the period on its first roll."""
        period = verifiable.period_of(date.fromisoformat(request.day))
        seed, beacon = seed_for_roll(self.engine, self.keys, request.program, period)
        return verifiable.roll(seed, request.program, request.participant_id, request.day, request.purpose, beacon)

    def all(self) -> list:
        return [self.selection_roll]
