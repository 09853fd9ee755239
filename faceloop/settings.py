"""Settings, declared once: name, default, help; each read from FACELOOP_<NAME>.

`faceloop config` prints the effective values and where each came from.

The Temporal connection (address, namespace, TLS / mTLS, API key) also honours Temporal's
own environment configuration (temporalio.envconfig: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
TEMPORAL_API_KEY, TEMPORAL_TLS_*, TEMPORAL_PROFILE and its TOML file). Precedence, per
field: an explicit FACELOOP_* setting, then Temporal's env config, then the default.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from faceloop.errors import InputError
from faceloop.generation import GenerationConfig, resolve_generation

# Temporal's env config field -> the setting it fills when that setting is not set explicitly
_TLS_FILES = {
    "temporal_tls_ca": ("server_root_ca_cert", "TEMPORAL_TLS_SERVER_CA_CERT_PATH"),
    "temporal_tls_cert": ("client_cert", "TEMPORAL_TLS_CLIENT_CERT_PATH"),
    "temporal_tls_key": ("client_private_key", "TEMPORAL_TLS_CLIENT_KEY_PATH"),
}


class S3Settings(BaseModel):
    """Endpoint and credentials of an S3-compatible asset store (FACELOOP_S3__<NAME>), used
    when FACELOOP_ASSET_URL is s3://bucket/prefix (docs/storage.md)."""

    model_config = ConfigDict(extra="forbid")

    endpoint_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="endpoint of an S3-compatible server (MinIO, R2, ...); unset: AWS S3",
    )
    region: str | None = Field(default=None, description="region of the bucket; unset: the SDK's")
    # never printed: SecretStr keeps them out of repr, logs, `faceloop config` and payloads;
    # both unset: the AWS SDK's own chain (AWS_* variables, ~/.aws, an instance role)
    access_key_id: SecretStr | None = Field(default=None, description="access key id")
    secret_access_key: SecretStr | None = Field(default=None, description="secret access key")

    @model_validator(mode="after")
    def _both_keys(self) -> S3Settings:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError(
                "FACELOOP_S3__ACCESS_KEY_ID and FACELOOP_S3__SECRET_ACCESS_KEY go together: "
                "set both, or neither to use the AWS SDK's credential chain"
            )
        return self

    def storage_options(self) -> dict[str, Any]:
        """s3fs's options; they hold the secret, so they are never logged."""
        options: dict[str, Any] = {}
        if self.access_key_id is not None and self.secret_access_key is not None:
            options["key"] = self.access_key_id.get_secret_value()
            options["secret"] = self.secret_access_key.get_secret_value()
        if self.endpoint_url:
            options["endpoint_url"] = self.endpoint_url
        if self.region:
            options["client_kwargs"] = {"region_name": self.region}
        return options


class GoogleAdsSettings(BaseModel):
    """The google_ads connector's account and credentials (FACELOOP_GOOGLE_ADS__<NAME>)."""

    model_config = ConfigDict(extra="forbid")

    api_version: str = Field(
        default="v26", pattern=r"^v\d+$", description="Google Ads API version in the REST path"
    )
    base_url: str = Field(
        default="https://googleads.googleapis.com",
        description="REST endpoint; tests point it at the FAKE (faceloop.connectors.fakes)",
    )
    customer_id: str | None = Field(
        default=None, pattern=r"^\d{10}$", description="10-digit account id, without dashes"
    )
    login_customer_id: str | None = Field(
        default=None, pattern=r"^\d{10}$", description="manager account id, when one is used"
    )
    # never printed: SecretStr keeps them out of repr, logs, `faceloop config` and payloads
    developer_token: SecretStr | None = Field(default=None, description="developer token")
    access_token: SecretStr | None = Field(
        default=None, description="OAuth 2.0 access token (refreshed outside faceloop)"
    )
    final_url: str = Field(
        default="https://example.com", description="landing page of every ad (finalUrls)"
    )
    business_name: str = Field(
        default="faceloop", max_length=25, description="advertiser name shown on the ads"
    )
    target_cpm_micros: int = Field(
        default=2_000_000, gt=0, description="what 1,000 impressions cost: impressions -> budget"
    )
    window_days: int = Field(default=1, ge=1, description="reporting days per KPI window")
    validate_only: bool = Field(
        default=False, description="dry run: every mutate is only validated, nothing created"
    )


