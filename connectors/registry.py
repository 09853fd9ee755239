"""Connector names -> connectors. Built-ins and plugins are equals.

A plugin is a distribution that declares an entry point in the group `faceloop.connectors`:

    [project.entry-points."faceloop.connectors"]
    myplatform = "my_package.connector:make_connector"

The target is a callable that takes `faceloop.settings.Settings` and returns an
`AdConnector` (a factory function, or a class whose constructor takes the settings). Only
the requested plugin is imported, so one broken plugin does not break the others.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points

from faceloop.connectors.base import AdConnector
from faceloop.errors import ConnectorError
from faceloop.settings import Settings

ENTRY_POINT_GROUP = "faceloop.connectors"

ConnectorFactory = Callable[[Settings], AdConnector]


def _sandbox(settings: Settings) -> AdConnector:
    # Imported on use: httpx stays out of processes that never talk to a platform.
    from faceloop.connectors.sandbox import SandboxConnector

    return SandboxConnector(settings.resolved_sandbox_url)


BUILTINS: dict[str, ConnectorFactory] = {"sandbox": _sandbox}


def _plugins() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def connector_names() -> list[str]:
    """Every connector name that get_connector accepts: built-ins and installed plugins."""
    return sorted(set(BUILTINS) | set(_plugins()))


def get_connector(name: str, settings: Settings) -> AdConnector:
    """A new connector for `name`; the caller owns it and closes it with `aclose()`."""
    plugins = _plugins()
    entry = plugins.get(name)
    if name in BUILTINS and entry is not None and entry.value != _builtin_target(name):
        raise ConnectorError(
            f"connector name {name!r} is claimed both by faceloop and by the plugin "
            f"{entry.value!r} (entry point group {ENTRY_POINT_GROUP!r}); uninstall the plugin "
            "or have it register under another name"
        )
    factory: ConnectorFactory
    if name in BUILTINS:
        factory = BUILTINS[name]
    elif entry is not None:
        try:
            factory = entry.load()
        except Exception as err:
            raise ConnectorError(
                f"connector plugin {name!r} ({entry.value}) failed to load: "
                f"{type(err).__name__}: {err}; fix or uninstall that package"
            ) from err
    else:
        known = ", ".join(connector_names())
        raise ConnectorError(
            f"unknown connector {name!r}; known connectors: {known}. Set the campaign's "
            f"connector to one of these, or install a plugin that registers {name!r} in the "
            f"entry point group {ENTRY_POINT_GROUP!r}"
        )
    connector = factory(settings)
    if not isinstance(connector, AdConnector):
        raise ConnectorError(
            f"connector {name!r} built a {type(connector).__name__}, not an AdConnector; "
            "its factory must return a faceloop.connectors.base.AdConnector"
        )
    return connector


def _builtin_target(name: str) -> str:
    factory = BUILTINS[name]
    return f"{factory.__module__}:{factory.__qualname__}"


__all__ = ["BUILTINS", "ENTRY_POINT_GROUP", "ConnectorFactory", "connector_names", "get_connector"]
