"""Who is asking, and may they: the dependencies every route declares.

A request is authenticated by an API token (`Authorization: Bearer flt_...`) or by the
session cookie the login sets. A session is ambient (the browser sends it on its own), so
every state-changing request made with one must also carry the session's CSRF token, as the
`X-CSRF-Token` header (API calls) or the `csrf_token` form field (pages): the synchronizer
pattern, the token lives server-side with the session. Token requests need no CSRF token:
a browser never attaches one by itself.

Roles are checked by `require(...)`; a route names the roles it serves, everything else is
403. What a role may see inside a route (a marketer's own campaigns) is checked there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fastapi import HTTPException, Request

from faceloop.console.backend import Backend
from faceloop.console.security import LoginRateLimiter, same_secret
from faceloop.console.users import Role, User, UserStore
from faceloop.settings import Settings
from faceloop.votes import VoteSigner

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "ConsoleState",
    "Identity",
    "identity",
    "optional_identity",
    "require",
    "state_of",
]

SESSION_COOKIE = "faceloop_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass
class ConsoleState:
    """What the app holds: settings, the user store, the Temporal backend, the limiter."""

    settings: Settings
    users: UserStore
    backend: Backend
    # signs each vote for the logged-in user: the worker counts no other (faceloop/votes.py)
    signer: VoteSigner
    limiter: LoginRateLimiter = field(default_factory=LoginRateLimiter)
    temporal_ui_url: str | None = None


@dataclass(frozen=True)
class Identity:
    user: User
    via: str  # "session" or "token"
    csrf_token: str = ""


def state_of(request: Request) -> ConsoleState:
    state: ConsoleState = request.app.state.console
    return state


async def _resolve(request: Request) -> Identity | None:
    users = state_of(request).users
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(401, "Authorization: use `Bearer <API token>`")
        user = await asyncio.to_thread(users.user_for_token, token.strip())
        if user is None:
            raise HTTPException(401, "the API token is unknown, revoked or its user disabled")
        return Identity(user, "token")
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return None
    session = await asyncio.to_thread(users.session, session_id)
    if session is None:
        return None
    return Identity(session.user, "session", session.csrf_token)


async def _check_csrf(request: Request, who: Identity) -> None:
    if who.via != "session" or request.method not in _UNSAFE:
        return
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()  # Starlette keeps it: the route reads it again
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else ""
    if not sent or not same_secret(sent, who.csrf_token):
        raise HTTPException(
            403, f"CSRF check failed: send the session's token as {CSRF_HEADER} or {CSRF_FIELD}"
        )


async def optional_identity(request: Request) -> Identity | None:
    """The caller, or None when not logged in (pages redirect to the login)."""
    who = await _resolve(request)
    if who is not None:
        await _check_csrf(request, who)
    return who


async def identity(request: Request) -> Identity:
    who = await optional_identity(request)
    if who is None:
        raise HTTPException(
            401,
            "not logged in: POST /api/v1/auth/login, or send `Authorization: Bearer <token>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return who


def require(*roles: Role) -> Callable[[Request], Awaitable[Identity]]:
    """A dependency: the caller, if their role is one of `roles`; else 403."""

    async def check(request: Request) -> Identity:
        who = await identity(request)
        if who.user.role not in roles:
            raise HTTPException(
                403,
                f"role {who.user.role.value!r} may not do this; it needs "
                + " or ".join(repr(r.value) for r in roles),
            )
        return who

    return check
