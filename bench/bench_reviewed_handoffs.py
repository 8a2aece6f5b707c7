"""What reviewing the bot's handoffs buys a store: the whole loop, end to end, on the bench sets (issue 11).

    HF_HUB_OFFLINE=1 KBOPS_DATASETS=… .venv/bin/python bench/bench_reviewed_handoffs.py [--sets en,en-para,en-webapps,zh-jddc,zh-para]

A store publishes its FAQ as it has it (imported without alternates: the shape
of issue 11's held-out tests) and serves its customers: every question of a
set's *tune* part is asked of the bot (``Retriever.search``, as the API answers)
and logged (``log_answer``, scrubbed). The bot's handoffs and low-confidence
answers become gap topics (``refresh_bot_gaps``). A reviewer then labels each
topic with the product's own call (``label_gap``), knowing the truth of the
set's labels:

- every phrasing of the topic is answered by one entry: ``--entry`` that entry
  (its phrasings become golden questions), once without ``--teach`` (the
  default) and once with it (the phrasings also join the entry's questions);
- none of them has an answer in the KB: ``--handoff``;
- the topic mixes them, or holds a question the labels do not know: left alone
  (a reviewer would answer it with a new entry, or split it).

A third run adds a spot check: the reviewer also labels ``--spot-check`` (50)
of the bot's logged answers drawn at random (``sample_answers``,
``label_answer``): right, the entry that answers it, or a handoff — the
unbiased half of the calibration data that labels of its misses lack.

The store publishes again (``pipeline.publish``: the golden gate, calibration on
the golden questions once a language has enough), and the set's *test* part —
other customers' questions, never labelled — is asked of the old and the new
release. Reported per set: the topics and what was done with them, where the
new release's confidence comes from, and on the test part the recall@1, the
answered share and the answered precision, over every question and over those
with an answer. Nothing here is tuned: it is the product's code from the log
to the release; only the reviewer is simulated, by the set's labels.

The labels come from the tune part and the figures from the test part; both
help-desk sets were written by one writer, so their tune and test paraphrases
are alike, as a store's customers are over time (README, Measured).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_confidence as bc  # noqa: E402

from kbops.db import session_scope  # noqa: E402
from kbops.errors import GoldenRegression  # noqa: E402
from kbops.index import release as rel  # noqa: E402
from kbops.pipeline import publish  # noqa: E402
from kbops.review.gaps import label_gap, ranked_gaps, refresh_bot_gaps, topic_phrasings  # noqa: E402
from kbops.review.spot_check import label_answer, sample_answers  # noqa: E402
from kbops.serve.query_log import log_answer  # noqa: E402
from kbops.serve.retriever import Retriever  # noqa: E402


@dataclass
class Served:
    """The bot's answers to one part of a set, from the release it serves."""

    recall: float
    share: float
    precision: float
    share_answerable: float
    precision_answerable: float

    def cells(self) -> str:
        return (f"R@1 {self.recall:.3f}  answers {self.share:6.1%} at {self.precision:.3f}  "
                f"(with an answer: {self.share_answerable:6.1%} at {self.precision_answerable:.3f})")


def ask(bot: Retriever, queries: list[bc.Query], log: bool = False) -> Served:
    """Ask every query as the API does; a clarifying question counts as a handoff (the bot did not answer)."""
    settings = bot.settings
    hit = answered = right = answered_answerable = 0
    for q in queries:
        answer = bot.search(q.text)
        if log:
            log_answer(settings, answer)
        ok = bool(answer.hits) and answer.hits[0].entry_key in q.keys
        hit += ok
        if not answer.handoff:
            answered += 1
            right += ok
            answered_answerable += bool(q.keys)
    answerable = max(sum(1 for q in queries if q.keys), 1)
    return Served(hit / answerable, answered / max(len(queries), 1), right / max(answered, 1),
                  answered_answerable / answerable, right / max(answered_answerable, 1))


