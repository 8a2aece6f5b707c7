"""Confidence that means something, per language: a model of P(right), chosen by what data a language has.

The bot's raw score (a fused cosine) is not a probability, and its meaning
differs by language and reading model, so one threshold for both languages
gave confident wrong answers in Chinese and needless handoffs in English
(issue 11). Per language, at every publish, a :class:`LanguageModel` says how
the two channels are fused (the dense weight), how a ranked query's top score
and margin map to ``confidence = σ(a + b·score + c·margin)``, and the lowest
confidence that answers (the threshold reaching ``KBOPS_TARGET_PRECISION``,
default 0.90, on the precision/answer-rate curve stored with it). Which data
fits it, first that applies:

1. **Golden questions** (customers' phrasings with their expected entry), at
   least :data:`MIN_PAIRS` in the language: they choose the dense weight on
   :data:`WEIGHT_GRID` (average precision: answered precision at every
   coverage at once; both single channels are on the grid, so on them the
   fusion is never worse than either) and fit the mapping and threshold,
   with *out-of-KB* questions (any answer is wrong): the store's golden
   handoff questions (kbops/index/golden.py), topped up to
   ``CALIBRATION_OUT_OF_KB_SHARE`` of the set with left-out entries'
   questions (an entry left out: its question must not be answered by
   another entry).
2. **The KB's own alternates**: each question of an entry, left out of the
   index (vector and lexical row), must find the entry through its other
   questions (leave-one-out), plus golden and out-of-KB questions; the weight
   from :data:`ALTERNATES_WEIGHT_GRID` (both channels always count). With
   ``KBOPS_CALIBRATE_FROM=auto`` (default) only when they rephrase each
   other — at least :data:`ALTERNATES_MIN_RECALL` of them find their own
   entry —, with ``alternates`` always, with ``default`` never.
3. Otherwise **the public default** of the language and reading model
   (:func:`~kbops.index.confidence.default_for`), fitted on customers'
   questions of public data (``bench/bench_confidence.py --fit-defaults``).

Why alternates do not always decide (measured, ``bench/bench_confidence.py``,
four KBs and their customers' test questions): a left-out alternate scores
lower than a customer's paraphrase of a question the KB still holds, most of
all where an entry's alternates ask about different facets of it ("How do I
add a follow-up review" / "Can I delete a bad review"). Fitted on such
alternates, the bot answered customers at 1.000 but a third as often as the
public default on the same KBs, or less (help desks: 12 % and 16 % against
34 % and 68 %); where alternates rephrase each other (Bitext), the fit on them
answered 55 % at 0.927 for a 0.90 target. Facet alternates also chose a
weight below the dense channel alone on the English help desk (0.8: recall@1
0.892 against 0.898), so only alternates that pass the test choose the
weight. The leave-one-out recall is measured and reported either way
(``recall_at_1``): a KB whose entries cannot find each other says so.

A fit is not trusted, and the public mapping answers (with the fitted weight)
with a note in the manifest, when no threshold reaches the target even on
the questions it was fitted on (a mapping short there falls further short in
traffic), or when the fitted confidence *falls* as the score or the margin
rises (near-neighbour entries teach that to leave-one-out alternates, not to
customers); likewise when those questions are all right or all wrong.

The result goes into the release manifest (``calibration``) with the data
sizes and the curve; the bot reads it with the release, so a rollback rolls
the calibration back too.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np

from kbops.config import Settings
from kbops.index import search, similarity
from kbops.index.confidence import DEFAULT_TARGET, LanguageModel, default_for, threshold_for
from kbops.index.release import entry_questions
from kbops.pii import drop_placeholders
from kbops.text import detect_lang, fingerprint

#: Fewer golden questions (with KBOPS_CALIBRATE_FROM=alternates: golden and leave-one-out) than this in a
#: language: keep the public default for it.
MIN_PAIRS = 50
#: In ``KBOPS_CALIBRATE_FROM=auto``, the KB's alternates are fitted on when, each left out in turn, at least this
#: share finds its own entry: alternates that rephrase each other. Where they did (Bitext, 0.90), the fit on them
#: answered customers at 0.927 for a 0.90 target; where they did not (0.46-0.65: alternates about different
#: facets of an entry), at 0.90-1.00 but answering a third as often as the public default did (or less).
ALTERNATES_MIN_RECALL = 0.8
#: Dense weights a language's alternates choose from when fitted on: both channels always count for at least a
#: fifth. Alternates written next to the questions they rephrase favour a single channel — on 0–1 they chose
#: dense alone on every bench KB, and lexical alone on the sample store's Chinese — while customers' questions
#: did better with a blend on Bitext and both Chinese sets (bench/README.md, "Figures behind the code").
ALTERNATES_WEIGHT_GRID = tuple(round(0.1 * i, 1) for i in range(2, 9))
#: Dense weights a language's golden questions choose from: both single channels are on it, so on the store's
#: customers' questions the fusion is never below either.
WEIGHT_GRID = tuple(round(0.1 * i, 1) for i in range(11))
#: A fitted score or margin weight below minus this means confidence falls as it rises (not numerical noise).
MONOTONE_TOLERANCE = 0.05
#: Share of out-of-KB questions in the calibration set.
CALIBRATION_OUT_OF_KB_SHARE = 0.3


# --- the calibration set ----------------------------------------------------------------


@dataclass
class Question:
    """A question with a known right outcome: ``expected`` entry id, or None when the right outcome is a handoff."""

    text: str
    expected: int | None
    answers: frozenset[str]  # answer texts counted right (the expected entry's, or a left-out entry's twin)
    exclude_entry: int | None = None
    exclude_self: int | None = None
    exclude_rows: tuple[int, ...] = ()
    golden: bool = False  # a store's labelled question (kbops/index/golden.py), not one of the KB's own texts


@dataclass
class Outcome:
    score: float
    margin: float
    right: bool


@dataclass
class Fit:
    """One language's calibration, as stored in the manifest."""

    model: LanguageModel
    in_kb: int
    out_of_kb: int
    golden: int
    recall_at_1: float
    recall_by_weight: dict[float, float] = field(default_factory=dict)
    note: str | None = None
    ap_by_weight: dict[float, float] = field(default_factory=dict)
    fitted_on: str | None = None  # "golden" | "alternates"; None: the public default
    golden_handoff: int = 0  # golden questions the bot must hand off, among the out-of-KB ones

    def as_dict(self) -> dict[str, Any]:
        return {
            "dense_weight": self.model.dense_weight,
            "coef": [round(x, 4) for x in self.model.coef],
            "threshold": self.model.threshold,
            "source": self.model.source,
            "fitted_on": self.fitted_on,
            "pairs": self.in_kb + self.out_of_kb + self.golden,
            "in_kb": self.in_kb,
            "out_of_kb": self.out_of_kb,
            "golden": self.golden,
            "golden_handoff": self.golden_handoff,
            "recall_at_1": round(self.recall_at_1, 4),
            "recall_by_weight": {str(w): round(r, 4) for w, r in self.recall_by_weight.items()},
            "average_precision_by_weight": {str(w): round(r, 4) for w, r in self.ap_by_weight.items()},
            "curve": [list(point) for point in self.model.curve],
            "note": self.note,
        }


