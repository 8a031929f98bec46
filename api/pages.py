"""One page envelope for every list route: the page's items, how many match in all, the page size and
offset asked for, and a link to the next page (tests/api/test_openapi_documented.py checks every list)."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func
from sqlmodel import Session, select

T = TypeVar("T")

MAX_OFFSET = 2**31 - 1  # past this, SQL integers overflow


PAGE = (
    "One page of a list. Ask for the next one by following `next` (or with offset = offset + limit) until "
    "`next` is null."
)


def _describe(schema: dict) -> None:
    schema.setdefault("description", PAGE)  # Page[X] does not inherit the generic model's docstring


class Page(BaseModel, Generic[T]):
    """One page of a list. Ask for the next one by following `next` (or with offset = offset + limit) until
    `next` is null."""

    model_config = ConfigDict(json_schema_extra=_describe)

    items: list[T] = Field(description="This page's entries, in the list's order")
    total: int = Field(description="How many entries match the filters, across all pages")
    limit: int = Field(description="The page size asked for (the most entries a page holds)")
    offset: int = Field(description="How many matching entries come before this page")
    next: str | None = Field(
        description="The link (path and query, relative to the API's root) to the next page, "
        "with the same filters; null on the last page"
    )


@dataclass
class Paging:
    """The page a list request asks for, and how to answer it."""

    request: Request
    limit: int
    offset: int

    def _next(self, total: int) -> str | None:
        if self.offset + self.limit >= total:
            return None
        url = self.request.url.include_query_params(offset=self.offset + self.limit, limit=self.limit)
        return f"{url.path}?{url.query}"

    def page(self, items: Sequence[T], total: int) -> Page[T]:
        """This page's items (already cut to the page) and the total."""
        return Page[T](items=list(items), total=total, limit=self.limit, offset=self.offset, next=self._next(total))

    def cut(self, everything: Sequence[T]) -> Page[T]:
        """A page of a list held whole (short lists: rule sets, analytes, staff)."""
        return self.page(everything[self.offset : self.offset + self.limit], len(everything))

    def rows(self, session: Session, query, order: Sequence, convert: Callable) -> Page:
        """A page of an SQL query, in `order`, each row converted to its public model."""
        total = session.exec(select(func.count()).select_from(query.subquery())).one()
        rows = session.exec(query.order_by(*order).offset(self.offset).limit(self.limit)).all()
        return self.page([convert(row) for row in rows], total)


def paging(default: int = 50, maximum: int = 200) -> Callable[..., Paging]:
    """The `limit` and `offset` query parameters of a list route, as a dependency."""

    Limit = Annotated[int, Query(ge=1, le=maximum, description=f"Page size, 1 to {maximum}")]
    Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="How many matching entries to skip")]

    def dependency(request: Request, limit: Limit = default, offset: Offset = 0) -> Paging:
        return Paging(request, limit, offset)

    return dependency


PagingDep = Annotated[Paging, Depends(paging())]


def containing(text: str) -> str:
    """An SQL LIKE pattern (escape character backslash) for `text` anywhere in a column."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
