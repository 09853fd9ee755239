"""The console's pages: server-rendered with Jinja2 (autoescaped), no script, one local
stylesheet; every form that changes something carries the session's CSRF token.

They call the same actions as the API (faceloop.console.api), so a rule holds in both.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import yaml
from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from faceloop.console import api
from faceloop.console.auth import CSRF_FIELD, SESSION_COOKIE, Identity, optional_identity, state_of
from faceloop.console.users import Role
from faceloop.errors import FaceloopError, InputError
from faceloop.models import Decision

__all__ = ["LoginRequired", "build_pages"]

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html", "j2"]),
)

MaybeWho = Annotated[Identity | None, Depends(optional_identity)]


class LoginRequired(Exception):
    """Not logged in: the page sends the browser to the login."""


def _page(
    request: Request, who: Identity | None, template: str, status: int = 200, **ctx: Any
) -> HTMLResponse:
    st = state_of(request)
    html = _env.get_template(template).render(
        who=who.user if who else None,
        csrf=who.csrf_token if who else "",
        csrf_field=CSRF_FIELD,
        temporal_ui=st.temporal_ui_url,
        said=request.query_params.get("said", ""),
        Role=Role,
        **ctx,
    )
    return HTMLResponse(html, status_code=status)


def _need(who: Identity | None, *roles: Role) -> Identity:
    if who is None:
        raise LoginRequired()
    if roles and who.user.role not in roles:
        raise HTTPException(403, f"role {who.user.role.value!r} may not open this page")
    return who


def _back(path: str, said: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?said={quote(said[:300])}", status_code=303)


def build_pages() -> APIRouter:
    r = APIRouter(include_in_schema=False)

    @r.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request) -> HTMLResponse:
        return _page(request, None, "login.html.j2")

    @r.post("/login", response_class=HTMLResponse)
    async def login_form(
        request: Request,
        username: Annotated[str, Form(max_length=128)],
        password: Annotated[str, Form(max_length=1024)],
    ) -> Response:
        out = RedirectResponse("/", status_code=303)
        try:
            await api.login(request, out, username, password)
        except HTTPException as exc:
            page = _page(request, None, "login.html.j2", exc.status_code, error=exc.detail)
            if exc.headers:
                page.headers.update(exc.headers)
            return page
        return out

    @r.post("/logout")
    async def logout(request: Request, who: MaybeWho) -> Response:
        if who is not None and (sid := request.cookies.get(SESSION_COOKIE)):
            await asyncio.to_thread(state_of(request).users.end_session, sid)
        out = RedirectResponse("/login", status_code=303)
        out.delete_cookie(SESSION_COOKIE, path="/")
        return out

    @r.get("/", response_class=HTMLResponse)
    async def home(request: Request, who: MaybeWho) -> Response:
        me = _need(who)
        rows = await asyncio.to_thread(api.summaries, request, me)
        return _page(request, me, "campaigns.html.j2", campaigns=rows)

    @r.get("/briefs/new", response_class=HTMLResponse)
    async def new_brief(request: Request, who: MaybeWho) -> Response:
        me = _need(who, *api.SUBMITTERS)
        return _page(
            request,
            me,
            "brief.html.j2",
            text=_EXAMPLE_BRIEF,
            problems=[],
            form=_FORM_DEFAULTS,
            errors={},
            **_pbs(),
        )

    @r.post("/briefs/form", response_class=HTMLResponse)
    async def submit_form(request: Request, who: MaybeWho) -> Response:
        """The brief as form fields; each problem is shown under the field it belongs to."""
        me = _need(who, *api.SUBMITTERS)
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        values = {k: form.get(k, "")[:10_000] for k in _FORM_DEFAULTS}
        problems: list[api.FieldProblem] = []
        try:
            done = await api.submit_brief(
                request, me, _brief_from_form(values), values["playbook"] or None
            )
        except InputError as exc:
            problems = api.problems_of(exc)
        except FaceloopError as exc:
            problems = [api.FieldProblem(field="(service)", message=str(exc))]
        if problems:
            errors: dict[str, list[str]] = {}
            for p in problems:
                errors.setdefault(_form_field(p.field), []).append(f"{p.field}: {p.message}")
            return _page(
                request,
                me,
                "brief.html.j2",
                422,
                text=_EXAMPLE_BRIEF,
                problems=[],
                form=values,
                errors=errors,
                **_pbs(),
            )
        return _back(f"/campaigns/{quote(done.campaign_id)}", "campaign submitted")

    @r.post("/briefs/new", response_class=HTMLResponse)
    async def submit_brief(
        request: Request,
        who: MaybeWho,
        text: Annotated[str, Form(max_length=100_000)],
        playbook: Annotated[str, Form(max_length=64)] = "",
    ) -> Response:
        me = _need(who, *api.SUBMITTERS)
        problems: list[api.FieldProblem] = []
        try:
            doc = yaml.safe_load(text)
            if not isinstance(doc, dict):
                raise InputError("brief", ["(root): expected a mapping of brief fields"])
            done = await api.submit_brief(request, me, doc, playbook or None)
        except InputError as exc:
            problems = api.problems_of(exc)
        except yaml.YAMLError as exc:
            problems = [api.FieldProblem(field="(yaml)", message=str(exc))]
        except FaceloopError as exc:
            problems = [api.FieldProblem(field="(service)", message=str(exc))]
        if problems:
            return _page(
                request,
                me,
                "brief.html.j2",
                422,
                text=text,
                problems=problems,
                chosen=playbook,
                form=_FORM_DEFAULTS,
                errors={},
                **_pbs(),
            )
        return _back(f"/campaigns/{quote(done.campaign_id)}", "campaign submitted")

    @r.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
    async def campaign(request: Request, who: MaybeWho, campaign_id: str) -> Response:
        me = _need(who)
        try:
            row = await asyncio.to_thread(api.campaign_row_for, request, me, campaign_id)
        except HTTPException as exc:
            # submitting redirects here at once, but the workflow writes the catalog row when
            # it starts, a moment later: a campaign submitted through the console (it has an
            # owner) gets a page that reloads itself until then, not a bare 404
            owner = await asyncio.to_thread(state_of(request).users.owner, campaign_id)
            if exc.status_code != 404 or owner is None:
                raise
            return _page(request, me, "campaign_starting.html.j2", campaign_id=campaign_id)
        catalog = request.app.state.catalog
        variants = await asyncio.to_thread(catalog.variants, campaign_id)
        by_round: dict[int, list[Any]] = {}
        for v in variants:
            by_round.setdefault(v.round, []).append(v)
        live, live_error = None, ""
        try:
            live = await state_of(request).backend.state(campaign_id)
        except FaceloopError as exc:
            live_error = str(exc)
        insight = await asyncio.to_thread(api.insight_of, catalog, campaign_id)
        return _page(
            request,
            me,
            "campaign.html.j2",
            insight=insight,
            row=row,
            rounds=sorted(by_round.items()),
            summary=api.rounds_of(variants),
            live=live,
            live_error=live_error,
        )

    @r.get("/campaigns/{campaign_id}/report/{name:path}")
    async def report_file(request: Request, who: MaybeWho, campaign_id: str, name: str) -> Response:
        """The campaign's HTML report and its plots and thumbnails; report.html is built
        afresh from the catalog each time it is opened."""
        me = _need(who)
        await asyncio.to_thread(api.campaign_row_for, request, me, campaign_id)
        settings = state_of(request).settings
        out = settings.resolved_home / "console" / "reports" / campaign_id
        if name == "report.html" or not (out / "report.html").exists():
            out = await asyncio.to_thread(api.report_dir, settings, campaign_id)
        path = (out / name).resolve()
        if not path.is_relative_to(out.resolve()) or not path.is_file():
            raise HTTPException(404, f"no {name!r} in this campaign's report")
        # the report carries its own <style>; it runs no script and is never framed
        return FileResponse(
            path,
            headers={
                "Content-Security-Policy": "default-src 'none'; img-src 'self'; "
                "style-src 'unsafe-inline'; frame-ancestors 'none'",
                "Cache-Control": "no-store",
            },
        )

    @r.get("/variants/{variant_id}/image")
    async def image(request: Request, who: MaybeWho, variant_id: str) -> Response:
        """A variant's image, for those who may see its campaign."""
        from faceloop.storage.assets import open_asset_store

        me = _need(who)
        variant = await asyncio.to_thread(request.app.state.catalog.get_variant, variant_id)
        if variant is None or variant.asset is None or variant.erased_at is not None:
            raise HTTPException(404, "no image for this variant")
        await asyncio.to_thread(api.campaign_row_for, request, me, variant.campaign_id)
        store = open_asset_store(state_of(request).settings)
        try:
            data = await asyncio.to_thread(store.get_bytes, variant.asset.uri)
        except (OSError, FaceloopError) as exc:
            raise HTTPException(404, "the image is not in the asset store") from exc
        return Response(data, media_type=variant.asset.media_type)

    @r.get("/escalations", response_class=HTMLResponse)
    async def queue(request: Request, who: MaybeWho) -> Response:
        me = _need(who, *api.REVIEWERS)
        error = ""
        waiting: list[Any] = []
        try:
            waiting = await api.pending_for(request, me)
        except FaceloopError as exc:
            error = str(exc)
        catalog = request.app.state.catalog
        variants = {
            p.variant_id: await asyncio.to_thread(catalog.get_variant, p.variant_id)
            for p in waiting
        }
        return _page(
            request, me, "escalations.html.j2", waiting=waiting, variants=variants, error=error
        )

    @r.post("/escalations/{variant_id}/vote")
    async def vote(
        request: Request,
        who: MaybeWho,
        variant_id: str,
        decision: Annotated[Decision, Form()],
        reason: Annotated[str, Form(max_length=2000)] = "",
    ) -> Response:
        me = _need(who, *api.REVIEWERS)
        if decision not in (Decision.deploy, Decision.block) or not reason.strip():
            return _back("/escalations", "a vote approves or rejects, with a reason")
        try:
            done = await api.cast_vote(request, me, variant_id, decision, reason)
        except HTTPException as exc:
            return _back("/escalations", f"refused: {exc.detail}")
        except FaceloopError as exc:
            return _back("/escalations", f"refused: {exc}")
        return _back("/escalations", f"{done.decision.value} by {done.reviewer}: {done.answer}")

    @r.get("/audit", response_class=HTMLResponse)
    async def audit(request: Request, who: MaybeWho) -> Response:
        me = _need(who, *api.REVIEWERS)
        catalog = request.app.state.catalog
        check = await asyncio.to_thread(api.verify_audit, catalog)
        entries = (await asyncio.to_thread(catalog.audit_entries))[-200:]
        return _page(request, me, "audit.html.j2", check=check, entries=list(reversed(entries)))

    @r.get("/erasure", response_class=HTMLResponse)
    async def erasure_page(request: Request, who: MaybeWho) -> Response:
        me = _need(who, *api.REVIEWERS)
        consents = await asyncio.to_thread(request.app.state.catalog.consents, None)
        return _page(request, me, "erasure.html.j2", consents=consents)

    @r.post("/consents/{consent_id}/revoke")
    async def revoke(
        request: Request,
        who: MaybeWho,
        consent_id: str,
        reason: Annotated[str, Form(max_length=2000)] = "",
        ticket: Annotated[str, Form(max_length=128)] = "",
    ) -> Response:
        me = _need(who, *api.REVIEWERS)
        if not reason.strip():
            return _back("/erasure", "a revocation needs a reason")
        try:
            done = await api.revoke_consent(
                request, me, consent_id, api.RevokeRequest(reason=reason, ticket=ticket)
            )
        except HTTPException as exc:
            return _back("/erasure", f"refused: {exc.detail}")
        except FaceloopError as exc:
            return _back("/erasure", f"refused: {exc}")
        return _back("/erasure", f"consent {consent_id} revoked: {done.note}")

    @r.post("/erasure")
    async def erasure(
        request: Request,
        who: MaybeWho,
        kind: Annotated[str, Form()],
        target: Annotated[str, Form(max_length=128)],
        ticket: Annotated[str, Form(max_length=128)] = "",
    ) -> Response:
        from faceloop.erasure import ErasureInput

        me = _need(who, *api.REVIEWERS)
        try:
            inp = ErasureInput.model_validate(
                {"kind": kind, "target": target, "ticket": ticket, "requested_by": me.user.username}
            )
            wid = await state_of(request).backend.erase(inp)
        except (ValueError, FaceloopError) as exc:
            return _back("/erasure", f"refused: {exc}")
        return _back("/erasure", f"erasure started: {wid}")

    return r