def _rows(entries: Mapping[int, Mapping[str, Any]]) -> dict[int, list[int]]:
    """Each entry's lexical rows, in the order the release writes them (question, then alternates)."""
    rows: dict[int, list[int]] = {}
    n = 0
    for eid, entry in entries.items():
        count = len(entry_questions(entry))
        rows[eid] = list(range(n, n + count))
        n += count
    return rows


def calibration_set(
    entries: Mapping[int, Mapping[str, Any]],
    lang: str,
    golden: Sequence[tuple[str, int | None]] = (),
    max_questions: int = 300,
    seed: int = 0,
) -> list[Question]:
    """In-KB (leave-one-out), golden and out-of-KB (leave-entry-out) questions of one language.

    ``golden``: (question, expected entry id), or None for a question that must be handed off (its language
    is the question's own)."""
    rng = random.Random(f"{seed}:{lang}")
    rows = _rows(entries)
    by_answer: dict[str, set[int]] = {}
    for eid, e in entries.items():
        by_answer.setdefault(e["answer"], set()).add(eid)
    mine = [eid for eid, e in entries.items() if e["lang"] == lang]
    in_kb = []
    for eid in mine:
        texts = list(entry_questions(entries[eid]))
        if len(texts) < 2:
            continue
        for i, text in enumerate(texts):
            in_kb.append(Question(text, eid, frozenset({entries[eid]["answer"]}), exclude_self=eid, exclude_rows=(rows[eid][i],)))
    rng.shuffle(in_kb)
    in_kb = in_kb[:max_questions]
    gold = [_golden_question(q, eid, entries[eid], rows[eid]) for q, eid in golden if eid is not None and eid in entries and entries[eid]["lang"] == lang]
    refused = [Question(q, None, frozenset()) for q, eid in golden if eid is None and detect_lang(q) == lang]
    wanted = round((len(in_kb) + len(gold)) * CALIBRATION_OUT_OF_KB_SHARE / (1 - CALIBRATION_OUT_OF_KB_SHARE))
    # Any question of an entry, with the whole entry left out, is a question the KB cannot answer.
    pool = [(eid, text) for eid in mine for text in entry_questions(entries[eid])]
    out = []
    for eid, text in rng.sample(pool, min(wanted, len(pool))):
        twins = frozenset(entries[other]["answer"] for other in by_answer[entries[eid]["answer"]] if other != eid)
        out.append(Question(text, None, twins, exclude_entry=eid))
    return in_kb + gold + refused + out


