"""Index releases: built completely in a fresh directory, then activated atomically.

Layout under the index root::

    releases/<release-id>/   index.faiss     FAISS index, id = KB entry id (exact or IVF, see below)
                             entries.json    what the bot serves (texts, validity windows)
                             lexical.json    (entry id, text) documents for the lexical channel
                             manifest.json   model, dimension, counts, checksums, KB digest
    ACTIVE                   the active release id (replaced with an atomic rename)

A release directory is written under a temporary name and renamed into
place only when complete, and ``ACTIVE`` moves only after that; a crash at
any point leaves the previous release serving. Readers verify the manifest
(checksums, model, dimension) before serving a release.

Index type by size: an exact inner-product index (``IndexIDMap2(FlatIP)``)
while the release holds fewer than ``ivf_threshold`` vectors, an inverted-file
index (``IndexIVFFlat``, 2·√n lists, ``ivf_nprobe`` probed) beyond it. Both
take ``add_with_ids``/``remove_ids`` by entry id, so incremental publish works
the same on either; IVF is retrained from the stored vectors (no re-embedding)
when the release has grown past 4× what it was trained on. HNSW is not used:
it cannot remove vectors by id, which incremental publish needs (its build time
and recall: bench/README.md). The choice and its parameters are recorded in the
manifest (``index``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from kbops.errors import ReleaseError
from kbops.index.lexical import LexicalIndex

FORMAT = 1
FILES = ("index.faiss", "entries.json", "lexical.json")


def releases_dir(index_dir: Path) -> Path:
    return index_dir / "releases"


def pointer_path(index_dir: Path) -> Path:
    return index_dir / "ACTIVE"


def active_release_id(index_dir: Path) -> str | None:
    try:
        value = pointer_path(index_dir).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return value or None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: Path, data: bytes) -> str:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return hashlib.sha256(data).hexdigest()


def flat_index(dim: int, vectors: np.ndarray, ids: np.ndarray) -> Any:
    """An exact inner-product index whose ids are KB entry ids (several vectors per entry)."""
    import faiss

    index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    if len(ids):
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
    return index


def ivf_index(dim: int, vectors: np.ndarray, ids: np.ndarray, nprobe: int) -> Any:
    """An inverted-file inner-product index trained on ``vectors`` (2·√n lists)."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    nlist = max(1, int(2 * math.sqrt(len(vectors))))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.min_points_per_centroid = 1  # a small tail of lists is fine; silence the warning
    index.train(vectors)
    index.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))
    index.nprobe = min(nprobe, nlist)
    return index


def index_info(index: Any) -> dict[str, Any]:
    """What the manifest records about an index: its type and parameters."""
    import faiss

    if isinstance(index, faiss.IndexIVF):
        return {"type": "ivf", "description": f"IVF{index.nlist},FlatIP", "nlist": int(index.nlist), "nprobe": int(index.nprobe)}
    return {"type": "flat", "description": "IDMap2,FlatIP"}


