"""Chat-mining quality on real JDDC chats (issue 4), reproducible with a fixed seed.

    .venv/bin/python bench/eval_mining.py                 # figures for README "Measured"
    .venv/bin/python bench/eval_mining.py --write-sample  # the candidates to label (bench/labels/)

Split the sessions 80/20 (seeded), mine from the 80 %, answer every held-out
customer question from a KB of the mined candidates with the bot's scoring
(kbops.index.search.answer_from over an in-memory release), and score the
top answer against the agent's real reply (character BLEU-4, smoothed, and
character F1), next to a random mined answer and the most frequent agent reply.
Precision comes from bench/labels/jddc_candidates.tsv (session, turn, label,
text hash — references, not copies of the text). See kbops/extract/mining_eval.py.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from kbops.config import Settings  # noqa: E402
from kbops.extract import mining_eval as ev  # noqa: E402
from kbops.extract.chats import mine_session  # noqa: E402
from kbops.index.embedder import Embedder  # noqa: E402
from kbops.index.search import answer_from  # noqa: E402
from kbops.sources.chats import Session, read_chats  # noqa: E402
from kbops.sources.config import SourceConfig  # noqa: E402

LABELS = ROOT / "bench" / "labels" / "jddc_candidates.tsv"


def datasets() -> Path:
    for c in (os.environ.get("KBOPS_DATASETS"), str(ROOT.parent / "shared" / "datasets")):
        if c and Path(c).is_dir():
            return Path(c)
    sys.exit("error: datasets not found; set KBOPS_DATASETS to the folder holding jddc/")


def evaluate(data: Path, seed: int, min_support: int, cache: Path, labels_path: Path = LABELS) -> dict:
    settings = Settings.load()
    embedder = Embedder(settings.embedding_model, cache)
    t0 = time.perf_counter()
    sessions = [s for s in read_chats(SourceConfig(name="jddc", type="chats", path=data, format="jddc")) if isinstance(s, Session)]
    train, test = ev.split_sessions(sessions, 0.8, seed)
    read_s = time.perf_counter() - t0
    kb = ev.mine(train, min_support, embedder, settings.dense_weight)
    pool = ev.mine(train, 1, embedder, settings.dense_weight)  # every mined group: the labelling pool
    labels = ev.read_labels(labels_path)

    def labelled(props):
        good = bad = stale = 0
        for p in props:
            row = labels.get(ev.candidate_ref(p))
            if row is None:
                continue
            if row["text_hash"] != ev.text_hash(p):
                stale += 1
            elif row["label"] == "good":
                good += 1
            else:
                bad += 1
        return good, bad, stale

    approved = {ev.candidate_ref(p) for p in pool.proposals if (r := labels.get(ev.candidate_ref(p))) and r["label"] == "good" and r["text_hash"] == ev.text_hash(p)}
    questions = ev.held_out_questions(test)
    # A second, stricter reference: held-out questions the miner itself would accept whose agent
    # reply had a general answer; scored against that answer (filler and order details removed).
    substantive = [ex for s in test for ex in mine_session(s.key, s.turns, s.sku).exchanges]
    queries = ev.BatchedQueries(embedder, [q.question for q in questions] + [ex.question for ex in substantive])
    frequent = ev.most_frequent_reply(train)
    rng = random.Random(seed)
    rows = {}
    for name, mined in (("kb", kb), ("kb_all", pool)):
        release = ev.build_release(mined.proposals, embedder, settings.lexical_scorer)
        props = mined.proposals
        pairs, rand_pairs, answered, covered, answered_idx = [], [], 0, 0, []
        for q in questions:
            ans = answer_from(release, queries, settings, q.question, top_k=1)
            top = ans.top
            pairs.append((top.answer if top else "", q.reference))
            rand_pairs.append((rng.choice(props).answer if props else "", q.reference))
            if top is not None and not ans.handoff:
                answered += 1
                answered_idx.append(len(pairs) - 1)
                if ev.candidate_ref(props[top.entry_id - 1]) in approved:
                    covered += 1
        sub_pairs, sub_rand = [], []
        for ex in substantive:
            top = answer_from(release, queries, settings, ex.question, top_k=1).top
            sub_pairs.append((top.answer if top else "", ex.answer))
            sub_rand.append((rng.choice(props).answer if props else "", ex.answer))
        good, bad, stale = labelled(props)
        rows[name] = {
            "candidates": len(props),
            "per_1000_sessions": round(1000 * len(props) / max(len(train), 1), 1),
            "top_answer": vars(ev.score(pairs)),
            "top_answer_general_questions": vars(ev.score([p for p, q in zip(pairs, questions) if q.general])),
            "random_mined_answer": vars(ev.score(rand_pairs)),
            "answered_only": {
                "top_answer": vars(ev.score([pairs[i] for i in answered_idx])),
                "random_mined_answer": vars(ev.score([rand_pairs[i] for i in answered_idx])),
                "most_frequent_reply": vars(ev.score([(frequent, pairs[i][1]) for i in answered_idx])),
            },
            "general_answers_as_reference": {
                "n": len(substantive),
                "top_answer": vars(ev.score(sub_pairs)),
                "random_mined_answer": vars(ev.score(sub_rand)),
                "most_frequent_reply": vars(ev.score([(frequent, ex.answer) for ex in substantive])),
            },
            "answered_share": round(answered / max(len(questions), 1), 4),
            "covered_by_approved_quality": round(covered / max(len(questions), 1), 4),
            "labelled": {"good": good, "bad": bad, "stale": stale, "precision": round(good / (good + bad), 4) if good + bad else None},
        }
    by_support = {}
    for p in pool.proposals:
        row = labels.get(ev.candidate_ref(p))
        if row is None or row["text_hash"] != ev.text_hash(p):
            continue
        bucket = "1" if p.support == 1 else "2+"
        g, n = by_support.get(bucket, (0, 0))
        by_support[bucket] = (g + (row["label"] == "good"), n + 1)
    by_quality = {}
    for p in pool.proposals:
        row = labels.get(ev.candidate_ref(p))
        if row is None or row["text_hash"] != ev.text_hash(p):
            continue
        q = p.evidence["quality"]
        bucket = "<0.55" if q < 0.55 else "0.55-0.65" if q < 0.65 else ">=0.65"
        g, n = by_quality.get(bucket, (0, 0))
        by_quality[bucket] = (g + (row["label"] == "good"), n + 1)
    return {
        "data": str(data),
        "seed": seed,
        "min_support": min_support,
        "sessions": {"train": len(train), "held_out": len(test)},
        "held_out_questions": len(questions),
        "held_out_general_questions": sum(q.general for q in questions),
        "held_out_unk_share_mean": round(sum(queries.unk_share(q.question) for q in questions) / max(len(questions), 1), 3),
        "exchanges_mined": kb.exchanges,
        "most_frequent_reply": frequent,
        "most_frequent_reply_scores": vars(ev.score([(frequent, q.reference) for q in questions])),
        "kb": rows["kb"],
        "kb_all_groups": rows["kb_all"],
        "precision_by_support": {k: {"good": g, "labelled": n, "precision": round(g / n, 4)} for k, (g, n) in sorted(by_support.items())},
        "precision_by_quality": {k: {"good": g, "labelled": n, "precision": round(g / n, 4)} for k, (g, n) in sorted(by_quality.items())},
        "labels_file": str(labels_path.relative_to(ROOT)) if labels_path.is_relative_to(ROOT) else str(labels_path),
        "labels": len(labels),
        "seconds": {"read": round(read_s, 2), **{k: round(v, 2) for k, v in kb.seconds.items()}},
    }


def write_sample(data: Path, seed: int, cache: Path, n: int) -> None:
    """Print the labelling sample: all support ≥ 2 groups plus random single-session ones."""
    settings = Settings.load()
    embedder = Embedder(settings.embedding_model, cache)
    sessions = [s for s in read_chats(SourceConfig(name="jddc", type="chats", path=data, format="jddc")) if isinstance(s, Session)]
    train, _ = ev.split_sessions(sessions, 0.8, seed)
    pool = ev.mine(train, 1, embedder, settings.dense_weight).proposals
    multi = [p for p in pool if p.support >= 2]
    single = [p for p in pool if p.support < 2]
    random.Random(seed).shuffle(single)
    for p in multi + single[: max(0, n - len(multi))]:
        s, t = ev.candidate_ref(p)
        print(json.dumps({"session": s, "turn": t, "text_hash": ev.text_hash(p), "support": p.support, "quality": p.evidence["quality"], "q": p.question, "a": p.answer}, ensure_ascii=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="JDDC file (default $KBOPS_DATASETS/jddc/chat_0.1per.txt)")
    ap.add_argument("--seed", type=int, default=ev.SEED)
    ap.add_argument("--min-support", type=int, default=2)
    ap.add_argument("--cache", type=Path, help="embedding cache (default: a fresh temporary one)")
    ap.add_argument("--write-sample", type=int, nargs="?", const=220, metavar="N", help="print N candidates to label (JSON lines)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    data = args.data or datasets() / "jddc" / "chat_0.1per.txt"
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp) / "embeddings.sqlite"
        if args.write_sample:
            write_sample(data, args.seed, cache, args.write_sample)
            return
        result = evaluate(data, args.seed, args.min_support, cache)
    text = json.dumps(result, ensure_ascii=False, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
