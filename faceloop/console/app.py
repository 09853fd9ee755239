"""The console's FastAPI app: the HTTP API (/api/v1, spec at /api/openapi.json), the
server-rendered pages, and the static files, all served from this process (no CDN).

`create_app(settings)` is what `faceloop up` serves on FACELOOP_CONSOLE_HOST:PORT
(127.0.0.1:8780 by default); tests pass their own backend and catalog URL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from faceloop.console.api import build_router
from faceloop.console.auth import ConsoleState
from faceloop.console.backend import Backend, TemporalBackend
from faceloop.console.notify import Notifier
from faceloop.console.pages import LoginRequired, build_pages
from faceloop.console.security import LoginRateLimiter
from faceloop.console.users import UserStore
from faceloop.errors import FaceloopError, InputError
from faceloop.settings import Settings
from faceloop.storage.audit import AuditEntry
from faceloop.storage.catalog import Catalog
from faceloop.votes import VoteSigner

__all__ = ["create_app", "notifier_for"]

STATIC = Path(__file__).parent / "static"

# what a browser may load and do on a console page: only this origin, no inline script,
# never framed (clickjacking of approve buttons)
_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


def create_app(
    settings: Settings,
    backend: Backend | None = None,
    limiter: LoginRateLimiter | None = None,
    temporal_ui_url: str | None = None,
) -> FastAPI:
    url = settings.resolved_database_url
    users = UserStore(url)
    catalog = Catalog(url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            users.close()
            catalog.close()

    app = FastAPI(
        title="faceloop console API",
        version="1",
        description="Briefs, campaigns, escalations, audit and erasure. Authenticate with "
        "`Authorization: Bearer <token>` (`faceloop users token`) or a session from "
        "POST /api/v1/auth/login plus its CSRF token as X-CSRF-Token.",
        openapi_url="/api/openapi.json",
        # FastAPI's Swagger page loads its script from a CDN: the spec is served, not the page
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.console = ConsoleState(
        settings=settings,
        users=users,
        backend=backend or TemporalBackend(settings),
        signer=VoteSigner.open(settings.resolved_home),
        limiter=limiter or LoginRateLimiter(),
        temporal_ui_url=temporal_ui_url,
    )
    app.state.catalog = catalog

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> RedirectResponse:
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(FaceloopError)
    async def unavailable(request: Request, exc: FaceloopError) -> JSONResponse:
        # what faceloop raises on purpose past input checks: Temporal or the catalog is
        # unreachable, a backend refused; the message names the fix
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.middleware("http")
    async def headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", _CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.url.path.startswith("/api/") or "text/html" in response.headers.get(
            "content-type", ""
        ):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    app.include_router(build_router())
    app.include_router(build_pages())
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def notifier_for(app: FastAPI) -> Notifier:
    """The notifier of a console app: its backend's waiting list, its catalog's record of
    how a vanished escalation ended, and the rollbacks its audit log records."""
    state: ConsoleState = app.state.console
    catalog: Catalog = app.state.catalog

    def decided(variant_id: str) -> str:
        v = catalog.get_variant(variant_id)
        if v is None or v.decision is None:
            return "see the audit log"  # a round's plan, or not recorded yet
        return f"{v.decision.value} ({v.decision_reason})"

    def rollbacks(after_seq: int) -> list[AuditEntry]:
        return catalog.audit_entries(after_seq=after_seq, kind="rollback.paused")

    # from the log's end: rollbacks before this start are in the audit log and the report
    return Notifier(
        state.settings,
        state.backend.escalations,
        decided,
        rollbacks,
        audit_seq=catalog.audit_tip()[0],
    )
