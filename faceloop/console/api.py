"""The HTTP API (/api/v1): one router per resource; every route names the roles it serves.

The identity comes from the login or token (faceloop.console.auth), never from a body: a
brief's `submitted_by` is overwritten with the logged-in user, and a vote's reviewer and
role are the caller's. The campaign's review board compares exactly those names, so "the
submitter cannot vote" and four eyes (two different people) hold on identities; this layer
also checks both before sending the vote, so a refusal is a clear 403/409 here.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, Response
from fastapi.responses import PlainTextResponse

from faceloop.consent import RegisteredConsent
from faceloop.console.auth import (
    SESSION_COOKIE,
    Identity,
    identity,
    require,
    state_of,
)
from faceloop.console.backend import NoSchedule, ScheduleInfo, VoteRefused
from faceloop.console.insight import CampaignInsight, campaign_insight
from faceloop.console.schemas import (
    AuditVerify,
    BriefCheck,
    CampaignKpis,
    CampaignSummary,
    CampaignVariants,
    ErasureRequest,
    ErasureStarted,
    FieldProblem,
    KpiImported,
    LoginRequest,
    LoginResult,
    NewToken,
    NewUser,
    PlaybookCheck,
    PlaybookInfo,
    ReviewRequest,
    ReviewResult,
    Revoked,
    RevokeRequest,
    RoundView,
    ScheduleChanged,
    ScheduleNote,
    ScheduleRequest,
    Submitted,
    TokenRequest,
    UserView,
)
from faceloop.console.users import Role, User, canonical_username
from faceloop.cost import (
    CampaignCost,
    Prices,
    campaign_cost,
    check_cap_currency,
    parse_spend_cap,
)
from faceloop.errors import FaceloopError, InputError
from faceloop.messages import PendingEscalation
from faceloop.models import CampaignState, Decision, SpendCap, Variant
from faceloop.settings import Settings
from faceloop.storage.audit import AuditEntry
from faceloop.storage.catalog import CampaignRow, Catalog

__all__ = ["build_router", "campaign_row_for", "cast_vote", "login", "submit_brief"]

REVIEWERS = (Role.compliance, Role.admin)
SUBMITTERS = (Role.marketer, Role.admin)
EVERYONE = (Role.marketer, Role.compliance, Role.admin)


def _catalog(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.catalog
    return catalog


def user_view(user: User) -> UserView:
    return UserView(**user.model_dump(include=set(UserView.model_fields)))


def problems_of(exc: InputError) -> list[FieldProblem]:
    out = []
    for p in exc.problems:
        where, sep, msg = p.partition(": ")
        out.append(FieldProblem(field=where if sep else "(root)", message=msg if sep else p))
    return out


# --------------------------------------------------------------------------- shared actions
# used by the API routes and by the pages alike


async def login(request: Request, response: Response, username: str, password: str) -> LoginResult:
    """Check the password under the rate limit; on success set the session cookie."""
    st = state_of(request)
    name = canonical_username(username)
    address = request.client.host if request.client else "?"
    wait = st.limiter.retry_after(name, address)
    if wait:
        raise HTTPException(
            429,
            f"too many failed logins for {name!r} from this address: try again in {wait:.0f}s",
            headers={"Retry-After": str(int(wait) + 1)},
        )
    user = await asyncio.to_thread(st.users.authenticate, name, password)
    if user is None:
        st.limiter.failed(name, address)
        raise HTTPException(401, "wrong username or password")
    st.limiter.succeeded(name, address)
    hours = st.settings.console_session_hours
    session_id, csrf = await asyncio.to_thread(st.users.create_session, user, hours)
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=int(hours * 3600),
        httponly=True,
        samesite="strict",
        secure=st.settings.console_secure_cookies,
        path="/",
    )
    return LoginResult(
        user=user_view(user),
        csrf_token=csrf,
        expires_at=datetime.now(UTC) + timedelta(hours=hours),
    )


def campaign_row_for(request: Request, who: Identity, campaign_id: str) -> CampaignRow:
    """The campaign, if the caller may see it: a marketer sees what they submitted here.
    A marketer gets the same 403 for someone else's campaign and for none at all, so
    campaign ids cannot be probed."""
    st = state_of(request)
    if who.user.role == Role.marketer and st.users.owner(campaign_id) != who.user.user_id:
        raise HTTPException(403, f"campaign {campaign_id!r} is not among your campaigns")
    row = _catalog(request).get_campaign(campaign_id)
    if row is None:
        raise HTTPException(404, f"no campaign {campaign_id!r} in the catalog")
    return row


async def submit_brief(
    request: Request, who: Identity, document: dict[str, Any], playbook: str | None
) -> Submitted:
    from faceloop.briefs import brief_and_config
    from faceloop.playbooks.schema import load_playbook, shipped_playbooks

    st = state_of(request)
    # the submitter is who is logged in, whatever the document says
    document = {**document, "submitted_by": who.user.username}
    if playbook is not None and playbook not in shipped_playbooks():
        # a path would make the server read a file of the caller's choosing
        raise InputError(
            "brief",
            [f"playbook: {playbook!r} is not shipped: use one of {sorted(shipped_playbooks())}"],
        )
    brief, config = brief_and_config(document, "brief")
    pb = load_playbook(playbook or st.settings.playbook)
    campaign_id = await st.backend.submit(brief, config, pb)
    await asyncio.to_thread(st.users.record_owner, campaign_id, who.user)
    return Submitted(campaign_id=campaign_id, submitted_by=who.user.username)


async def pending_for(request: Request, who: Identity) -> list[PendingEscalation]:
    """Escalations waiting, deadline first; a reviewer sees those of the roles they vote as
    first, then the rest (an admin sees all)."""
    waiting = await state_of(request).backend.escalations()
    return sorted(waiting, key=lambda p: (not who.user.may_review_as(p.role), p.deadline))


async def cast_vote(
    request: Request, who: Identity, variant_id: str, decision: Decision, reason: str
) -> ReviewResult:
    from faceloop.messages import ReviewInput

    st = state_of(request)
    waiting = [p for p in await st.backend.escalations() if p.variant_id == variant_id]
    if not waiting:
        raise HTTPException(404, f"variant {variant_id} is not waiting for a review")
    item = waiting[0]
    me = who.user.username
    if canonical_username(item.submitted_by) == me:
        raise HTTPException(403, f"{me} submitted this campaign's brief and cannot review it")
    if any(canonical_username(v.reviewer) == me for v in item.votes):
        raise HTTPException(
            409, f"{me} has already voted on {variant_id}; four eyes need another reviewer"
        )
    if not who.user.may_review_as(item.role):
        raise HTTPException(
            403, f"{variant_id} waits for role {item.role!r}; {me} votes as {who.user.review_roles}"
        )
    # signed for the logged-in user: the worker refuses any vote the console did not sign
    vote = st.signer.sign(
        ReviewInput(
            campaign_id=item.campaign_id,
            variant_id=variant_id,
            decision=decision,
            reviewer=me,
            reason=reason,
            role=item.role,
        ),
        datetime.now(UTC),
    )
    try:
        answer = await st.backend.review(vote)
    except VoteRefused as exc:
        raise HTTPException(409, str(exc)) from exc
    return ReviewResult(
        variant_id=variant_id, decision=decision, reviewer=me, role=item.role, answer=answer
    )


def summaries(request: Request, who: Identity) -> list[CampaignSummary]:
    st = state_of(request)
    catalog = _catalog(request)
    mine = st.users.owned(who.user) if who.user.role == Role.marketer else None
    out = []
    for r in catalog.list_campaigns():
        if mine is not None and r.campaign_id not in mine:
            continue
        out.append(
            CampaignSummary(
                campaign_id=r.campaign_id,
                product=r.brief.product,
                status=r.status,
                round=r.round,
                rounds=r.config.rounds,
                variants=len(catalog.variants(r.campaign_id)),
                submitted_by=r.brief.submitted_by,
                owner=st.users.owner(r.campaign_id),
                created_at=r.created_at,
                updated_at=r.updated_at,
            )
        )
    return out


def rounds_of(variants: list[Variant]) -> list[RoundView]:
    by_round: dict[int, list[Variant]] = {}
    for v in variants:
        by_round.setdefault(v.round, []).append(v)
    return [
        RoundView(
            round=k,
            variants=len(vs),
            deployed=sum(v.decision == Decision.deploy for v in vs),
            blocked=sum(v.decision == Decision.block for v in vs),
            escalated=sum(v.decision == Decision.escalate for v in vs),
            impressions=sum(v.impressions for v in vs),
            clicks=sum(v.clicks for v in vs),
            conversions=sum(v.conversions for v in vs),
        )
        for k, vs in sorted(by_round.items())
    ]


def import_kpis(
    catalog: Catalog,
    campaign_id: str,
    csv: str,
    mapping: str,
    replace: bool,
    dry_run: bool,
    who: Identity,
) -> KpiImported:
    import tempfile

    from faceloop.connectors.kpi_import import apply_import, load_mapping, plan_import

    spec = load_mapping(mapping)
    # the importer reads a file (its errors name lines); the upload lives only for the call
    with tempfile.TemporaryDirectory(prefix="faceloop-kpis-") as tmp:
        path = Path(tmp) / "upload.csv"
        path.write_text(csv, encoding="utf-8")
        try:
            plan = plan_import(catalog, campaign_id, path, spec, replace=replace)
        except InputError as exc:
            raise HTTPException(422, [p.model_dump() for p in problems_of(exc)]) from exc
        result = None if dry_run else apply_import(catalog, plan, who.user.username)
    return KpiImported(
        campaign_id=campaign_id,
        sha256=plan.sha256,
        mapping=plan.mapping,
        rows=len(plan.rows),
        new=plan.count("new"),
        replaced=plan.count("replaced"),
        unchanged=plan.count("unchanged"),
        dry_run=dry_run,
        written=bool(result and result.written),
        audit_seq=result.audit_seq if result else None,
    )


async def revoke_consent(
    request: Request, who: Identity, consent_id: str, body: RevokeRequest
) -> Revoked:
    from faceloop.erasure import ErasureInput

    catalog = _catalog(request)
    if await asyncio.to_thread(catalog.get_consent, consent_id) is None:
        raise HTTPException(404, f"no consent {consent_id!r}")
    revoked = await asyncio.to_thread(
        catalog.revoke_consent, consent_id, body.reason, who.user.username
    )
    remaining = [
        c.consent_id
        for c in await asyncio.to_thread(catalog.consents, revoked.persona_id)
        if c.revoked_at is None and c.erased_at is None
    ]
    if not body.erase:
        return Revoked(
            consent_id=consent_id,
            persona_id=revoked.persona_id,
            erasure_workflow_id=None,
            note="erasure not started (erase: false)",
        )
    if remaining:
        return Revoked(
            consent_id=consent_id,
            persona_id=revoked.persona_id,
            erasure_workflow_id=None,
            note=f"erasure not started: live consent(s) {', '.join(remaining)} remain",
        )
    inp = ErasureInput(
        kind="persona",
        target=revoked.persona_id,
        requested_by=who.user.username,
        ticket=body.ticket,
    )
    wid = await state_of(request).backend.erase(inp)
    return Revoked(
        consent_id=consent_id,
        persona_id=revoked.persona_id,
        erasure_workflow_id=wid,
        note="persona erasure started",
    )


def schedule_input(settings: Settings, body: ScheduleRequest) -> tuple[timedelta, SpendCap | None]:
    """The interval and cap of a schedule request, every problem named by its field (422)."""
    from faceloop.workflows.client import parse_every

    problems: list[FieldProblem] = []
    every = cap = None
    try:
        every = parse_every(body.every)
    except InputError as exc:
        problems += [FieldProblem(field="every", message=p) for p in exc.problems]
    if body.spend_cap is not None:
        try:
            cap = parse_spend_cap(body.spend_cap, "spend_cap")
        except InputError as exc:
            problems += [FieldProblem(field="spend_cap", message=p) for p in exc.problems]
        try:
            check_cap_currency(cap, settings.cost_currency, "spend_cap", "spend_cap.currency")
        except InputError as exc:
            problems += problems_of(exc)
    if problems or every is None:
        raise HTTPException(422, [p.model_dump() for p in problems])
    return every, cap


async def change_schedule(
    request: Request,
    who: Identity,
    campaign_id: str,
    action: Literal["set", "paused", "resumed", "deleted"],
    note: str = "",
    every: timedelta | None = None,
    cap: SpendCap | None = None,
) -> ScheduleChanged:
    """Act on the campaign's schedule, then record it in the audit log as the logged-in
    user (the audit entry follows the change: a refused change records nothing)."""
    st = state_of(request)
    await asyncio.to_thread(campaign_row_for, request, who, campaign_id)
    sid = f"optimise-{campaign_id}"
    try:
        if every is not None:
            sid = await st.backend.set_schedule(campaign_id, every, cap)
        elif action == "deleted":
            await st.backend.delete_schedule(campaign_id)
        else:
            await st.backend.pause_schedule(
                campaign_id, action == "paused", note or f"via the console by {who.user.username}"
            )
    except NoSchedule as exc:
        raise HTTPException(
            404, f"{exc}; create it with POST /api/v1/schedules (`faceloop schedule ID --every 6h`)"
        ) from exc
    payload: dict[str, Any] = {"note": note}
    if every is not None:
        payload["every"] = str(every)
        payload["spend_cap"] = cap.model_dump(mode="json") if cap else None
    entry = await asyncio.to_thread(
        _catalog(request).audit,
        campaign_id,
        f"schedule.{action}",
        sid,
        who.user.username,
        payload,
    )
    return ScheduleChanged(
        campaign_id=campaign_id,
        schedule_id=sid,
        action=action,
        every=str(every) if every is not None else None,
        spend_cap=cap,
        by=who.user.username,
        audit_seq=entry.seq,
    )


def report_dir(settings: Settings, campaign_id: str) -> Path:
    """Write the campaign's report (report.json, report.html, plots, thumbnails) under the
    data dir, as `faceloop report` does, and return the folder. The catalog records the
    files as exports, so an erasure of the campaign or its persona removes them too."""
    from faceloop.workflows.client import write_report

    out = settings.resolved_home / "console" / "reports" / campaign_id
    out.mkdir(parents=True, exist_ok=True)
    write_report(settings, campaign_id, out)
    return out


def insight_of(catalog: Catalog, campaign_id: str) -> CampaignInsight:
    return campaign_insight(catalog.variants(campaign_id), catalog.audit_entries(campaign_id))


def verify_audit(catalog: Catalog) -> AuditVerify:
    problems = catalog.verify_audit()
    seq, digest, count = catalog.audit_tip()
    return AuditVerify(
        intact=not problems, entries=count, last_seq=seq, last_hash=digest, problems=problems
    )


# --------------------------------------------------------------------------- routers

Who = Annotated[Identity, Depends(identity)]
Reviewer = Annotated[Identity, Depends(require(*REVIEWERS))]
Submitter = Annotated[Identity, Depends(require(*SUBMITTERS))]
Admin = Annotated[Identity, Depends(require(Role.admin))]


def build_router() -> APIRouter:
    api = APIRouter(prefix="/api/v1")
    for part in (_auth(), _briefs(), _campaigns(), _escalations(), _governance(), _users()):
        api.include_router(part)
    return api


def _auth() -> APIRouter:
    r = APIRouter(prefix="/auth", tags=["auth"])

    @r.post("/login", responses={401: {}, 429: {}})
    async def api_login(body: LoginRequest, request: Request, response: Response) -> LoginResult:
        """Log in: sets the session cookie; the CSRF token in the answer goes with every POST."""
        return await login(request, response, body.username, body.password)

    @r.post("/logout", status_code=204)
    async def api_logout(request: Request, who: Who) -> Response:
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id:
            await asyncio.to_thread(state_of(request).users.end_session, session_id)
        out = Response(status_code=204)
        out.delete_cookie(SESSION_COOKIE, path="/")
        return out

    @r.get("/me")
    async def me(who: Who) -> UserView:
        return user_view(who.user)

    return r


def _briefs() -> APIRouter:
    r = APIRouter(prefix="/briefs", tags=["briefs"])

    @r.post("/validate")
    async def validate(
        who: Submitter, document: Annotated[dict[str, Any], Body(examples=[{"product": "x"}])]
    ) -> BriefCheck:
        """Check a brief (with its optional `campaign:` block) without starting anything."""
        from faceloop.briefs import brief_and_config

        try:
            brief_and_config({**document, "submitted_by": who.user.username}, "brief")
        except InputError as exc:
            return BriefCheck(valid=False, problems=problems_of(exc))
        return BriefCheck(valid=True, problems=[])

    @r.post("", status_code=201, responses={422: {}, 503: {}})
    async def submit(
        request: Request,
        who: Submitter,
        document: Annotated[dict[str, Any], Body()],
        playbook: Annotated[str | None, Query(max_length=64)] = None,
    ) -> Submitted:
        """Start a campaign; its submitter is the caller (a `submitted_by` in the body is
        replaced)."""
        try:
            return await submit_brief(request, who, document, playbook)
        except InputError as exc:
            raise HTTPException(422, [p.model_dump() for p in problems_of(exc)]) from exc

    return r


def _campaigns() -> APIRouter:
    r = APIRouter(prefix="/campaigns", tags=["campaigns"])

    @r.get("")
    async def list_campaigns(request: Request, who: Who) -> list[CampaignSummary]:
        """Campaigns, newest first: a marketer's own, everyone's for compliance and admin."""
        return await asyncio.to_thread(summaries, request, who)

    @r.get("/{campaign_id}", responses={403: {}, 404: {}})
    async def get_campaign(request: Request, who: Who, campaign_id: str) -> CampaignSummary:
        await asyncio.to_thread(campaign_row_for, request, who, campaign_id)
        found = [s for s in await asyncio.to_thread(summaries, request, who)]
        return next(s for s in found if s.campaign_id == campaign_id)

    @r.get("/{campaign_id}/state", responses={403: {}, 404: {}, 503: {}})
    async def live_state(request: Request, who: Who, campaign_id: str) -> CampaignState | None:
        """The running workflow's state (round, stage, history, winner); null when its
        workflow has none (not started, or past retention)."""
        await asyncio.to_thread(campaign_row_for, request, who, campaign_id)
        return await state_of(request).backend.state(campaign_id)

    @r.get("/{campaign_id}/rounds", responses={403: {}, 404: {}})
    async def rounds(request: Request, who: Who, campaign_id: str) -> list[RoundView]:
        await asyncio.to_thread(campaign_row_for, request, who, campaign_id)
        return rounds_of(await asyncio.to_thread(_catalog(request).variants, campaign_id))

    @r.get("/{campaign_id}/variants", responses={403: {}, 404: {}})
    async def variants(
        request: Request,
        who: Who,
        campaign_id: str,
        round: Annotated[int | None, Query(ge=0)] = None,
    ) -> CampaignVariants:
        """Variants with requested face parameters, guardrail verdicts and evidence (C2PA
        and watermark among them), decision and reason, disclosure, KPIs."""
        await asyncio.to_thread(campaign_row_for, request, who, campaign_id)
        found = await asyncio.to_thread(_catalog(request).variants, campaign_id, round)
        return CampaignVariants(campaign_id=campaign_id, variants=found)

    @r.get("/{campaign_id}/kpis", responses={403: {}, 404: {}})
    async def kpis(request: Request, who: Who, campaign_id: str) -> CampaignKpis:
        await asyncio.to_thread(campaign_row_for, request, who, campaign_id)
        obs = await asyncio.to_thread(_catalog(request).observations, campaign_id)
        return CampaignKpis(campaign_id=campaign_id, observations=obs)

    @r.post("/{campaign_id}/kpis/import", responses={403: {}, 404: {}, 422: {}})
    async def kpi_import(
        request: Request,
        who: Submitter,
        campaign_id: str,
        csv: Annotated[str, Body(media_type="text/csv", max_length=20_000_000)],
        mapping: Annotated[Literal["meta", "google", "tiktok"], Query()],
        replace: bool = False,
        dry_run: bool = False,
    ) -> KpiImported:
        """Per-window KPIs from a channel's CSV export, as `faceloop kpis import` reads it:
        every bad row by line and column (422), nothing half-written. Only the shipped
        mappings: a mapping path would make the server read a file of the caller's choice."""
        await asyncio.to_thread(campaign_row_for, request, who, campaign_id)
        return await asyncio.to_thread(
            import_kpis, _catalog(request), campaign_id, csv, mapping, replace, dry_run, who
        )

    @r.get("/{campaign_id}/report", responses={403: {}, 404: {}})
    async def report(request: Request, who: Who, campaign_id: str) -> dict[str, Any]:
        """report.json, built now from the catalog (`faceloop report`); the HTML version
        with its plots is the page /campaigns/{id}/report/report.html."""
        await asyncio.to_thread(campaign_row_for, request, who, campaign_id)
        out = await asyncio.to_thread(report_dir, state_of(request).settings, campaign_id)
        data: dict[str, Any] = json.loads((out / "report.json").read_text(encoding="utf-8"))
        return data

    @r.get("/{campaign_id}/cost", responses={403: {}, 404: {}})
    async def cost(request: Request, who: Who, campaign_id: str) -> CampaignCost:
        """Measured use (GPU and CPU seconds, storage bytes, platform API calls, review
        minutes), per 1,000 variants and in money at the deployment's prices, the ad spend
        the platform reports, and the spend cap (docs/cost.md)."""
        row = await asyncio.to_thread(campaign_row_for, request, who, campaign_id)
        prices = Prices.from_settings(state_of(request).settings)
        return await asyncio.to_thread(
            campaign_cost, _catalog(request), campaign_id, prices, row.brief.spend_cap
        )

    @r.get("/{campaign_id}/insight", responses={403: {}, 404: {}})
    async def insight(request: Request, who: Who, campaign_id: str) -> CampaignInsight:
        """CTR per round and per face-parameter value, the winner (or leader) with its 95%
        credible interval and chance of being best, winners per segment."""
        await asyncio.to_thread(campaign_row_for, request, who, campaign_id)
        return await asyncio.to_thread(insight_of, _catalog(request), campaign_id)

    @r.get("/{campaign_id}/audit", responses={403: {}, 404: {}})
    async def campaign_audit(request: Request, who: Who, campaign_id: str) -> list[AuditEntry]:
        await asyncio.to_thread(campaign_row_for, request, who, campaign_id)
        return await asyncio.to_thread(_catalog(request).audit_entries, campaign_id)

    return r


