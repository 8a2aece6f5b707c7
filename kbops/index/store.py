"""The release store: where published releases live for every bot replica and worker.

A release is written and verified in the publisher's index directory
(:mod:`kbops.index.release`); the store is where the *cluster* reads it. Two
implementations of one small interface (:class:`ReleaseStore`):

* :class:`LocalStore` — a directory. By default the index directory itself
  (``KBOPS_RELEASE_STORE`` unset): one host, or every host mounting one shared
  volume; publishing then copies nothing.
* :class:`FsspecStore` — object storage through fsspec, e.g.
  ``KBOPS_RELEASE_STORE=s3://kb-releases/prod`` with
  ``KBOPS_RELEASE_STORE_ENDPOINT=http://minio:9000`` (any S3-compatible server;
  the ``s3`` extra installs s3fs). Credentials come from the usual
  ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` variables, never from kbops' config.

The layout in the store is the index directory's: ``releases/<id>/{index.faiss,
entries.json, lexical.json, manifest.json}``, ``REVOKED.json``, ``ACTIVE``.

Publishing is pessimistic (:func:`kbops.index.publish.activate_release` calls
these in this order): a release's files, then its manifest (a release without a
manifest does not exist for a reader), then the revocation overlay, then the
``ACTIVE`` pointer, last. Each object is replaced whole (an S3 PUT, or a
rename on a directory), so a reader sees the old pointer or the new one, and the
release it names is complete. A crash anywhere leaves the previous release active.

Replicas (:class:`kbops.serve.retriever.Retriever`) poll the store's ``ACTIVE``;
when it moves they pull the overlay first (applied at once), then the release
into a local cache directory (:meth:`ReleaseStore.pull_release`: every file is
checked against the manifest's SHA-256 before the release is renamed into the
cache), and load it from there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from kbops.config import Settings
from kbops.errors import ConfigError, ReleaseError, TransientError
from kbops.index import release as rel

POINTER = "ACTIVE"
OVERLAY = "REVOKED.json"
MANIFEST = "manifest.json"


class ReleaseStore(ABC):
    """Whole objects by relative name ("ACTIVE", "releases/<id>/manifest.json"); see the module docstring."""

    url: str

    @abstractmethod
    def read(self, name: str) -> bytes:
        """The object's bytes; FileNotFoundError when there is none."""

    @abstractmethod
    def write(self, name: str, data: bytes) -> None:
        """Replace the object whole: a reader sees the old bytes or the new ones, never a mix."""

    @abstractmethod
    def release_ids(self) -> list[str]:
        """The ids of the releases in the store (complete or not), sorted (oldest first)."""

    @abstractmethod
    def delete_release(self, release_id: str) -> None:
        """Remove a release's objects (never the active one: the caller checks)."""

    def is_dir(self, path: Path) -> bool:
        """Whether this store *is* the directory ``path`` (then publishing copies nothing)."""
        return False

    # -- what readers and publishers do, in terms of the above ---------------------------------

    def active_release_id(self) -> str | None:
        try:
            value = self.read(POINTER).decode("utf-8").strip()
        except FileNotFoundError:
            return None
        return value or None

    def read_overlay(self) -> bytes | None:
        try:
            return self.read(OVERLAY)
        except FileNotFoundError:
            return None

    def upload_release(self, index_dir: Path, release_id: str) -> None:
        """Copy a complete local release into the store: its files first, its manifest last."""
        src = rel.releases_dir(index_dir) / release_id
        for name in (*rel.FILES, MANIFEST):
            self.write(f"releases/{release_id}/{name}", (src / name).read_bytes())

    def upload_overlay(self, index_dir: Path) -> None:
        try:
            self.write(OVERLAY, rel.overlay_path(index_dir).read_bytes())
        except FileNotFoundError:
            pass

    def upload_pointer(self, index_dir: Path) -> None:
        """Move the store's ACTIVE to the local one: the last step of a publish."""
        active = rel.active_release_id(index_dir)
        if active is not None:
            self.write(POINTER, (active + "\n").encode("utf-8"))

    def read_manifest(self, release_id: str) -> dict[str, Any]:
        """A release's manifest as stored (its files are not checked: that needs them, see :meth:`pull_release`).

        ReleaseError when the store has no such release, or its manifest is missing (still uploading) or corrupt."""
        return self._manifest(release_id)[1]

    def _manifest(self, release_id: str) -> tuple[bytes, dict[str, Any]]:
        try:
            raw = self.read(f"releases/{release_id}/{MANIFEST}")
        except FileNotFoundError:
            if release_id in self.release_ids():
                raise ReleaseError(f"release {release_id!r} is incomplete in the release store {self.url}: no {MANIFEST} (still uploading, or an upload failed)") from None
            raise ReleaseError(f"release {release_id!r} is not in the release store {self.url}; see `kbops releases`") from None
        try:
            manifest = json.loads(raw.decode("utf-8"))
            if not isinstance(manifest, dict) or not isinstance(manifest.get("checksums"), dict):
                raise ValueError("no checksums")
        except (ValueError, UnicodeDecodeError):
            raise ReleaseError(f"release {release_id!r} has a corrupt {MANIFEST} in the release store {self.url}") from None
        return raw, manifest

    def pull_release(self, release_id: str, cache_dir: Path) -> Path:
        """Download ``release_id`` into ``cache_dir/releases/<id>`` (verified against its manifest) unless it is there.

        ReleaseError when the store has no such release or a file does not match its checksum.
        """
        dest = rel.releases_dir(cache_dir) / release_id
        if (dest / MANIFEST).is_file():
            return dest
        manifest_raw, manifest = self._manifest(release_id)
        checksums = manifest["checksums"]
        tmp = rel.releases_dir(cache_dir) / f".pull-{release_id}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            for name in rel.FILES:
                try:
                    data = self.read(f"releases/{release_id}/{name}")
                except FileNotFoundError:
                    raise ReleaseError(f"release {release_id!r} is missing {name} in the release store {self.url}") from None
                if hashlib.sha256(data).hexdigest() != checksums.get(name):
                    raise ReleaseError(f"release {release_id!r}: {name} in the release store {self.url} does not match its checksum")
                (tmp / name).write_bytes(data)
            (tmp / MANIFEST).write_bytes(manifest_raw)
            try:
                os.rename(tmp, dest)
            except OSError:  # another thread or process pulled it meanwhile
                if not (dest / MANIFEST).is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return dest

    def prune_cache(self, cache_dir: Path, keep: set[str]) -> None:
        """Remove pulled releases other than ``keep`` from a replica's cache."""
        root = rel.releases_dir(cache_dir)
        if root.is_dir():
            for path in root.iterdir():
                if path.name not in keep:
                    shutil.rmtree(path, ignore_errors=True)


