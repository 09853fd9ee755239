"""Connector names -> connectors. Built-ins and plugins are equals (faceloop.plugins;
docs/plugins.md).

A plugin is a distribution that declares an entry point in the group `faceloop.connectors`:

    [project.entry-points."faceloop.connectors"]
    myplatform = "my_package.connector:make_connector"

The target is a callable that takes `faceloop.settings.Settings` and returns an
`AdConnector` (a factory function, or a class whose constructor takes the settings). Only
the requested connector is imported, so one broken plugin does not break the others.
"""

from __future__ import annotations

from collections.abc import Callable

from faceloop.connectors.base import AdConnector
from faceloop.errors import ConnectorError
from faceloop.plugins import Registry
from faceloop.settings import Settings

ConnectorFactory = Callable[[Settings], AdConnector]


def sandbox_from_settings(settings: Settings) -> AdConnector:
    """The sandbox connector at the settings' sandbox URL."""
    # Imported on use: httpx stays out of processes that never talk to a platform.
    from faceloop.connectors.sandbox import SandboxConnector

    return SandboxConnector(settings.resolved_sandbox_url)


BUILTINS: dict[str, str] = {
    "sandbox": "faceloop.connectors.registry:sandbox_from_settings",
    "meta": "faceloop.connectors.meta:meta_from_settings",
    "google_ads": "faceloop.connectors.google_ads:google_ads_from_settings",
    "tiktok": "faceloop.connectors.tiktok:tiktok_from_settings",
}

CONNECTORS: Registry[AdConnector] = Registry(
    kind="connector",
    base=AdConnector,
    group="faceloop.connectors",
    builtins=BUILTINS,
    hint="Set the campaign's connector to one of these",
    error=ConnectorError,
)
ENTRY_POINT_GROUP = CONNECTORS.group


def connector_names() -> list[str]:
    """Every connector name that get_connector accepts: built-ins, then installed plugins."""
    return CONNECTORS.names()


def get_connector(name: str, settings: Settings) -> AdConnector:
    """A new connector for `name`; the caller owns it and closes it with `aclose()`."""
    return CONNECTORS.build(name, settings)


def planning_price(settings: Settings, name: str) -> float | None:
    """What one impression costs on connector `name` at the CPM its budgets are planned at
    (the account currency, which must be FACELOOP_COST_CURRENCY): the price a spend cap
    sizes a campaign's first round with, before the platform has billed anything. None for
    the sandbox and plugins, which plan no budget in money."""
    if name == "meta":
        return settings.meta_cpm_minor / 100 / 1000  # minor units (1/100) per 1,000
    if name == "google_ads":
        return settings.google_ads.target_cpm_micros / 1e6 / 1000
    if name == "tiktok":
        return settings.tiktok.target_cpm / 1000
    return None


__all__ = [
    "BUILTINS",
    "CONNECTORS",
    "ENTRY_POINT_GROUP",
    "ConnectorFactory",
    "connector_names",
    "get_connector",
    "planning_price",
    "sandbox_from_settings",
]
