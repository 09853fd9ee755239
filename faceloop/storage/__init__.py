"""Storage: content-addressed asset store, catalog and hash-chained audit log."""

from faceloop.storage.assets import AssetStore
from faceloop.storage.catalog import AuditEntry, CampaignRow, Catalog, DeploymentRow

__all__ = ["AssetStore", "AuditEntry", "CampaignRow", "Catalog", "DeploymentRow"]
