"""Fusion and calibrated confidence, English and Chinese, in one run (issue 11).

    .venv/bin/python bench/bench_confidence.py [--datasets ../shared/datasets] [--sets en,en-para,en-distinct,en-webapps,zh-jddc,zh-para,zh-para-large]
                                               [--split both|tune|test|all] [--fit-defaults] [--zh-reader use-m3|none]

Four KBs built as a store would: imported with ``kbops import --approve`` and
published (the publish calibrates each language: kbops/index/calibration.py;
never on the queries below):

* **en — Bitext**: one entry per intent with 5 phrasings (as bench/bench_retrieval.py),
  40 held-out phrasings per intent as queries, 5 intents left out of the KB
  (their queries should be handed off); split into tune and test by the text of the
  phrasing (bench/zh_labels.py ``split_of``);
* **en — paraphrases**: bench/labels/en_paraphrase_faq.jsonl (the help desk below in
  English, 159 entries) and customer-style English paraphrases of its questions
  (bench/labels/en_paraphrases.tsv, 47 of 365 out of the KB), the shape of the held-out
  English test (a FAQ asked in other words);
* **en — distinct topics** (``--sets en-distinct``, not in the default run): the same help
  desk thinned to entries about distinct topics — in file order, an entry is kept when no kept
  entry's question is within MiniLM cosine 0.5 of its own — asked with its kept entries'
  paraphrases and the out-of-KB ones: the shape of a FAQ whose entries do not neighbour each other;
* **en — a web-apps help centre** (``--sets en-webapps``, not in the default run):
  bench/labels/en_webapps_faq.jsonl (40 entries about Gmail, Facebook, YouTube, Google Docs…,
  imported without a catalogue) asked in its users' words (bench/labels/en_webapps_questions.tsv,
  20 of 140 out of the KB): the shape of issue 11's held-out English test, a Q&A site's FAQ whose
  questions name apps, formats and versions rather than a store's products;
* **zh — a larger help desk** (``--sets zh-para-large``, not in the default run): the help desk
  below, imported without alternates, with 1,207 real JDDC customer questions added as entries of
  their own (a question mark or a question word, 8–40 characters, no placeholder, no private data,
  placeholder answers): ten times the entries, e-commerce questions nearby. The held-out Chinese test's
  KB has thousands of questions. A distractor that answers a query counts as wrong: a lower bound;
* **zh — JDDC**: bench/labels/zh_faq.jsonl (56 general customer-service entries)
  and the real JDDC customer turns labelled against it
  (bench/labels/zh_retrieval.tsv; ``none`` turns should be handed off);
* **zh — paraphrases**: bench/labels/zh_paraphrase_faq.jsonl (159 near-neighbour
  help-desk entries) and customer-style paraphrases of its questions
  (bench/labels/zh_paraphrases.tsv, 90 of 528 out of the KB), the shape of the
  held-out Chinese test.

Every set is reported per split (tune and test apart; figures on test).
For each: recall@1/@5 over queries with an answer and precision at fixed
coverage (the best-scored 50 % / 75 % of all queries answered; an answered
query without an answer is wrong) of the dense channel alone, the lexical
channel alone (BM25; Chinese: character uni+bigrams), the old fixed blend
(dense weight 0.6) and the bot's fusion; then the bot's own decision —
recall@1, the share answered and its precision (over every query, and over the
queries with an answer only: the shape of a FAQ test whose every query has one) — as published (no golden
questions: the KB's alternates when they rephrase each other, else the public
default), fitted on the KB's alternates whatever they are
(``KBOPS_CALIBRATE_FROM=alternates``), on the same KB imported without
alternates, and (test part) fitted on the tune part's questions as golden
questions — those with an answer, then also those without as ``handoff`` —
what a store that labels its customers' questions gets.

``--fit-defaults`` fits each language's public default (kbops/index/confidence.py
DEFAULTS, READ_DEFAULTS) on the tune parts of its sets: the dense weight and
the mapping on the KBs without alternates, the threshold the lowest at which
those KBs, pooled, reach the target and no set, with or without alternates,
falls more than DEFAULT_FLOOR below it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from kbops.config import Settings
from kbops.db import init_db
from kbops.index import calibration, search
from kbops.index import release as rel
from kbops.index.confidence import DEFAULT_FLOOR, LanguageModel, model_for, threshold_for
from kbops.index.embedder import Embedder
from kbops.pii import find_private
from kbops.pipeline import activate_release, build_release, import_faq
from kbops.text import fingerprint

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_zh_paraphrase import EN_FAQ as EN_PARA_FAQ  # noqa: E402
from bench_zh_paraphrase import EN_LABELS as EN_PARA_LABELS  # noqa: E402
from bench_zh_paraphrase import FAQ as PARA_FAQ  # noqa: E402
from bench_zh_paraphrase import LABELS as PARA_LABELS  # noqa: E402
from bench_zh_paraphrase import load_paraphrases  # noqa: E402
from zh_labels import FAQ, jddc_rows, load_labels, split_of  # noqa: E402

OLD_BLEND = 0.6
WEBAPPS_FAQ = Path(__file__).resolve().parent / "labels" / "en_webapps_faq.jsonl"
WEBAPPS_LABELS = Path(__file__).resolve().parent / "labels" / "en_webapps_questions.tsv"


@dataclass
class Query:
    text: str
    keys: frozenset[str]  # entry keys that answer it; empty: it should be handed off


def bitext(datasets: Path, per_intent: int = 5, queries_per_intent: int = 40, held_out: int = 5) -> tuple[list[dict], list[Query]]:
    """Bitext as an FAQ KB (bench/bench_retrieval.py's construction) and its held-out queries."""
    rng = random.Random(7)
    by_intent: dict[str, list[str]] = defaultdict(list)
    for row in csv.DictReader((datasets / "bitext" / "bitext_customer_support_4514.csv").open(encoding="utf-8")):
        by_intent[row["intent"]].append(row["instruction"].strip())
    intents = sorted(by_intent)
    outside = set(rng.sample(intents, held_out))
    faq, queries = [], []
    for intent in intents:
        phrasings = list(dict.fromkeys(by_intent[intent]))
        rng.shuffle(phrasings)
        rest = phrasings
        if intent not in outside:
            kb = [p for p in phrasings if not find_private(p)][:per_intent]
            rest = [p for p in phrasings if p not in kb]
            kb.sort(key=len, reverse=True)
            faq.append({"id": intent, "question": kb[0], "alt_questions": kb[1:], "answer": f"This is the answer about {intent.replace('_', ' ')}.", "lang": "en"})
        queries += [Query(q, frozenset() if intent in outside else frozenset({f"import:{intent}"})) for q in rest[:queries_per_intent]]
    return faq, queries


def jddc(split: str) -> tuple[list[dict], list[tuple[Query, str]]]:
    """zh_faq.jsonl and the labelled real JDDC customer turns, each with its split."""
    faq = [json.loads(line) for line in FAQ.read_text(encoding="utf-8").splitlines() if line.strip()]
    turns = [t for t in load_labels() if split in ("all", t.split)]
    return faq, [(Query(t.text, frozenset(f"import:{k}" for k in t.keys)), t.split) for t in turns]


def paraphrases(lang: str = "zh", faq_path: Path | None = None, labels: Path | None = None) -> tuple[list[dict], list[tuple[Query, str]]]:
    """The help-desk FAQ of ``lang`` (zh_/en_paraphrase_faq.jsonl; or ``faq_path``) and its written customer-style
    paraphrases (or ``labels``, in the same format), each with its split."""
    if faq_path is None or labels is None:
        faq_path, labels = (PARA_FAQ, PARA_LABELS) if lang == "zh" else (EN_PARA_FAQ, EN_PARA_LABELS)
    faq = [json.loads(line) for line in faq_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return faq, [(Query(q.text, frozenset(f"import:{k}" for k in q.keys)), q.split) for q in load_paraphrases(labels, faq_path)]


#: What makes a JDDC customer turn a question (:func:`jddc_questions`).
_ASKS = re.compile(r"吗|怎么|什么|多久|能不能|可以|如何|为什么|哪|几天|是否|\?|？")


def jddc_questions(known: list[dict], data: Path, limit: int = 5000) -> list[dict]:
    """Real JDDC customer questions (``data``: the JDDC chat file) as FAQ entries of their own (see the module
    docstring, ``zh-para-large``), each with a placeholder answer of its own, none a question of ``known`` (by
    fingerprint, as the import gate reads it)."""
    seen = {fingerprint(r["question"]) for r in known}
    out: list[dict] = []
    for session in jddc_rows(data).values():
        for sender, q in session:
            if sender != "0" or not 8 <= len(q) <= 40 or any(c in q for c in "[{#") or not _ASKS.search(q):
                continue
            key = fingerprint(q)
            if key in seen or find_private(q):
                continue
            seen.add(key)
            out.append({"id": f"jddc-{len(out)}", "question": q, "lang": "zh",
                        "answer": f"第{len(out)}条回复：请在订单详情页查看相关说明，或联系在线客服处理。"})
            if len(out) >= limit:
                return out
    return out


def distinct(faq: list[dict], queries: list[tuple[Query, str]], embedder: Embedder, within: float = 0.5) -> tuple[list[dict], list[tuple[Query, str]]]:
    """The FAQ thinned to entries about distinct topics (see the module docstring) and the queries it still answers
    (or that no entry ever answered)."""
    vectors = embedder.without_chinese_reader().encode([row["question"] for row in faq])
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    kept: list[int] = []
    for i in range(len(faq)):
        if all(float(vectors[i] @ vectors[j]) < within for j in kept):
            kept.append(i)
    keys = {f"import:{faq[i]['id']}" for i in kept}
    return [faq[i] for i in kept], [(q, t) for q, t in queries if not q.keys or q.keys <= keys]


def precision_at(scored: list[tuple[float, bool]], coverage: float) -> float:
    """Precision of the best-scored ``coverage`` share of all queries."""
    ranked = sorted(scored, key=lambda s: -s[0])[: max(1, round(coverage * len(scored)))]
    return sum(ok for _, ok in ranked) / len(ranked)


def bare(faq: list[dict]) -> list[dict]:
    """The same FAQ without alternate questions: a store that imports one question per entry has
    nothing to calibrate on, so its language keeps the public default (kbops/index/confidence.py)."""
    return [{k: v for k, v in row.items() if k != "alt_questions"} for row in faq]


@dataclass
class Published:
    """A KB imported with ``kbops import --approve`` and published, as a store would."""

    loaded: Any
    embedder: Embedder
    settings: Settings
    entries: int


#: KBOPS_EMBED_MODEL_ZH of every KB the bench publishes (``--zh-reader``; the product's default unless told).
ZH_READER = Settings.embed_model_zh


def publish(faq: list[dict], root: Path, cache: Path) -> Published:
    root.mkdir(parents=True)
    (root / "faq.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in faq), encoding="utf-8")
    env = {"KBOPS_HOME": str(root / "home"), "KBOPS_EMBED_CACHE": str(cache), "KBOPS_EMBED_MODEL_ZH": ZH_READER}
    settings = Settings.load(env=env, config_file=None)
    init_db(settings)
    imported = import_faq(settings, root / "faq.jsonl", approve=True, by="bench")
    if imported.errors:
        raise SystemExit("the FAQ did not import cleanly: " + "; ".join(imported.errors[:5]))
    embedder = Embedder.from_settings(settings)
    activate_release(settings, build_release(settings, embedder=embedder).release_id)
    loaded = rel.load_release(settings.index_dir, rel.active_release_id(settings.index_dir))
    return Published(loaded, embedder, settings, imported.approved)


def channel_ranks(loaded: Any, scores: dict[int, float]) -> list[tuple[str, float]]:
    """(entry key, score) of one raw channel, best first (no fusion, no entity rules): a channel alone."""
    return [(loaded.entries[eid]["entry_key"], s) for eid, s in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0])) if eid in loaded.entries]


