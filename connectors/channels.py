"""A brief's channels are honoured or refused, never silently replaced by another platform.

A campaign deploys through one connector (`CampaignConfig.connector`, the sandbox by
default). Every channel the brief lists must be that connector, and it must be installed
and configured here; otherwise the campaign does not start and the error names the channel,
what is missing and the fix.
"""

from __future__ import annotations

from faceloop.errors import FaceloopError, InputError
from faceloop.models import Brief, CampaignConfig
from faceloop.settings import Settings


async def check_channels(brief: Brief, config: CampaignConfig, settings: Settings) -> None:
    """Refuse a brief whose channels this deployment cannot honour (InputError with each
    bad field's path). Builds the connector once to prove it is configured, then closes it."""
    from faceloop.connectors.registry import connector_names, get_connector

    known = connector_names()
    problems = []
    for i, channel in enumerate(brief.channels):
        name = channel.value
        if name not in known:
            problems.append(
                f"channels.{i}: no {name!r} connector is installed (installed: "
                f"{', '.join(known)}); remove the channel or install a connector for it"
            )
        elif name != config.connector:
            problems.append(
                f"channels.{i}: the campaign deploys through {config.connector!r} only, so "
                f"{name!r} would not be served; list only {config.connector!r} or set "
                f"campaign.connector to {name!r}"
            )
    if not problems:
        try:
            conn = get_connector(config.connector, settings)
        except FaceloopError as err:
            problems.append(f"campaign.connector: {config.connector!r} is not usable: {err}")
        else:
            await conn.aclose()
    if problems:
        raise InputError("brief channels", problems)


__all__ = ["check_channels"]