def _golden_question(text: str, eid: int, entry: Mapping[str, Any], rows: Sequence[int]) -> Question:
    """A golden question expecting entry ``eid``. When the entry asks this very text (a reviewer taught it the
    customer's phrasing: ``kbops review label-gap``, a merge), that text is left out as a leave-one-out question's
    is: asked against itself it scores 1 and says nothing of the next customer's phrasing. An entry with no other
    text keeps it (left out, the entry could not be found at all)."""
    texts = list(entry_questions(entry))
    same = [i for i, t in enumerate(texts) if fingerprint(t) == fingerprint(text)]
    if same and len(texts) > 1:
        return Question(text, eid, frozenset({entry["answer"]}), exclude_self=eid, exclude_rows=(rows[same[0]],), golden=True)
    return Question(text, eid, frozenset({entry["answer"]}), golden=True)


# --- fitting ------------------------------------------------------------------------------


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 50) -> tuple[float, float, float]:
    """(a, b, c) of P(y) = σ(a + b·x₀ + c·x₁) by Newton's method with a small ridge (no scikit-learn needed)."""
    X = np.column_stack([np.ones(len(x)), x]).astype(np.float64)
    beta = np.zeros(X.shape[1])
    reg = l2 * np.eye(X.shape[1])
    reg[0, 0] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(X @ beta, -40, 40)))
        grad = X.T @ (p - y) + reg @ beta
        hess = (X * (p * (1 - p))[:, None]).T @ X + reg + 1e-9 * np.eye(X.shape[1])
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    a, b, c = (float(v) for v in beta)
    return a, b, c


def curve_of(probabilities: Sequence[float], right: Sequence[bool], total: int) -> tuple[tuple[float, float, float], ...]:
    """(threshold, answered share of all ``total`` questions, precision of the answered) at 0.05 steps."""
    p = np.asarray(probabilities, dtype=np.float64)
    r = np.asarray(right, dtype=bool)
    points = []
    for t in np.round(np.arange(0.05, 1.0, 0.05), 2):
        answered = p >= t
        n = int(answered.sum())
        points.append((float(t), round(n / max(total, 1), 4), round(float(r[answered].mean()) if n else 0.0, 4)))
    return tuple(points)


def outcomes(ranked_top: Sequence[tuple[Any, Any]], questions: Sequence[Question]) -> list[Outcome | None]:
    """Score, margin and rightness of each question's top hit (None: nothing could answer it)."""
    out: list[Outcome | None] = []
    for (top, second), q in zip(ranked_top, questions):
        if top is None:
            out.append(None)
            continue
        right = (top.entry_id == q.expected) if q.expected is not None else False
        right = right or top.answer in q.answers
        out.append(Outcome(top.score, top.score - second, right))
    return out


