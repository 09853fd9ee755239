"""Storage: content-addressed asset store, catalog and audit log."""

from faceloop.storage.assets import AssetStore

__all__ = ["AssetStore"]
