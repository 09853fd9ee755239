"""The production path's config: every validation error names its field and its fix, the
brief's fields override the deployment's, and submit refuses a config before it starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from faceloop.briefs import load_brief_and_config
from faceloop.errors import InputError
from faceloop.generation import (
    ControlNetConfig,
    GenerationConfig,
    dimensions,
    resolve_generation,
)
from faceloop.generators.production import campaign_generation, check_generation
from faceloop.models import Brief, CampaignConfig, Persona
from faceloop.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
REV = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A folder that passes the submit check's model test (model_index.json); nothing here
    loads weights from it."""
    d = tmp_path / "sd"
    d.mkdir()
    (d / "model_index.json").write_text("{}")
    return d


def brief(persona: bool = False) -> Brief:
    b, _ = load_brief_and_config(ROOT / "examples" / "brief.yaml")
    if persona:
        b = b.model_copy(update={"persona": Persona(persona_id="ada", consent_ref="c-1")})
    return b


@pytest.mark.parametrize(
    ("size", "ratio", "want"),
    [
        (1024, "1:1", (1024, 1024)),
        (1024, "4:5", (912, 1144)),
        (1024, "9:16", (768, 1368)),
        (1024, "1.91:1", (1416, 744)),
        (64, "9:16", (48, 88)),
    ],
)
def test_aspect_ratios_keep_the_area_in_multiples_of_8(
    size: int, ratio: str, want: tuple[int, int]
) -> None:
    w, h = dimensions(size, ratio)
    assert (w, h) == want and w % 8 == 0 and h % 8 == 0
    # the area is size^2 up to the rounding of each side to 8 px (at most 4 px each way)
    assert abs(w * h - size**2) <= 4 * (w + h) + 16


