"""Builds the workers: orchestration + io on the main queue, generation on the GPU queue,
guardrails on the CPU queue. One process can run all three (the embedded default) or any
subset (`faceloop worker --queues gpu` on a GPU machine).

The main queue carries two kinds of task: workflow tasks (orchestration) and the main
activities (catalog, planner, KPI model, connectors). `main` serves both; `workflows` and
`main-activities` serve one each, so workflow tasks can get a process of their own and
never wait behind CPU-heavy activities for the GIL (docs/benchmarks.md, issue 16)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from temporalio.client import Client
from temporalio.worker import Worker

from faceloop.agents.activities import PlannerActivities
from faceloop.connectors.activities import ConnectorActivities, ProvenanceGate
from faceloop.connectors.base import AdConnector
from faceloop.connectors.registry import get_connector, planning_price
from faceloop.console.users import UserStore
from faceloop.cost import Prices
from faceloop.generators.activities import GeneratorActivities
from faceloop.guardrails.activities import GuardrailActivities
from faceloop.guardrails.base import Guardrail
from faceloop.optimization import Optimizer
from faceloop.playbooks.schema import Playbook, load_playbook
from faceloop.settings import Settings
from faceloop.storage.assets import AssetStore, open_asset_store
from faceloop.storage.catalog import Catalog
from faceloop.storage.checkpoints import Checkpoints
from faceloop.storage.files import private_dir
from faceloop.storage.keys import SubjectKeyStore
from faceloop.votes import VoteVerifier
from faceloop.workflows.campaign import CampaignWorkflow
from faceloop.workflows.campaign_activities import CampaignActivities, decide_variants
from faceloop.workflows.consent_activities import ConsentActivities
from faceloop.workflows.erasure import ErasureWorkflow
from faceloop.workflows.erasure_activities import ErasureActivities
from faceloop.workflows.review_activities import ReviewActivities
from faceloop.workflows.scheduled import OptimizationRoundWorkflow
from faceloop.workflows.telemetry import MetricsInterceptor

Queue = Literal["main", "gpu", "cpu", "workflows", "main-activities"]
# the task queues; `main` = `workflows` + `main-activities`
ALL_QUEUES: tuple[Queue, ...] = ("main", "gpu", "cpu")
QUEUE_CHOICES: tuple[Queue, ...] = (*ALL_QUEUES, "workflows", "main-activities")
WORKFLOWS = [CampaignWorkflow, OptimizationRoundWorkflow, ErasureWorkflow]


def serves_workflows(queues: Iterable[Queue]) -> bool:
    return any(q in ("main", "workflows") for q in queues)


def serves_main_activities(queues: Iterable[Queue]) -> bool:
    return any(q in ("main", "main-activities") for q in queues)


def optuna_url(settings: Settings) -> str:
    # Optuna keeps its own tables; on SQLite a file of its own avoids lock contention with
    # the catalog, on PostgreSQL it shares the database
    if settings.database_url:
        return settings.database_url
    return f"sqlite:///{settings.resolved_home / 'optuna.db'}"


@dataclass
class Resources:
    """Clients the activities hold; closed when the workers stop."""

    settings: Settings
    catalog: Catalog
    store: AssetStore
    # the console's users: who may cast a review vote once any exist
    users: UserStore
    connectors: dict[str, AdConnector] = field(default_factory=dict)

    @classmethod
    def open(cls, settings: Settings) -> Resources:
        private_dir(settings.resolved_home)
        store = open_asset_store(settings)
        if settings.fault_disk_full_flag is not None:
            # chaos runs only: a full disk, switched on and off by a flag file
            from faceloop.storage.faults import DiskFullFault

            store = DiskFullFault.around(store, settings.fault_disk_full_flag)
        catalog = Catalog(settings.resolved_database_url)
        return cls(settings=settings, catalog=catalog, store=store, users=UserStore(catalog.url))

    def connector(self, name: str) -> AdConnector:
        if name not in self.connectors:
            self.connectors[name] = get_connector(name, self.settings)
        return self.connectors[name]

    async def aclose(self) -> None:
        for c in self.connectors.values():
            await c.aclose()
        self.catalog.close()
        self.users.close()


def build_workers(
    client: Client,
    res: Resources,
    queues: Iterable[Queue] = ALL_QUEUES,
    guardrails: Callable[[Playbook], list[Guardrail]] | None = None,
) -> list[Worker]:
    s = res.settings
    executor = ThreadPoolExecutor(max_workers=4)
    # stage latency, generation time and guardrail verdicts of every activity
    interceptors = [MetricsInterceptor()]
    workers = []
    queues = list(queues)
    with_workflows = serves_workflows(queues)
    if serves_main_activities(queues):
        workers.append(
            Worker(
                client,
                task_queue=s.task_queue,
                workflows=WORKFLOWS if with_workflows else [],
                activities=_main_activities(res),
                activity_executor=executor,
                interceptors=interceptors,
            )
        )
    elif with_workflows:
        # workflow tasks alone: no activity poller on this process, the activities of the
        # main queue are served by a `main-activities` worker elsewhere
        workers.append(
            Worker(
                client,
                task_queue=s.task_queue,
                workflows=WORKFLOWS,
                interceptors=interceptors,
            )
        )
    if "gpu" in queues:
        from faceloop.generators.production import ProductionPath
        from faceloop.generators.registry import get_generator

        default = get_generator(s.generator)
        # each campaign's GenerationConfig picks its pipeline; the settings' default fills
        # the fields a campaign left unset, and serves campaigns that carry no config
        production = ProductionPath(
            default,
            s.default_generation(),
            store=res.store,
            catalog=res.catalog,
            capacity=s.generator_cache_size,
        )
        gen = GeneratorActivities(default, res.store, res.catalog, production=production)
        workers.append(
            Worker(
                client,
                task_queue=s.gpu_task_queue,
                activities=[gen.generate],
                # one generation batch at a time: it saturates the device (or the CPU) alone
                max_concurrent_activities=1,
                interceptors=interceptors,
            )
        )
    if "cpu" in queues:
        from faceloop.guardrails.activities import Signer
        from faceloop.guardrails.registry import guardrails_for

        keys = SubjectKeyStore(res.catalog)  # opens persona embeddings in the gallery
        guard = GuardrailActivities(
            guardrails or (lambda pb: guardrails_for(pb, settings=s, keys=keys)),
            res.store,
            res.catalog,
            signer=lambda: Signer.from_settings(s),
            decide=lambda inp: decide_variants(res.catalog, inp),
        )
        consent = ConsentActivities(res.catalog)
        workers.append(
            Worker(
                client,
                task_queue=s.cpu_task_queue,
                activities=[
                    guard.guard,
                    guard.sign,
                    guard.export,
                    guard.guard_and_decide,
                    guard.sign_and_export,
                    guard.guard_decide_and_ship,
                    guard.recheck,
                    consent.check_consent,
                ],
                interceptors=interceptors,
            )
        )
    return workers


def _main_activities(res: Resources) -> list[Callable[..., Any]]:
    from faceloop.agents.activities import AnalystActivities, chat_model

    s = res.settings
    optimizer = Optimizer(optuna_url(s), s.optuna_sampler)
    checkpoints = Checkpoints.from_settings(s)
    # anchor what earlier runs wrote before writing more; a log that no longer extends
    # the last checkpoint (rewritten, cut, deleted) stops the worker here, where someone
    # watches, instead of being signed over (docs/governance.md, "Audit log")
    checkpoints.write_if_moved(res.catalog)
    # the catalog lets the planner write its LLM fallbacks into the audit log
    planner = PlannerActivities(catalog=res.catalog)
    campaign = CampaignActivities(
        res.catalog,
        optimizer,
        load_playbook(s.playbook),
        checkpoints=checkpoints,
        prices=Prices.from_settings(s),
        plan=planner.plan_output,
        planning_price=functools.partial(planning_price, s),
    )
    # do-not-serve: every creative is verified (C2PA, watermark) before a connector sees it
    gate = ProvenanceGate.from_settings(s, res.store)
    connectors = ConnectorActivities(res.connector, res.catalog, gate)
    analyst = AnalystActivities(res.catalog, optimizer, chat_model(s))
    # GDPR erasure reaches every store (platforms, files, catalog, gallery, keys)
    erasure = ErasureActivities.from_settings(s, res.catalog, res.store, res.connector)
    # who cast a review vote: console users and the console's public vote-signing key
    reviews = ReviewActivities(res.users, VoteVerifier.open(s.resolved_home))
    return [
        campaign.start_campaign,
        campaign.next_round_input,
        campaign.check_spend,
        campaign.propose,
        campaign.propose_and_plan,
        campaign.decide,
        campaign.record_review,
        reviews.verify_vote,
        campaign.check_rollback,
        campaign.learn,
        campaign.rollback_and_learn,
        campaign.finish,
        planner.plan,
        analyst.analyze,
        connectors.deploy,
        connectors.retire,
        connectors.observe,
        *erasure.activities(),
    ]
