"""Verifiable random selection (domain/verifiable.py): each period's published commitment, its beacon and,
once the period has ended and the seed is revealed, the seed. Readable by every role: a commitment is
meant to be public, and a seed is shown only after every draw it decided has been made."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from api.deps import SessionDep, require
from api.pages import Page, PagingDep
from api.problems import responses
from api.tokens import ROLES, Actor
from store.selection import periods

router = APIRouter(tags=["selection"])

AnyRole = Annotated[Actor, Depends(require(*ROLES))]


class CommitmentPublic(BaseModel):
    """One program period's commitment to its random-selection seed, and the seed once the period is over."""

    program: str = Field(description="The program whose daily draws the seed decides")
    period: str = Field(description="YYYY-MM")
    commitment: str = Field(description="hex SHA-256(seed | '|' | program | '|' | period), published at period start")
    published_at: datetime = Field(description="When the commitment was published (before the period's first draw)")
    beacon: str | None = Field(None, description="public randomness mixed into every roll of the period, if any")
    revealed_at: datetime | None = Field(None, description="When the seed was revealed; null until then")
    seed: str | None = Field(None, description="hex 256-bit seed; null until the period has ended and it is revealed")


@router.get("/selection/commitments", response_model=Page[CommitmentPublic], responses=responses(401, 403, 422))
def commitments(actor: AnyRole, session: SessionDep, pages: PagingDep,
                program: Annotated[str | None, Query(max_length=64, description="Only this program's")] = None,
                ) -> Page[CommitmentPublic]:
    """Every period's commitment, and its seed once revealed: recompute the draws with docs/verify_selection.py."""
    return pages.cut([CommitmentPublic(program=p.program, period=p.period, commitment=p.commitment,
                                       published_at=p.published_at, beacon=p.beacon, revealed_at=p.revealed_at,
                                       seed=p.seed_revealed)
                      for p in periods(session, program)])
