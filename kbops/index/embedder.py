"""The one embedder used everywhere (candidates, index, queries), with a persistent cache.

The model is a local sentence-transformers directory (default: the bundled
offline all-MiniLM-L6-v2); nothing is ever fetched from a hub. Vectors are
L2-normalised float32, so inner product is cosine similarity. The cache is a
SQLite file keyed by (model id, text hash): unchanged text is never embedded
twice, across publishes and processes.

Backends (``embed_backend`` in Settings): ``torch`` runs sentence-transformers'
own ``encode()`` (any sentence-transformers directory; the fallback);
``onnx`` and ``onnx-int8`` run the same model exported locally to ONNX
Runtime (see :mod:`kbops.index.onnx_backend`). The backend is part of
``model_id``: vectors of different backends never mix in the cache or in a
release, and a server refuses a release built with another backend.

Chinese (``embed_model_zh``, default ``use-m3``): the default model reads no
Chinese, so texts in Chinese go to a second model that does
(:mod:`kbops.index.chinese_reader`). A vector is then the two models' blocks
side by side, ``[main(text), 0]`` or ``[0, reader(text)]``: one FAISS index, one
release format, and a Chinese and an English text have cosine 0, so neither
model's space is compared with the other's. Each block is cached under its own
model's id, so adding the reader re-embeds no English text. The reader is part
of ``model_id`` too.
"""

from __future__ import annotations

import copy
import hashlib
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kbops.config import Settings
from kbops.errors import ConfigError
from kbops.index import chinese_reader
from kbops.text import to_simplified

BACKENDS = ("torch", "onnx", "onnx-int8")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

# Embedder.from_settings' shared instances, by (model, backend, cache, models dir, batch size, prefixes, threads, zh reader)
_SHARED: dict[tuple[str, str, str, str, int | None, str, str, int, str], Embedder] = {}
_SHARED_LOCK = threading.Lock()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0


