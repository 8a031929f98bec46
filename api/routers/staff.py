"""Who is who: the names behind the token ids that records and histories carry ("reviewed by ...").

Names and roles only (staff names are not participant data); no secret, no expiry, nothing to sign in with.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlmodel import col, select

from api.deps import SessionDep, require
from api.pages import Page, PagingDep, containing
from api.problems import responses
from api.tokens import Actor
from store.models import ApiToken

router = APIRouter(tags=["staff"])

Reader = Annotated[Actor, Depends(require("admin", "staff", "clinician", "auditor"))]


class StaffMember(BaseModel):
    """A token's holder: the name to show where a record holds the token id."""

    id: str = Field(description="The token id, as records and histories carry it")
    name: str = Field(description="The name the token was issued to")
    role: str = Field(description="Its role: admin, staff, clinician, lab or auditor")


@router.get(
    "/staff",
    response_model=Page[StaffMember],
    responses=responses(401, 403, 422),
    summary="Names and roles of every token, to show a name where a record holds a token id",
)
def staff(
    actor: Reader,
    session: SessionDep,
    pages: PagingDep,
    q: Annotated[str | None, Query(max_length=120, description="Part of the name, any case")] = None,
    role: Annotated[str | None, Query(max_length=16, description="Only this role")] = None,
) -> Page[StaffMember]:
    """Every token ever issued, oldest first, with its name and role (no secret and no expiry), so that a
    screen can show "reviewed by Dr Lee" where a record says which token did it."""
    query = select(ApiToken)
    if q and q.strip():
        query = query.where(col(ApiToken.name).ilike(containing(q.strip()), escape="\\"))
    if role:
        query = query.where(ApiToken.role == role)
    return pages.rows(
        session,
        query,
        (col(ApiToken.created_at), col(ApiToken.id)),
        lambda r: StaffMember(id=r.id, name=r.name, role=r.role),
    )
