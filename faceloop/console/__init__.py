"""The web console and HTTP API: logins with roles, briefs, campaigns, the review queue,
audit and erasure (docs/console.md). `create_app` builds the FastAPI app that `faceloop up`
serves on 127.0.0.1."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faceloop.console.users import Role, User, UserStore

if TYPE_CHECKING:
    from faceloop.console.app import create_app

__all__ = ["Role", "User", "UserStore", "create_app"]


def __getattr__(name: str) -> Any:
    # the worker reads console users to check who cast a vote; it must not import FastAPI
    if name == "create_app":
        from faceloop.console.app import create_app

        return create_app
    raise AttributeError(name)