# the form's fields, with what a new brief starts from
_FORM_DEFAULTS = {
    "product": "",
    "message": "",
    "tone": "friendly",
    "markets": "DE",
    "audience": "adults: 18-65, everyone",
    "budget_impressions": "20000",
    "kpi_goal": "ctr",
    "constraints": "",
    "rounds": "2",
    "variants_per_round": "4",
    "playbook": "",
}
_CAMPAIGN_FIELDS = ("rounds", "variants_per_round")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _brief_from_form(v: dict[str, str]) -> dict[str, Any]:
    """The form as a brief document; what does not parse is passed on as typed, so the
    brief's own validation names the field (never a guess at what was meant)."""
    segments = []
    lines = _lines(v["audience"])
    for line in lines:
        name, _, description = line.partition(":")
        segments.append(
            {"name": name.strip(), "description": description.strip(), "share": 1 / len(lines)}
        )
    return {
        "product": v["product"],
        "message": v["message"],
        "tone": v["tone"],
        "markets": [
            m.strip().upper() for m in v["markets"].replace(";", ",").split(",") if m.strip()
        ],
        "audience": segments,
        "budget_impressions": v["budget_impressions"].strip().replace("_", ""),
        "kpi_goal": v["kpi_goal"],
        "constraints": _lines(v["constraints"]),
        "campaign": {k: v[k].strip() for k in _CAMPAIGN_FIELDS},
    }


def _form_field(path: str) -> str:
    """The form input a problem's field path belongs to (audience.0.name -> audience)."""
    parts = path.split(".")
    if parts[0] == "campaign" and len(parts) > 1 and parts[1] in _CAMPAIGN_FIELDS:
        return parts[1]
    return parts[0] if parts[0] in _FORM_DEFAULTS else "(root)"


def _pbs() -> dict[str, Any]:
    from faceloop.playbooks.schema import shipped_playbooks

    return {"playbooks": shipped_playbooks()}


_EXAMPLE_BRIEF = """\
product: "Lumen Daily SPF 50 moisturiser"
message: "Everyday sun protection that feels like nothing on your skin."
audience:
  - name: young_urban
    description: "18-34, city commuters"
    share: 1.0
markets: [DE]
budget_impressions: 20000
campaign:
  rounds: 2
  variants_per_round: 4
"""