class LocalStore(ReleaseStore):
    """A directory (the index directory by default, or a shared volume's)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.url = str(self.root)

    def is_dir(self, path: Path) -> bool:
        return self.root.resolve() == Path(path).resolve()

    def read(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def write(self, name: str, data: bytes) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def release_ids(self) -> list[str]:
        return rel.list_release_ids(self.root)

    def delete_release(self, release_id: str) -> None:
        shutil.rmtree(rel.releases_dir(self.root) / release_id, ignore_errors=True)


class FsspecStore(ReleaseStore):
    """Object storage through fsspec (``s3://bucket/prefix``; any protocol fsspec knows)."""

    def __init__(self, url: str, **storage_options: Any):
        try:
            import fsspec
        except ImportError:
            raise ConfigError(f"release store {url}: fsspec is not installed; install kbops[s3]") from None
        try:
            self.fs, self.root = fsspec.core.url_to_fs(url, **storage_options)
        except (ImportError, ValueError) as exc:
            raise ConfigError(f"release store {url}: {exc}; install kbops[s3] for s3:// URLs") from None
        self.url = url
        self.root = self.root.rstrip("/")

    def _path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def read(self, name: str) -> bytes:
        try:
            data: bytes = self.fs.cat_file(self._path(name))
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise TransientError(f"release store {self.url}: cannot read {name}: {exc}") from None
        return data

    def write(self, name: str, data: bytes) -> None:
        try:
            self.fs.pipe_file(self._path(name), data)
        except OSError as exc:
            raise TransientError(f"release store {self.url}: cannot write {name}: {exc}") from None

    def release_ids(self) -> list[str]:
        try:
            self.fs.invalidate_cache(self._path("releases"))
            entries = self.fs.ls(self._path("releases"), detail=False)
        except FileNotFoundError:
            return []
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in entries if not p.rstrip("/").rsplit("/", 1)[-1].startswith("."))

    def delete_release(self, release_id: str) -> None:
        try:
            self.fs.rm(self._path(f"releases/{release_id}"), recursive=True)
        except FileNotFoundError:
            pass


