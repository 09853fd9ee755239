"""The campaign's Optuna study (`faceloop.optimization.study`): ask, tell, seeds, refreshes,
segment targets, objectives, and resuming after a worker restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.storages import InMemoryStorage
from optuna.trial import TrialState

from faceloop.errors import FaceloopError
from faceloop.models import FaceParams, SearchSpace
from faceloop.optimization.seeds import stable_seed
from faceloop.optimization.study import Optimizer


def test_ask_is_idempotent_per_round_and_respects_space(tmp_path: Path) -> None:
    opt = Optimizer(f"sqlite:///{tmp_path / 'o.db'}")
    space = SearchSpace(expression=["smile", "neutral"], skin_tone={"low": 4, "high": 6})  # type: ignore[arg-type]
    first = opt.ask("c1", 0, 4, space)
    again = opt.ask("c1", 0, 4, space)  # a retried activity
    assert [p.trial_number for p in first] == [p.trial_number for p in again]
    assert len(opt.trials("c1")) == 4
    assert all(space.contains(p.params) for p in first)
    # the study lives in the database: a new Optimizer (a restarted worker) sees it
    opt2 = Optimizer(f"sqlite:///{tmp_path / 'o.db'}")
    assert len(opt2.trials("c1")) == 4
    nxt = opt2.ask("c1", 1, 2, space)
    assert {p.trial_number for p in nxt} == {4, 5}


def test_rounds_do_not_replay_the_same_proposals(tmp_path: Path) -> None:
    opt = Optimizer(f"sqlite:///{tmp_path / 'o.db'}")
    r0 = [p.params for p in opt.ask("c", 0, 6, SearchSpace())]
    r1 = [p.params for p in opt.ask("c", 1, 6, SearchSpace())]
    assert len(set(r0) | set(r1)) == 12


def test_tell_values_and_failures(tmp_path: Path) -> None:
    opt = Optimizer(f"sqlite:///{tmp_path / 'o.db'}")
    props = opt.ask("c", 0, 3, SearchSpace())
    assert opt.tell("c", props[0].trial_number, 0.02)
    assert opt.tell("c", props[1].trial_number, None)
    assert not opt.tell("c", props[0].trial_number, 0.5)  # told once only
    states = [t.state for t in opt.trials("c")]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING]
    assert opt.trials("c")[0].value == pytest.approx(0.02)


def test_stable_seed_is_stable() -> None:
    assert stable_seed("c", 1) == stable_seed("c", 1) != stable_seed("c", 2)
    assert FaceParams().key() == FaceParams().key()


def test_unknown_sampler_and_objective_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(FaceloopError, match="FACELOOP_OPTUNA_SAMPLER"):
        Optimizer(f"sqlite:///{tmp_path / 'o.db'}", "nope")
    with pytest.raises(FaceloopError, match="objectives"):
        Optimizer(f"sqlite:///{tmp_path / 'o.db'}", objectives=("ctr", "roas"))
    with pytest.raises(FaceloopError, match="one objective"):
        Optimizer(f"sqlite:///{tmp_path / 'o.db'}", "cmaes", ("ctr", "cpa")).study("c")


def test_human_seeds_are_asked_first_once(tmp_path: Path) -> None:
    opt = Optimizer(f"sqlite:///{tmp_path / 'o.db'}")
    seed = FaceParams(expression="laugh", background="warm", skin_tone=7)
    assert opt.enqueue("c", [seed, seed], SearchSpace()) == 1
    assert opt.enqueue("c", [seed], SearchSpace()) == 0  # a retried activity
    props = opt.ask("c", 0, 3, SearchSpace())
    assert props[0].params == seed and props[1].params != seed
    narrow = SearchSpace(expression=["smile"])
    with pytest.raises(FaceloopError, match="search_space"):
        opt.enqueue("c", [seed], narrow)


def test_multi_objective_pareto_front(tmp_path: Path) -> None:
    opt = Optimizer(f"sqlite:///{tmp_path / 'o.db'}", "tpe", objectives=("ctr", "cpa"))
    props = opt.ask("c", 0, 4, SearchSpace())
    values = [(0.03, 900.0), (0.02, 500.0), (0.01, 1000.0), (0.025, 700.0)]
    for p, v in zip(props, values, strict=True):
        opt.tell("c", p.trial_number, v)
    with pytest.raises(ValueError, match="values"):
        opt.tell("c", opt.ask("c", 1, 1, SearchSpace())[0].trial_number, 0.03)
    front = opt.pareto_front("c")
    # (0.01, 1000) is dominated by everything; the rest trade CTR against CPA
    assert [pt.values for pt in front] == [
        {"ctr": 0.03, "cpa": 900.0},
        {"ctr": 0.025, "cpa": 700.0},
        {"ctr": 0.02, "cpa": 500.0},
    ]
    assert front[0].trial_number == props[0].trial_number


def test_resume_after_a_worker_restart_keeps_the_study(tmp_path: Path) -> None:
    """A worker dies after round 1 was asked but before it was told; a new worker (a new
    Optimizer on the same database) gets the same round-1 trials back, tells them, and the
    sampler continues from all 12 trials."""
    url = f"sqlite:///{tmp_path / 'o.db'}"
    space = SearchSpace()
    first = Optimizer(url)
    for p in first.ask("c", 0, 6, space):
        first.tell("c", p.trial_number, 0.02)
    asked = first.ask("c", 1, 6, space)
    del first
    second = Optimizer(url)
    again = second.ask("c", 1, 6, space)
    assert [(p.trial_number, p.params) for p in again] == [
        (p.trial_number, p.params) for p in asked
    ]
    for p in again:
        assert second.tell("c", p.trial_number, 0.03)
    trials = second.trials("c")
    assert len(trials) == 12 and all(t.state == TrialState.COMPLETE for t in trials)
    assert second.study("c").best_value == pytest.approx(0.03)
    assert {p.trial_number for p in second.ask("c", 2, 2, space)} == {12, 13}


def test_ask_targets_segments_by_share_and_is_idempotent() -> None:
    opt = Optimizer(InMemoryStorage(), "thompson")
    space = SearchSpace()
    props = opt.ask("c", 0, 8, space, segments={"young": 0.75, "old": 0.25})
    assert [p.segment for p in props].count("young") == 6
    assert [p.segment for p in props].count("old") == 2
    again = opt.ask("c", 0, 8, space, segments={"young": 0.75, "old": 0.25})
    assert [(p.trial_number, p.segment) for p in again] == [
        (p.trial_number, p.segment) for p in props
    ]
    # equal shares alternate; the segment is stored with the trial
    even = opt.ask("c", 1, 4, space, segments={"a": 0.5, "b": 0.5})
    assert sorted(str(p.segment) for p in even) == ["a", "a", "b", "b"]
    stored = {
        t.number: t.user_attrs["segment"] for t in opt.trials("c") if t.user_attrs["round"] == 1
    }
    assert stored == {p.trial_number: p.segment for p in even}
    # without segments (or with one) nothing is targeted
    assert {p.segment for p in opt.ask("c", 2, 2, space, segments={"all": 1.0})} == {None}


def test_a_refresh_is_a_new_trial_with_the_same_face_asked_first() -> None:
    opt = Optimizer(InMemoryStorage(), "thompson")
    space = SearchSpace()
    first = opt.ask("c", 0, 3, space, segments={"a": 0.5, "b": 0.5})
    worn = first[1]
    assert opt.enqueue_refresh("c", "c-r0-t1", worn.params, worn.segment)
    assert not opt.enqueue_refresh("c", "c-r0-t1", worn.params, worn.segment)  # retried
    nxt = opt.ask("c", 1, 3, space, segments={"a": 0.5, "b": 0.5})
    assert nxt[0].params == worn.params and nxt[0].trial_number not in {
        p.trial_number for p in first
    }
    assert nxt[0].refresh_of == "c-r0-t1" and nxt[0].segment == worn.segment
    assert nxt[1].refresh_of is None


def test_concurrent_calls_of_one_campaign_do_not_swap_samplers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two activities of one campaign at once (a round's propose beside the previous round's
    analysis, which reads the study): each gets a Study object of its own, so one call's
    sampler is never replaced in the middle of the other's ask. Before, the cached Study was
    shared and the analysis' plain sampler made a running ask fail ("CategoricalDistribution
    does not support dynamic value space"). The analysis is made to arrive at the worst
    moment: inside ask, after its sampler was chosen."""
    import faceloop.optimization.study as study_mod

    opt = Optimizer(f"sqlite:///{tmp_path / 'optuna.db'}")
    a, b = opt.study("c1", 0), opt.study("c1", 0)
    assert a is not b and a.study_name == b.study_name == "c1"
    a.sampler = None  # type: ignore[assignment]
    assert b.sampler is not None

    real = study_mod.build_sampler

    def build(*args: object, **kwargs: object) -> object:
        sampler = real(*args, **kwargs)  # type: ignore[arg-type]
        infer = sampler.infer_relative_search_space

        def interleaved(study: object, trial: object) -> object:
            opt.study("c1", 1).get_trials(deepcopy=False)  # the analysis, meanwhile
            return infer(study, trial)  # type: ignore[arg-type]

        sampler.infer_relative_search_space = interleaved  # type: ignore[method-assign]
        return sampler

    monkeypatch.setattr(study_mod, "build_sampler", build)
    space = SearchSpace(expression=["smile", "neutral"])  # type: ignore[arg-type]
    for r in range(3):
        assert len(opt.ask("c1", r, 4, space)) == 4
