"""The web console and HTTP API: logins with roles, briefs, campaigns, the review queue,
audit and erasure (docs/console.md). `create_app` builds the FastAPI app that `faceloop up`
serves on 127.0.0.1."""

from faceloop.console.app import create_app
from faceloop.console.users import Role, User, UserStore

__all__ = ["Role", "User", "UserStore", "create_app"]
