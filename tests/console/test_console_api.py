"""The console's HTTP API and pages: logins, roles, CSRF, rate limit, and votes taken on
identities.

The Temporal side is `FakeBackend` (console_fakes.py; a fake: no workflow runs). Its
escalations live on the real `ReviewBoard` the campaign workflow uses, so a vote the API
lets through is judged by the same rules (submitter, four eyes, role) as in a running
campaign; a submitted brief is recorded in a real catalog, as the workflow's first activity
would.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from console_fakes import FakeBackend, anna_consent
from fastapi.testclient import TestClient

from faceloop.console import Role, create_app, security
from faceloop.console.security import LoginRateLimiter, sha256_hex
from faceloop.console.users import UserStore
from faceloop.messages import ReviewInput
from faceloop.models import Decision, FaceParams, Variant
from faceloop.playbooks.schema import Escalation
from faceloop.settings import Settings
from faceloop.storage.catalog import Catalog
from faceloop.votes import VoteVerifier
from faceloop.workflows.review import ReviewBoard

PASSWORD = "correct horse battery"
BRIEF = {
    "product": "Lumen SPF 50",
    "message": "Sun protection that feels like nothing.",
    "audience": [{"name": "all", "description": "adults", "share": 1.0}],
    "markets": ["DE"],
    "budget_impressions": 10000,
    "submitted_by": "someone-else",
    "campaign": {"rounds": 1, "variants_per_round": 3},
}


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    # still argon2id, with test-sized cost: five users per test at 64 MiB and 3 passes
    # would take seconds on a shared CPU
    monkeypatch.setattr(
        security, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[TestClient, FakeBackend, Settings]]:
    settings = Settings(home=tmp_path)
    url = settings.resolved_database_url
    backend = FakeBackend(url)
    with UserStore(url) as users:
        users.add_user("mara", PASSWORD, Role.marketer)
        users.add_user("otto", PASSWORD, Role.marketer)
        users.add_user("cora", PASSWORD, Role.compliance)
        users.add_user("carl", PASSWORD, Role.compliance)
        users.add_user("ada", PASSWORD, Role.admin)
    app = create_app(settings, backend=backend, limiter=LoginRateLimiter(limit=3))
    with TestClient(app) as client:
        yield client, backend, settings


def login(client: TestClient, name: str) -> dict[str, str]:
    """Log `client` in as `name`; returns the headers a session's POST needs."""
    client.cookies.clear()
    r = client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"X-CSRF-Token": r.json()["csrf_token"]}


def submit_as(client: TestClient, name: str) -> str:
    r = client.post("/api/v1/briefs", json=BRIEF, headers=login(client, name))
    assert r.status_code == 201, r.text
    return str(r.json()["campaign_id"])


# --------------------------------------------------------------------------- secrets


def test_passwords_are_argon2id_and_tokens_are_kept_only_as_hashes(env: tuple) -> None:
    client, _, settings = env
    engine = sa.create_engine(settings.resolved_database_url)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT password_hash FROM console_users")).scalars().all()
    assert len(stored) == 5 and all(h.startswith("$argon2id$") for h in stored)
    assert all(PASSWORD not in h for h in stored)

    headers = login(client, "ada")
    made = client.post("/api/v1/users/cora/tokens", json={"name": "ci"}, headers=headers)
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    with engine.connect() as conn:
        digests = conn.execute(sa.text("SELECT token_sha256 FROM console_tokens")).scalars().all()
    engine.dispose()
    assert digests == [sha256_hex(token)]
    dump = (settings.resolved_home / "faceloop.db").read_bytes()
    assert token.encode() not in dump

    client.cookies.clear()
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["username"] == "cora"
    bad = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}x"})
    assert bad.status_code == 401


# --------------------------------------------------------------------------- roles


