"""Scenario files and the simulated audience's true rates (numbers, not just shapes)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from sandbox_helpers import SCENARIOS, make_scenario

from faceloop.connectors.sandbox_platform.scenario import (
    Scenario,
    ad_offsets,
    best_params,
    load_scenario,
    true_rates,
    worst_params,
)
from faceloop.errors import InputError
from faceloop.models import FaceParams, SearchSpace

BASE = FaceParams(expression="neutral")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- loading


@pytest.mark.parametrize("name", ["smooth", "segments"])
def test_example_scenarios_load(name: str) -> None:
    scenario = load_scenario(SCENARIOS / f"{name}.yaml")
    assert scenario.name == name


@pytest.mark.parametrize(
    ("body", "path", "words"),
    [
        (
            "effects:\n  ctr:\n    expression: {smiles: 0.2}\n",
            "effects.ctr.expression.smiles",
            "smile",
        ),
        (
            "effects:\n  cvr:\n    skin_tone: {center: 5, width: 0, weight: 0.1}\n",
            "effects.cvr.skin_tone.bump.width",
            "greater than 0",
        ),
        ("effects:\n  ctr:\n    skin_tone: {11: 0.1}\n", "effects.ctr.skin_tone.map.11", "10"),
        ("effects:\n  ctr:\n    skin_tone: 3\n", "effects.ctr.skin_tone", "bump"),
        (
            "segments:\n  - {name: a, share: 0.5}\n  - {name: b, share: 0.2}\n",
            "segments",
            "sum to 1.0",
        ),
        ("segments:\n  - {name: Bad Name}\n", "segments.0.name", "pattern"),
        ("fatigue: {half_life_impressions: -5}\n", "fatigue.half_life_impressions", "greater"),
        ("conversion_delay: {mean_days: 2}\n", "conversion_delay.mean_days", "not permitted"),
        ("drift:\n  - {from_window: -1, effects: {}}\n", "drift.0.from_window", "greater"),
        ("effects:\n  ctr:\n    lighting: {soft: 9}\n", "effects.ctr.lighting.soft", "less than"),
    ],
)
def test_bad_scenario_names_the_field_path(
    tmp_path: Path, body: str, path: str, words: str
) -> None:
    head = "name: t\nseed: 1\nbase_ctr: 0.02\nbase_cvr: 0.04\n"
    file = _write(tmp_path, head + body)
    with pytest.raises(InputError) as info:
        load_scenario(file)
    err = info.value
    assert err.source == str(file)
    assert any(p.startswith(f"{path}:") or p.startswith(f"{path}.") for p in err.problems), (
        err.problems
    )
    assert words in str(err)


def test_missing_required_fields_are_listed(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        load_scenario(_write(tmp_path, "name: t\nbase_ctr: 2\n"))
    problems = info.value.problems
    assert any(p.startswith("seed:") for p in problems)
    assert any(p.startswith("base_cvr:") for p in problems)
    assert any(p.startswith("base_ctr:") and "less than 1" in p for p in problems)


def test_drift_on_unknown_segment_is_refused(tmp_path: Path) -> None:
    text = (
        "name: t\nseed: 1\nbase_ctr: 0.02\nbase_cvr: 0.04\nsegments: [{name: a}]\n"
        "drift: [{from_window: 2, segment: b, effects: {}}]\n"
    )
    with pytest.raises(InputError, match=r"drift\.0\.segment: 'b' is not a scenario segment"):
        load_scenario(_write(tmp_path, text))


def test_missing_file_and_yaml_syntax_errors_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_scenario(tmp_path / "nope.yaml")
    with pytest.raises(InputError, match=r"not valid YAML at line 3, column 9"):
        load_scenario(_write(tmp_path, "name: t\nseed: [1\nbase_ctr: 0.1\n"))
    with pytest.raises(InputError, match="must be a mapping"):
        load_scenario(_write(tmp_path, "- just\n- a list\n"))


# --------------------------------------------------------------------------- true rates


def test_base_rates_with_no_effects() -> None:
    sc = make_scenario(effects={})
    assert true_rates(sc, BASE, "all", 0, 0) == pytest.approx((0.2, 0.3))


def test_effects_are_logit_additive() -> None:
    sc = make_scenario(
        effects={
            "ctr": {"expression": {"smile": 0.5}, "background": {"warm": 0.25}},
            "cvr": {"style": {"illustration": -1.0}},
        }
    )
    p = FaceParams(expression="smile", background="warm", style="illustration")
    ctr, cvr = true_rates(sc, p, "all", 0, 0)
    logit = math.log(0.2 / 0.8) + 0.75
    assert ctr == pytest.approx(1 / (1 + math.exp(-logit)))
    assert cvr == pytest.approx(1 / (1 + math.exp(-(math.log(0.3 / 0.7) - 1.0))))


def test_skin_tone_bump_peaks_at_center_and_map_looks_up() -> None:
    bump = make_scenario(effects={"ctr": {"skin_tone": {"center": 5, "width": 2, "weight": 0.4}}})
    ctrs = [true_rates(bump, FaceParams(skin_tone=t), "all", 0, 0)[0] for t in range(1, 11)]
    assert max(range(10), key=lambda i: ctrs[i]) == 4  # tone 5
    assert ctrs[3] == pytest.approx(ctrs[5])  # symmetric around the center
    table = make_scenario(effects={"ctr": {"skin_tone": {3: 0.5}}})
    assert true_rates(table, FaceParams(skin_tone=3), "all", 0, 0)[0] > 0.2
    assert true_rates(table, FaceParams(skin_tone=4), "all", 0, 0)[0] == pytest.approx(0.2)


def test_segments_add_effects_and_unknown_segments_use_global_only() -> None:
    sc = make_scenario(
        effects={"ctr": {"expression": {"smile": 0.5}}},
        segments=[
            {"name": "young", "share": 0.5, "effects": {"ctr": {"expression": {"smile": -1.0}}}},
            {"name": "old", "share": 0.5},
        ],
    )
    smile = FaceParams(expression="smile")
    glob = true_rates(sc, smile, "somebody_else", 0, 0)[0]
    assert glob == pytest.approx(true_rates(sc, smile, "old", 0, 0)[0])
    assert glob > 0.2
    assert true_rates(sc, smile, "young", 0, 0)[0] < 0.2


def test_fatigue_lowers_ctr_with_cumulative_impressions() -> None:
    sc = make_scenario(fatigue={"half_life_impressions": 1000, "floor": 0.5})
    p = FaceParams(expression="smile")
    fresh, cvr0 = true_rates(sc, p, "all", 0, 0)
    half, cvr1 = true_rates(sc, p, "all", 1000, 0)
    worn, _ = true_rates(sc, p, "all", 1_000_000, 0)
    # floor + (1 - floor) * 0.5 at one half-life; the floor once worn out
    assert half / fresh == pytest.approx(0.75)
    assert worn / fresh == pytest.approx(0.5)
    assert true_rates(sc, p, "all", 500, 0)[0] > half
    assert cvr0 == cvr1  # fatigue is about clicking, not about converting after a click
    assert true_rates(make_scenario(), p, "all", 10**6, 0)[0] == pytest.approx(fresh)


def test_drift_changes_effects_from_its_window_on() -> None:
    sc = make_scenario(
        segments=[{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}],
        drift=[
            {"from_window": 3, "effects": {"ctr": {"expression": {"smile": -0.5}}}},
            {"from_window": 5, "segment": "a", "effects": {"ctr": {"intercept": 1.0}}},
        ],
    )
    smile = FaceParams(expression="smile")
    before = true_rates(sc, smile, "a", 0, 2)[0]
    assert before == pytest.approx(true_rates(sc, smile, "a", 0, 0)[0])
    assert true_rates(sc, smile, "a", 0, 3)[0] == pytest.approx(0.2)  # 0.5 - 0.5
    assert true_rates(sc, smile, "b", 0, 6)[0] == pytest.approx(0.2)  # segment drift: a only
    assert true_rates(sc, smile, "a", 0, 6)[0] > before


def test_ad_noise_is_per_asset_and_reproducible() -> None:
    sc = make_scenario(noise={"ad_sd": 0.1})
    p = FaceParams()
    a1 = true_rates(sc, p, "all", 0, 0, asset_id="a1")
    assert a1 == true_rates(sc, p, "all", 0, 0, asset_id="a1")
    assert a1 != true_rates(sc, p, "all", 0, 0, asset_id="a2")
    assert true_rates(sc, p, "all", 0, 0) != a1  # without asset: the parameters' own rates
    offsets = [ad_offsets(sc, f"asset-{i}")[0] for i in range(400)]
    sd = (sum(o * o for o in offsets) / len(offsets)) ** 0.5
    assert 0.085 < sd < 0.115
    assert ad_offsets(make_scenario(), "a1") == (0.0, 0.0)


def test_true_rates_rejects_negative_inputs() -> None:
    with pytest.raises(ValueError, match="impressions_so_far"):
        true_rates(make_scenario(), BASE, "all", -1, 0)
    with pytest.raises(ValueError, match="window"):
        true_rates(make_scenario(), BASE, "all", 0, -1)


# --------------------------------------------------------------------------- optimum


def test_best_and_worst_params_agree_with_true_rates(smooth: Scenario) -> None:
    best, best_ctr = best_params(smooth)
    worst, worst_ctr = worst_params(smooth)
    assert true_rates(smooth, best, "all", 0, 0)[0] == pytest.approx(best_ctr)
    assert true_rates(smooth, worst, "all", 0, 0)[0] == pytest.approx(worst_ctr)
    assert (best.expression, best.background, best.skin_tone in (5, 6)) == ("smile", "warm", True)
    best_conv, value = best_params(smooth, kpi="conversions")
    ctr, cvr = true_rates(smooth, best_conv, "all", 0, 0)
    assert value == pytest.approx(ctr * cvr)
    # no single-field change beats the grid optimum
    for tone in range(1, 11):
        assert true_rates(smooth, best.model_copy(update={"skin_tone": tone}), "x", 0, 0)[0] <= (
            best_ctr + 1e-12
        )


def test_best_params_respects_the_search_space(smooth: Scenario) -> None:
    space = SearchSpace(expression=["serious", "neutral"], background=["grey", "office"])
    best, _ = best_params(smooth, space=space)
    assert best.expression == "neutral" and best.background == "office"


@pytest.mark.parametrize(
    ("name", "segment"),
    [("smooth", "all"), ("segments", "gen_z"), ("segments", "professionals")],
)
def test_example_magnitudes_are_realistic(name: str, segment: str) -> None:
    sc = load_scenario(SCENARIOS / f"{name}.yaml")
    best, best_ctr = best_params(sc, {segment: 1.0})
    _, worst_ctr = worst_params(sc, {segment: 1.0})
    assert 0.01 <= worst_ctr < best_ctr <= 0.04
    assert 1.5 <= best_ctr / worst_ctr <= 2.5
    cvr = true_rates(sc, best, segment, 0, 0)[1]
    assert 0.02 <= cvr <= 0.06


def test_segment_optima_differ_in_the_segments_example() -> None:
    sc = load_scenario(SCENARIOS / "segments.yaml")
    young, _ = best_params(sc, {"gen_z": 1.0})
    pros, _ = best_params(sc, {"professionals": 1.0})
    assert (young.expression, young.background, young.age_band) == ("laugh", "outdoor", "18-24")
    assert (pros.expression, pros.background, pros.age_band) == ("smile", "office", "35-44")
    # each segment's optimum does clearly worse in the other segment
    assert (
        true_rates(sc, young, "professionals", 0, 0)[0]
        < 0.8 * true_rates(sc, pros, "professionals", 0, 0)[0]
    )


def test_parameters_matter_reads_every_block_of_effects() -> None:
    """`flat` has no parameter effect anywhere; an effect in one segment, in a drift, on CVR
    alone or as a skin-tone bump is enough."""
    from faceloop.examples import example_path

    assert not load_scenario(example_path("scenarios", "flat.yaml")).parameters_matter()
    assert load_scenario(example_path("scenarios", "smooth.yaml")).parameters_matter()
    base = {"name": "x", "seed": 1, "base_ctr": 0.01, "base_cvr": 0.05}
    assert not Scenario.model_validate(base).parameters_matter()
    # an intercept shifts every face alike: no parameter matters
    assert not Scenario.model_validate(
        {**base, "effects": {"ctr": {"intercept": 0.3}}}
    ).parameters_matter()
    for extra in (
        {"effects": {"cvr": {"lighting": {"dramatic": -0.2}}}},
        {"effects": {"ctr": {"skin_tone": {"center": 5, "width": 2, "weight": 0.3}}}},
        {
            "segments": [
                {"name": "a", "share": 1.0, "effects": {"ctr": {"style": {"editorial": 0.1}}}}
            ]
        },
        {"drift": [{"from_window": 3, "effects": {"ctr": {"expression": {"smile": 0.2}}}}]},
    ):
        assert Scenario.model_validate({**base, **extra}).parameters_matter(), extra
    # a listed value with effect 0 does not
    zero = {"effects": {"ctr": {"expression": {"smile": 0.0}}}}
    assert not Scenario.model_validate({**base, **zero}).parameters_matter()
