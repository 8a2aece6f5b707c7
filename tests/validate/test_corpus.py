"""The bad-input corpus: every hostile row is caught for its reason; no hand-written good row is blocked."""

from __future__ import annotations

import pytest

from kbops.pipeline import validate_candidates
from tests.validate import corpus_kit


@pytest.fixture
def live_kb(settings):
    corpus_kit.build_kb(settings)
    return settings


def test_corpus_sizes():
    bad = corpus_kit.load("bad")
    assert sum(1 for r in bad if r["expect"]) >= 100
    assert len(corpus_kit.load("good")) >= 40
    assert sum(1 for r in bad if len(r["answer"].encode("utf-8")) >= 1_048_576) >= 6


@pytest.mark.slow
def test_gate_catches_every_bad_row_and_blocks_no_good_row(live_kb):
    bad, good = corpus_kit.load("bad"), corpus_kit.load("good")
    if live_kb.database_url.startswith("postgresql"):
        # PostgreSQL text cannot hold NUL at all, so such a candidate cannot exist there.
        bad = [r for r in bad if "\x00" not in r["question"] + r["answer"]]
    bad_ids = corpus_kit.insert(live_kb, bad, "bad")
    validate_candidates(live_kb)
    good_ids = corpus_kit.insert(live_kb, good, "good")
    validate_candidates(live_kb)
    bad_score = corpus_kit.score(bad, corpus_kit.outcomes(live_kb, bad_ids))
    good_score = corpus_kit.score(good, corpus_kit.outcomes(live_kb, good_ids))
    assert bad_score["missed"] == [] and bad_score["wrong_reason"] == [], bad_score
    assert bad_score["blocked"] == [], bad_score  # the legitimate first rows of duplicate pairs
    assert good_score["blocked"] == [], good_score