def average_precision(results: Sequence[Outcome | None]) -> float:
    """Average precision of answering the questions best-scored first: the mean, over the right answers, of
    the precision of everything answered up to each (questions nothing could answer are never answered)."""
    ranked = sorted((r for r in results if r is not None), key=lambda r: -r.score)
    right = seen = 0
    total = 0.0
    for r in ranked:
        seen += 1
        if r.right:
            right += 1
            total += right / seen
    return total / max(sum(1 for r in ranked if r.right), 1)


def fit_language(
    lang: str, questions: Sequence[Question], score: Any, target: float, default: LanguageModel, calibrate_from: str = "auto"
) -> Fit:
    """The dense weight, the mapping and the threshold of one language (the module docstring says which data decides).

    ``score(question, weight)`` returns (top hit, runner-up score) for a question
    ranked at that dense weight (see :func:`kbops.index.search.rank`).
    ``calibrate_from`` (``KBOPS_CALIBRATE_FROM``) says what to fit on when golden questions are too few: ``auto`` fits on the
    KB's own leave-one-out questions when they find their entries (:data:`ALTERNATES_MIN_RECALL`), ``alternates``
    always, ``default`` never."""
    in_kb = [q for q in questions if q.expected is not None and not q.golden]
    gold = [q for q in questions if q.expected is not None and q.golden]
    out = [q for q in questions if q.expected is None]
    refused = [q for q in out if q.exclude_entry is None]  # golden questions the bot must hand off
    # How well the KB's alternates find their own entries at the public weight: reported, and in "auto" the test
    # of whether they rephrase each other (then they score like customers' paraphrases) or ask about facets.
    found = outcomes([score(q, default.dense_weight) for q in in_kb], in_kb)
    own_recall = sum(1 for r in found if r is not None and r.right) / max(len(in_kb), 1)
    alternates_fit = calibrate_from == "alternates" or (calibrate_from == "auto" and own_recall >= ALTERNATES_MIN_RECALL)
    if len(gold) >= MIN_PAIRS:
        # Customers' own phrasings: they decide the weight too, with both single channels on the grid. Questions
        # without an answer make at least CALIBRATION_OUT_OF_KB_SHARE of the set.
        fitted_on, grid = "golden", WEIGHT_GRID
        # The store's own handoff questions first, topped up with left-out entries' questions to the share: a
        # store whose traffic is mostly out of scope (JDDC turns: 67 %) says so by labelling it.
        wanted = round(len(gold) * CALIBRATION_OUT_OF_KB_SHARE / (1 - CALIBRATION_OUT_OF_KB_SHARE))
        asked = gold + refused + [q for q in out if q.exclude_entry is not None][: max(wanted - len(refused), 0)]
    elif alternates_fit and len(in_kb) + len(gold) >= MIN_PAIRS:
        fitted_on, grid = "alternates", ALTERNATES_WEIGHT_GRID
        asked = list(questions)
    else:
        if len(in_kb) + len(gold) < MIN_PAIRS:
            why = f"{len(in_kb) + len(gold)} questions with a known answer (< {MIN_PAIRS})"
        elif calibrate_from == "default":
            why = f"{len(gold)} golden questions (< {MIN_PAIRS}); the KB's alternates are not fitted on (KBOPS_CALIBRATE_FROM=default)"
        else:
            why = (f"{len(gold)} golden questions (< {MIN_PAIRS}); the KB's alternates find their own entry {own_recall:.0%} of the time "
                   f"(< {ALTERNATES_MIN_RECALL:.0%}: they ask about different things, and score below customers' paraphrases)")
        return Fit(default, len(in_kb), len(out), len(gold), own_recall, note=f"{why}: the public default is used", golden_handoff=len(refused))
    positives = [q for q in asked if q.expected is not None]
    recall: dict[float, float] = {}
    quality: dict[float, float] = {}
    for w in grid:
        results = outcomes([score(q, w) for q in asked], asked)
        recall[w] = sum(1 for r, q in zip(results, asked) if r is not None and r.right and q.expected is not None) / len(positives)
        quality[w] = average_precision(results)
    # The weight whose scores put right answers above wrong ones best (answered precision at every
    # coverage at once), which is what the threshold then trades; ties to the lower weight.
    best = max(grid, key=lambda w: (round(quality[w], 4), -w))
    results = outcomes([score(q, best) for q in asked], asked)
    scored = [r for r in results if r is not None]
    y = np.array([r.right for r in scored], dtype=np.float64)
    counts = (len(in_kb), len(asked) - len(positives), len(gold))
    if len(scored) < MIN_PAIRS or y.min() == y.max():
        note = "every calibration question was answered right" if len(y) and y.min() == 1 else "too few scored questions"
        model = LanguageModel(best, default.coef, default.threshold, "default", default.curve)
        return Fit(model, *counts, recall[best], recall, f"{note}: the public mapping is used with the fitted weight", quality, fitted_on, len(refused))
    coef = fit_logistic(np.array([[r.score, r.margin] for r in scored]), y)
    probe = LanguageModel(best, coef, 0.5, "store")
    probabilities = [probe.probability(r.score, r.margin) for r in scored]
    curve = curve_of(probabilities, [r.right for r in scored], len(asked))
    threshold = threshold_for(curve, target)
    reached = next((p for t, _, p in curve if t == threshold), 0.0)
    shortfall = None if reached >= target else f"answered precision reaches only {reached:.2f} on this KB's {fitted_on} questions (target {target:.2f})"
    if min(coef[1:]) < -MONOTONE_TOLERANCE:
        # On a KB of near neighbours (退款 vs 退货) a left-out alternate often finds a sibling entry with a high
        # score, and the fit learns that a higher score (or margin) means *less* likely right: true of
        # alternates, not of customers, whose exact match it would trust less than a vague one.
        shortfall = f"the fitted confidence falls as the {'score' if coef[1] < coef[2] else 'margin'} rises on this KB's {fitted_on} questions"
    if shortfall and (default.curve or target <= DEFAULT_TARGET):
        # A mapping that misses the target even on the questions it was fitted on extrapolates worse (JDDC
        # turns: 0.80 on the KB's alternates, 0.50-0.75 on real turns), so the public one answers — when it
        # has a threshold for this target (else the store's most precise threshold, as before).
        public = default.with_target(target)
        model = LanguageModel(best, public.coef, public.threshold, "default", public.curve)
        return Fit(model, *counts, recall[best], recall, f"{shortfall}: the public mapping is used with the fitted weight", quality, fitted_on, len(refused))
    return Fit(LanguageModel(best, coef, threshold, "store", curve), *counts, recall[best], recall, shortfall, quality, fitted_on, len(refused))