def review(kb: bc.Published, tune: list[bc.Query], teach: bool) -> dict[str, int]:
    """Regroup the logged handoffs into topics and label each as a reviewer who knows the labels would
    (``teach``: an entry's label also teaches the entry the topic's phrasings)."""
    truth = {q.text.strip(): frozenset(q.keys) for q in tune}
    done = {"topics": 0, "entry": 0, "handoff": 0, "left alone": 0}
    with session_scope(kb.settings) as db:
        refresh_bot_gaps(db, kb.settings, kb.embedder)
        topics = [g for g, _ in ranked_gaps(db, origin="bot", status="open", limit=100_000)]
        for gap in topics:
            done["topics"] += 1
            phrasings = topic_phrasings(gap)
            if any(p not in truth for p in phrasings):
                done["left alone"] += 1
                continue
            keys = [truth[p] for p in phrasings]
            shared = frozenset.intersection(*keys) if keys else frozenset()
            if all(not k for k in keys):
                label_gap(db, gap.id, entry_key=None, by="bench")
                done["handoff"] += 1
            elif shared:
                label_gap(db, gap.id, entry_key=sorted(shared)[0], by="bench", teach=teach)
                done["entry"] += 1
            else:
                done["left alone"] += 1
    return done


def spot_check(kb: bc.Published, tune: list[bc.Query], count: int) -> dict[str, int]:
    """A reviewer's spot check of ``count`` of the bot's logged answers (``sample_answers``, seeded), each labelled
    with ``label_answer`` from the set's labels: right, the entry that answers it, or a handoff."""
    truth = {q.text.strip(): frozenset(q.keys) for q in tune}
    done = {"checked": 0, "right": 0}
    with session_scope(kb.settings) as db:
        for item in sample_answers(db, count=count, seed=0):
            keys = truth.get(item.question)
            if keys is None:
                continue
            right = item.entry_key in keys
            label_answer(db, item.query_id, right=right, entry_key=None if right or not keys else sorted(keys)[0], by="bench")
            done["checked"] += 1
            done["right"] += right
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=os.environ.get("KBOPS_DATASETS", "../shared/datasets"))
    parser.add_argument("--sets", default="en-webapps,en,en-para,zh-jddc,zh-para")
    parser.add_argument("--spot-check", type=int, default=50, help="answers the third variant's reviewer checks (default 50)")
    args = parser.parse_args()
    cache = Path("var/bench/embeddings.sqlite").resolve()
    cache.parent.mkdir(parents=True, exist_ok=True)
    for name in args.sets.split(","):
        faq, queries = bc.load_set(name, Path(args.datasets))
        tune = [q for q, split in queries if split == "tune"]
        test = [q for q, split in queries if split == "test"]
        lang = faq[0].get("lang", "en")
        print(f"\n{name}: {len(faq)} entries without alternates; tune {len(tune)} questions asked and logged; test {len(test)}")
        for run, (teach, checked) in enumerate(((False, 0), (True, 0), (False, args.spot_check))):
            with tempfile.TemporaryDirectory() as tmp:
                kb = bc.publish(bc.bare(faq), Path(tmp) / "kb", cache)
                bot = Retriever(kb.settings, embedder=kb.embedder)
                ask(bot, tune, log=True)
                before = ask(bot, test)
                done = review(kb, tune, teach)
                spot = spot_check(kb, tune, checked) if checked else {}
                try:
                    published, gate = publish(kb.settings), "passed"
                except GoldenRegression as refused:  # what an operator would read, then decide: the bench activates anyway
                    d = refused.data
                    published = publish(kb.settings, force=True)
                    gate = f"refused ({d['correct']}/{d['total']} golden right against the active release's {d['active_correct']}), forced"
                active = rel.load_release(kb.settings.index_dir, rel.active_release_id(kb.settings.index_dir))
                fit = active.manifest["calibration"]["languages"][lang]
                after = ask(Retriever(kb.settings, embedder=kb.embedder), test)
            if run == 0:
                print(f"  topics {done['topics']}: labelled with an entry {done['entry']}, handed off {done['handoff']}, left alone {done['left alone']}")
                print(f"  test, before:             {before.cells()}")
            variant = "labelled and taught" if teach else "labelled" + (f", {spot.get('checked', 0)} answers checked ({spot.get('right', 0)} right)" if checked else "")
            print(f"  test, {variant}: {after.cells()}  "
                  f"[release {'activated' if published['activate'].get('changed') else 'NOT activated'}, golden gate {gate}; {lang} confidence "
                  f"{fit['source']}{' (' + fit['fitted_on'] + ')' if fit.get('fitted_on') else ''}: {fit['golden']} golden + "
                  f"{fit.get('golden_handoff', 0)} handoffs, w {fit['dense_weight']}, t {fit['threshold']}]", flush=True)


if __name__ == "__main__":
    main()
