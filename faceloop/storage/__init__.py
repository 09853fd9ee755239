"""Storage: content-addressed asset store, catalog and hash-chained audit log, and the
per-subject key store that crypto-shreds a persona's biometric data."""

from faceloop.storage.assets import AssetStore
from faceloop.storage.catalog import AuditEntry, CampaignRow, Catalog, DeploymentRow
from faceloop.storage.keys import SubjectKeyStore

__all__ = ["AssetStore", "AuditEntry", "CampaignRow", "Catalog", "DeploymentRow", "SubjectKeyStore"]