@dataclass
class _Eligible:
    """The entries that may answer one calibration question, re-fused cheaply for each dense weight.

    :func:`kbops.index.search.rank` decides which entries may answer (window,
    identifiers, kind) independently of the weight; only the order changes
    with it, so the grid search re-fuses arrays instead of re-ranking."""

    hits: list[Any]
    dense: np.ndarray
    lexical: np.ndarray
    unk: float

    @classmethod
    def of(cls, hits: list[Any], unk: float) -> _Eligible:
        return cls(hits, np.array([h.dense for h in hits]), np.array([h.lexical for h in hits]), unk)

    def top(self, dense_weight: float) -> tuple[Any, float]:
        """(top hit with its score at this weight, runner-up score) — as search.rank and search.runner_up would give."""
        if not self.hits:
            return None, 0.0
        fused = similarity.fuse(similarity.fusion_weight(dense_weight, self.unk), self.dense, self.lexical)
        order = sorted(range(len(self.hits)), key=lambda i: (-fused[i], self.hits[i].entry_id))
        best = self.hits[order[0]]
        second = next((float(fused[i]) for i in order[1:] if not search.answers_alike(self.hits[i].answer, best.answer)), 0.0)
        return replace(best, score=round(float(fused[order[0]]), 4)), round(second, 4)