def store_for(settings: Settings) -> ReleaseStore:
    """The configured release store: ``release_store`` (a path or an fsspec URL), else the index directory."""
    url = settings.release_store
    if not url:
        return LocalStore(settings.index_dir)
    if url.startswith("file://"):
        return LocalStore(Path(url[len("file://"):]))
    if "://" not in url:
        return LocalStore(Path(url).expanduser().resolve())
    options: dict[str, Any] = {}
    if settings.release_store_endpoint and url.startswith(("s3://", "s3a://")):
        options["client_kwargs"] = {"endpoint_url": settings.release_store_endpoint}
    # Listings must not be cached: a replica re-reads ACTIVE and the release list on every poll.
    options["use_listings_cache"] = False
    return FsspecStore(url, **options)


def publish_to_store(settings: Settings, release_id: str | None = None, *, overlay: bool = False, pointer: bool = False, pruned: list[str] | None = None) -> None:
    """Copy what a publish step just wrote in the index directory to the store, when it is not that directory.

    Called by :mod:`kbops.index.publish` at each store I/O point, in the pessimistic order: a built
    release (``release_id``), then the overlay, then the pointer, then the pruning (``pruned``).
    """
    store = store_for(settings)
    if store.is_dir(settings.index_dir):
        return
    if release_id is not None:
        store.upload_release(settings.index_dir, release_id)
    if overlay:
        store.upload_overlay(settings.index_dir)
    if pointer:
        store.upload_pointer(settings.index_dir)
    active = store.active_release_id() if pruned else None
    for rid in pruned or ():
        if rid != active:
            store.delete_release(rid)


def sync_from_store(settings: Settings) -> str | None:
    """Bring a publisher's index directory up to the store (another worker may have published last).

    Pulls the store's active release (verified), its overlay and its pointer when they differ from the
    local ones, so the next build starts from what the cluster serves. Returns the store's active id.
    """
    store = store_for(settings)
    if store.is_dir(settings.index_dir):
        return rel.active_release_id(settings.index_dir)
    active = store.active_release_id()
    if active is None or active == rel.active_release_id(settings.index_dir):
        return active
    settings.index_dir.mkdir(parents=True, exist_ok=True)
    store.pull_release(active, settings.index_dir)
    overlay = store.read_overlay()
    if overlay is not None:
        LocalStore(settings.index_dir).write(OVERLAY, overlay)
    LocalStore(settings.index_dir).write(POINTER, (active + "\n").encode("utf-8"))
    return active


def prepare_activation(settings: Settings, release_id: str) -> None:
    """Before an activation on this host: the index directory holds the store's active release and pointer
    (the one being replaced, for the overlay and the checks) and ``release_id`` (built on another worker)."""
    store = store_for(settings)
    if store.is_dir(settings.index_dir):
        return
    sync_from_store(settings)
    if not (rel.releases_dir(settings.index_dir) / release_id / MANIFEST).is_file():
        store.pull_release(release_id, settings.index_dir)