def test_an_unknown_aspect_ratio_is_refused_with_the_allowed_ones() -> None:
    with pytest.raises(ValidationError, match="aspect_ratio") as err:
        GenerationConfig(aspect_ratio="3:2")  # type: ignore[arg-type]
    assert "'1:1', '4:5', '9:16' or '1.91:1'" in str(err.value)
    with pytest.raises(ValueError, match="use one"):
        dimensions(256, "3:2")


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"model": "m", "pose_image": "a.png", "pose_template": "headshot-front"}, "exactly one"),
        ({"model": "m"}, "set exactly one of pose_image"),
        ({"model": "m", "pose_template": "cartwheel"}, "pose_template"),
        ({"model": "m", "pose_template": "headshot-front", "scale": 3}, "scale"),
    ],
)
def test_controlnet_pose_errors(data: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        ControlNetConfig.model_validate(data)


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({"backend": "Bad Name"}, "backend"),
        ({"steps": 0}, "steps"),
        ({"revision": "main"}, "revision"),
        ({"loras": [{"source": "a.safetensors", "weight": 5}]}, "loras.0.weight"),
        ({"loras": [{"source": "a.safetensors", "name": "Has Space"}]}, "loras.0.name"),
        ({"persona_weight": -1}, "persona_weight"),
        ({"modle": "x"}, "modle"),  # a misspelt field is an error, not ignored
    ],
)
def test_field_errors_carry_their_path(data: dict[str, Any], loc: str) -> None:
    with pytest.raises(ValidationError) as err:
        GenerationConfig.model_validate(data)
    assert loc in {".".join(str(p) for p in e["loc"]) for e in err.value.errors()}


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        (
            {"backend": "dcgan", "aspect_ratio": "4:5"},
            "aspect_ratio: the dcgan backend makes 1:1 images only, not 4:5; set "
            "aspect_ratio: '1:1' or backend: diffusers",
        ),
        ({"backend": "onnx", "aspect_ratio": "9:16"}, "aspect_ratio: the onnx backend"),
        (
            {"backend": "dcgan", "loras": [{"source": "MODEL/x.safetensors"}]},
            "loras: the dcgan backend cannot load LoRA adapters; remove them or set backend",
        ),
        (
            {
                "backend": "dcgan",
                "controlnet": {"model": "MODEL", "pose_template": "headshot-front"},
            },
            "controlnet: the dcgan backend has no ControlNet",
        ),
        ({"backend": "dcgan", "model": "MODEL"}, "model: the dcgan backend has its own"),
        ({"backend": "dcgan", "steps": 4}, "steps: the dcgan backend has its own"),
        ({"backend": "diffusers"}, "model: the diffusers backend needs a model"),
        (
            {"backend": "diffusers", "model": "stabilityai/stable-diffusion-xl-base-1.0"},
            "revision: hub model 'stabilityai/stable-diffusion-xl-base-1.0' needs a pinned",
        ),
        (
            {"backend": "diffusers", "model": "MODEL", "loras": [{"source": "acme/brand-lora"}]},
            "loras.0.revision: hub LoRA 'acme/brand-lora' needs a pinned revision",
        ),
        (
            {
                "backend": "diffusers",
                "model": "MODEL",
                "controlnet": {"model": "acme/openpose", "pose_template": "headshot-front"},
            },
            "controlnet.revision: hub ControlNet 'acme/openpose' needs a pinned revision",
        ),
        (
            {
                "backend": "diffusers",
                "model": "MODEL",
                "loras": [
                    {"source": "acme/a", "name": "same", "revision": REV},
                    {"source": "acme/b", "name": "same", "revision": REV},
                ],
            },
            "loras.1.name: 'same' is used by more than one LoRA",
        ),
        ({"backend": "nope"}, "backend: unknown generator 'nope'; use one of dcgan, onnx"),
        (
            {"backend": "diffusers", "model": "MISSING"},
            "is not a diffusers pipeline folder (no model_index.json)",
        ),
        (
            {
                "backend": "diffusers",
                "model": "MODEL",
                "loras": [{"source": "MISSING/l.safetensors"}],
            },
            "loras.0.source: ",
        ),
        (
            {
                "backend": "diffusers",
                "model": "MODEL",
                "controlnet": {"model": "MISSING", "pose_template": "headshot-front"},
            },
            "controlnet.model: ",
        ),
        (
            {
                "backend": "diffusers",
                "model": "MODEL",
                "controlnet": {"model": "acme/cn", "revision": REV, "pose_image": "MISSING/p.png"},
            },
            "controlnet.pose_image: ",
        ),
    ],
)
def test_each_config_problem_names_field_and_fix(
    config: dict[str, Any], needle: str, model_dir: Path, tmp_path: Path
) -> None:
    text = yaml.safe_dump(config).replace("MODEL", str(model_dir))
    text = text.replace("MISSING", str(tmp_path / "missing"))
    problems = check_generation(GenerationConfig.model_validate(yaml.safe_load(text)))
    assert any(needle in p for p in problems), problems


def test_a_persona_campaign_needs_a_backend_that_loads_adapters(model_dir: Path) -> None:
    problems = check_generation(GenerationConfig(backend="dcgan"), persona=True)
    assert problems == [
        "backend: a persona campaign loads the persona's LoRA adapter, which the dcgan backend "
        "cannot; set backend: diffusers (with a model) or drop brief.persona"
    ]
    fine = GenerationConfig(backend="diffusers", model=str(model_dir))
    assert check_generation(fine, persona=True) == []


def test_the_brief_overrides_the_settings_field_by_field(model_dir: Path) -> None:
    default = GenerationConfig(backend="diffusers", model=str(model_dir), steps=30)
    shape_only = resolve_generation(default, GenerationConfig(aspect_ratio="4:5"))
    assert (shape_only.model, shape_only.steps, shape_only.shape) == (str(model_dir), 30, "4:5")
    # another backend starts from that backend's defaults: the deployment's model is not its
    other = resolve_generation(default, GenerationConfig(backend="dcgan"))
    assert other.model is None and other.steps is None and check_generation(other) == []
    assert resolve_generation(default, None) == default


