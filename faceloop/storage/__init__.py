"""Storage: content-addressed asset store (a folder or an S3 bucket), catalog and
hash-chained audit log, and the per-subject key store that crypto-shreds a persona's
biometric data.

The catalog's parts: schema.py (tables, connections), audit.py (the audit log),
subjects.py (consents, subject keys, exports, erasure), catalog.py (`Catalog`: campaigns,
variants, deployments, observations and the rest through its bases), migrations/ (schema
versions; docs/storage.md).
"""

from faceloop.storage.assets import AssetStore, open_asset_store
from faceloop.storage.audit import (
    GENESIS_HASH,
    AuditEntry,
    ChainCheck,
    ChainLink,
    canonical_json,
    entry_hash,
    verify_chain,
)
from faceloop.storage.catalog import CampaignRow, Catalog, DeploymentRow
from faceloop.storage.keys import SubjectKeyStore
from faceloop.storage.migrations import SchemaState
from faceloop.storage.subjects import ExportRow, SubjectKeyRow

__all__ = [
    "GENESIS_HASH",
    "AssetStore",
    "AuditEntry",
    "CampaignRow",
    "Catalog",
    "ChainCheck",
    "ChainLink",
    "DeploymentRow",
    "ExportRow",
    "SchemaState",
    "SubjectKeyRow",
    "SubjectKeyStore",
    "canonical_json",
    "entry_hash",
    "open_asset_store",
    "verify_chain",
]
