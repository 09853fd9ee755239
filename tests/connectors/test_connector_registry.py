"""Connector registry: built-ins and entry-point plugins.
(faceloop.plugins itself, with a real installed plugin: tests/core/test_plugin_registry.py.)"""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from faceloop import plugins
from faceloop.connectors import registry
from faceloop.connectors.base import AdConnector, AdDeployment, AdInsight, AdSpec
from faceloop.connectors.sandbox import SandboxConnector
from faceloop.errors import ConnectorError
from faceloop.models import AudienceSegment
from faceloop.settings import Settings


class NullConnector(AdConnector):
    """A plugin connector that does nothing (stands in for a third-party package)."""

    name = "null"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def ensure_campaign(self, campaign_id: str, segments: list[AudienceSegment]) -> None:
        return None

    async def deploy(self, spec: AdSpec) -> AdDeployment:
        return AdDeployment(
            ad_id="n",
            asset_id=spec.asset_id,
            campaign_id=spec.campaign_id,
            platform="null",
            status="active",
        )

    async def set_allocation(
        self, campaign_id: str, window: int, impressions: dict[str, int]
    ) -> None:
        return None

    async def insights(self, campaign_id: str, window: int) -> list[AdInsight]:
        return []

    async def pause(self, campaign_id: str, ad_id: str) -> AdDeployment:
        raise NotImplementedError

    async def list_ads(self, campaign_id: str) -> list[AdDeployment]:
        return []

    async def aclose(self) -> None:
        return None


def not_a_connector(settings: Settings) -> object:
    return object()


def _plugins(monkeypatch: pytest.MonkeyPatch, *eps: EntryPoint) -> None:
    monkeypatch.setattr(plugins, "entry_points", lambda group: [e for e in eps if e.group == group])


def _ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=registry.ENTRY_POINT_GROUP)


async def test_sandbox_connector_uses_the_settings_url() -> None:
    conn = registry.get_connector("sandbox", Settings(sandbox_port=9999))
    assert isinstance(conn, SandboxConnector)
    assert conn.base_url == "http://127.0.0.1:9999"
    await conn.aclose()
    conn = registry.get_connector("sandbox", Settings(sandbox_url="http://sbx:1/"))
    assert isinstance(conn, SandboxConnector) and conn.base_url == "http://sbx:1"
    await conn.aclose()


def test_unknown_connector_lists_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    _plugins(monkeypatch, _ep("null", f"{__name__}:NullConnector"))
    known = ", ".join([*registry.BUILTINS, "null"])
    with pytest.raises(
        ConnectorError,
        match=rf"unknown connector 'myspace'; known: {known}\. Set the campaign's connector",
    ):
        registry.get_connector("myspace", Settings())


def test_plugins_load_through_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    _plugins(
        monkeypatch,
        _ep("null", f"{__name__}:NullConnector"),
        _ep("broken", "no_such_module_here:factory"),
        _ep("liar", f"{__name__}:not_a_connector"),
    )
    settings = Settings()
    conn = registry.get_connector("null", settings)
    assert isinstance(conn, NullConnector) and conn.settings is settings
    assert registry.connector_names() == [*registry.BUILTINS, "broken", "liar", "null"]
    with pytest.raises(ConnectorError, match=r"plugin 'broken' failed to load: .* ModuleNotFound"):
        registry.get_connector("broken", settings)
    with pytest.raises(ConnectorError, match="built an object, not an AdConnector"):
        registry.get_connector("liar", settings)


def test_a_plugin_cannot_silently_take_a_builtin_name(monkeypatch: pytest.MonkeyPatch) -> None:
    _plugins(monkeypatch, _ep("sandbox", f"{__name__}:NullConnector"))
    with pytest.raises(ConnectorError, match="'sandbox' is registered more than once") as err:
        registry.get_connector("sandbox", Settings())
    assert "faceloop.connectors.registry:sandbox_from_settings" in str(err.value)
    assert f"sandbox = {__name__}:NullConnector" in str(err.value)


async def test_a_plugin_naming_the_builtin_itself_is_no_clash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _plugins(monkeypatch, _ep("sandbox", registry.BUILTINS["sandbox"]))
    conn = registry.get_connector("sandbox", Settings())
    assert isinstance(conn, SandboxConnector)
    await conn.aclose()