def _escalations() -> APIRouter:
    r = APIRouter(prefix="/escalations", tags=["escalations"])

    @r.get("", responses={503: {}})
    async def list_escalations(request: Request, who: Reviewer) -> list[PendingEscalation]:
        """Waiting escalations: those the caller may decide first, each by deadline."""
        return await pending_for(request, who)

    @r.post("/{variant_id}/approve", responses={403: {}, 404: {}, 409: {}})
    async def approve(
        request: Request, who: Reviewer, variant_id: str, body: ReviewRequest
    ) -> ReviewResult:
        """Approve as the logged-in user; four eyes wait for a second, different reviewer."""
        return await cast_vote(request, who, variant_id, Decision.deploy, body.reason)

    @r.post("/{variant_id}/reject", responses={403: {}, 404: {}, 409: {}})
    async def reject(
        request: Request, who: Reviewer, variant_id: str, body: ReviewRequest
    ) -> ReviewResult:
        """Reject as the logged-in user: the variant is blocked at once."""
        return await cast_vote(request, who, variant_id, Decision.block, body.reason)

    return r


def _governance() -> APIRouter:
    r = APIRouter(tags=["governance"])

    @r.get("/schedules", responses={503: {}})
    async def schedules(request: Request, who: Who) -> list[ScheduleInfo]:
        rows = await state_of(request).backend.schedules()
        if who.user.role == Role.marketer:
            mine = await asyncio.to_thread(state_of(request).users.owned, who.user)
            rows = [s for s in rows if s.campaign_id in mine]
        return rows

    @r.post("/schedules", responses={403: {}, 404: {}, 422: {}, 503: {}})
    async def schedule_set(
        request: Request, who: Submitter, body: ScheduleRequest
    ) -> ScheduleChanged:
        """Run an optimisation round on the campaign every `every` (create the schedule, or
        change its interval and cap), as `faceloop schedule ID --every 6h`. A marketer for
        the campaigns they submitted, an admin for any."""
        every, cap = schedule_input(state_of(request).settings, body)
        return await change_schedule(request, who, body.campaign_id, "set", every=every, cap=cap)

    @r.post("/schedules/{campaign_id}/pause", responses={403: {}, 404: {}, 503: {}})
    async def schedule_pause(
        request: Request, who: Who, campaign_id: str, body: ScheduleNote
    ) -> ScheduleChanged:
        """Stop firing until resumed. Compliance may pause any schedule too: it only stops
        spending."""
        return await change_schedule(request, who, campaign_id, "paused", body.note)

    @r.post("/schedules/{campaign_id}/resume", responses={403: {}, 404: {}, 503: {}})
    async def schedule_resume(
        request: Request, who: Submitter, campaign_id: str, body: ScheduleNote
    ) -> ScheduleChanged:
        return await change_schedule(request, who, campaign_id, "resumed", body.note)

    @r.delete("/schedules/{campaign_id}", responses={403: {}, 404: {}, 503: {}})
    async def schedule_delete(
        request: Request, who: Submitter, campaign_id: str
    ) -> ScheduleChanged:
        return await change_schedule(request, who, campaign_id, "deleted")

    @r.get("/audit")
    async def audit_list(
        request: Request,
        who: Reviewer,
        campaign_id: str | None = None,
        after_seq: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> list[AuditEntry]:
        entries = await asyncio.to_thread(_catalog(request).audit_entries, campaign_id)
        return [e for e in entries if e.seq > after_seq][:limit]

    @r.get("/audit/verify")
    async def audit_verify(request: Request, who: Reviewer) -> AuditVerify:
        """Check the hash chain: every edited, removed or reordered entry is a problem."""
        return await asyncio.to_thread(verify_audit, _catalog(request))

    @r.get("/audit/export", response_class=PlainTextResponse)
    async def audit_export(
        request: Request, who: Reviewer, from_seq: Annotated[int, Query(ge=1)] = 1
    ) -> PlainTextResponse:
        """The log from `from_seq` on as JSON Lines, as `faceloop audit export` writes it."""
        entries = [
            e for e in await asyncio.to_thread(_catalog(request).audit_entries) if e.seq >= from_seq
        ]
        return PlainTextResponse(
            "".join(e.model_dump_json() + "\n" for e in entries), media_type="application/jsonl"
        )

    @r.post("/erasure", status_code=202, responses={422: {}, 503: {}})
    async def erasure(request: Request, who: Reviewer, body: ErasureRequest) -> ErasureStarted:
        """Start (or join) the erasure of an asset, persona or campaign."""
        from faceloop.erasure import ErasureInput

        try:
            inp = ErasureInput(
                kind=body.kind,
                target=body.target,
                ticket=body.ticket,
                requested_by=who.user.username,
            )
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        wid = await state_of(request).backend.erase(inp)
        return ErasureStarted(workflow_id=wid, requested_by=who.user.username)

    @r.get("/consents")
    async def consents(
        request: Request, who: Reviewer, persona_id: str | None = None
    ) -> list[RegisteredConsent]:
        return await asyncio.to_thread(_catalog(request).consents, persona_id)

    @r.post("/consents/{consent_id}/revoke", responses={404: {}, 422: {}, 503: {}})
    async def revoke(
        request: Request, who: Reviewer, consent_id: str, body: RevokeRequest
    ) -> Revoked:
        """Revoke a consent (the persona's campaigns stop at their next consent check) and,
        unless `erase` is false or another live consent remains, start the persona's
        erasure, as `faceloop consent revoke` does."""
        return await revoke_consent(request, who, consent_id, body)

    @r.get("/playbooks")
    async def playbooks(who: Who) -> list[PlaybookInfo]:
        from faceloop.playbooks.schema import shipped_playbooks

        return [PlaybookInfo(name=n, about=a) for n, a in shipped_playbooks().items()]

    @r.post("/playbooks/validate")
    async def playbook_validate(
        who: Admin, text: Annotated[str, Body(media_type="text/plain", max_length=200_000)]
    ) -> PlaybookCheck:
        """Check a playbook (YAML or JSON text) without saving it."""
        from faceloop.briefs import parse_model
        from faceloop.playbooks.schema import Playbook

        try:
            data = yaml.safe_load(text)
            pb = parse_model(Playbook, data, "playbook")
        except InputError as exc:
            return PlaybookCheck(valid=False, problems=problems_of(exc))
        except yaml.YAMLError as exc:
            return PlaybookCheck(
                valid=False, problems=[FieldProblem(field="(root)", message=str(exc))]
            )
        return PlaybookCheck(
            valid=True, problems=[], summary={"name": pb.name, "rules": len(pb.rules)}
        )

    return r


def _users() -> APIRouter:
    r = APIRouter(prefix="/users", tags=["users"])

    @r.get("")
    async def list_users(request: Request, who: Admin) -> list[UserView]:
        return [user_view(u) for u in await asyncio.to_thread(state_of(request).users.users)]

    @r.post("", status_code=201, responses={422: {}})
    async def add_user(request: Request, who: Admin, body: NewUser) -> UserView:
        try:
            user = await asyncio.to_thread(
                state_of(request).users.add_user,
                body.username,
                body.password,
                body.role,
                body.review_roles,
                who.user.username,
            )
        except InputError as exc:
            raise HTTPException(422, [p.model_dump() for p in problems_of(exc)]) from exc
        return user_view(user)

    @r.post("/{username}/tokens", status_code=201, responses={404: {}})
    async def new_token(request: Request, who: Who, username: str, body: TokenRequest) -> NewToken:
        """A new API token: for yourself, or (admin) for anyone. Shown once."""
        if who.user.role != Role.admin and canonical_username(username) != who.user.username:
            raise HTTPException(403, "only an admin makes tokens for someone else")
        try:
            token, row = await asyncio.to_thread(
                state_of(request).users.create_token, username, body.name, who.user.username
            )
        except InputError as exc:
            raise HTTPException(422, str(exc)) from exc
        except FaceloopError as exc:
            raise HTTPException(404, str(exc)) from exc
        return NewToken(token_id=row.token_id, name=row.name, token=token)

    return r
