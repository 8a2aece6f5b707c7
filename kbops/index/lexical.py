"""The lexical channel: TF-IDF cosine over word tokens and CJK character n-grams.

Scores are cosines in [0, 1], so they can be fused with dense cosines and
compared with one handoff threshold. Query tokens the index has never seen
still count in the query's norm (with the highest idf), so a query made of
unknown words scores low instead of matching on one common token.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
from scipy import sparse

from kbops.text import tokens


class LexicalIndex:
    """An in-memory TF-IDF matrix built from (entry id, text) documents."""

    def __init__(self, docs: list[tuple[int, str]]):
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
        rows, cols, vals = [], [], []
        for i, c in enumerate(counts):
            weights = {vocab[t]: (1 + math.log(tf)) * self.idf[vocab[t]] for t, tf in c.items()}
            norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
            for j, w in weights.items():
                rows.append(i)
                cols.append(j)
                vals.append(w / norm)
        self.matrix = sparse.csr_matrix((vals, (rows, cols)), shape=(len(docs), max(len(vocab), 1)), dtype=np.float32)

    def scores(self, query: str, limit: int = 50) -> dict[int, float]:
        """Best cosine per entry id for the query: the ``limit`` best-scoring documents only.

        A Chinese query shares characters like "商品" with much of a catalogue;
        fusing every document with a score above zero would cost O(KB) per query.
        """
        c = Counter(tokens(query))
        if not c or self.matrix.shape[0] == 0:
            return {}
        known, norm_sq = {}, 0.0
        for tok, tf in c.items():
            j = self.vocab.get(tok)
            w = (1 + math.log(tf)) * (self.idf[j] if j is not None else self.max_idf)
            norm_sq += w * w
            if j is not None:
                known[j] = w
        if not known:
            return {}
        q = sparse.csr_matrix(
            (list(known.values()), ([0] * len(known), list(known.keys()))), shape=(1, self.matrix.shape[1]), dtype=np.float32
        )
        sims = np.asarray((self.matrix @ q.T).todense()).ravel() / math.sqrt(norm_sq)
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
