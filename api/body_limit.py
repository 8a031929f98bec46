"""A ceiling on the size of request bodies for the routes that take messages from labs.

The declared Content-Length is checked before anything is read; a body without one (chunked) is
counted as it arrives and refused as soon as it passes the limit, so a sender can never make the
API hold more than the limit in memory. Refusals are 413 problem+json (RFC 9110 15.5.14).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem_response


class BodyLimit:
    def __init__(self, app: ASGIApp, *, paths: frozenset[str], limit: int) -> None:
        self.app, self.paths, self.limit = app, paths, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.strip().isdigit() or int(declared) > self.limit):
            await self._refuse(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = (
            f"The request body is larger than this endpoint accepts ({self.limit} bytes, "
            "IOP_LAB_MAX_BODY_BYTES); send the results in smaller batches or one message per request."
        )
        response = problem_response(Request(scope, receive), 413, detail, headers={"Connection": "close"})
        await response(scope, receive, send)