def test_submit_refuses_a_bad_config_naming_the_brief_field(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    config = CampaignConfig(generation=GenerationConfig(aspect_ratio="9:16"))
    with pytest.raises(InputError) as err:
        campaign_generation(settings, brief(), config)
    assert err.value.problems == [
        "campaign.generation.aspect_ratio: the dcgan backend makes 1:1 images only, not "
        "9:16; set aspect_ratio: '1:1' or backend: diffusers"
    ]
    assert "nothing was started" in str(err.value)
    with pytest.raises(InputError, match=r"campaign.generation.backend: a persona campaign"):
        campaign_generation(settings, brief(persona=True), CampaignConfig())


def test_submit_stores_the_resolved_config(tmp_path: Path, model_dir: Path) -> None:
    settings = Settings(home=tmp_path, generator="diffusers", diffusers_model=str(model_dir))
    out = campaign_generation(
        settings, brief(), CampaignConfig(generation=GenerationConfig(aspect_ratio="1.91:1"))
    )
    assert out.generation == GenerationConfig(
        backend="diffusers", model=str(model_dir), aspect_ratio="1.91:1"
    )
    # the deployment default alone (no generation block) is resolved and stored too
    plain = campaign_generation(Settings(home=tmp_path), brief(), CampaignConfig())
    assert plain.generation == GenerationConfig(backend="dcgan")


def test_the_settings_file_sets_the_default(tmp_path: Path, model_dir: Path) -> None:
    f = tmp_path / "gen.yaml"
    f.write_text(f"backend: diffusers\nmodel: {model_dir}\naspect_ratio: '4:5'\nsteps: 12\n")
    settings = Settings(home=tmp_path, generation_file=f)
    assert settings.default_generation() == GenerationConfig(
        backend="diffusers", model=str(model_dir), aspect_ratio="4:5", steps=12
    )
    f.write_text("backend: diffusers\nloras: [{source: x, wieght: 1}]\n")
    with pytest.raises(InputError, match=r"loras.0.wieght: Extra inputs are not permitted"):
        settings.default_generation()


def test_a_brief_file_carries_the_block_and_its_errors_name_the_path(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "examples" / "brief.yaml").read_text())
    data.setdefault("campaign", {})["generation"] = {"aspect_ratio": "4:5", "steps": 0}
    path = tmp_path / "brief.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError) as err:
        load_brief_and_config(path)
    assert any(p.startswith("campaign.generation.steps: ") for p in err.value.problems)
    data["campaign"]["generation"]["steps"] = 20
    path.write_text(yaml.safe_dump(data))
    _, config = load_brief_and_config(path)
    assert config.generation == GenerationConfig(aspect_ratio="4:5", steps=20)


def test_the_playbook_can_restrict_backends_and_models(tmp_path: Path, model_dir: Path) -> None:
    from faceloop.playbooks.schema import GenerationPolicy, load_playbook

    playbook = load_playbook("default").model_copy(
        update={"generation": GenerationPolicy(backends=["diffusers"], models=["/models/ok"])}
    )
    settings = Settings(home=tmp_path)
    with pytest.raises(InputError) as err:
        campaign_generation(settings, brief(), CampaignConfig(), playbook)
    assert err.value.problems == [
        "campaign.generation.backend: 'dcgan' is not allowed by the playbook "
        "(generation.backends: diffusers); pick one of them or use another playbook"
    ]
    other = CampaignConfig(generation=GenerationConfig(backend="diffusers", model=str(model_dir)))
    with pytest.raises(InputError, match=r"campaign\.generation\.model: '.*' is not allowed"):
        campaign_generation(settings, brief(), other, playbook)
    # no policy (the default playbooks): anything the workers can load
    assert campaign_generation(settings, brief(), other, load_playbook("default")).generation
