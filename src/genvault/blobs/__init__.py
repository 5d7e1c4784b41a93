"""Files: content-addressed bytes in a blob store (local directory, S3, or memory).

`BlobStore` keeps the bytes by sha256; the `blobs` table (see `genvault.store.files`) records who
references them; `Vault.store_file` ties the two together.
"""

from genvault.blobs.policy import check_file
from genvault.blobs.store import SHA256_PATTERN, BlobStore, blob_store_from_settings
from genvault.errors import BlobNotFound

__all__ = ["SHA256_PATTERN", "BlobNotFound", "BlobStore", "blob_store_from_settings", "check_file"]
