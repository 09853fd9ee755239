"""Settings, declared once: name, default, help; each read from FACELOOP_<NAME>.

`faceloop config` prints the effective values and where each came from.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACELOOP_", extra="ignore", populate_by_name=True)

    home: Path = Field(
        default=Path(".faceloop"),
        description="data dir: Temporal SQLite file, catalog, Optuna study, assets, keys",
    )
    temporal_address: str | None = Field(
        default=None,
        description="host:port of a Temporal server to use; unset: start the embedded dev server",
    )
    temporal_namespace: str = Field(default="default", description="Temporal namespace")
    temporal_port: int = Field(default=7233, description="port of the embedded Temporal dev server")
    task_queue: str = Field(
        default="faceloop", description="task queue of orchestration + io activities"
    )
    gpu_task_queue: str = Field(
        default="faceloop-gpu", description="task queue of generation activities"
    )
    cpu_task_queue: str = Field(
        default="faceloop-cpu", description="task queue of guardrail activities"
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the catalog, audit log and Optuna study; "
        "unset: sqlite file in the data dir (use postgresql+psycopg://... at scale)",
    )
    asset_root: str | None = Field(
        default=None, description="asset store folder; unset: <home>/assets"
    )
    generator: str = Field(
        default="dcgan", description="generator backend name: dcgan, onnx, diffusers"
    )
    diffusers_model: str | None = Field(
        default=None,
        description="diffusers pipeline: a local folder or a hub id (SD 1.5 or SDXL) for "
        "FACELOOP_GENERATOR=diffusers",
    )
    diffusers_steps: int | None = Field(
        default=None, ge=1, description="denoising steps of the diffusers backend"
    )
    onnx_cache: Path | None = Field(
        default=None, description="where the ONNX export of the CPU generator is cached"
    )
    sandbox_port: int = Field(default=8765, description="port of the embedded sandbox ad platform")
    sandbox_url: str | None = Field(
        default=None, description="URL of a running sandbox platform; unset: start one"
    )
    sandbox_scenario: Path | None = Field(
        default=None,
        description="scenario YAML of the sandbox audience; unset: examples/scenarios/smooth.yaml",
    )
    optuna_sampler: str = Field(
        default="thompson",
        description="Optuna sampler: thompson (KPI model, docs/optimization.md), tpe, gp, "
        "cmaes, random",
    )
    playbook: Path | None = Field(
        default=None, description="governance playbook YAML; unset: the default"
    )
    identity_key: SecretStr | None = Field(
        default=None,
        description="Fernet key that encrypts the identity gallery at rest "
        "(`faceloop identity key` makes one); keep it in a secret store",
    )
    identity_gallery: Path | None = Field(
        default=None,
        description="encrypted identity gallery file; unset: <home>/identity/gallery.enc",
    )
    c2pa_cert: Path | None = Field(
        default=None,
        description="PEM chain (signing cert first) for C2PA manifests; unset: the local one "
        "made by `faceloop keys init` in <home>/keys",
    )
    c2pa_key: Path | None = Field(
        default=None, description="PEM private key of the C2PA signing cert; unset: <home>/keys"
    )
    c2pa_trust_anchors: Path | None = Field(
        default=None,
        description="PEM file of trusted root certs for `faceloop verify`; unset: the local CA",
    )
    audit_tsa_url: str | None = Field(
        default=None,
        description="RFC 3161 time-stamping authority URL that timestamps each signed audit "
        "checkpoint; unset: checkpoints are signed, not timestamped",
    )
    watermark_method: str = Field(
        default="dwtDctSvd", description="invisible watermark: dwtDctSvd, dwtDct or rivaGan"
    )

    llm_base_url: str | None = Field(
        default=None,
        description="base URL of an OpenAI-compatible API (vLLM, Ollama, llama.cpp server: "
        "http://host:port/v1); unset with a model set: api.openai.com",
    )
    llm_model: str | None = Field(
        default=None,
        description="model name for the planner and analyst; unset: the deterministic planner",
    )
    # the key is never printed: SecretStr keeps it out of repr, logs and `faceloop config`
    llm_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("FACELOOP_LLM_API_KEY", "OPENAI_API_KEY"),
        description="API key (FACELOOP_LLM_API_KEY, else OPENAI_API_KEY); local servers need none",
    )
    llm_max_attempts: int = Field(
        default=2, ge=1, le=5, description="LLM tries per planner node before the fallback"
    )
    llm_timeout_s: float = Field(default=60.0, gt=0, description="timeout of one LLM request")
    llm_plan_budget_s: float = Field(
        default=20.0,
        gt=0,
        description="wall-clock budget of the LLM calls of one plan; past it the "
        "deterministic planner writes the rest (keep below the plan activity's timeout)",
    )
    llm_max_tokens: int = Field(
        default=400, ge=32, le=4096, description="longest LLM reply, in tokens"
    )

    @property
    def llm_enabled(self) -> bool:
        return bool(self.llm_model)

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_home / 'faceloop.db'}"

    @property
    def resolved_asset_root(self) -> str:
        return self.asset_root or str(self.resolved_home / "assets")

    @property
    def resolved_sandbox_url(self) -> str:
        return self.sandbox_url or f"http://127.0.0.1:{self.sandbox_port}"

    def effective(self) -> list[tuple[str, str, str, str]]:
        """(name, value, source, help) for every setting, for `faceloop config`."""
        rows = []
        for name, field in type(self).model_fields.items():
            env = f"FACELOOP_{name.upper()}"
            source = "env" if env in os.environ else "default"
            rows.append((env, str(getattr(self, name)), source, field.description or ""))
        return rows


def get_settings() -> Settings:
    return Settings()
