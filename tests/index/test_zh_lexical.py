"""The lexical channel on Chinese (issue 11): a near-empty query is not a near-match."""

from __future__ import annotations

import pytest

from kbops.index import lexical
from kbops.index.lexical import LexicalIndex

DOCS = [(1, "怎么转人工客服？"), (2, "发票什么时候能开好？"), (3, "怎么取消订单？"), (4, "退款多久能到账？"), (5, "可以开增值税专用发票吗？")]


def test_a_query_of_one_shared_character_does_not_score_like_an_exact_match():
    index = LexicalIndex(DOCS)
    assert max(index.scores("人呢?").values()) < 0.5  # 人 is all the query has, and entry 1 holds it
    assert max(index.scores("好吧").values()) < 0.5
    assert index.scores("怎么转人工客服？")[1] == pytest.approx(1.0)  # a whole question still matches fully
    assert index.scores("我要转人工")[1] > index.scores("人呢?")[1]


def test_the_floor_is_a_share_of_the_median_question_and_only_for_bm25():
    index = LexicalIndex(DOCS)
    assert index.floor > 0
    assert LexicalIndex(DOCS, "tfidf").floor == 0.0 and LexicalIndex(DOCS, "tf").floor == 0.0
    assert LexicalIndex([]).floor == 0.0


def test_without_the_floor_the_one_character_query_would_look_certain(monkeypatch):
    monkeypatch.setattr(lexical, "QUERY_FLOOR", 0.0)
    assert max(LexicalIndex(DOCS).scores("人呢?").values()) > 0.6  # the behaviour the floor exists for
