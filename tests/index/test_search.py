"""kbops.index.search: ranking any loaded release with the bot's fusion and handoff rule."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from kbops.config import Settings
from kbops.index.lexical import LexicalIndex
from kbops.index.release import LoadedRelease
from kbops.index.search import answer_from

ENTRIES = [
    (1, "faq", "en", "Can I get an invoice?", "Every order comes with an electronic invoice."),
    (2, "faq", "en", "How long does shipping take?", "Orders ship within 48 hours."),
    (3, "faq", "zh", "可以开增值税专用发票吗？", "可以，在订单页申请。"),
    (4, "faq", "en", "Do you ship to Hong Kong?", "Not yet."),
]


@pytest.fixture
def release(embedder) -> LoadedRelease:
    entries = {
        eid: {"entry_key": f"k{eid}", "kind": kind, "lang": lang, "question": q, "answer": a, "tags": ["t"], "valid_from": None, "valid_to": None}
        for eid, kind, lang, q, a in ENTRIES
    }
    entries[4]["valid_to"] = "2000-01-01T00:00:00+00:00"  # expired: never served
    texts = [(eid, q) for eid, _, _, q, _ in ENTRIES]
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(embedder.dim))
    index.add_with_ids(embedder.encode([t for _, t in texts]), np.array([i for i, _ in texts], dtype=np.int64))
    return LoadedRelease("test", {}, index, entries, LexicalIndex(texts, "bm25"), frozenset({"faq"}))


@pytest.fixture
def settings() -> Settings:
    return Settings.load(env={}, config_file=None)


def test_an_english_query_fuses_both_channels(release, embedder, settings):
    answer = answer_from(release, embedder, settings, "How do I get an invoice?")
    top = answer.top
    assert top.entry_id == 1 and not answer.handoff
    w = settings.dense_weight * (1 - embedder.unk_share("How do I get an invoice?"))
    assert top.score == pytest.approx(w * top.dense + (1 - w) * top.lexical, abs=1e-3)
    assert top.dense > 0 and top.lexical > 0


def test_a_chinese_query_is_answered_by_the_lexical_channel(release, embedder, settings):
    answer = answer_from(release, embedder, settings, "能开增值税专用发票吗")
    assert answer.top.entry_id == 3 and answer.top.dense == 0.0 and answer.top.score == answer.top.lexical


def test_expired_entries_are_not_served_and_a_weak_match_is_handed_off(release, embedder, settings):
    assert all(h.entry_id != 4 for h in answer_from(release, embedder, settings, "Do you ship to Hong Kong?", top_k=4).hits)
    weak = answer_from(release, embedder, settings, "What colour is the sky on Mars?")
    assert weak.handoff and weak.reason == "no_match"
