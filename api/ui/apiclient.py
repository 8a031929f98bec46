"""The dashboard's only way to read or change anything: the project's own JSON API, called
in-process with the signed-in user's token. Every rule, role check, problem detail and audit
event is therefore exactly the API's; the dashboard adds none of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.requests import Request

from iop import logs

BASE_URL = "http://ui.internal"
PAGE_LIMIT = 200


@dataclass
class ApiError(Exception):
    status: int
    detail: str
    errors: list[dict[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return self.detail

    def field_errors(self, names: dict[str, str] | None = None) -> dict[str, str]:
        """The API's field errors by form field: 'body.case_numbers.0.value' -> names[...] or 'value'."""
        out: dict[str, str] = {}
        for error in self.errors:
            path = error.get("field", "").split(".")
            if path and path[0] == "body":
                path = path[1:]
            key = ".".join(path)
            name = (names or {}).get(key) or (path[-1] if path else "")
            if name and name not in out:
                out[name] = error.get("message", "invalid")
        return out


class Api:
    """One client per dashboard request. Requests go through the whole app (middleware and all),
    carry the dashboard request's id (so the audit trail links them) and the browser's address."""

    def __init__(self, request: Request, token: str) -> None:
        client = request.client
        transport = httpx.ASGITransport(
            app=request.app, client=(client.host, client.port) if client else ("127.0.0.1", 0)
        )
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if rid := logs.request_id.get():
            headers["X-Request-ID"] = rid
        self._http = httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=headers, timeout=60)

    async def close(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        clean = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
        response = await self._http.request(method, path, params=clean, json=json, headers=headers)
        if response.status_code >= 400:
            raise _error(response)
        return response

    async def get(self, path: str, **params: Any) -> Any:
        return (await self.request("GET", path, params=params)).json()

    async def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        response = await self.request("POST", path, json=body if body is not None else {}, headers=headers)
        return response.json() if response.content else None

    async def get_all(self, path: str, cap: int = 1000, **params: Any) -> list[dict[str, Any]]:
        """Every item of a paged list (up to `cap`), following each page's `next` link."""
        page = await self.get(path, limit=PAGE_LIMIT, offset=0, **params)
        items: list[dict[str, Any]] = list(page["items"])
        while page.get("next") and len(items) < cap:
            page = (await self.request("GET", page["next"])).json()
            items += page["items"]
        return items

    async def maybe(self, awaitable: Awaitable[Any]) -> tuple[Any, ApiError | None]:
        """(answer, None) or (None, the API's refusal): for page sections a role may not see."""
        try:
            return await awaitable, None
        except ApiError as exc:
            return None, exc

    async def gather(self, awaitables: list[Awaitable[Any]], limit: int = 8) -> list[tuple[Any, ApiError | None]]:
        gate = asyncio.Semaphore(limit)

        async def one(awaitable: Awaitable[Any]) -> tuple[Any, ApiError | None]:
            async with gate:
                return await self.maybe(awaitable)

        return list(await asyncio.gather(*(one(a) for a in awaitables)))


def _error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    detail = body.get("detail") if isinstance(body, dict) else None
    errors = body.get("errors") if isinstance(body, dict) else None
    return ApiError(response.status_code, detail or f"The API answered {response.status_code}.", errors or [])