class TikTokSettings(BaseModel):
    """The tiktok connector's account and credentials (FACELOOP_TIKTOK__<NAME>)."""

    model_config = ConfigDict(extra="forbid")

    api_version: str = Field(
        default="v1.3", pattern=r"^v\d+\.\d+$", description="Business API version in the path"
    )
    base_url: str = Field(
        default="https://business-api.tiktok.com",
        description="API endpoint; tests point it at the FAKE (faceloop.connectors.fakes)",
    )
    advertiser_id: str | None = Field(
        default=None, pattern=r"^\d{1,20}$", description="advertiser account id"
    )
    access_token: SecretStr | None = Field(
        default=None, description="long-term access token (Access-Token header)"
    )
    landing_page_url: str = Field(default="https://example.com", description="ad landing page")
    display_name: str = Field(default="faceloop", description="advertiser name on the ads")
    target_cpm: float = Field(
        default=2.0, gt=0, description="what 1,000 impressions cost, in account currency"
    )
    window_days: int = Field(default=1, ge=1, description="reporting days per KPI window")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FACELOOP_",
        extra="ignore",
        populate_by_name=True,
        # nested sections: FACELOOP_GOOGLE_ADS__CUSTOMER_ID fills google_ads.customer_id
        env_nested_delimiter="__",
    )

    home: Path = Field(
        default=Path(".faceloop"),
        description="data dir: Temporal SQLite file, catalog, Optuna study, assets, keys",
    )
    temporal_address: str | None = Field(
        default=None,
        description="host:port of a Temporal server to use; unset: start the embedded dev server",
    )
    temporal_namespace: str = Field(default="default", description="Temporal namespace")
    temporal_tls: bool | None = Field(
        default=None,
        description="connect to Temporal over TLS; unset: on when an API key, CA, client "
        "cert or server name is set (Temporal Cloud needs it)",
    )
    temporal_tls_ca: Path | None = Field(
        default=None,
        description="PEM CA that signed the Temporal server's cert; unset: the system roots",
    )
    temporal_tls_cert: Path | None = Field(
        default=None, description="PEM client cert for mTLS to Temporal (with _TLS_KEY)"
    )
    temporal_tls_key: Path | None = Field(
        default=None, description="PEM private key of the mTLS client cert (with _TLS_CERT)"
    )
    temporal_tls_server_name: str | None = Field(
        default=None, description="TLS server name (SNI) of Temporal, if not the address host"
    )
    # never printed: SecretStr keeps it out of repr, logs and `faceloop config`
    temporal_api_key: SecretStr | None = Field(
        default=None, description="Temporal Cloud API key (implies TLS); keep it in a secret store"
    )
    temporal_port: int = Field(default=7233, description="port of the embedded Temporal dev server")
    # the embedded dev server keeps workflow state in SQLite; with its default rollback
    # journal every commit waits for several fsyncs, which was 2/3 of each workflow task's
    # time on `bench loop` (docs/benchmarks.md). WAL with synchronous=NORMAL loses no commit
    # when a process dies (SIGKILL, restart: the chaos bench), only the last ones on an OS
    # crash or power loss, never corrupting the file; `full` fsyncs every commit
    temporal_sqlite_sync: Literal["normal", "full"] = Field(
        default="normal",
        description="embedded Temporal dev server's SQLite (WAL) synchronous mode: normal "
        "survives process crashes; full also the last commits on power loss, slower",
    )
    # worker processes (`faceloop up`, `faceloop worker`, `demo`) serve Prometheus metrics
    # here, on 127.0.0.1 only: the endpoint has no authentication (docs/observability.md).
    # Unset, `up` and `demo` use 9464 and `faceloop worker` serves none: several workers
    # run on one host (one per queue) and would collide on a shared default
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Prometheus /metrics port of worker processes, bound to 127.0.0.1; 0: off; "
        "unset: 9464 for `faceloop up`/`demo`, off for `faceloop worker`",
    )
    tracing: str = Field(
        default="off",
        description="OpenTelemetry traces: off, console, or an OTLP/HTTP traces URL "
        "(http://127.0.0.1:4318/v1/traces; needs opentelemetry-exporter-otlp-proto-http)",
    )
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
    asset_url: str | None = Field(
        default=None,
        description="asset store in an S3-compatible object store, s3://bucket/prefix "
        "(endpoint and keys: FACELOOP_S3__*); unset: the folder FACELOOP_ASSET_ROOT",
    )
    fault_disk_full_flag: Path | None = Field(
        default=None,
        description="FAKE fault for chaos runs (`faceloop bench loop --chaos`): while this "
        "file exists, every write to the asset store fails with ENOSPC; unset: off",
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
    generation_file: Path | None = Field(
        default=None,
        description="YAML/JSON GenerationConfig of the default production path (model, LoRAs, "
        "ControlNet, aspect ratio; docs/generators.md); its backend/model win over "
        "FACELOOP_GENERATOR/_DIFFUSERS_MODEL",
    )
    generator_cache_size: int = Field(
        default=2,
        ge=1,
        le=16,
        description="pipelines a GPU worker keeps loaded, one per production path (LRU)",
    )
    onnx_cache: Path | None = Field(
        default=None, description="where the ONNX export of the CPU generator is cached"
    )
    sandbox_port: int = Field(default=8765, description="port of the embedded sandbox ad platform")
    console_host: str = Field(
        default="127.0.0.1",
        description="address the web console and HTTP API listen on; anything but loopback "
        "needs TLS in front (docs/console.md)",
    )
    console_port: int = Field(
        default=8780, ge=0, le=65535, description="port of the web console and HTTP API"
    )
    console_session_hours: float = Field(
        default=12.0, gt=0, le=24 * 30, description="how long a console login lasts"
    )
    console_secure_cookies: bool = Field(
        default=False,
        description="mark session cookies Secure (set it when the console is served over HTTPS)",
    )
    api_url: str | None = Field(
        default=None,
        description="console URL (e.g. http://127.0.0.1:8780): `escalations`, `approve` and "
        "`reject` go through its API as the token's user; unset: straight to Temporal",
    )
    api_token: SecretStr | None = Field(
        default=None, description="API token for FACELOOP_API_URL (`faceloop users token`)"
    )
    notify_webhook_url: str | None = Field(
        default=None,
        description="Slack-compatible webhook told of escalations (opened, before the "
        "deadline, decided); unset: none",
    )
    notify_smtp_host: str | None = Field(
        default=None, description="SMTP server for escalation e-mails; unset: no e-mail"
    )
    notify_smtp_port: int = Field(default=25, ge=1, le=65535, description="its port")
    notify_email_from: str = Field(
        default="faceloop@localhost", description="sender of escalation e-mails"
    )
    notify_emails: dict[str, list[str]] = Field(
        default_factory=dict,
        description="playbook role -> addresses told of its escalations, as JSON: "
        '{"compliance": ["review@example.com"]}',
    )
    sandbox_url: str | None = Field(
        default=None, description="URL of a running sandbox platform; unset: start one"
    )
    sandbox_scenario: Path | None = Field(
        default=None,
        description="scenario YAML of the sandbox audience; unset: examples/scenarios/smooth.yaml",
    )
    sandbox_audience_sees: Literal["declared", "measured"] | None = Field(
        default=None,
        description="what the embedded sandbox's audience reacts to: declared face parameters "
        "or those measured in each ad's image; unset: the scenario's audience_sees",
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

    # Meta Marketing API (docs/connectors.md). The token is a SecretStr: never printed,
    # logged, or put in a Temporal payload; connectors send it in a header only.
    meta_api_version: str = Field(
        default="v23.0", description="Graph API version of the Meta connector (e.g. v23.0)"
    )
    meta_base_url: str = Field(
        default="https://graph.facebook.com",
        description="Graph API host; a local fake in tests (faceloop.connectors.fakes.meta)",
    )
    meta_ad_account_id: str | None = Field(
        default=None, description="Meta ad account id, digits, with or without act_"
    )
    meta_page_id: str | None = Field(
        default=None, description="Facebook Page the Meta ads run as (object_story_spec)"
    )
    meta_access_token: SecretStr | None = Field(
        default=None,
        description="Meta system-user access token with ads_management; keep it in a secret store",
    )
    meta_link_url: str | None = Field(
        default=None, description="landing page every Meta ad links to"
    )
    meta_countries: list[str] = Field(
        default=["US"], description="ISO country codes of the Meta ad sets' geo targeting"
    )
    meta_segment_ages: dict[str, list[str]] = Field(
        default_factory=dict,
        description='JSON: audience segment -> Meta age buckets, e.g. {"young": ["18-24", '
        '"25-34"]}; insights by age are summed per segment',
    )
    meta_cpm_minor: int = Field(
        default=1000,
        ge=1,
        description="planning CPM (account currency, minor units) that turns an impression "
        "allocation into an ad set daily budget",
    )
    meta_conversion_action: str = Field(
        default="offsite_conversion.fb_pixel_purchase",
        description="action_type of the insights `actions` counted as conversions",
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

    # prices that turn a campaign's measured use into money (docs/cost.md); the defaults
    # are public list prices of the order a cloud deployment pays, a place to start, not a
    # quote: set the ones your bills show
    cost_currency: str = Field(
        default="USD",
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 currency of the price_* settings, of spend caps and of the ad "
        "platform's reported spend",
    )
    price_gpu_hour: float = Field(
        default=2.50, ge=0, description="one GPU hour (generation on the gpu queue)"
    )
    price_cpu_hour: float = Field(
        default=0.05, ge=0, description="one CPU hour (guardrails, signing, exports)"
    )
    price_gb_month: float = Field(
        default=0.023, ge=0, description="one GB of assets and exports kept for a month"
    )
    price_per_1k_api_calls: float = Field(
        default=0.0,
        ge=0,
        description="1,000 ad platform API calls (0: Meta, Google Ads and TikTok bill none)",
    )
    price_reviewer_hour: float = Field(
        default=40.0, ge=0, description="one hour of an escalation waiting for its reviewers"
    )

    google_ads: GoogleAdsSettings = Field(
        default_factory=GoogleAdsSettings,
        description="google_ads connector (FACELOOP_GOOGLE_ADS__CUSTOMER_ID, "
        "__DEVELOPER_TOKEN, __ACCESS_TOKEN, __API_VERSION, ...)",
    )
    tiktok: TikTokSettings = Field(
        default_factory=TikTokSettings,
        description="tiktok connector (FACELOOP_TIKTOK__ADVERTISER_ID, __ACCESS_TOKEN, ...)",
    )
    s3: S3Settings = Field(
        default_factory=S3Settings,
        description="S3-compatible asset store of FACELOOP_ASSET_URL (FACELOOP_S3__ENDPOINT_URL, "
        "__REGION, __ACCESS_KEY_ID, __SECRET_ACCESS_KEY)",
    )

    # settings filled from Temporal's env config, for `faceloop config`'s source column
    _from_temporal_env: set[str] = PrivateAttr(default_factory=set)

    @field_validator("tracing")
    @classmethod
    def _tracing_value(cls, v: str) -> str:
        v = v.strip()
        if v.lower() in ("off", "console"):
            return v.lower()
        if v.startswith(("http://", "https://")):
            return v
        raise ValueError(
            f"FACELOOP_TRACING={v!r}: use off, console, or an OTLP/HTTP traces URL such as "
            "http://127.0.0.1:4318/v1/traces"
        )

    @field_validator("asset_url")
    @classmethod
    def _asset_url_value(cls, v: str | None) -> str | None:
        if v is None:
            return None
        from faceloop.storage.assets import parse_s3_url

        try:
            parse_s3_url(v.strip())
        except Exception as exc:  # FaceloopError: reported as this field's error
            raise ValueError(
                f"FACELOOP_ASSET_URL: {exc}; a local folder goes in FACELOOP_ASSET_ROOT"
            ) from None
        return v.strip().rstrip("/")

    @model_validator(mode="after")
    def _one_asset_store(self) -> Settings:
        if self.asset_url is not None and self.asset_root is not None:
            raise ValueError(
                "FACELOOP_ASSET_URL and FACELOOP_ASSET_ROOT are both set: the assets live in "
                "one store; unset one of them"
            )
        return self

    @model_validator(mode="after")
    def _temporal_connection(self) -> Settings:
        self._merge_temporal_envconfig()
        self._check_temporal_tls()
        return self

    def _merge_temporal_envconfig(self) -> None:
        from temporalio.envconfig import ClientConfigProfile

        try:
            profile = ClientConfigProfile.load()
        except Exception as exc:  # the bridge raises its own ConfigError type
            raise ValueError(
                f"Temporal's env config (TEMPORAL_PROFILE, TEMPORAL_CONFIG_FILE, TEMPORAL_*) "
                f"could not be read: {exc}; fix it or unset those variables"
            ) from exc
        explicit = self.model_fields_set
        found: dict[str, object] = {
            "temporal_address": profile.address,
            "temporal_namespace": profile.namespace,
            "temporal_api_key": SecretStr(profile.api_key) if profile.api_key else None,
        }
        if profile.tls is not None:
            tls = profile.tls
            found["temporal_tls"] = None if tls.disabled is None else not tls.disabled
            found["temporal_tls_server_name"] = tls.server_name
            for name, (attr, env) in _TLS_FILES.items():
                source = getattr(tls, attr)
                if source is not None and not isinstance(source, Path):
                    # faceloop's settings are file paths; inline PEM data has no place here
                    raise ValueError(
                        f"{name}: Temporal's env config gives it as inline data; faceloop "
                        f"reads TLS material from files: write it to a file and set {env} "
                        f"or FACELOOP_{name.upper()} to that path"
                    )
                found[name] = source
        for name, value in found.items():
            if value is not None and name not in explicit:
                setattr(self, name, value)
                self._from_temporal_env.add(name)

    def _check_temporal_tls(self) -> None:
        if self.temporal_api_key is not None and self.temporal_tls is False:
            raise ValueError(
                "a Temporal API key is set but TLS is turned off (FACELOOP_TEMPORAL_TLS or "
                "TEMPORAL_TLS is false): an API key is only sent over TLS (Temporal Cloud "
                "requires it); turn TLS on or unset the key"
            )
        if (self.temporal_tls_cert is None) != (self.temporal_tls_key is None):
            given, missing = (
                ("TLS_CERT", "TLS_KEY")
                if self.temporal_tls_key is None
                else ("TLS_KEY", "TLS_CERT")
            )
            raise ValueError(
                f"FACELOOP_TEMPORAL_{given} is set without FACELOOP_TEMPORAL_{missing}: mTLS "
                "needs the client cert and its private key; set both or neither"
            )
        for name in _TLS_FILES:
            path: Path | None = getattr(self, name)
            if path is None:
                continue
            try:
                path.expanduser().read_bytes()
            except OSError as exc:
                raise ValueError(
                    f"FACELOOP_{name.upper()}={path} cannot be read ({exc.strerror}); point "
                    "it at a readable PEM file"
                ) from exc

    @property
    def temporal_tls_enabled(self) -> bool:
        if self.temporal_tls is not None:
            return self.temporal_tls
        return any(
            v is not None
            for v in (
                self.temporal_api_key,
                self.temporal_tls_ca,
                self.temporal_tls_cert,
                self.temporal_tls_server_name,
            )
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
    def resolved_asset_url(self) -> str:
        """Where the assets live: FACELOOP_ASSET_URL, else the local folder (open it with
        faceloop.storage.assets.open_asset_store)."""
        return self.asset_url or self.resolved_asset_root

    @property
    def resolved_sandbox_url(self) -> str:
        return self.sandbox_url or f"http://127.0.0.1:{self.sandbox_port}"

    def default_generation(self) -> GenerationConfig:
        """The deployment's production path: FACELOOP_GENERATION_FILE on top of
        FACELOOP_GENERATOR / _DIFFUSERS_MODEL / _DIFFUSERS_STEPS; InputError naming the
        file's bad fields."""
        from faceloop.briefs import parse_model, read_document

        base = self._diffusers_defaults(GenerationConfig(backend=self.generator))
        if self.generation_file is None:
            return base
        source = f"FACELOOP_GENERATION_FILE {self.generation_file}"
        from_file = parse_model(
            GenerationConfig, read_document(self.generation_file, source), source
        )
        return self._diffusers_defaults(resolve_generation(base, from_file))

    def generation_for(self, override: GenerationConfig | None) -> GenerationConfig:
        """A campaign's production path: the brief's `campaign.generation` fields on top of
        the deployment's default (faceloop.generation.resolve_generation)."""
        resolved = resolve_generation(self.default_generation(), override)
        return self._diffusers_defaults(resolved)

    def _diffusers_defaults(self, config: GenerationConfig) -> GenerationConfig:
        # FACELOOP_DIFFUSERS_MODEL / _STEPS belong to the diffusers backend only: they fill
        # a diffusers config's unset model and steps, whichever layer chose diffusers
        if config.backend != "diffusers":
            return config
        return config.model_copy(
            update={
                "model": config.model or self.diffusers_model,
                "steps": config.steps or self.diffusers_steps,
            }
        )

    def effective(self) -> list[tuple[str, str, str, str]]:
        """(name, value, source, help) for every setting, for `faceloop config`."""
        rows = []
        for name, field in type(self).model_fields.items():
            env = f"FACELOOP_{name.upper()}"
            if name in self._from_temporal_env:
                source = "temporal env config"
            elif env in os.environ:
                source = "env"
            else:
                source = "default"
            value = getattr(self, name)
            if isinstance(value, BaseModel):
                # a nested section: one row per field, each with its own variable
                for sub, sub_field in type(value).model_fields.items():
                    sub_env = f"{env}__{sub.upper()}"
                    rows.append(
                        (
                            sub_env,
                            str(getattr(value, sub)),
                            "env" if sub_env in os.environ else "default",
                            sub_field.description or "",
                        )
                    )
                continue
            rows.append((env, str(value), source, field.description or ""))
        return rows


def get_settings() -> Settings:
    """The settings from the environment, or an InputError that names each bad one."""
    try:
        return Settings()
    except ValidationError as err:
        raise InputError.from_validation("the settings (FACELOOP_* / TEMPORAL_*)", err) from err


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as FACELOOP_* variables, for a worker or CLI process that must see the
    same configuration: lists and dicts as JSON (as pydantic-settings parses them), nested
    sections (google_ads, tiktok) as FACELOOP_<SECTION>__<FIELD>, secrets in plain text (the
    caller hands them to a child process, never to a log). Unset (None) values are left out.
    """

    def plain(value: object) -> str:
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        if isinstance(value, dict | list):
            return json.dumps(value, default=str)
        return str(value)

    env: dict[str, str] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, BaseModel):
            for sub in type(value).model_fields:
                sub_value = getattr(value, sub)
                if sub_value is not None:
                    env[f"FACELOOP_{name.upper()}__{sub.upper()}"] = plain(sub_value)
        elif value is not None:
            env[f"FACELOOP_{name.upper()}"] = plain(value)
    return env
