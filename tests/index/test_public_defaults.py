"""The public defaults of kbops.index.confidence on a FAQ asked in other words (bench/labels/en_paraphrases.tsv).

A store that imports a plain FAQ — one question per entry, no golden questions —
is served by the English public default. Its threshold is the lowest at which
the public data it was fitted on reaches the target pooled, with no set more
than ``DEFAULT_FLOOR`` below it. The rule before (every set reaches the target
on its own) was bound by Bitext's overlapping intents and handed off two
thirds of the help desk's customers' questions while answering the rest at
0.98 for a 0.90 target. The tune part is the one the default was fitted on;
``bench/bench_confidence.py`` reports the test part.
"""

from __future__ import annotations

import json
from pathlib import Path

from kbops.config import Settings
from kbops.db import init_db
from kbops.index import release as rel
from kbops.index.search import answer_from
from kbops.pipeline import activate_release, build_release, import_faq
from tests.conftest import MODELS_DIR, ROOT

LABELS = ROOT / "bench" / "labels"


def _help_desk_without_alternates(path: Path) -> Path:
    rows = [json.loads(line) for line in (LABELS / "en_paraphrase_faq.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    path.write_text("\n".join(json.dumps({k: v for k, v in r.items() if k != "alt_questions"}) for r in rows), encoding="utf-8")
    return path


def _tune_questions() -> list[tuple[str, frozenset[str]]]:
    """(question, entry keys that answer it; empty: it should be handed off) of the tune part."""
    out = []
    for line in (LABELS / "en_paraphrases.tsv").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith(("#", "query\t")):
            continue
        text, label, split = line.split("\t")
        if split == "tune":
            out.append((text, frozenset() if label == "none" else frozenset(f"import:{k}" for k in label.split("|"))))
    return out


def test_a_faq_asked_in_other_words_is_answered_at_the_target_on_the_public_default(tmp_path, embedder, embed_cache):
    settings = Settings.load(env={"KBOPS_HOME": str(tmp_path / "home"), "KBOPS_EMBED_CACHE": str(embed_cache),
                                  "KBOPS_MODELS_DIR": MODELS_DIR}, config_file=None)
    init_db(settings)
    assert not import_faq(settings, _help_desk_without_alternates(tmp_path / "faq.jsonl"), approve=True, by="test").errors
    activate_release(settings, build_release(settings, embedder=embedder).release_id)
    loaded = rel.load_release(settings.index_dir, rel.active_release_id(settings.index_dir))
    assert loaded.manifest["calibration"]["languages"]["en"]["source"] == "default"  # one question per entry: nothing to fit on

    questions = _tune_questions()
    answers = [answer_from(loaded, embedder, settings, text) for text, _ in questions]
    answered = [(a.top.entry_key in keys) for a, (_, keys) in zip(answers, questions) if not a.handoff and a.top is not None]
    assert len(questions) > 150
    assert len(answered) / len(questions) >= 0.45, f"answered {len(answered)} of {len(questions)}"  # the old rule: 35 %
    assert sum(answered) / len(answered) >= settings.target_precision