def fused_ranks(loaded: Any, channels: Any, query: str, dense_weight: float, now: datetime) -> list[tuple[str, float]]:
    """(entry key, score) of the bot's ranking at ``dense_weight``, best first."""
    return [(h.entry_key, h.score) for h in search.rank(loaded, channels, query, dense_weight, now=now).hits]


@dataclass
class Decided:
    """The bot's own decision with one model on one split: over every query, and over the queries that have an
    answer only (the shape of a FAQ test whose every query is a paraphrase of an entry: issue 11's held-out test)."""

    recall: float
    share: float
    precision: float
    share_answerable: float
    precision_answerable: float
    results: list[Any]


def bot(kb: Published, queries: list[Query], channels: list[Any], model: LanguageModel, now: datetime) -> Decided:
    """Recall@1, answered share and answered precision of the bot's own decision with ``model``, and its top outcomes."""
    answered = right = hit = answered_answerable = 0
    results = []
    for q, ch in zip(queries, channels):
        ranked = search.rank(kb.loaded, ch, q.text, model.dense_weight, now=now)
        handoff, _, _, _ = search.decide(kb.loaded, ranked, model, kb.settings)
        top = ranked.hits[0] if ranked.hits else None
        ok = top is not None and top.entry_key in q.keys
        hit += ok
        if top is not None:
            results.append(calibration.Outcome(top.score, top.score - search.runner_up(ranked.hits), ok))
        if not handoff:
            answered += 1
            right += ok
            answered_answerable += bool(q.keys)
    answerable = max(sum(1 for q in queries if q.keys), 1)
    # every right answer is of a query with an answer
    return Decided(hit / answerable, answered / max(len(queries), 1), right / max(answered, 1),
                   answered_answerable / answerable, right / max(answered_answerable, 1), results)