def index_contents(index: Any) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) stored in a flat or IVF index: the input of a re-train, without re-embedding."""
    import faiss
    from faiss.contrib.inspect_tools import get_invlist

    if isinstance(index, faiss.IndexIVF):
        parts = [get_invlist(index.invlists, lst) for lst in range(index.nlist)]
        ids = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
        vecs = np.concatenate([p[1].view(np.float32).reshape(-1, index.d) for p in parts]) if parts else np.zeros((0, index.d), np.float32)
        return ids.astype(np.int64), vecs
    ids = faiss.vector_to_array(index.id_map).astype(np.int64)
    return ids, faiss.downcast_index(index.index).reconstruct_n(0, index.ntotal) if index.ntotal else np.zeros((0, index.d), np.float32)


def build_index(dim: int, vectors: np.ndarray, ids: np.ndarray, *, ivf_threshold: int, nprobe: int) -> Any:
    """The index type this many vectors call for (see the module docstring)."""
    if len(ids) >= ivf_threshold:
        return ivf_index(dim, vectors, ids, nprobe)
    return flat_index(dim, vectors, ids)


def fit_index(index: Any, *, ivf_threshold: int, nprobe: int, trained_on: int | None) -> tuple[Any, bool]:
    """After an incremental change: keep ``index``, or rebuild it from its own vectors when
    its type no longer fits its size (crossed the threshold, or grew 4× past its training).
    Returns (index, rebuilt)."""
    import faiss

    n = int(index.ntotal)
    is_ivf = isinstance(index, faiss.IndexIVF)
    wants_ivf = n >= ivf_threshold
    grown = is_ivf and trained_on is not None and n > 4 * trained_on
    if is_ivf == wants_ivf and not grown:
        if is_ivf:
            index.nprobe = min(nprobe, index.nlist)
        return index, False
    ids, vecs = index_contents(index)
    return build_index(index.d, vecs, ids, ivf_threshold=ivf_threshold, nprobe=nprobe), True


def write_release(
    index_dir: Path,
    *,
    entries: list[dict[str, Any]],
    index: Any,
    model_id: str,
    kb_digest: str,
    extra: dict[str, Any] | None = None,
) -> str:
    """Write a complete release directory and return its id (not yet active)."""
    import faiss

    created = datetime.now(UTC)
    release_id = f"r{created:%Y%m%dT%H%M%S%f}-{kb_digest[:8]}"
    root = releases_dir(index_dir)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{release_id}"
    tmp.mkdir()
    try:
        checksums = {
            "index.faiss": _write(tmp / "index.faiss", faiss.serialize_index(index).tobytes()),
            "entries.json": _write(tmp / "entries.json", json.dumps(entries, ensure_ascii=False).encode("utf-8")),
            "lexical.json": _write(
                tmp / "lexical.json",
                json.dumps([[e["id"], t] for e in entries for t in [e["question"], *e["alt_questions"]]], ensure_ascii=False).encode("utf-8"),
            ),
        }
        manifest = {
            "format": FORMAT,
            "release_id": release_id,
            "created_at": created.isoformat(),
            "model": model_id,
            "dim": int(index.d),
            "entry_count": len(entries),
            "vector_count": int(index.ntotal),
            "index_type": index_info(index)["description"],
            "index": index_info(index),
            "kb_digest": kb_digest,
            "checksums": checksums,
            **(extra or {}),
        }
        _write(tmp / "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2).encode("utf-8"))
        _fsync_dir(tmp)
        os.rename(tmp, root / release_id)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return release_id


def activate(index_dir: Path, release_id: str, verify: bool = True) -> None:
    """Point ACTIVE at ``release_id`` with an atomic rename (after verifying it, unless
    the caller has just loaded and verified it)."""
    read_manifest(index_dir, release_id, verify=verify)
    tmp = index_dir / f".ACTIVE.{os.getpid()}.tmp"
    _write(tmp, (release_id + "\n").encode("utf-8"))
    os.replace(tmp, pointer_path(index_dir))
    _fsync_dir(index_dir)


def read_manifest(index_dir: Path, release_id: str, verify: bool = False) -> dict[str, Any]:
    """The release's manifest; with ``verify``, every file's checksum is checked."""
    path = releases_dir(index_dir) / release_id
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReleaseError(f"release {release_id!r} not found under {releases_dir(index_dir)}; see `kbops releases`") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ReleaseError(f"release {release_id!r} has a corrupt manifest.json; publish again or roll back") from None
    if manifest.get("format") != FORMAT:
        raise ReleaseError(f"release {release_id!r} has format {manifest.get('format')!r}, this kbops reads {FORMAT}")
    if verify:
        for name in FILES:
            try:
                digest = hashlib.sha256((path / name).read_bytes()).hexdigest()
            except FileNotFoundError:
                raise ReleaseError(f"release {release_id!r} is missing {name}; publish again or roll back") from None
            if digest != manifest["checksums"].get(name):
                raise ReleaseError(f"release {release_id!r}: {name} does not match its checksum (corrupt or truncated)")
    return manifest


def list_release_ids(index_dir: Path) -> list[str]:
    root = releases_dir(index_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def prune(index_dir: Path, keep: int) -> list[str]:
    """Delete the oldest releases beyond ``keep`` (never the active one) and stale temp dirs."""
    active = active_release_id(index_dir)
    ids = list_release_ids(index_dir)
    removed = []
    for rid in ids[: max(len(ids) - keep, 0)]:
        if rid != active:
            shutil.rmtree(releases_dir(index_dir) / rid, ignore_errors=True)
            removed.append(rid)
    root = releases_dir(index_dir)
    if root.is_dir():
        for tmp in root.glob(".tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)
    for stale in index_dir.glob(".ACTIVE.*.tmp"):  # a pointer write killed before its rename
        if not _pid_alive(stale.name.split(".")[2]):
            stale.unlink(missing_ok=True)
    return removed


@dataclass
class LoadedRelease:
    """A verified release in memory, ready to serve."""

    release_id: str
    manifest: dict[str, Any]
    index: Any
    entries: dict[int, dict[str, Any]]
    lexical: Any
    kinds: frozenset[str] = frozenset()  # the entry kinds (the API's "category" filter values)


def read_index_and_entries(index_dir: Path, release_id: str) -> tuple[dict[str, Any], Any, list[dict[str, Any]]]:
    """A verified release's manifest, FAISS index and served entries (the base of an incremental build)."""
    import faiss

    manifest = read_manifest(index_dir, release_id, verify=True)
    path = releases_dir(index_dir) / release_id
    index = faiss.deserialize_index(np.frombuffer((path / "index.faiss").read_bytes(), dtype=np.uint8))
    entries = json.loads((path / "entries.json").read_text(encoding="utf-8"))
    return manifest, index, entries


def load_release(
    index_dir: Path,
    release_id: str,
    expect_model: str | None = None,
    expect_dim: int | None = None,
    lexical_scorer: str = "bm25",
) -> LoadedRelease:
    manifest, index, entry_list = read_index_and_entries(index_dir, release_id)
    if expect_model is not None and manifest["model"] != expect_model:
        raise ReleaseError(
            f"release {release_id!r} was built with model {manifest['model']!r} but this server embeds with "
            f"{expect_model!r}; publish with `kbops publish --full` using the same model"
        )
    if expect_dim is not None and manifest["dim"] != expect_dim:
        raise ReleaseError(f"release {release_id!r} has dimension {manifest['dim']}, the model gives {expect_dim}")
    ivf = manifest.get("index", {})
    if ivf.get("type") == "ivf":
        index.nprobe = int(ivf.get("nprobe", index.nprobe))
    path = releases_dir(index_dir) / release_id
    entries = {int(e["id"]): e for e in entry_list}
    docs = [(int(eid), text) for eid, text in json.loads((path / "lexical.json").read_text(encoding="utf-8"))]
    kinds = frozenset(e["kind"] for e in entries.values())
    return LoadedRelease(release_id, manifest, index, entries, LexicalIndex(docs, lexical_scorer), kinds)
