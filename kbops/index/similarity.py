"""Question similarity: the one fused score behind retrieval (and gap coverage), grouping and near-duplicates.

    score = w · dense + (1 − w) · lexical        w = dense_weight × (1 − u)

* ``dense``: cosine of the shared embedder's vectors (:class:`kbops.index.embedder.Embedder`),
  clipped at 0.
* ``lexical``: a cosine (or self-normalised BM25) over :func:`kbops.text.tokens`,
  from :mod:`kbops.index.lexical` — a :class:`~kbops.index.lexical.LexicalIndex`
  for one query against many texts, :func:`~kbops.index.lexical.pair_matrix`
  for all pairs of a set.
* ``u``: the unreadable share, :meth:`Embedder.unk_share` (share of the text's
  word pieces the model's tokenizer maps to ``[UNK]``). The bundled model reads
  no Chinese, so a Chinese question is compared by its lexical channel alone
  instead of by meaningless vectors. When both texts are known (pairs) ``u`` is
  the larger of their shares; the retriever (and gap coverage, its caller) know only
  the query's (a release stores no per-entry share).

What differs between callers is a parameter of this module, not a copy:

=====================  ======================  ==============================  =============================
caller                 dense_weight            lexical                          candidates scored
=====================  ======================  ==============================  =============================
retriever              calibrated, per lang.   release LexicalIndex             FAISS top 50 ∪ lexical top 50
(search.answer_from)                           (settings.lexical_scorer)
gap coverage           the retriever's: each topic's question is answered from the active release
(mining.gap_coverage)  by search.answer_from (preview.answer_active), as the bot would answer it
chat grouping          settings.dense_weight   pair_matrix (binary idf cosine,  lexical pairs ∪ dense pairs
(chats, similar_pairs)                         common tokens dropped)           at or above the threshold
near-duplicates        1.0                     LexicalIndex ``tf``              dense top 10 ∪ lexical top 50
(validate.similar)     (NEAR_DUPLICATE_...)    (count cosine, no idf)
=====================  ======================  ==============================  =============================

Near-duplicates, decided (issue 10): they now take their unreadable share
from the tokenizer like everyone else (they used to count CJK characters), their
lexical score from :class:`~kbops.index.lexical.LexicalIndex` (it used to be a
private counter cosine) and fuse with :func:`fuse`. Two things stay as they
were, as parameters, because ``near_duplicate_threshold`` is an absolute bar
calibrated on them (README, Measured: 0.80 → 9.0 % of Bitext phrasings
proposed, 96.3 % of them of their own intent):

* dense weight 1.0, not ``dense_weight``: the retrieval blend ranks answers;
  as a "same question" score it is worse at every operating point on Bitext;
* ``tf`` weighting (count cosine), not BM25/TF-IDF: with idf over the KB a
  pair's score would depend on what else the KB holds (adding an unrelated
  entry could turn a near-duplicate into a new entry), and BM25's
  self-normalisation is asymmetric.

What did change: the tokenizer reads a few CJK characters, punctuation and
digits, so a Chinese question is no longer 100 % unreadable and its
(near-meaningless) vectors get a small weight, as the retriever has always
scored Chinese. The figures behind these choices (same-run, Bitext and JDDC)
are in bench/README.md, "Figures behind the code".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from kbops.index.lexical import pair_matrix, pairs_above

#: The near-duplicate check's dense weight (see the module docstring).
NEAR_DUPLICATE_DENSE_WEIGHT = 1.0


def fusion_weight(dense_weight: float, share: Any, other_share: Any = None) -> Any:
    """w = dense_weight × (1 − u), u the unreadable share (the larger of two texts' shares, for a pair).

    Takes floats or numpy arrays (element-wise).
    """
    u = share if other_share is None else np.maximum(share, other_share)
    return dense_weight * (1.0 - u)


def fuse(w: Any, dense: Any, lexical: Any) -> Any:
    """w · dense + (1 − w) · lexical, with a negative dense cosine counting as 0 (floats or arrays)."""
    if isinstance(dense, np.ndarray):
        return w * np.maximum(dense, 0.0) + (1 - w) * lexical
    return w * max(dense, 0.0) + (1 - w) * lexical  # one pair: plain floats (the bot's per-query path)


def query_weight(embedder: Any, query: str, dense_weight: float) -> float:
    """The fusion weight of one query against texts whose own readability is not known."""
    return float(fusion_weight(dense_weight, embedder.unk_share(query)))


def fused_scores(w: float | Mapping[int, float], dense: Mapping[int, float], lexical: Mapping[int, float]) -> dict[int, float]:
    """The fused score of every candidate either channel found (a channel that did not find it counts 0).

    ``w`` is one weight for all candidates, or one per candidate (pairs whose
    readability differs).
    """
    out: dict[int, float] = {}
    for key in dense.keys() | lexical.keys():
        wk = w[key] if isinstance(w, Mapping) else w
        out[key] = float(fuse(wk, dense.get(key, 0.0), lexical.get(key, 0.0)))
    return out


# --- dense side of a set of texts ------------------------------------------------------


@dataclass
class DenseView:
    """Vectors of a set of texts from the shared embedder and how readable each text was."""

    vectors: np.ndarray  # (n, dim), rows of unreadable texts are zero
    unk: np.ndarray  # (n,) share of [UNK] word pieces
    dense_weight: float

    @property
    def weights(self) -> np.ndarray:
        """Each text's own fusion weight (a pair takes the smaller of its two)."""
        return fusion_weight(self.dense_weight, self.unk)


def pair_reader(embedder: Any) -> Any:
    """The embedder pair similarities read with: the main model only (:meth:`Embedder.without_chinese_reader`).

    Grouping, near-duplicates and the impact estimate compare two texts against an absolute bar fitted on
    the main model's cosines (Chinese: characters); the bot's ranking, which calibrates its own weights,
    reads Chinese with the Chinese reader. An embedder without the method (a test double) is itself."""
    strip = getattr(embedder, "without_chinese_reader", None)
    return strip() if strip is not None else embedder


def unreadable_shares(embedder: Any, texts: Sequence[str]) -> np.ndarray:
    """:meth:`Embedder.unk_share` of each text."""
    return np.array([embedder.unk_share(t) for t in texts], dtype=np.float32)


def dense_view(embedder: Any, texts: Sequence[str], dense_weight: float) -> DenseView:
    """Embed only texts the model can read at least partly (through its cache), with :func:`pair_reader`."""
    embedder = pair_reader(embedder)
    unk = unreadable_shares(embedder, texts)
    readable = [i for i, u in enumerate(unk) if u < 1.0]
    dim = embedder.dim
    vectors = np.zeros((len(texts), dim), dtype=np.float32)
    if readable:
        vectors[readable] = embedder.encode([texts[i] for i in readable])
    return DenseView(vectors, unk, dense_weight)


# --- all pairs --------------------------------------------------------------------------


def similar_pairs(
    texts: Sequence[str], dense: DenseView | None, threshold: float, background: Sequence[str] = ()
) -> dict[tuple[int, int], float]:
    """(i, j) with i > j whose fused similarity is at least ``threshold``: the grouping form.

    Lexical-only when ``dense`` is None. ``background``: more texts to weigh
    words by (idf), never paired themselves. Costs about the number of similar
    pairs, not N²: a fused score is a weighted mean, so a pair reaching
    ``threshold`` reaches it in at least one channel, and the candidates are the
    lexical pairs ∪ the dense pairs, each found with one matrix product.
    """
    m = pair_matrix(list(texts) + list(background))[: len(texts)] if background else pair_matrix(texts)
    lexical = pairs_above(m, threshold)
    if dense is None:
        return lexical
    w = dense.weights
    readable = np.nonzero(w > 0)[0]
    candidates = set(lexical)
    if len(readable) > 1:
        v = dense.vectors[readable]
        wr = w[readable]
        for start in range(0, len(readable), 1024):
            block = v[start : start + 1024] @ v.T
            # Only pairs the dense channel could lift over the threshold.
            rows, cols = np.nonzero((block >= threshold) & (np.minimum(wr[start : start + 1024, None], wr[None, :]) > 0))
            for r, c in zip(rows, cols):
                i, j = int(readable[start + r]), int(readable[c])
                if i > j:
                    candidates.add((i, j))
    if not candidates:
        return {}
    pairs = sorted(candidates)
    ii = np.array([p[0] for p in pairs])
    jj = np.array([p[1] for p in pairs])
    lx = _row_dots(m, ii, jj)
    d = np.einsum("ij,ij->i", dense.vectors[ii], dense.vectors[jj])
    fused = fuse(fusion_weight(dense.dense_weight, dense.unk[ii], dense.unk[jj]), d, lx)
    return {(int(i), int(j)): float(s) for i, j, s in zip(ii, jj, fused) if s >= threshold}


def _row_dots(m: sparse.csr_matrix, ii: np.ndarray, jj: np.ndarray) -> np.ndarray:
    return np.asarray(m[ii].multiply(m[jj]).sum(axis=1)).ravel()
