"""Chinese confidence (issue 11): a calibration that cannot reach its target keeps the public mapping.

A store's own questions are its alternates, written next to the question they
rephrase: real customers are further away (bench/labels/README.md: on JDDC
turns the store calibration that reached only 0.80 on its own questions
answered at 0.50-0.75). A fit that fails the target precision on its own
questions is no ground to answer on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from kbops.index import calibration
from kbops.index.confidence import DEFAULTS


@dataclass
class _Top:
    entry_id: int
    answer: str
    score: float


def _questions(best_share: float, n: int = 200) -> tuple[list[calibration.Question], dict[int, tuple[_Top, float]]]:
    """``n`` in-KB questions whose top answer is more often right the higher its score and margin, up to
    ``best_share`` right among the best-scored: no threshold reaches a target above it."""
    questions, tops = [], {}
    for i in range(n):
        q = calibration.Question(f"q{i}", i, frozenset({f"a{i}"}), exclude_self=i, exclude_rows=(i,))
        f = ((i * 7) % n) / n  # 0..1, spread over the questions
        right = (i % 10) < 10 * (best_share - 0.3 + 0.3 * f)
        score, margin = 0.3 + 0.6 * f, 0.02 + 0.2 * f * (1 + i % 3) / 3
        tops[id(q)] = (_Top(i if right else i + 1, f"a{i}" if right else "other", score), score - margin)
        questions.append(q)
    return questions, tops


def test_a_fit_short_of_the_target_on_its_own_questions_keeps_the_public_mapping():
    questions, tops = _questions(0.7)
    fit = calibration.fit_language("zh", questions, lambda q, w: tops[id(q)], 0.9, DEFAULTS["zh"], calibrate_from="alternates")
    assert fit.model.source == "default"
    assert fit.model.coef == DEFAULTS["zh"].coef and fit.model.threshold == DEFAULTS["zh"].threshold
    assert fit.note and "0.90" in fit.note and "public" in fit.note


def test_a_fit_that_reaches_the_target_is_the_stores_own():
    questions, tops = _questions(1.0)  # right 70 % at the lowest scores, always at the highest
    fit = calibration.fit_language("zh", questions, lambda q, w: tops[id(q)], 0.9, DEFAULTS["zh"], calibrate_from="alternates")
    assert fit.model.source == "store" and fit.note is None
    assert fit.model.probability(0.8, 0.1) > fit.model.probability(0.4, 0.1)


def test_a_target_the_public_default_has_no_threshold_for_keeps_the_stores_most_precise():
    questions, tops = _questions(0.7)
    english = replace(DEFAULTS["en"], curve=())  # a default with no curve: its threshold was chosen for 0.90 only
    fit = calibration.fit_language("en", questions, lambda q, w: tops[id(q)], 0.95, english, calibrate_from="alternates")
    assert fit.model.source == "store" and fit.note and "0.95" in fit.note
    chinese = calibration.fit_language("zh", questions, lambda q, w: tops[id(q)], 0.95, DEFAULTS["zh"], calibrate_from="alternates")
    assert chinese.model.source == "default" and chinese.model.threshold == DEFAULTS["zh"].with_target(0.95).threshold


def test_a_tie_between_two_different_answers_is_never_confident():
    # JDDC test turn "可以" tied two entries exactly (margin 0) and was answered at 0.94: ranking breaks a tie
    # by entry id, so the top answer is at best a coin flip, whatever the score.
    model = DEFAULTS["zh"]
    assert model.probability(0.82, 0.0) <= 0.5 < model.threshold
    assert model.probability(0.82, 0.01) > 0.5  # a margin, however small, is the model's to judge


def test_a_fit_whose_confidence_falls_as_the_score_rises_keeps_the_public_mapping():
    # Right answers at low scores, wrong ones at high scores: on a KB of near neighbours, leave-one-out
    # alternates find a sibling entry with a high score. Customers' exact matches are not less right.
    questions, tops = _questions(1.0)
    for q in questions:
        top, second = tops[id(q)]
        if top.score > 0.75:
            tops[id(q)] = (_Top(top.entry_id + 1, "other", top.score), second)
    fit = calibration.fit_language("zh", questions, lambda q, w: tops[id(q)], 0.9, DEFAULTS["zh"], calibrate_from="alternates")
    assert fit.model.source == "default" and fit.model.coef == DEFAULTS["zh"].coef
    assert fit.note and "falls" in fit.note
