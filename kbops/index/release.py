"""Index releases: built completely in a fresh directory, then activated atomically.

Layout under the index root::

    releases/<release-id>/   index.faiss     FAISS index, id = KB entry id (exact or IVF, see below)
                             entries.json    what the bot serves (texts, validity windows)
                             lexical.json    (entry id, text) documents for the lexical channel
                             manifest.json   model, dimension, counts, checksums, KB digest
    ACTIVE                   the active release id (replaced with an atomic rename)
    REVOKED.json             the revocation overlay, rewritten (atomically) just before ACTIVE moves

The revocation overlay (:func:`write_overlay`) tells a bot replica that still
serves an older release which of its entries it must no longer serve: every
entry id withdrawn, retired, expired or changed by the last activations, with
the version the active release holds (``null``: not served at all) and the
reason. A replica serving release R drops each entry whose version in R differs
from the overlay's, the moment it sees ``ACTIVE`` move (kbops/serve/retriever.py),
and loads the new release meanwhile. The overlay is cumulative over the last
``keep`` activations (the releases it ``covers``), so a replica several
activations behind is still covered.

This is the layout of the publisher's index directory and, object for object, of
the shared release store every replica reads (kbops/index/store.py: the index
directory itself by default, or object storage such as ``s3://…``).

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
from collections.abc import Mapping
from dataclasses import dataclass, field
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


def overlay_path(index_dir: Path) -> Path:
    return index_dir / "REVOKED.json"


def entry_version(entry: dict[str, Any]) -> list[Any]:
    """What makes a served entry the same fact: its revision and validity window (as the incremental build compares)."""
    return [entry["revision"], entry.get("valid_from"), entry.get("valid_to")]


def read_entries(index_dir: Path, release_id: str, verify: bool = False) -> list[dict[str, Any]]:
    """A release's served entries (entries.json): what the overlay and the activation checks compare.
    With ``verify``, the file must match the manifest's checksum."""
    try:
        raw = (releases_dir(index_dir) / release_id / "entries.json").read_bytes()
    except FileNotFoundError:
        read_manifest(index_dir, release_id)  # a missing release says so
        raise ReleaseError(f"release {release_id!r} is missing entries.json; publish again or roll back") from None
    if verify and hashlib.sha256(raw).hexdigest() != read_manifest(index_dir, release_id)["checksums"].get("entries.json"):
        raise ReleaseError(f"release {release_id!r}: entries.json does not match its checksum (corrupt or truncated)")
    try:
        entries: list[dict[str, Any]] = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ReleaseError(f"release {release_id!r} has a corrupt entries.json; publish again or roll back") from None
    return entries


def revocations(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[int, list[Any] | None]:
    """Entry id → the version ``after`` serves (None: not served) for every entry of ``before`` that ``after``
    no longer serves as it was (withdrawn, retired, expired or changed)."""
    now = {int(e["id"]): entry_version(e) for e in after}
    return {int(e["id"]): now.get(int(e["id"])) for e in before if now.get(int(e["id"])) != entry_version(e)}


def read_overlay(index_dir: Path) -> dict[str, Any] | None:
    """The revocation overlay, or None when there is none or it cannot be read (then nothing is known)."""
    try:
        overlay = json.loads(overlay_path(index_dir).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return overlay if isinstance(overlay, dict) and overlay.get("format") == FORMAT else None


def next_overlay(
    previous_overlay: dict[str, Any] | None,
    *,
    previous: str | None,
    release_id: str,
    revoked: dict[int, tuple[list[Any] | None, str]],
    activated_at: str,
    keep: int,
) -> dict[str, Any]:
    """The overlay to write when ``release_id`` replaces ``previous``: the last one (when it was written for
    ``previous``, i.e. its activation really happened) plus this activation's ``revoked`` (id → (version, reason)),
    trimmed to the last ``keep`` activations."""
    carried = previous_overlay if previous_overlay and previous_overlay.get("release_id") == previous else None
    activations: list[dict[str, Any]] = list(carried["activations"]) if carried else ([{"seq": 0, "release_id": previous, "activated_at": None}] if previous else [])
    seq = (activations[-1]["seq"] + 1) if activations else 1
    activations.append({"seq": seq, "release_id": release_id, "activated_at": activated_at})
    activations = activations[-(keep + 1):]
    entries = {k: v for k, v in (carried["revoked"].items() if carried else ()) if v["seq"] > activations[0]["seq"]}
    for entry_id, (version, reason) in revoked.items():
        entries[str(entry_id)] = {"version": version, "reason": reason, "seq": seq, "release_id": release_id}
    return {
        "format": FORMAT, "release_id": release_id, "previous": previous, "activated_at": activated_at,
        "activations": activations, "revoked": entries,
    }


def write_overlay(index_dir: Path, overlay: dict[str, Any]) -> None:
    """Replace the overlay atomically (temp file, fsync, rename): a reader sees the old one or the new one."""
    tmp = index_dir / f".REVOKED.{os.getpid()}.tmp"
    _write(tmp, json.dumps(overlay, ensure_ascii=False).encode("utf-8"))
    os.replace(tmp, overlay_path(index_dir))
    _fsync_dir(index_dir)


def overlay_revoked_for(overlay: dict[str, Any] | None, serving: str, active: str, entries: dict[int, dict[str, Any]]) -> dict[int, str] | None:
    """Entry id → reason for each entry of the ``serving`` release that the ``active`` one no longer serves as is.

    None when the overlay cannot tell (there is none, or it does not cover both
    releases: a pointer moved by hand, a replica further behind than the overlay keeps).
    """
    if not overlay:
        return None
    covered = {a["release_id"] for a in overlay.get("activations", ())}
    if serving not in covered or active not in covered:
        return None
    out: dict[int, str] = {}
    for key, info in overlay.get("revoked", {}).items():
        entry = entries.get(int(key))
        if entry is not None and entry_version(entry) != info.get("version"):
            out[int(key)] = str(info.get("reason") or "changed")
    return out


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
                json.dumps([[e["id"], t] for e in entries for t in entry_questions(e)], ensure_ascii=False).encode("utf-8"),
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
    for pattern in (".ACTIVE.*.tmp", ".REVOKED.*.tmp"):  # a pointer or overlay write killed before its rename
        for stale in index_dir.glob(pattern):
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
    #: What search derives once per release and keeps (entry identifiers, token sets, languages):
    #: a release never changes once loaded, so neither does anything derived from it.
    memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def entry_questions(entry: Mapping[str, Any]) -> tuple[str, ...]:
    """A served entry's questions: its question, then its alternates (the texts its vectors and lexical postings are
    made of; an entry written by hand may have no ``alt_questions``)."""
    return (entry["question"], *entry.get("alt_questions", ()))


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
