"""The lexical channel: term-weighted cosine over word tokens and CJK character n-grams.

Two scorers, both giving scores in [0, 1] so they can be fused with dense
cosines and compared with one handoff threshold:

* ``bm25``: Okapi BM25 (k1=1.2, b=0.75) summed over the query's distinct
  terms, divided by the query's BM25 score against itself as a document — a
  document identical to the query scores 1, one that is longer or matches
  fewer of the query's terms less (clipped at 1). Raw BM25 sums are
  unbounded and not comparable across queries; this self-normalisation is
  what makes one threshold work.
* ``tfidf``: cosine of (1 + log tf) · idf vectors.

bench/bench_retrieval.py measures both on Bitext; the default is the one
that measured better there (see README, Measured). Query tokens the index has never seen
still count in the query's norm (with the highest idf), so a query made of
unknown words scores low instead of matching on one common token.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
from scipy import sparse

from kbops.text import tokens


K1 = 1.2
B = 0.75


class LexicalIndex:
    """An in-memory sparse term-weight matrix built from (entry id, text) documents."""

    def __init__(self, docs: list[tuple[int, str]], weighting: str = "bm25"):
        if weighting not in ("bm25", "tfidf"):
            raise ValueError(f"lexical weighting {weighting!r} must be 'bm25' or 'tfidf'")
        self.weighting = weighting
        self.entry_ids = np.array([d[0] for d in docs], dtype=np.int64)
        counts = [Counter(tokens(text)) for _, text in docs]
        vocab: dict[str, int] = {}
        for c in counts:
            for tok in c:
                vocab.setdefault(tok, len(vocab))
        n = max(len(docs), 1)
        df = np.zeros(len(vocab), dtype=np.float64)
        for c in counts:
            for tok in c:
                df[vocab[tok]] += 1
        self.vocab = vocab
        self.idf = np.log((n + 1) / (df + 1)) + 1.0
        self.max_idf = math.log(n + 1) + 1.0
        lengths = [sum(c.values()) for c in counts]
        avgdl = (sum(lengths) / len(lengths)) if lengths else 1.0
        rows, cols, vals = [], [], []
        for i, c in enumerate(counts):
            if weighting == "bm25":
                weights = {vocab[t]: self.idf[vocab[t]] * self._saturate(tf, lengths[i], avgdl) for t, tf in c.items()}
                norm = 1.0
            else:
                weights = {vocab[t]: (1 + math.log(tf)) * self.idf[vocab[t]] for t, tf in c.items()}
                norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
            for j, w in weights.items():
                rows.append(i)
                cols.append(j)
                vals.append(w / norm)
        self.avgdl = avgdl or 1.0
        self.matrix = sparse.csr_matrix((vals, (rows, cols)), shape=(len(docs), max(len(vocab), 1)), dtype=np.float32)

    @staticmethod
    def _saturate(tf: int, length: int, avgdl: float) -> float:
        return tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / (avgdl or 1.0)))

    def _query(self, c: Counter) -> tuple[dict[int, float], float]:
        """Query term weights (known terms) and the normaliser (unknown terms count in it)."""
        known: dict[int, float] = {}
        if self.weighting == "bm25":
            length, self_score = sum(c.values()), 0.0
            for tok, tf in c.items():
                j = self.vocab.get(tok)
                self_score += (self.idf[j] if j is not None else self.max_idf) * self._saturate(tf, length, self.avgdl)
                if j is not None:
                    known[j] = 1.0
            return known, self_score
        norm_sq = 0.0
        for tok, tf in c.items():
            j = self.vocab.get(tok)
            w = (1 + math.log(tf)) * (self.idf[j] if j is not None else self.max_idf)
            norm_sq += w * w
            if j is not None:
                known[j] = w
        return known, math.sqrt(norm_sq)

    def scores(self, query: str, limit: int = 50) -> dict[int, float]:
        """Best cosine per entry id for the query: the ``limit`` best-scoring documents only.

        A Chinese query shares characters like "商品" with much of a catalogue;
        fusing every document with a score above zero would cost O(KB) per query.
        """
        c = Counter(tokens(query))
        if not c or self.matrix.shape[0] == 0:
            return {}
        known, normaliser = self._query(c)
        if not known or normaliser <= 0:
            return {}
        q = sparse.csr_matrix(
            (list(known.values()), ([0] * len(known), list(known.keys()))), shape=(1, self.matrix.shape[1]), dtype=np.float32
        )
        sims = np.minimum(np.asarray((self.matrix @ q.T).todense()).ravel() / normaliser, 1.0)
        if len(sims) > limit:
            top = np.argpartition(-sims, limit)[:limit]
            top = top[sims[top] > 0]
        else:
            top = np.nonzero(sims > 0)[0]
        out: dict[int, float] = {}
        for row in top:
            eid = int(self.entry_ids[row])
            out[eid] = max(out.get(eid, 0.0), float(sims[row]))
        return out