def test_a_marketer_cannot_vote_manage_users_read_the_audit_or_see_others_campaigns(
    env: tuple,
) -> None:
    client, backend, _ = env
    theirs = submit_as(client, "otto")
    variant = backend.escalate(theirs)
    mine = submit_as(client, "mara")
    h = login(client, "mara")
    said = client.post(f"/api/v1/escalations/{variant}/approve", json={"reason": "ok"}, headers=h)
    assert said.status_code == 403 and "'marketer' may not" in said.json()["detail"]
    assert client.get("/api/v1/escalations").status_code == 403
    assert client.get("/api/v1/users").status_code == 403
    assert client.get("/api/v1/audit").status_code == 403
    assert (
        client.post(
            "/api/v1/erasure", json={"kind": "campaign", "target": theirs}, headers=h
        ).status_code
        == 403
    )
    # someone else's campaign and a campaign that does not exist read the same
    assert client.get(f"/api/v1/campaigns/{theirs}").status_code == 403
    assert client.get(f"/api/v1/campaigns/{theirs}/variants").status_code == 403
    assert client.get("/api/v1/campaigns/no-such").status_code == 403
    assert [c["campaign_id"] for c in client.get("/api/v1/campaigns").json()] == [mine]
    assert client.get(f"/api/v1/campaigns/{mine}").status_code == 200
    assert backend.votes == [] and backend.erasures == []


def test_compliance_cannot_manage_users_submit_briefs_or_validate_playbooks(env: tuple) -> None:
    client, _, _ = env
    h = login(client, "cora")
    assert client.get("/api/v1/users").status_code == 403
    new = {"username": "eve", "password": PASSWORD, "role": "admin"}
    assert client.post("/api/v1/users", json=new, headers=h).status_code == 403
    assert client.post("/api/v1/users/ada/tokens", json={"name": "x"}, headers=h).status_code == 403
    assert client.post("/api/v1/briefs", json=BRIEF, headers=h).status_code == 403
    assert (
        client.post(
            "/api/v1/playbooks/validate",
            content="name: x",
            headers={**h, "Content-Type": "text/plain"},
        ).status_code
        == 403
    )
    # what compliance does
    assert client.get("/api/v1/audit/verify").json()["intact"] is True
    assert client.get("/api/v1/escalations").status_code == 200


def test_an_admin_adds_users_but_cannot_vote_on_a_campaign_they_submitted(env: tuple) -> None:
    client, backend, _ = env
    h = login(client, "ada")
    made = client.post(
        "/api/v1/users",
        json={"username": "Eve", "password": PASSWORD, "role": "compliance"},
        headers=h,
    )
    assert made.status_code == 201 and made.json()["username"] == "eve"
    twice = client.post(
        "/api/v1/users",
        json={"username": "EVE", "password": PASSWORD, "role": "marketer"},
        headers=h,
    )
    assert twice.status_code == 422 and "exists already" in twice.text
    cid = submit_as(client, "ada")
    variant = backend.escalate(cid)
    h = login(client, "ada")
    own = client.post(f"/api/v1/escalations/{variant}/approve", json={"reason": "mine"}, headers=h)
    assert own.status_code == 403 and "submitted this campaign" in own.json()["detail"]
    assert backend.votes == []


