"""kbops.index.similarity: the one fused question similarity, and its parameters per caller."""

from __future__ import annotations

import numpy as np
import pytest

from kbops.index import similarity
from kbops.index.lexical import LexicalIndex, pair_matrix
from kbops.validate.similar import find_near_duplicates


def test_the_weight_leans_on_the_lexical_channel_for_what_the_model_cannot_read():
    assert similarity.fusion_weight(0.6, 0.0) == pytest.approx(0.6)
    assert similarity.fusion_weight(0.6, 1.0) == 0.0
    assert similarity.fusion_weight(0.6, 0.25, 0.5) == pytest.approx(0.3)  # a pair: the less readable text decides
    np.testing.assert_allclose(similarity.fusion_weight(1.0, np.array([0.0, 0.5]), np.array([0.2, 0.1])), [0.8, 0.5])


def test_fuse_is_a_weighted_mean_with_negative_cosines_as_zero():
    assert similarity.fuse(0.6, 0.9, 0.4) == pytest.approx(0.6 * 0.9 + 0.4 * 0.4)
    assert similarity.fuse(0.0, 0.9, 0.4) == 0.4
    assert similarity.fuse(0.5, -0.3, 0.4) == pytest.approx(0.2)
    np.testing.assert_allclose(similarity.fuse(np.array([1.0, 0.5]), np.array([-0.2, 0.8]), np.array([0.3, 0.2])), [0.0, 0.5])


def test_fused_scores_count_a_channel_that_missed_a_candidate_as_zero():
    scores = similarity.fused_scores(0.5, {1: 0.8, 2: 0.6}, {2: 1.0, 3: 0.4})
    assert scores == pytest.approx({1: 0.4, 2: 0.8, 3: 0.2})
    per_key = similarity.fused_scores({1: 1.0, 2: 0.0}, {1: 0.8, 2: 0.6}, {2: 1.0})
    assert per_key == pytest.approx({1: 0.8, 2: 1.0})


def test_count_cosine_is_exact_and_ignores_what_else_the_index_holds():
    a, b = "能开增值税专用发票吗", "可以开增值税专用发票吗？"
    alone = LexicalIndex([(1, b)], "tf").scores(a)[1]
    crowded = LexicalIndex([(1, b), (2, "增值税发票多久开好？"), (3, "Can I get an invoice?")], "tf").scores(a)[1]
    assert alone == crowded == pytest.approx(15 / (17 * 19) ** 0.5)
    assert LexicalIndex([(1, b)], "tf").scores(b)[1] == 1.0  # a threshold of 1.0 means identical


def test_all_pairs_agree_with_scoring_each_pair(embedder):
    texts = ["Do you offer installation for the ceiling fan?", "Can someone install the ceiling fan for me?", "能开增值税专用发票吗", "可以开增值税专用发票吗？"]
    view = similarity.dense_view(embedder, texts, 0.6)
    pairs = similarity.similar_pairs(texts, view, 0.3)
    m = pair_matrix(texts)
    for (i, j), score in pairs.items():
        w = similarity.fusion_weight(0.6, view.unk[i], view.unk[j])
        assert score == pytest.approx(similarity.fuse(w, float(view.vectors[i] @ view.vectors[j]), float((m[i] @ m[j].T).toarray()[0, 0])), abs=1e-6)
    assert (1, 0) in pairs and (3, 2) in pairs and (2, 0) not in pairs


def test_near_duplicates_are_the_embedding_cosine_for_text_the_model_reads(embedder):
    entries = [{"entry_key": "policy:invoice:en", "lang": "en", "question": "Can I get an invoice?", "alt_questions": []}]
    rows = [{"candidate_id": 1, "entry_key": "new", "lang": "en", "question": "How do I get an invoice?"}]
    [near] = find_near_duplicates(rows, entries, embedder, 0.5).values()
    q, e = embedder.encode(["How do I get an invoice?", "Can I get an invoice?"])
    assert near.score == pytest.approx(float(q @ e), abs=1e-6)
