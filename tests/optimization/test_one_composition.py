"""The workflow's activities and the bench run one composition: a change to a shared
function (here replaced by a spy) reaches the propose, deploy and learn activities on a real
catalog and every round of the bench alike."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from optuna.storages import InMemoryStorage

from faceloop.connectors.activities import ConnectorActivities, ProvenanceGate
from faceloop.connectors.sandbox_platform.scenario import load_scenario
from faceloop.examples import example_path
from faceloop.messages import DeployInput, LearnInput, ProposeInput
from faceloop.models import (
    AudienceSegment,
    Brief,
    CampaignConfig,
    Decision,
    KpiObservation,
)
from faceloop.optimization import allocation, facemodel, learn
from faceloop.optimization.learn import LearnPlan
from faceloop.optimization.simulate import BenchConfig, run_optuna_loop
from faceloop.optimization.study import Optimizer
from faceloop.storage.assets import AssetStore
from faceloop.storage.catalog import Catalog
from faceloop.workflows.campaign_activities import CampaignActivities

CID = "shared"
BRIEF = Brief(
    product="Lumen",
    message="m",
    audience=[AudienceSegment(name="young", share=0.5), AudienceSegment(name="old", share=0.5)],
    markets=["DE"],
    budget_impressions=100_000,
)
CONFIG = CampaignConfig(variants_per_round=4, incumbents=2)


class Spy:
    """Wraps a shared function: counts the calls and can change what it returns."""

    def __init__(
        self,
        real: Callable[..., Any],
        change: Callable[[Any], Any] = lambda out: out,
    ) -> None:
        self.real, self.change, self.calls = real, change, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.change(self.real(*args, **kwargs))


def _keep_none(plan: LearnPlan) -> LearnPlan:
    # a learn rule that keeps nothing: visible in the activity's output and in the bench's
    # next proposals (every place is free)
    return LearnPlan([], plan.keep + plan.retire, [], plan.posterior_mean, plan.p_best, None)


@pytest.fixture
def spies(monkeypatch: pytest.MonkeyPatch) -> dict[str, Spy]:
    out = {
        "round_models": Spy(facemodel.round_models),
        "allocate": Spy(allocation.allocate),
        "plan_learn": Spy(learn.plan_learn, _keep_none),
    }
    monkeypatch.setattr(facemodel, "round_models", out["round_models"])
    monkeypatch.setattr(allocation, "allocate", out["allocate"])
    monkeypatch.setattr(learn, "plan_learn", out["plan_learn"])
    return out


def test_the_activities_run_the_shared_functions(tmp_path: Path, spies: dict[str, Spy]) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.db'}")
    catalog.upsert_campaign(CID, BRIEF, CONFIG, "running")
    optimizer = Optimizer(InMemoryStorage(), "thompson")
    campaign = CampaignActivities(catalog, optimizer)
    gate = ProvenanceGate(AssetStore(tmp_path / "assets"), tmp_path / "ca.pem", "dwtDctSvd")
    connector = ConnectorActivities(
        lambda name: pytest.fail("no platform call here"), catalog, gate
    )

    proposed = campaign._propose(ProposeInput(campaign_id=CID, round=0, n=4, brief=BRIEF))
    assert spies["round_models"].calls == 1
    live = [
        v.model_copy(update={"decision": Decision.deploy, "ad_id": f"ad-{v.variant_id}"})
        for v in proposed.variants
    ]
    deploy = DeployInput(
        campaign_id=CID, round=0, brief=BRIEF, config=CONFIG, live=live, impressions=8_000
    )
    by_segment = connector._allocate(deploy, live)
    assert spies["allocate"].calls == 1 and spies["round_models"].calls == 2
    assert sum(sum(arms.values()) for arms in by_segment.values()) == 8_000
    catalog.record_observations(
        [
            KpiObservation(
                campaign_id=CID,
                variant_id=v.variant_id,
                ad_id=f"ad-{v.variant_id}",
                round=0,
                segment=segment,
                impressions=n,
                clicks=n // 50,
                conversions=0,
                observed_at=datetime.now(UTC),
            )
            for segment, arms in by_segment.items()
            for v in live
            if (n := arms.get(v.variant_id, 0))
        ]
    )
    learned = campaign._learn(
        LearnInput(
            campaign_id=CID,
            round=0,
            brief=BRIEF,
            config=CONFIG,
            round_variants=live,
            live=live,
        )
    )
    assert spies["plan_learn"].calls == 1 and spies["round_models"].calls == 3
    # the spy's plan is the one the activity acts on and records
    assert learned.incumbents == [] and len(learned.retire) == 4
    assert not any(v.live for v in catalog.variants(CID))
    (entry,) = [e for e in catalog.audit_entries(CID) if e.kind == "round.learned"]
    assert entry.payload["incumbents"] == []


def test_the_bench_runs_the_shared_functions(spies: dict[str, Spy]) -> None:
    scenario = load_scenario(example_path("scenarios") / "segments.yaml")
    cfg = BenchConfig(rounds=3, impressions_per_round=4_000, campaign=CONFIG)
    optimizer_trials: list[int] = []
    ask = Optimizer.ask

    def counting_ask(self: Optimizer, *args: Any, **kwargs: Any) -> Any:
        out = ask(self, *args, **kwargs)
        optimizer_trials.append(len(out))
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Optimizer, "ask", counting_ask)
        tally = run_optuna_loop(scenario, cfg, 0, "thompson", None, "faceloop")
    assert tally.impressions == 3 * 4_000
    # one evidence before the first round and one per learn step, one allocation and one
    # learn rule per round
    assert spies["round_models"].calls == 4
    assert spies["allocate"].calls == 3 and spies["plan_learn"].calls == 3
    # the spy's plan keeps nothing, so every round proposes a full set of variants
    assert optimizer_trials == [4, 4, 4]
