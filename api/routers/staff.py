"""Who is who: the names behind the token ids that records and histories carry ("reviewed by ...").

Names and roles only (staff names are not participant data); no secret, no expiry, nothing to sign in with.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlmodel import col, select

from api.deps import SessionDep, require
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


@router.get("/staff", response_model=list[StaffMember], responses=responses(401, 403),
            summary="Names and roles of every token, to show a name where a record holds a token id")
def staff(actor: Reader, session: SessionDep) -> list[StaffMember]:
    """Every token ever issued, oldest first, with its name and role (no secret and no expiry), so that a
    screen can show "reviewed by Dr Lee" where a record says which token did it."""
    rows = session.exec(select(ApiToken).order_by(col(ApiToken.created_at))).all()
    return [StaffMember(id=r.id, name=r.name, role=r.role) for r in rows]