@dataclass
class Group:
    """One KB's top outcomes on one split at the public default's weight (for ``--fit-defaults``)."""

    name: str
    bare: bool  # imported without alternates: the KBs the public default is fitted for
    outcomes: list[Any]
    total: int


def run(name: str, faq: list[dict], splits: dict[str, list[Query]], cache: Path,
        pooled: dict[str, dict[float, list[Group]]] | None = None) -> None:
    """Every figure of one KB, per split: the channels alone and fused, and the bot as published (golden
    questions too few: the public default), fitted on the KB's alternates (KBOPS_CALIBRATE_FROM=alternates),
    and on the KB imported without alternates.

    ``pooled``: when given, both KBs' top outcomes at each dense weight are added to it per split (``--fit-defaults``)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = publish(faq, Path(tmp) / "store", cache)
        plain = publish(bare(faq), Path(tmp) / "bare", cache)
        lang = faq[0].get("lang", "en")
        model = model_for(store.loaded.manifest, lang, store.settings)
        default = model_for(plain.loaded.manifest, lang, plain.settings)
        stored = store.loaded.manifest["calibration"]["languages"][lang]
        alternates_settings = replace(store.settings, calibrate_from="alternates")
        fitted = calibration.calibrate(store.loaded, store.embedder, alternates_settings)["languages"][lang]
        on_alternates = model_for({"calibration": {"target_precision": store.settings.target_precision, "languages": {lang: fitted}}}, lang, store.settings)
        # A store that labelled its customers' questions: the tune part as golden questions, measured on the test
        # part only — with one expected entry each, and also with its out-of-KB questions as handoffs (key None).
        tune = splits.get("tune", [])
        golden_sets = {
            "golden: the tune part's answers": [(q.text, sorted(q.keys)[0]) for q in tune if q.keys],
            "golden: … and its handoffs": [(q.text, sorted(q.keys)[0] if q.keys else None) for q in tune],
        }
        on_golden: dict[str, LanguageModel] = {}
        for label, golden in golden_sets.items():
            if golden:
                by_golden = calibration.calibrate(store.loaded, store.embedder, store.settings, golden=golden)["languages"][lang]
                on_golden[label] = model_for({"calibration": {"target_precision": store.settings.target_precision, "languages": {lang: by_golden}}}, lang, store.settings)
                print(f"{label}: {by_golden['golden']} golden + {by_golden['golden_handoff']} golden handoffs, {by_golden['out_of_kb']} out-of-KB "
                      f"({by_golden['source']}, {by_golden['fitted_on']}): dense weight {on_golden[label].dense_weight}, threshold {on_golden[label].threshold}"
                      + (f" — {by_golden['note']}" if by_golden.get("note") else ""))
        print(f"\n## {name}: {store.entries} entries")
        print(f"as published ({stored['source']}): dense weight {model.dense_weight}, threshold {model.threshold}; the KB's own "
              f"leave-one-out recall@1 {stored['recall_at_1']:.3f}" + (f" — {stored['note']}" if stored.get("note") else ""))
        print(f"fitted on the KB's {fitted['in_kb']} leave-one-out + {fitted['out_of_kb']} left-out questions ({fitted['source']}): "
              f"dense weight {on_alternates.dense_weight}, threshold {on_alternates.threshold}" + (f" — {fitted['note']}" if fitted.get("note") else ""))
        now = datetime.now(UTC)
        for split, queries in splits.items():
            answerable = sum(1 for q in queries if q.keys)
            print(f"\n### {name} — {split}: {len(queries)} queries ({answerable} with an answer, {len(queries) - answerable} to hand off)")
            channels = [search.channel_scores(store.loaded, store.embedder, q.text) for q in queries]
            print(f"{'ranking':<32} {'R@1':>6} {'R@5':>6} {'P@50%':>7} {'P@75%':>7}")
            rows: list[tuple[str, Any]] = [
                ("dense alone", lambda ch, q: channel_ranks(store.loaded, ch.dense)),
                ("lexical alone (BM25; zh: chars)", lambda ch, q: channel_ranks(store.loaded, ch.lexical)),
                (f"fixed blend w={OLD_BLEND}", lambda ch, q: fused_ranks(store.loaded, ch, q.text, OLD_BLEND, now)),
                (f"hybrid (the bot's w={model.dense_weight})", lambda ch, q: fused_ranks(store.loaded, ch, q.text, model.dense_weight, now)),
            ]
            for label, ranking in rows:
                r1 = r5 = 0
                scored = []
                for q, ch in zip(queries, channels):
                    out = ranking(ch, q)
                    keys = [key for key, _ in out[:5]]
                    top_score = out[0][1] if out else 0.0
                    if q.keys:
                        r1 += bool(keys) and keys[0] in q.keys
                        r5 += any(k in q.keys for k in keys)
                    scored.append((top_score, bool(keys) and keys[0] in q.keys))
                print(f"{label:<32} {r1 / max(answerable, 1):6.3f} {r5 / max(answerable, 1):6.3f} {precision_at(scored, 0.5):7.3f} {precision_at(scored, 0.75):7.3f}")
            print(f"{'the bot':<46} {'R@1':>6} {'answers':>8} {'precision':>9}   {'of the queries with an answer: answers':>38} {'precision':>9}")
            for label, kb, m, ch in (
                (f"as published ({model.source}, t={model.threshold})", store, model, channels),
                (f"fitted on alternates ({on_alternates.source}, t={on_alternates.threshold})", store, on_alternates, channels),
                ("no alternates → public default", plain, default, [search.channel_scores(plain.loaded, plain.embedder, q.text) for q in queries]),
                *[(f"{label} (t={m.threshold})", store, m, channels) for label, m in on_golden.items() if split == "test"],
            ):
                d = bot(kb, queries, ch, m, now)
                print(f"{label:<46} {d.recall:6.3f} {d.share:8.1%} {d.precision:9.3f}   {d.share_answerable:38.1%} {d.precision_answerable:9.3f}")
            if pooled is not None:
                # the public default's data: both KBs' top outcomes at every dense weight of the calibration grid
                plain_channels = [search.channel_scores(plain.loaded, plain.embedder, q.text) for q in queries]
                for w in calibration.WEIGHT_GRID:
                    probe = LanguageModel(w, default.coef, default.threshold)
                    for kb, ch in ((store, channels), (plain, plain_channels)):
                        results = bot(kb, queries, ch, probe, now).results
                        group = Group(f"{name}, {'no alternates' if kb is plain else 'with alternates'}", kb is plain, results, len(queries))
                        pooled.setdefault(split, {}).setdefault(w, []).append(group)


def fit_default(by_weight: dict[float, list[Group]], target: float, weight: float | None = None) -> None:
    """Print the public default (kbops/index/confidence.py default_for) fitted on the KBs without alternates: the
    dense weight whose pooled scores rank right answers above wrong ones best (average precision, as a store's
    calibration chooses it), the mapping at that weight, and its threshold by the rule of
    kbops/index/confidence.py DEFAULT_FLOOR: the lowest at which the KBs without alternates, pooled, reach the
    target and no group — each set, with and without alternates — falls more than the floor below it."""
    quality = {w: calibration.average_precision([r for g in groups if g.bare for r in g.outcomes]) for w, groups in by_weight.items()}
    print("\naverage precision of the KBs without alternates by dense weight:", {w: round(q, 4) for w, q in quality.items()})
    dense_weight = weight if weight is not None else max(quality, key=lambda w: (round(quality[w], 4), -w))
    groups = by_weight[dense_weight]
    fitted = [r for g in groups if g.bare for r in g.outcomes]
    coef = calibration.fit_logistic(np.array([[r.score, r.margin] for r in fitted]), np.array([r.right for r in fitted], dtype=float))
    probe = LanguageModel(dense_weight, coef, 0.5)
    curves = {g.name: calibration.curve_of([probe.probability(r.score, r.margin) for r in g.outcomes], [r.right for r in g.outcomes], g.total) for g in groups}
    bare = [g for g in groups if g.bare]
    pooled = calibration.curve_of([probe.probability(r.score, r.margin) for r in fitted], [r.right for r in fitted], sum(g.total for g in bare))
    # Each threshold's worst group precision (groups with nothing answered there do not count).
    worst = tuple((t, share, min((c[i][2] for c in curves.values() if c[i][1] > 0), default=0.0)) for i, (t, share, _) in enumerate(pooled) if t >= 0.5)
    # The stored curve: the pooled answered share and min(pooled precision, worst group's precision + the floor),
    # so that reading a threshold from it (threshold_for, LanguageModel.with_target) applies the defaults' rule for
    # any target: the KBs it serves reach the target pooled, and no group falls more than DEFAULT_FLOOR below it.
    effective = tuple((t, share, round(min(p, w + DEFAULT_FLOOR), 4)) for (t, share, p), (_, _, w) in zip((c for c in pooled if c[0] >= 0.5), worst))
    threshold = threshold_for(effective, target)
    print(f"\npublic default fitted on {len(fitted)} outcomes of {len(bare)} KBs without alternates: "
          f"LanguageModel({dense_weight}, {tuple(round(c, 2) for c in coef)}, {threshold}, \"default\", <pooled curve below>)")
    print(f"{'confidence ≥':<14}{'pooled':>16}" + "".join(f"{g.name[:30]:>34}" for g in groups))
    for i, (t, share, precision) in enumerate(pooled):
        cells = "".join(f"{curves[g.name][i][1]:>24.1%} {curves[g.name][i][2]:>8.3f}" for g in groups)
        print(f"{t:<14.2f}{share:>7.1%} {precision:>8.3f}{cells}")
    print("worst group's precision:", worst)
    print(f"curve for DEFAULTS (pooled share, min(pooled precision, worst group's + {DEFAULT_FLOOR})):", effective)


def load_set(name: str, datasets: Path) -> tuple[list[dict], list[tuple[Query, str]]]:
    """One bench set by its ``--sets`` name (but en-distinct, which needs the embedder): its FAQ, and its queries
    with their split. zh-para-large's distractor entries are the ones whose id starts with ``jddc-``."""
    if name == "en":
        faq, queries = bitext(datasets)
        return faq, [(q, split_of(q.text)) for q in queries]
    if name in ("en-para", "zh-para"):
        return paraphrases(name[:2])
    if name == "en-webapps":
        return paraphrases("en", WEBAPPS_FAQ, WEBAPPS_LABELS)
    if name == "zh-jddc":
        return jddc("all")
    if name == "zh-para-large":
        faq, para = paraphrases()
        faq = bare(faq)
        return faq + jddc_questions(faq, datasets / "jddc" / "chat_0.1per.txt"), para
    raise SystemExit(f"unknown set {name!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=os.environ.get("KBOPS_DATASETS", "../shared/datasets"))
    parser.add_argument("--sets", default="en,en-para,zh-jddc,zh-para",
                        help="comma-separated: en, en-para, en-distinct, en-webapps, zh-jddc, zh-para, zh-para-large (default: en, en-para, zh-jddc, zh-para)")
    parser.add_argument("--split", choices=("tune", "test", "all", "both"), default="both",
                        help="which part of each set to ask (default both: tune and test, reported apart; Bitext's phrasings are split by text)")
    parser.add_argument("--fit-defaults", action="store_true",
                        help="also fit each language's public default on the tune parts of its sets (KBs without alternates)")
    parser.add_argument("--default-weight", action="append", default=[], metavar="LANG=W",
                        help="with --fit-defaults: fit LANG's default at dense weight W instead of the best by average precision")
    parser.add_argument("--zh-reader", choices=("use-m3", "none"), default=Settings.embed_model_zh,
                        help="KBOPS_EMBED_MODEL_ZH of the KBs (none: Chinese read by characters, as before the Chinese reader)")
    args = parser.parse_args()
    global ZH_READER
    ZH_READER = args.zh_reader
    cache = Path("var/bench/embeddings.sqlite").resolve()
    cache.parent.mkdir(parents=True, exist_ok=True)
    sets = set(args.sets.split(","))
    parts = ("tune", "test") if args.split == "both" else (args.split,)
    pooled: dict[str, dict[str, dict[float, list[Group]]]] = {"en": {}, "zh": {}}  # language → split → weight → groups
    datasets = Path(args.datasets)

    def split(queries: list[tuple[Query, str]]) -> dict[str, list[Query]]:
        return {p: [q for q, t in queries if p in ("all", t)] for p in parts}

    for name, label, pool in (("en", "en — Bitext", pooled["en"]), ("en-para", "en — help-desk paraphrases", pooled["en"])):
        if name in sets:
            faq, queries = load_set(name, datasets)
            run(label, faq, split(queries), cache, pool)
    if "en-distinct" in sets:
        faq, para = distinct(*paraphrases("en"), Embedder.from_settings(Settings.load(env={"KBOPS_EMBED_CACHE": str(cache)}, config_file=None)))
        run("en — help desk, distinct topics", faq, split(para), cache)
    if "en-webapps" in sets:
        faq, para = load_set("en-webapps", datasets)
        run("en — web-apps help centre", faq, split(para), cache)
    if "zh-para-large" in sets:
        faq, para = load_set("zh-para-large", datasets)
        distractors = sum(1 for row in faq if str(row["id"]).startswith("jddc-"))
        run(f"zh — help desk without alternates + {distractors} JDDC customer questions", faq, split(para), cache)
    for name, label in (("zh-jddc", "zh — JDDC customer turns"), ("zh-para", "zh — help-desk paraphrases")):
        if name in sets:
            faq, queries = load_set(name, datasets)
            run(label, faq, split(queries), cache, pooled["zh"])
    for lang, by_split in pooled.items():
        if args.fit_defaults and "tune" in by_split:
            print(f"\n## the {lang} public default")
            forced = dict(item.split("=") for item in args.default_weight)
            fit_default(by_split["tune"], Settings.target_precision, float(forced[lang]) if lang in forced else None)

if __name__ == "__main__":
    main()
