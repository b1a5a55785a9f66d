"""Where a job's files live: an `ArtifactStore`, a local folder (`LocalStore`) or an S3 bucket (`s3.S3Store`).

Publishing is fenced. A file is first written into the claim's own staging folder on this machine; `prepare`
brings it as far as it can go without becoming current (on S3: uploaded under a key no other publish uses),
and `publish` then makes it the job's current file inside the transaction that checks the claim's lease and
records the artifact's row, so a worker that lost its lease never replaces what its successor published. The
row keeps the key the store returned, and reads go through that key, never through a path built from a URL.

The package: `base` (the interface and file helpers), `keys` (the layout of a job's keys), `local`, `s3`.
"""

from pathlib import Path

from service.config import Settings
from service.storage.base import LOCAL_COPIES, ArtifactStore, fsync_replace, local_copy
from service.storage.keys import checkpoint_key, unique_key
from service.storage.local import LocalStore

__all__ = [
    "LOCAL_COPIES",
    "ArtifactStore",
    "LocalStore",
    "checkpoint_key",
    "fsync_replace",
    "local_copy",
    "make_store",
    "unique_key",
]


def make_store(settings: Settings) -> ArtifactStore:
    """The store the settings name: ARTIFACT_URL (a folder or `s3://bucket/prefix`), else ARTIFACT_DIR."""
    url = settings.artifact_url or str(settings.artifact_dir)
    if url.startswith("s3://"):
        from service.storage.s3 import S3Store  # s3fs and aiobotocore load only where a bucket is used

        return S3Store(url, settings)
    if "://" in url and not url.startswith("file://"):
        raise ValueError(f"ARTIFACT_URL {url!r}: give a local folder or s3://bucket/prefix")
    return LocalStore(Path(url.removeprefix("file://")))
