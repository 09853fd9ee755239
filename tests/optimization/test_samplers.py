"""The samplers (`faceloop.optimization.samplers`): every Optuna sampler asks and tells, the
thompson sampler proposes from the KPI model, and failed faces steer every sampler away."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from optuna.storages import InMemoryStorage
from optuna.trial import TrialState

from faceloop.models import FaceParams, SearchSpace
from faceloop.optimization.evidence import ALL, ArmStats
from faceloop.optimization.facemodel import segment_models
from faceloop.optimization.study import Optimizer


def _truth(p: FaceParams) -> float:
    """A small additive truth: smile and warm are best."""
    x = -3.9 + {"smile": 0.3, "serious": -0.3}.get(p.expression, 0.0)
    x += {"warm": 0.2, "grey": -0.2}.get(p.background, 0.0)
    return 1 / (1 + np.exp(-x))


# GP fits a model per ask (about 10 s each on 2 cores): slow
@pytest.mark.parametrize(
    "sampler", ["tpe", pytest.param("gp", marks=pytest.mark.slow), "cmaes", "random"]
)
def test_every_sampler_asks_and_tells_across_rounds(tmp_path: Path, sampler: str) -> None:
    opt = Optimizer(f"sqlite:///{tmp_path / 'o.db'}", sampler)
    space = SearchSpace(skin_tone={"low": 3, "high": 8})  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    for rnd in range(3):
        for p in opt.ask("c", rnd, 4, space):
            assert space.contains(p.params)
            opt.tell("c", p.trial_number, float(rng.uniform()))
    assert [t.state for t in opt.trials("c")] == [TrialState.COMPLETE] * 12


def test_failed_variants_steer_the_sampler_away(tmp_path: Path) -> None:
    """Blocked faces (here: every 'serious' one) are told FAIL; TPE then rarely proposes
    them, while random keeps proposing them at their prior rate (1 in 5)."""
    space = SearchSpace()

    def run(sampler: str) -> float:
        opt = Optimizer(f"sqlite:///{tmp_path / f'{sampler}.db'}", sampler)
        late = []
        for rnd in range(10):
            for p in opt.ask("c", rnd, 6, space):
                blocked = p.params.expression == "serious"
                value = None if blocked else 0.02 + 0.01 * (p.params.expression == "smile")
                opt.tell(
                    "c", p.trial_number, value, TrialState.PRUNED if rnd % 2 else TrialState.FAIL
                )
                if rnd >= 5:
                    late.append(blocked)
        states = {t.state for t in opt.trials("c")}
        assert TrialState.FAIL in states or TrialState.PRUNED in states
        return float(np.mean(late))

    assert run("tpe") < 0.1 < run("random")


def test_thompson_sampler_proposes_in_space_without_duplicates_and_learns() -> None:
    space = SearchSpace(expression=["smile", "neutral", "serious"], background=["warm", "grey"])
    opt = Optimizer(InMemoryStorage(), "thompson")
    first = opt.ask("c", 0, 6, space)  # no data yet: prior draws, i.e. random faces
    assert all(space.contains(p.params) for p in first)
    assert len({p.params for p in first}) == 6
    # after 3 rounds of data the model's proposals concentrate on smile
    rng = np.random.default_rng(0)
    arms = []
    for props in [first]:
        for p in props:
            n = 20_000
            arms.append(
                ArmStats(f"v{p.trial_number}", n, rng.binomial(n, _truth(p.params)), p.params)
            )
    for rnd in (1, 2, 3):
        models = segment_models(space, {ALL: arms})
        live = [p.params for p in first[:2]]
        props = opt.ask("c", rnd, 6, space, models=models, avoid=live)
        assert not {p.params for p in props} & set(live)
        for p in props:
            arms.append(
                ArmStats(
                    f"v{p.trial_number}", 20_000, rng.binomial(20_000, _truth(p.params)), p.params
                )
            )
    late = [a.params.expression for a in arms[-6:] if a.params is not None]
    assert late.count("smile") >= 4


def test_thompson_sampler_steers_away_from_blocked_faces() -> None:
    """As TPE does (test above): every 'serious' face is told FAIL; the penalty drawn from
    Beta(fails, completes) keeps it out of later rounds."""
    space = SearchSpace()
    opt = Optimizer(InMemoryStorage(), "thompson")
    late = []
    for rnd in range(10):
        for p in opt.ask("c", rnd, 6, space):
            blocked = p.params.expression == "serious"
            opt.tell("c", p.trial_number, None if blocked else 0.02)
            if rnd >= 5:
                late.append(blocked)
    assert float(np.mean(late)) < 0.1
