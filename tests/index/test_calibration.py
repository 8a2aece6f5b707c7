"""kbops.index.calibration and .confidence: P(right) per language from the store's own questions."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from kbops.config import Settings
from kbops.index import calibration
from kbops.index.confidence import DEFAULTS, LanguageModel, from_dict, model_for, threshold_for
from kbops.index.lexical import LexicalIndex
from kbops.index.release import LoadedRelease


def test_the_logistic_fit_recovers_a_known_mapping():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(4000, 2))
    p = 1 / (1 + np.exp(-(-6 + 8 * x[:, 0] + 3 * x[:, 1])))
    y = (rng.uniform(size=4000) < p).astype(float)
    a, b, c = calibration.fit_logistic(x, y)
    assert a == pytest.approx(-6, abs=0.8) and b == pytest.approx(8, abs=1.0) and c == pytest.approx(3, abs=0.8)


def test_the_threshold_is_the_lowest_that_reaches_the_target_else_the_most_precise():
    curve = ((0.1, 0.9, 0.70), (0.5, 0.6, 0.91), (0.7, 0.4, 0.95), (0.9, 0.0, 0.0))
    assert threshold_for(curve, 0.90) == 0.5
    assert threshold_for(curve, 0.95) == 0.7
    assert threshold_for(curve, 0.99) == 0.7  # out of reach: answer only what it is surest of


def test_a_model_reads_another_target_from_its_curve():
    model = LanguageModel(0.5, (-5.0, 8.0, 2.0), 0.5, "store", ((0.3, 0.8, 0.85), (0.5, 0.6, 0.91), (0.8, 0.3, 0.97)))
    assert model.with_target(0.95).threshold == 0.8
    stored = {"calibration": {"target_precision": 0.9, "languages": {"en": {"dense_weight": 0.5, "coef": [-5, 8, 2], "threshold": 0.5,
                                                                        "curve": [list(p) for p in model.curve]}}}}
    assert model_for(stored, "en", Settings.load(env={}, config_file=None)).threshold == 0.5
    assert model_for(stored, "en", Settings.load(env={"KBOPS_TARGET_PRECISION": "0.95"}, config_file=None)).threshold == 0.8
    assert model_for({}, "zh", Settings.load(env={}, config_file=None)) == DEFAULTS["zh"]  # no calibration: the public default
    assert from_dict(stored["calibration"]["languages"]["en"]).coef == (-5.0, 8.0, 2.0)


def _release(embedder, groups: list[tuple[str, list[str], str]], lang: str) -> LoadedRelease:
    """One entry per (question, alternates, answer), written in the order a release writes its lexical rows."""
    entries, docs = {}, []
    for eid, (question, alternates, answer) in enumerate(groups, start=1):
        entries[eid] = {"entry_key": f"k{eid}", "kind": "faq", "lang": lang, "question": question, "alt_questions": alternates,
                        "answer": answer, "tags": [], "valid_from": None, "valid_to": None}
        docs.extend((eid, t) for t in [question, *alternates])
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(embedder.dim))
    index.add_with_ids(embedder.encode([t for _, t in docs]), np.array([i for i, _ in docs], dtype=np.int64))
    return LoadedRelease("r", {}, index, entries, LexicalIndex(docs, "bm25"), frozenset({"faq"}))


TOPICS = ["invoice", "refund", "delivery", "password", "coupon", "warranty", "address", "payment", "membership", "return",
          "gift card", "order status", "cancellation", "exchange", "installation", "price match", "pickup", "subscription"]


def _faq(topic: str) -> tuple[str, list[str], str]:
    return (f"How do I get help with my {topic}?", [f"I have a question about {topic}", f"{topic} help please", f"Where can I read about {topic}?"],
            f"Everything about {topic} is on the {topic} page.")


def test_leave_one_out_questions_leave_out_exactly_their_own_text(embedder):
    loaded = _release(embedder, [_faq(t) for t in TOPICS[:3]], "en")
    questions = calibration.calibration_set(loaded.entries, "en", max_questions=100)
    in_kb = [q for q in questions if q.exclude_self is not None]
    out = [q for q in questions if q.expected is None]
    assert len(in_kb) == 12 and len(out) == round(12 * 0.3 / 0.7)
    docs = [t for e in loaded.entries.values() for t in [e["question"], *e["alt_questions"]]]
    for q in in_kb:
        assert docs[q.exclude_rows[0]] == q.text and q.exclude_self == q.expected
    assert all(q.exclude_entry is not None and not q.answers for q in out)


def test_a_small_kb_keeps_the_public_default_and_says_so(embedder):
    loaded = _release(embedder, [_faq(t) for t in TOPICS[:3]], "en")
    result = calibration.calibrate(loaded, embedder, Settings.load(env={}, config_file=None))
    en = result["languages"]["en"]
    assert en["source"] == "default" and "public default" in en["note"] and en["in_kb"] == 12
    assert result["languages"]["zh"]["in_kb"] == 0  # no Chinese entries at all


def test_a_kb_with_enough_questions_is_calibrated_on_them(embedder):
    loaded = _release(embedder, [_faq(t) for t in TOPICS], "en")
    result = calibration.calibrate(loaded, embedder, Settings.load(env={}, config_file=None), golden=[("what about my refund", "k2"), ("x", "nope")])
    en = result["languages"]["en"]
    assert en["source"] == "store" and en["in_kb"] == 72 and en["golden"] == 1 and en["out_of_kb"] == round(73 * 0.3 / 0.7)
    # The best weight of the grid, on which both channels always count (calibration.WEIGHT_GRID says why).
    ap = en["average_precision_by_weight"]
    assert ap[str(en["dense_weight"])] == max(ap.values()) and 0.0 < en["dense_weight"] < 1.0
    assert sorted(float(w) for w in ap) == list(calibration.WEIGHT_GRID)
    model = from_dict(en)
    curve = en["curve"]
    at = next(point for point in curve if point[0] == model.threshold)
    assert at[2] >= 0.9 or en["note"]  # the target precision is met at the threshold, or the note says it is not
    # Confidence rises with the score and with the margin.
    assert model.probability(0.9, 0.2) > model.probability(0.5, 0.2) and model.probability(0.7, 0.3) > model.probability(0.7, 0.0)
    assert calibration.report(result)[0].startswith("target answered-precision 0.90")
