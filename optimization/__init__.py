"""The learn stage: the campaign's Optuna study and samplers, the KPI model, traffic
allocation, the learn rule, and the bench that runs the same composition.

One home per concern, each module importing only those below it:

    seeds       stable_seed: the seeds every draw derives from
    evidence    observations -> per-segment arm counts (delay, memory), fatigue windows
    facemodel   the KPI model, the memory choice, campaign_evidence (what a round reads)
    allocation  posterior summaries, Thompson allocation of the next window
    samplers    the Optuna samplers (thompson on the KPI model, tpe, gp, cmaes, random)
    study       Optimizer: one Optuna study per campaign (ask, tell, refresh, Pareto front)
    learn       plan_learn and learn_round: tell, keep/retire/stop/refresh, the winner

    simulate    the bench: a simulated audience, and every round through campaign_evidence,
                allocate_window and learn_round, as the workflow's activities run them
    report      regret and Pareto sections of the campaign report (draws with matplotlib)
    cli         `faceloop bench optimize`

The names below are imported on first use, so importing this package (the CLI registers
`faceloop.optimization.cli` at start-up) loads neither Optuna nor matplotlib.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faceloop.optimization.allocation import (
        allocate,
        allocate_window,
        p_best,
        posterior_mean,
        split_impressions,
    )
    from faceloop.optimization.evidence import (
        ALL,
        ArmStats,
        Evidence,
        arms_from_observations,
        segment_shares,
        shown_faces,
        successes,
    )
    from faceloop.optimization.facemodel import CampaignEvidence, FaceModel, campaign_evidence
    from faceloop.optimization.learn import (
        LearnPlan,
        learn_round,
        objective_values,
        plan_learn,
        settled_segments,
        trial_value,
    )
    from faceloop.optimization.samplers import SAMPLERS
    from faceloop.optimization.seeds import stable_seed
    from faceloop.optimization.study import OBJECTIVES, Optimizer, ParetoPoint, Proposal

_HOME = {
    "allocate": "allocation",
    "allocate_window": "allocation",
    "p_best": "allocation",
    "posterior_mean": "allocation",
    "split_impressions": "allocation",
    "ALL": "evidence",
    "ArmStats": "evidence",
    "Evidence": "evidence",
    "arms_from_observations": "evidence",
    "segment_shares": "evidence",
    "shown_faces": "evidence",
    "successes": "evidence",
    "CampaignEvidence": "facemodel",
    "FaceModel": "facemodel",
    "campaign_evidence": "facemodel",
    "LearnPlan": "learn",
    "learn_round": "learn",
    "objective_values": "learn",
    "plan_learn": "learn",
    "settled_segments": "learn",
    "trial_value": "learn",
    "SAMPLERS": "samplers",
    "stable_seed": "seeds",
    "OBJECTIVES": "study",
    "Optimizer": "study",
    "ParetoPoint": "study",
    "Proposal": "study",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME])


__all__ = [
    "ALL",
    "OBJECTIVES",
    "SAMPLERS",
    "ArmStats",
    "CampaignEvidence",
    "Evidence",
    "FaceModel",
    "LearnPlan",
    "Optimizer",
    "ParetoPoint",
    "Proposal",
    "allocate",
    "allocate_window",
    "arms_from_observations",
    "campaign_evidence",
    "learn_round",
    "objective_values",
    "p_best",
    "plan_learn",
    "posterior_mean",
    "segment_shares",
    "settled_segments",
    "shown_faces",
    "split_impressions",
    "stable_seed",
    "successes",
    "trial_value",
]
