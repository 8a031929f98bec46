"""Dashboard sign-in: a token is exchanged for a server-side session.

The browser only ever holds an opaque, HMAC-signed session reference (HttpOnly, SameSite=Strict,
Path=/ui): never the token, never a name or anything else about a participant. The session keeps
the token (to call the API as that user), a CSRF secret that every POST must echo, one-shot flash
messages and the values of a form the API refused (so nothing typed is lost).

Sessions live in the API process's memory: a restart signs everyone out, and several API replicas
need sticky sessions. Every request re-checks the token, so revoking or expiring it ends the
session at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from api.tokens import Actor

COOKIE = "iop_ui"
LOGIN_COOKIE = "iop_ui_login"
COOKIE_PATH = "/ui"
IDLE_SECONDS = 60 * 60  # signed out after an hour without a request
MAX_SECONDS = 12 * 60 * 60  # and after a shift, whatever happens
MAX_SESSIONS = 10_000


@dataclass
class Flash:
    kind: str  # success | error | info
    text: str
    link: tuple[str, str] | None = None  # (href, label)


@dataclass
class FormState:
    """A form the API refused: what was typed and which fields the API named."""

    form: str
    values: dict[str, Any]
    errors: dict[str, str]


@dataclass
class UiSession:
    id: str
    token: str
    actor: Actor
    csrf: str
    created: float
    seen: float
    flashes: list[Flash] = field(default_factory=list)
    form: FormState | None = None
    site: str | None = None  # the site filter last chosen (worklist, Today): remembered for this sign-in

    def take_flashes(self) -> list[Flash]:
        out, self.flashes = self.flashes, []
        return out

    def take_form(self, form: str) -> FormState | None:
        if self.form is not None and self.form.form == form:
            state, self.form = self.form, None
            return state
        return None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class SessionStore:
    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self._sessions: dict[str, UiSession] = {}

    # --- signing ------------------------------------------------------------------------

    def _mac(self, purpose: str, value: str) -> str:
        return _b64(hmac.new(self._secret, f"{purpose}:{value}".encode(), hashlib.sha256).digest())

    def sign(self, value: str) -> str:
        return f"{value}.{self._mac('session', value)}"

    def unsign(self, signed: str | None) -> str | None:
        if not signed or "." not in signed:
            return None
        value, _, mac = signed.rpartition(".")
        return value if hmac.compare_digest(mac, self._mac("session", value)) else None

    # --- sessions -----------------------------------------------------------------------

    def create(self, token: str, actor: Actor) -> UiSession:
        self._purge()
        now = time.time()
        session = UiSession(
            id=secrets.token_urlsafe(32),
            token=token,
            actor=actor,
            csrf=secrets.token_urlsafe(32),
            created=now,
            seen=now,
        )
        self._sessions[session.id] = session
        return session

    def get(self, cookie: str | None) -> UiSession | None:
        session_id = self.unsign(cookie)
        session = self._sessions.get(session_id) if session_id else None
        if session is None:
            return None
        now = time.time()
        if now - session.seen > IDLE_SECONDS or now - session.created > MAX_SECONDS:
            self.end(session.id)
            return None
        session.seen = now
        return session

    def end(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def _purge(self) -> None:
        now = time.time()
        for sid, session in list(self._sessions.items()):
            if now - session.seen > IDLE_SECONDS or now - session.created > MAX_SECONDS:
                del self._sessions[sid]
        while len(self._sessions) >= MAX_SESSIONS:  # the oldest go first
            del self._sessions[min(self._sessions, key=lambda k: self._sessions[k].seen)]

    # --- the sign-in form's own CSRF check (no session exists yet) ----------------------

    def login_nonce(self) -> tuple[str, str]:
        """(cookie value, form value): the form must come back with the browser's own cookie."""
        nonce = secrets.token_urlsafe(24)
        return nonce, self._mac("login", nonce)

    def login_ok(self, nonce: str | None, form_value: str | None) -> bool:
        if not nonce or not form_value:
            return False
        return hmac.compare_digest(form_value, self._mac("login", nonce))


def csrf_ok(session: UiSession, presented: str | None) -> bool:
    if not presented:
        return False
    return hmac.compare_digest(presented, session.csrf)


def store_for(app: Any) -> SessionStore:
    store = getattr(app.state, "ui_sessions", None)
    if store is None:
        store = app.state.ui_sessions = SessionStore()
    return store