def calibrate(
    loaded: Any,
    embedder: Any,
    settings: Settings,
    golden: Sequence[tuple[str, str | None]] = (),
    now: datetime | None = None,
) -> dict[str, Any]:
    """The ``calibration`` block of a release manifest for ``loaded`` (an in-memory or loaded release).

    ``golden``: (question, entry key) pairs, the key None for a question that must be handed off
    (:func:`kbops.index.golden.golden_pairs`); keys not in the release are ignored.
    """
    started = time.perf_counter()
    now = now or datetime.now().astimezone()
    by_key = {e["entry_key"]: eid for eid, e in loaded.entries.items()}
    golden_ids = [(q, None if k is None else by_key[k]) for q, k in golden if k is None or k in by_key]
    languages: dict[str, Any] = {}
    for lang in sorted({e["lang"] for e in loaded.entries.values()} | {"en", "zh"}):
        questions = calibration_set(loaded.entries, lang, golden_ids, settings.calibration_questions) if settings.calibration_questions else []
        default = default_for(lang, embedder.model_id)
        texts = [drop_placeholders(q.text) for q in questions]  # as search.channel_scores and rank read them
        unk = [embedder.unk_share(t) for t in texts]
        readable = [i for i, u in enumerate(unk) if u < 1.0]
        found: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if readable:  # one FAISS search for all readable questions (cached vectors: the KB's own texts)
            rows = search.dense_search(loaded, embedder.encode_queries([texts[i] for i in readable]), leave_out=True)
            found = dict(zip(readable, rows))
        eligible = {}
        for i, q in enumerate(questions):
            channels = search.channel_scores(loaded, embedder, texts[i], unk=unk[i], found=found.get(i),
                                             exclude_entry=q.exclude_entry, exclude_self=q.exclude_self, exclude_rows=q.exclude_rows)
            eligible[id(q)] = _Eligible.of(search.rank(loaded, channels, texts[i], 0.5, now=now).hits, unk[i])

        def score(q: Question, w: float, eligible: dict[int, _Eligible] = eligible) -> tuple[Any, float]:
            return eligible[id(q)].top(w)

        fit = fit_language(lang, questions, score, settings.target_precision, default, settings.calibrate_from)
        if detect_lang(" ".join(texts[:20])) not in (lang, "und") and texts:
            fit.note = (fit.note + "; " if fit.note else "") + "entries tagged with this language read as another"
        languages[lang] = fit.as_dict()
    return {
        "target_precision": settings.target_precision,
        "out_of_kb_share": CALIBRATION_OUT_OF_KB_SHARE,
        "min_pairs": MIN_PAIRS,
        "languages": languages,
        "seconds": round(time.perf_counter() - started, 3),
    }


def report(calibration: Mapping[str, Any] | None) -> list[str]:
    """Human-readable lines for ``kbops calibrate --report`` (and publish's warnings)."""
    if not calibration:
        return ["this release has no calibration (published before calibration existed): the public defaults answer"]
    lines = [f"target answered-precision {calibration['target_precision']:.2f}; out-of-KB share of the calibration set {calibration['out_of_kb_share']:.0%}"]
    for lang, data in sorted(calibration["languages"].items()):
        fitted_on = data.get("fitted_on")
        head = (
            f"{lang}: {data['source']}" + (f" (fitted on {fitted_on} questions)" if fitted_on and data["source"] == "store" else "")
            + f" — {data['in_kb']} leave-one-out, {data['golden']} golden, {data['out_of_kb']} out-of-KB questions"
            + (f" ({data['golden_handoff']} of them golden handoffs)" if data.get("golden_handoff") else "") + "; "
            f"dense weight {data['dense_weight']}, recall@1 {data['recall_at_1']:.3f}, threshold {data['threshold']:.2f}"
        )
        lines.append(head)
        if data.get("note"):
            lines.append(f"    note: {data['note']}")
        for t, answered, precision in data.get("curve", ()):
            mark = "  ◀" if abs(t - data["threshold"]) < 1e-9 else ""
            lines.append(f"    confidence ≥ {t:.2f}: answers {answered:6.1%}, precision {precision:6.1%}{mark}")
    return lines