class Embedder:
    """Encode texts with a local sentence-transformers model and a vector cache.

    ``backend`` picks how the model runs (see the module docstring); the ONNX
    backends keep their exported model under ``models_dir`` (built there
    atomically on first use). Build one from Settings with :meth:`from_settings`;
    the constructor's own default is the plain ``torch`` path.
    """

    def __init__(
        self,
        model_dir: str,
        cache_path: Path | None = None,
        batch_size: int | None = None,
        backend: str = "torch",
        models_dir: Path | None = None,
        query_prefix: str = "",
        passage_prefix: str = "",
        threads: int = 0,
        zh_reader: str = "none",
    ):
        path = Path(model_dir)
        if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
            raise ConfigError(
                f"embedding model directory {model_dir!r} has no model files; set KBOPS_EMBEDDING_MODEL "
                "to a local sentence-transformers directory"
            )
        if backend not in BACKENDS:
            raise ConfigError(f"embed_backend={backend!r} is unknown; set KBOPS_EMBED_BACKEND to one of {', '.join(BACKENDS)}")
        self.model_dir = path
        self.backend = backend
        self.digest = _dir_digest(path)
        if backend == "torch":
            # unchanged from before backends existed, so existing caches and releases stay valid
            self.model_id = f"{path.name}-{self.digest}"
        else:
            from kbops.index.onnx_backend import RECIPE, PipelineSpec, _require_runtime

            _require_runtime()  # fail now, with the fix, rather than at the first query
            self._onnx_dim = PipelineSpec(path).dim  # refuses a pipeline the ONNX path cannot reproduce
            self.model_id = f"{path.name}-{self.digest}+{backend}-{RECIPE}"
            if models_dir is None:
                models_dir = cache_path.parent / "models" if cache_path is not None else Path.home() / ".cache" / "kbops" / "models"
        if query_prefix or passage_prefix:
            # Vectors of prefixed texts are other vectors: a release built with other prefixes is refused.
            self.model_id += "+prefix-" + hashlib.sha256(f"{query_prefix}\x1f{passage_prefix}".encode()).hexdigest()[:8]
        self.query_prefix, self.passage_prefix = query_prefix, passage_prefix
        # Chinese texts' reader (module docstring); the constructor's default keeps one model for everything
        self.zh = chinese_reader.reader(zh_reader, threads)
        self.main_model_id = self.model_id  # the id the main model's block is cached under
        self._main_only: Embedder | None = None
        self._loads_from: Embedder | None = None  # the view without the Chinese reader loads nothing of its own
        if self.zh is not None:
            self.model_id += f"+zh-{self.zh.model_id}"
        self.threads = threads  # ONNX Runtime intra-op threads; 0: one per core
        self.models_dir = models_dir  # set for the ONNX backends (above); None for torch
        # ONNX Runtime runs length-sorted batches of 32, torch keeps its previous 64
        # (the measurement behind 32: bench/README.md, "Figures behind the code")
        self.batch_size = batch_size or (64 if backend == "torch" else 32)
        self.stats = CacheStats()
        self._model: Any = None
        self._onnx: Any = None
        self._lock = threading.Lock()
        self._cache_path = cache_path
        if cache_path is not None:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            with self._cache() as conn:
                conn.execute("CREATE TABLE IF NOT EXISTS vectors (model TEXT, hash TEXT, vec BLOB, PRIMARY KEY (model, hash))")

    @classmethod
    def from_settings(cls, settings: Settings, *, batch_size: int | None = None) -> Embedder:
        """The embedder Settings describe: model, cache, backend, and ``$KBOPS_HOME/models`` for ONNX files.

        THE factory: every stage (gate, mining, publish, retriever) builds its
        embedder here, so they all embed with the model the bot serves. One
        instance per process per (model, backend, cache, models directory,
        batch size) is shared: loading a model costs seconds. The plain
        constructor builds a private instance (tests, benchmarks).
        """
        models_dir = settings.models_dir or settings.home / "models"
        key = (str(settings.embedding_model), settings.embed_backend, str(settings.embed_cache), str(models_dir), batch_size,
               settings.embed_query_prefix, settings.embed_passage_prefix, settings.embed_threads, settings.embed_model_zh)
        with _SHARED_LOCK:
            shared = _SHARED.get(key)
            if shared is None:
                # a ConfigError (no model files, no ONNX Runtime) is raised here, every time: nothing is kept
                shared = _SHARED[key] = cls(
                    settings.embedding_model, settings.embed_cache, batch_size=batch_size,
                    backend=settings.embed_backend, models_dir=models_dir,
                    query_prefix=settings.embed_query_prefix, passage_prefix=settings.embed_passage_prefix,
                    threads=settings.embed_threads, zh_reader=settings.embed_model_zh,
                )
            return shared

    def _cache(self) -> sqlite3.Connection:
        assert self._cache_path is not None  # callers check: no cache path, no cache
        conn = sqlite3.connect(self._cache_path, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    @property
    def model(self):
        """The sentence-transformers model (torch backend; loaded on first use)."""
        if self._loads_from is not None:
            return self._loads_from.model
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(str(self.model_dir), device="cpu", local_files_only=True)
            return self._model

    @property
    def onnx(self):
        """The ONNX Runtime encoder (ONNX backends; the model file is built on first use)."""
        if self._loads_from is not None:
            return self._loads_from.onnx
        with self._lock:
            if self._onnx is None:
                from kbops.index.onnx_backend import OnnxEncoder, ensure_model

                assert self.models_dir is not None  # always set for the ONNX backends
                onnx_path = ensure_model(self.model_dir, self.digest, self.backend, self.models_dir)
                self._onnx = OnnxEncoder(self.model_dir, onnx_path, threads=self.threads or None)
            return self._onnx

    @property
    def dim(self) -> int:
        """Dimensions of a vector: the main model's, plus the Chinese reader's block when there is one."""
        return self.main_dim + (self.zh.dim if self.zh is not None else 0)

    @property
    def main_dim(self) -> int:
        if self.backend != "torch":
            return self._onnx_dim  # from the model's pooling config: no build needed to know it
        model = self.model
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def _encode(self, texts: list[str]) -> np.ndarray:
        if self.backend != "torch":
            return self.onnx.encode(texts, batch_size=self.batch_size)
        vecs = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Normalised vectors for KB texts ``texts`` (rows in order, with the passage prefix), from the cache when possible."""
        return self._vectors(texts, self.passage_prefix)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Vectors for many texts asked as queries (calibration), with the query prefix, through the cache."""
        return self._vectors(texts, self.query_prefix)

    def _vectors(self, texts: list[str], prefix: str) -> np.ndarray:
        """Each text's vector through the cache: the main model's block, or the Chinese reader's for Chinese text.

        Every path (this one, :meth:`encode_query`, :meth:`encode_query_batch`) embeds the text in Simplified
        characters (:func:`kbops.text.to_simplified`), and the cache keys that form: a customer's 電飯煲多少錢 gets the
        vector of the store's 电饭煲多少钱, and a simplified text keeps its cache entry."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        texts = [to_simplified(t) for t in texts]

        def main(batch: list[str]) -> np.ndarray:
            return self._cached([prefix + t for t in batch] if prefix else batch, self.main_model_id, self._encode)

        if self.zh is None:
            return main(texts)
        zh = self.zh
        return self._blocks(texts, main, lambda batch: self._cached(batch, zh.model_id, zh.encode))

    def _blocks(self, texts: list[str], main: Any, chinese: Any) -> np.ndarray:
        """(n, dim) vectors: ``main(texts)`` in the main model's block, ``chinese(texts)`` in the reader's, each
        model run once on the texts routed to it (:func:`kbops.index.chinese_reader.reads`)."""
        routed = [chinese_reader.reads(t) for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        main_rows = [i for i, z in enumerate(routed) if not z]
        zh_rows = [i for i, z in enumerate(routed) if z]
        if main_rows:
            out[main_rows, : self.main_dim] = main([texts[i] for i in main_rows])
        if zh_rows:
            out[zh_rows, self.main_dim :] = chinese([texts[i] for i in zh_rows])
        return out

    def without_chinese_reader(self) -> Embedder:
        """This embedder reading every text with its main model (the same model, cache and ONNX session).

        Pair similarities (grouping chats and gaps, near-duplicates, the review page's impact estimate) use it:
        their absolute bars (``near_duplicate_threshold``, the grouping threshold) were fitted on the main
        model's cosines and characters; on JDDC the reader's cosines, on another scale, merged a follow-up
        with the question before it and made new candidates (README, "Chinese reading")."""
        if self.zh is None:
            return self
        if self._main_only is None:
            main = copy.copy(self)
            main.zh, main.model_id, main._main_only, main._loads_from = None, self.main_model_id, main, self
            self._main_only = main
        return self._main_only

    def _cached(self, texts: list[str], model_id: str, run: Any) -> np.ndarray:
        """``run(texts)``'s vectors (``texts`` not empty), each read from or written to the cache under ``model_id``."""
        if self._cache_path is None:
            self.stats.misses += len(texts)
            return run(texts)
        keys = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]
        found: dict[str, np.ndarray] = {}
        with self._cache() as conn:
            unique = list(dict.fromkeys(keys))
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for h, blob in conn.execute(f"SELECT hash, vec FROM vectors WHERE model = ? AND hash IN ({marks})", [model_id, *chunk]):
                    found[h] = np.frombuffer(blob, dtype=np.float32)
        missing = list(dict.fromkeys(t for t, k in zip(texts, keys) if k not in found))
        self.stats.hits += sum(1 for k in keys if k in found)
        self.stats.misses += sum(1 for k in keys if k not in found)
        if missing:
            vecs = run(missing)
            rows = []
            for text, vec in zip(missing, vecs):
                h = hashlib.sha256(text.encode("utf-8")).hexdigest()
                found[h] = vec
                rows.append((model_id, h, vec.tobytes()))
            with self._cache() as conn:
                conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", rows)
        return np.stack([found[k] for k in keys]).astype(np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        """One query's vector, bypassing the cache: bot queries rarely repeat, and a
        cache write per query would sit on the hot path."""
        if self.zh is not None:
            return self.encode_query_batch([text])
        text = self.query_prefix + to_simplified(text)
        if self.backend != "torch":
            return self.onnx.encode_one(text)
        return self._encode([text])

    def encode_query_batch(self, texts: list[str]) -> np.ndarray:
        """Vectors of several queries asked at the same time, in one model run, bypassing the cache.

        The bot API batches questions that arrive together (kbops/serve/retriever.py): one run of N short
        texts costs far less CPU than N runs. Each vector agrees with :meth:`encode_query`'s to float32
        rounding (padding changes the kernels' summation order, not the result). With a Chinese reader,
        one run per model that has texts."""
        texts = [to_simplified(t) for t in texts]
        if self.zh is None:
            return self._encode([self.query_prefix + t for t in texts])

        def main(batch: list[str]) -> np.ndarray:
            if len(batch) == 1 and self.backend != "torch":
                return self.onnx.encode_one(self.query_prefix + batch[0])
            return self._encode([self.query_prefix + t for t in batch])

        return self._blocks(texts, main, self.zh.encode)

    def reads_with_main_model(self, text: str) -> bool:
        """Whether the main model, not the Chinese reader, encodes ``text`` (4–5 ms a query here against the reader's 1.5)."""
        return self.zh is None or not chinese_reader.reads(text)

    def unk_share(self, text: str) -> float:
        """Share of the text's word pieces the model cannot read ([UNK]).

        The default model maps every Chinese character to [UNK]; its vectors
        for Chinese text carry no meaning, so retrieval leans on the lexical
        channel in proportion to this share. A Chinese text read by the Chinese
        reader has that model's share (about 0).
        """
        text = to_simplified(text)
        if self.zh is not None and chinese_reader.reads(text):
            return self.zh.unk_share(text)
        if self.backend != "torch":
            return self.onnx.unk_share(text)
        tokenizer = self.model.tokenizer
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            return 1.0
        return sum(1 for i in ids if i == tokenizer.unk_token_id) / len(ids)


def _dir_digest(path: Path) -> str:
    h = hashlib.sha256()
    for name in ("config.json", "modules.json", "tokenizer.json"):
        f = path / name
        if f.is_file():
            h.update(f.read_bytes())
    weights = path / "model.safetensors"
    if weights.is_file():
        h.update(str(weights.stat().st_size).encode())
    return h.hexdigest()[:10]