def test_unauthenticated_calls_get_401_and_pages_send_to_the_login(env: tuple) -> None:
    client, _, _ = env
    assert client.get("/api/v1/campaigns").status_code == 401
    assert client.post("/api/v1/briefs", json=BRIEF).status_code == 401
    page = client.get("/escalations", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login"


# --------------------------------------------------------------------------- the vote


def test_the_vote_is_the_logged_in_users_and_four_eyes_need_two_people(env: tuple) -> None:
    client, backend, _ = env
    cid = submit_as(client, "mara")
    # the brief said someone-else; the campaign's submitter is who was logged in
    assert backend.boards[cid].submitted_by == "mara"
    variant = backend.escalate(cid, approvers=2)

    h = login(client, "cora")
    # the reviewer cannot be named in the body
    named = client.post(
        f"/api/v1/escalations/{variant}/approve",
        json={"reason": "ok", "reviewer": "carl"},
        headers=h,
    )
    assert named.status_code == 422
    first = client.post(
        f"/api/v1/escalations/{variant}/approve", json={"reason": "fine"}, headers=h
    )
    assert first.status_code == 200, first.text
    assert first.json()["reviewer"] == "cora" and first.json()["answer"] == "vote deploy"
    again = client.post(
        f"/api/v1/escalations/{variant}/approve", json={"reason": "again"}, headers=h
    )
    assert again.status_code == 409 and "four eyes" in again.json()["detail"]

    h = login(client, "carl")
    second = client.post(
        f"/api/v1/escalations/{variant}/approve", json={"reason": "agreed"}, headers=h
    )
    assert second.status_code == 200 and "decided deploy" in second.json()["answer"]
    assert [(v.reviewer, v.role) for v in backend.votes] == [
        ("cora", "compliance"),
        ("carl", "compliance"),
    ]


def test_the_board_itself_refuses_a_submitter_even_past_the_api_check() -> None:
    """The API refuses first; the workflow's board would refuse the same vote on its own,
    since the server hands it the same canonical usernames."""
    board = ReviewBoard("mara")
    variant = Variant(variant_id="v", campaign_id="c", round=0, params=FaceParams(), seed=1)
    board.open(variant, Escalation(), datetime.now(UTC))
    vote = ReviewInput(
        campaign_id="c",
        variant_id="v",
        decision=Decision.deploy,
        reviewer="Mara",
        reason="x",
        role="compliance",
    )
    with pytest.raises(ValueError, match="cannot review it"):
        board.cast(vote, datetime.now(UTC))


def test_a_reviewer_votes_only_as_a_playbook_role_they_hold(env: tuple) -> None:
    client, backend, _ = env
    cid = submit_as(client, "mara")
    variant = backend.escalate(cid, role="legal")
    said = client.post(
        f"/api/v1/escalations/{variant}/reject",
        json={"reason": "no"},
        headers=login(client, "cora"),
    )
    assert said.status_code == 403 and "waits for role 'legal'" in said.json()["detail"]


# --------------------------------------------------------------------------- CSRF, rate limit


def test_a_session_post_without_its_csrf_token_is_refused(env: tuple) -> None:
    client, backend, _ = env
    h = login(client, "mara")
    assert client.post("/api/v1/briefs", json=BRIEF).status_code == 403
    assert (
        client.post("/api/v1/briefs", json=BRIEF, headers={"X-CSRF-Token": "x"}).status_code == 403
    )
    assert backend.boards == {}
    # the pages' forms carry it as a field
    form = client.post("/briefs/new", data={"text": "product: x"}, follow_redirects=False)
    assert form.status_code == 403
    page = client.get("/briefs/new")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None and token.group(1) == h["X-CSRF-Token"]
    bad = client.post("/briefs/new", data={"text": "product: x", "csrf_token": token.group(1)})
    # a bad brief comes back with each problem at its field
    assert bad.status_code == 422 and "message" in bad.text and "budget_impressions" in bad.text
    assert client.post("/api/v1/briefs", json=BRIEF, headers=h).status_code == 201


def test_logins_are_rate_limited_per_user_and_address(env: tuple) -> None:
    client, _, _ = env
    for _ in range(3):
        r = client.post("/api/v1/auth/login", json={"username": "cora", "password": "wrong!"})
        assert r.status_code == 401
    # over the limit: the right password is refused too, with Retry-After
    r = client.post("/api/v1/auth/login", json={"username": "cora", "password": PASSWORD})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    # another user from the same address is not locked out
    assert (
        client.post(
            "/api/v1/auth/login", json={"username": "carl", "password": PASSWORD}
        ).status_code
        == 200
    )


def test_the_limiter_window_slides() -> None:
    now = [0.0]
    limiter = LoginRateLimiter(limit=2, window_s=60, clock=lambda: now[0])
    limiter.failed("u", "a")
    now[0] = 30
    limiter.failed("u", "a")
    assert limiter.retry_after("u", "a") == pytest.approx(30)
    now[0] = 61  # the first failure left the window
    assert limiter.retry_after("u", "a") == 0


# --------------------------------------------------------------------------- pages, spec


def test_the_review_queue_page_shows_the_flag_and_votes_through_the_form(env: tuple) -> None:
    client, backend, settings = env
    cid = submit_as(client, "mara")
    variant = backend.escalate(cid, approvers=1)
    login(client, "cora")
    page = client.get("/escalations")
    assert page.status_code == 200
    assert "identity: looks like a known person" in page.text and variant in page.text
    assert 'name="viewport"' in page.text and "/static/console.css" in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    done = client.post(
        f"/escalations/{variant}/vote",
        data={
            "decision": "block",
            "reason": "too close to a real person",
            "csrf_token": token.group(1),
        },
    )
    assert done.status_code == 200 and "decided block" in done.text
    assert backend.votes[0].reviewer == "cora"
    # the page's vote is signed for cora like the API's: the worker would count it
    assert (
        VoteVerifier.open(settings.resolved_home).problem(backend.votes[0], datetime.now(UTC))
        is None
    )
    # a marketer does not get the queue page
    login(client, "mara")
    assert client.get("/escalations").status_code == 403
    assert client.get(f"/campaigns/{cid}").status_code == 200


def test_the_openapi_spec_describes_every_resource(env: tuple) -> None:
    client, _, _ = env
    spec = client.get("/api/openapi.json").json()
    paths = set(spec["paths"])
    for p in (
        "/api/v1/briefs",
        "/api/v1/briefs/validate",
        "/api/v1/campaigns/{campaign_id}/variants",
        "/api/v1/escalations/{variant_id}/approve",
        "/api/v1/audit/verify",
        "/api/v1/erasure",
        "/api/v1/playbooks/validate",
        "/api/v1/schedules",
        "/api/v1/users",
    ):
        assert p in paths
    assert "Variant" in spec["components"]["schemas"]
    assert client.get("/static/console.css").status_code == 200
    # no page that loads a script from a CDN
    assert client.get("/api/docs").status_code == 404


def test_the_campaign_page_shows_ctr_per_round_and_parameter_and_the_leader(env: tuple) -> None:
    client, _, settings = env
    cid = submit_as(client, "mara")
    with Catalog(settings.resolved_database_url) as catalog:
        for i, (age, imp, clk) in enumerate([("18-24", 1000, 10), ("35-44", 1000, 40)]):
            catalog.upsert_variant(
                Variant(
                    variant_id=f"{cid}-r0-t{i}",
                    campaign_id=cid,
                    round=0,
                    seed=i,
                    params=FaceParams(age_band=age),
                    decision=Decision.deploy,
                    impressions=imp,
                    clicks=clk,
                )
            )
        catalog.audit(
            cid,
            "round.learned",
            "round-0",
            "optimizer",
            {
                "p_best": {f"{cid}-r0-t1": 0.97, f"{cid}-r0-t0": 0.03},
                "winners": {"all": f"{cid}-r0-t1"},
            },
        )
    got = client.get(f"/api/v1/campaigns/{cid}/insight").json()
    assert [b["ctr"] for b in got["rounds"]] == [pytest.approx(0.025)]
    assert [(b["label"], b["ctr"]) for b in got["by_parameter"]["age_band"]] == [
        ("18-24", pytest.approx(0.01)),
        ("35-44", pytest.approx(0.04)),
    ]
    leader = got["leader"]
    assert leader["variant_id"] == f"{cid}-r0-t1" and leader["recorded"] is False
    # Beta(41, 961): about 2.9% to 5.3%
    assert 0.027 < leader["ci_low"] < 0.04 < leader["ci_high"] < 0.056
    assert leader["p_best"] == pytest.approx(0.97)
    assert got["segment_winners"] == {"all": f"{cid}-r0-t1"}
    page = client.get(f"/campaigns/{cid}").text
    assert "CTR by age_band" in page and "<svg" in page and "chance of being best" in page
    assert "4.00%" in page and "97%" in page
    # the full report, as `faceloop report` writes it, for who may see the campaign
    report = client.get(f"/api/v1/campaigns/{cid}/report")
    assert report.status_code == 200, report.text
    assert report.json()["campaign_id"] == cid and report.json()["audit_intact"] is True
    assert len(report.json()["rounds"][0]["variants"]) == 2
    html = client.get(f"/campaigns/{cid}/report/report.html")
    assert (
        html.status_code == 200
        and "style-src 'unsafe-inline'" in html.headers["content-security-policy"]
    )
    escape = client.get(f"/campaigns/{cid}/report/..%2F..%2F..%2Ffaceloop.db")
    assert escape.status_code == 404 and "no '../../../faceloop.db'" in escape.text
    login(client, "otto")
    assert client.get(f"/api/v1/campaigns/{cid}/report").status_code == 403


def test_kpi_import_by_the_campaigns_marketer_with_errors_by_line(env: tuple) -> None:
    client, _, settings = env
    cid = submit_as(client, "mara")
    with Catalog(settings.resolved_database_url) as catalog:
        catalog.set_campaign_status(cid, "running", 1)
        catalog.upsert_variant(
            Variant(
                variant_id="v1",
                campaign_id=cid,
                round=0,
                params=FaceParams(),
                seed=1,
                decision=Decision.deploy,
                ad_id="120001",
                live=True,
            )
        )
        catalog.record_deployment("v1", f"{1:064x}", "120001", "google", cid)
        camp = catalog.get_campaign(cid)
    assert camp is not None
    d0 = camp.created_at.astimezone(UTC).date().isoformat()
    head = "Ad ID,Day,Impr.,Clicks,Conversions\n"
    h = login(client, "mara")
    url = f"/api/v1/campaigns/{cid}/kpis/import?mapping=google"
    csv = {**h, "Content-Type": "text/csv"}
    bad = client.post(url, content=head + f"120001,{d0},10,11,0\n", headers=csv)
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"].startswith("line 2")
    ok = client.post(url, content=head + f"120001,{d0},1000,11,1\n", headers=csv)
    assert ok.status_code == 200, ok.text
    assert (ok.json()["new"], ok.json()["written"]) == (1, True)
    kpis = client.get(f"/api/v1/campaigns/{cid}/kpis").json()["observations"]
    assert [(o["impressions"], o["clicks"]) for o in kpis] == [(1000, 11)]
    # a mapping is a shipped name, never a path on the server
    path = client.post(f"{url[:-6]}%2Fetc%2Fpasswd.yaml", content=head, headers=csv)
    assert path.status_code == 422
    # another marketer may not import into it
    other = login(client, "otto")
    assert (
        client.post(url, content=head, headers={**other, "Content-Type": "text/csv"}).status_code
        == 403
    )


def test_the_brief_form_shows_each_problem_at_its_field_and_submits_a_good_one(
    env: tuple,
) -> None:
    client, backend, _ = env
    login(client, "mara")
    page = client.get("/briefs/new")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    form = {
        "csrf_token": token.group(1),
        "product": "",
        "message": "Sun protection.",
        "tone": "warm",
        "markets": "DE, Germany",
        "audience": "Young Urban: 18-34",
        "budget_impressions": "lots",
        "kpi_goal": "ctr",
        "constraints": "",
        "rounds": "0",
        "variants_per_round": "4",
        "playbook": "",
    }
    bad = client.post("/briefs/form", data=form)
    assert bad.status_code == 422 and backend.boards == {}
    errors = dict(re.findall(r'<span class="error field-error" id="e-([a-z_]+)">([^<]+)', bad.text))
    assert set(errors) >= {"product", "markets", "audience", "budget_impressions", "rounds"}
    assert errors["markets"].startswith("markets.1:")
    assert errors["audience"].startswith("audience.0.name:")
    assert 'id="f-product" name="product" value="" aria-invalid="true"' in bad.text
    # what was typed stays in the form
    assert 'value="DE, Germany"' in bad.text

    good = {
        **form,
        "product": "Lumen SPF 50",
        "markets": "de, fr",
        "audience": "young_urban: 18-34\nestablished: 35-54",
        "budget_impressions": "20_000",
        "rounds": "2",
    }
    done = client.post("/briefs/form", data=good, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].startswith("/campaigns/cmp-1")
    assert backend.boards["cmp-1"].submitted_by == "mara"


def test_compliance_revokes_a_consent_and_the_personas_erasure_starts(env: tuple) -> None:
    client, backend, settings = env
    with Catalog(settings.resolved_database_url) as catalog:
        catalog.record_consent(anna_consent(), "cli")
    h = login(client, "mara")
    body = {"reason": "the subject withdrew", "ticket": "DSR-1"}
    assert client.post("/api/v1/consents/c-1/revoke", json=body, headers=h).status_code == 403
    h = login(client, "cora")
    assert [c["consent_id"] for c in client.get("/api/v1/consents").json()] == ["c-1"]
    done = client.post("/api/v1/consents/c-1/revoke", json=body, headers=h)
    assert done.status_code == 200, done.text
    assert done.json()["erasure_workflow_id"] == "erase-persona-anna"
    assert [(e.kind, e.target, e.requested_by, e.ticket) for e in backend.erasures] == [
        ("persona", "anna", "cora", "DSR-1")
    ]
    assert client.get("/api/v1/consents").json()[0]["revoked_at"] is not None
    assert client.post("/api/v1/consents/nope/revoke", json=body, headers=h).status_code == 404


def test_a_campaign_page_before_the_workflow_records_the_campaign(env: tuple) -> None:
    """Submitting redirects to the campaign page at once; until the workflow's first
    activity writes the catalog row, the page says it is starting and reloads itself."""
    client, _, settings = env
    with UserStore(settings.resolved_database_url) as users:
        mara = users.by_name("mara")
        assert mara is not None
        users.record_owner("cmp-not-yet", mara)
    login(client, "mara")
    page = client.get("/campaigns/cmp-not-yet")
    assert page.status_code == 200 and "Campaign starting" in page.text
    assert '<meta http-equiv="refresh" content="2">' in page.text
    # an id nobody submitted stays a 404 for compliance (and a 403 for a marketer)
    login(client, "cora")
    assert client.get("/campaigns/cmp-never").status_code == 404
    login(client, "mara")
    assert client.get("/campaigns/cmp-never").status_code == 403


def test_compliance_pages_link_the_temporal_web_ui(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    with UserStore(settings.resolved_database_url) as users:
        users.add_user("mara", PASSWORD, Role.marketer)
        users.add_user("cora", PASSWORD, Role.compliance)
    ui = "http://127.0.0.1:8233"
    app = create_app(
        settings, backend=FakeBackend(settings.resolved_database_url), temporal_ui_url=ui
    )
    with TestClient(app) as client:
        login(client, "cora")
        assert f'href="{ui}"' in client.get("/").text
        # a marketer has no business in workflow histories (briefs, every vote)
        login(client, "mara")
        assert f'href="{ui}"' not in client.get("/").text


def test_the_cost_of_a_campaign_per_1000_variants_at_the_deployments_prices(
    env: tuple,
) -> None:
    client, _, settings = env
    r = client.post(
        "/api/v1/briefs",
        json={**BRIEF, "spend_cap": {"amount": 10, "currency": "USD"}},
        headers=login(client, "mara"),
    )
    assert r.status_code == 201, r.text
    cid = r.json()["campaign_id"]
    with Catalog(settings.resolved_database_url) as catalog:
        catalog.upsert_variant(
            Variant(variant_id=f"{cid}-v", campaign_id=cid, round=0, seed=1, params=FaceParams())
        )
        catalog.record_usage(cid, "gpu_seconds", 1800.0, "a:1:1", detail="GPU wall time")
        catalog.record_usage(cid, "ad_spend", 12.5, "window:0")
    r = client.get(f"/api/v1/campaigns/{cid}/cost")
    assert r.status_code == 200, r.text
    cost = r.json()
    # the proposed variant has no image yet: per 1,000 variants is not defined
    assert cost["variants"] == 0 and cost["currency"] == settings.cost_currency == "USD"
    gpu = next(line for line in cost["lines"] if line["resource"] == "gpu_seconds")
    assert gpu["quantity"] == 1800 and gpu["measured_as"] == ["GPU wall time"]
    assert gpu["money"] == pytest.approx(0.5 * settings.price_gpu_hour)
    assert cost["ad_spend"] == 12.5 and cost["cap_reached"] is True
    # someone else's campaign stays hidden
    login(client, "otto")
    assert client.get(f"/api/v1/campaigns/{cid}/cost").status_code == 403
