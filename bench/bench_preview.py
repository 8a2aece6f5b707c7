"""Impact preview cost at scale: 100k KB entries, 100k logged questions (kbops.index.preview).

    .venv/bin/python bench/bench_preview.py [--entries 100000] [--queries 100000] [--items 50] [--replayed 300] [--embed-sample 2000]

What is measured, in one run (medians; the machine is shared, so timings are noisy):

* **replay set**: building the lexical index over the distinct logged questions
  (all of them, every one distinct: the worst case), and the embedding pass,
  timed on ``--embed-sample`` questions with the real bundled model (no cache)
  and extrapolated per question — at 100k it is the one expensive step, paid
  once per :data:`kbops.serve.review_web.page.REPLAY_TTL` and then served from
  the embedding cache;
* **per review item** (:func:`item_impact`, the review page's "would answer N"):
  the item's question and one alternate, embedded by the real model, scored
  against all logged questions (one sparse product + one dense mat-vec each);
  the replay's vectors are random unit vectors (the cost of a product does not
  depend on the values);
* **per replayed question for a release** (:func:`release_diff`): two
  :func:`answer_from` calls (candidate and serving release) on a 100k-entry
  release built like publish builds one (IVF above ``ivf_threshold``, the real
  lexical index over the entries' texts), with the real model for the query;
  random entry vectors. The whole-release figure is extrapolated from
  ``--replayed`` questions.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kbops.config import Settings  # noqa: E402
from kbops.index import release as rel  # noqa: E402
from kbops.index.embedder import Embedder  # noqa: E402
from kbops.index.lexical import LexicalIndex  # noqa: E402
from kbops.index.preview import LoggedQueries, Replay, build_replay, item_impact, item_impacts, release_diff  # noqa: E402

NOUNS = ["rice cooker", "kettle", "blender", "air fryer", "vacuum", "lamp", "fan", "heater", "toaster", "mixer", "pillow", "mattress",
         "desk", "chair", "sofa", "curtain", "rug", "mirror", "shelf", "wardrobe"]
ASKS = ["How much is the {a} {n} {m}?", "Is the {a} {n} {m} in stock?", "What is the warranty of the {a} {n} {m}?",
        "Can I return the {a} {n} {m}?", "How long does delivery of the {a} {n} {m} take?", "Does the {a} {n} {m} come in {c}?"]
ADJ = ["smart", "compact", "deluxe", "mini", "pro", "classic", "quiet", "portable", "steel", "wooden"]
COLOURS = ["red", "blue", "white", "black", "green", "grey"]


def texts(n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    return [rnd.choice(ASKS).format(a=rnd.choice(ADJ), n=rnd.choice(NOUNS), m=f"LM-{rnd.randrange(100000):05d}", c=rnd.choice(COLOURS)) for _ in range(n)]


def unit(n: int, dim: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def median_ms(fn, items) -> float:
    times = []
    for item in items:
        started = time.perf_counter()
        fn(item)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--replayed", type=int, default=300)
    parser.add_argument("--embed-sample", type=int, default=2000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_preview_"))
    settings = Settings.load(env={"KBOPS_HOME": str(tmp)}, config_file=None)
    embedder = Embedder(settings.embedding_model, tmp / "embeddings.sqlite", backend=settings.embed_backend, models_dir=settings.models_dir,
                        zh_reader=settings.embed_model_zh)
    dim = embedder.dim
    embedder.encode(["warm up the model"])  # loading the model is not part of any figure

    # --- the replay set ---------------------------------------------------------------
    asked = texts(args.queries, 1)
    queries = LoggedQueries(asked, [1] * len(asked), [1] * len(asked), [0] * len(asked), [0.2] * len(asked), [None] * len(asked))
    started = time.perf_counter()
    lexical_only = build_replay(queries, None, settings)
    lexical_s = time.perf_counter() - started
    sample = asked[: args.embed_sample]
    started = time.perf_counter()
    embedder.encode(sample)
    embed_per_q_ms = (time.perf_counter() - started) * 1000 / len(sample)
    replay = Replay(queries, lexical_only.lexical, unit(len(asked), dim, 2), np.full(len(asked), settings.dense_weight, dtype=np.float32), settings.handoff_threshold)

    # --- per item -------------------------------------------------------------------------
    items = [[q, q.replace("How much is", "What does").replace("?", " cost?")] for q in texts(args.items, 3)]
    per_item_ms = median_ms(lambda t: item_impact(replay, t, embedder), items)  # cold: the item's texts are embedded
    per_item_warm_ms = median_ms(lambda t: item_impact(replay, t, embedder), items)  # warm: from the embedding cache
    per_item_lexical_ms = median_ms(lambda t: item_impact(lexical_only, t, None), items)
    started = time.perf_counter()
    item_impacts(replay, [(t, None) for t in items], embedder)  # the review page: all cards of a page in one pass
    page_ms = (time.perf_counter() - started) * 1000

    # --- per replayed question against a 100k release ------------------------------------------
    entry_texts = texts(args.entries, 4)
    ids = np.arange(1, args.entries + 1, dtype=np.int64)
    started = time.perf_counter()
    index = rel.build_index(dim, unit(args.entries, dim, 5), ids, ivf_threshold=settings.ivf_threshold, nprobe=settings.ivf_nprobe)
    entries = {int(i): {"id": int(i), "entry_key": f"e{i}", "question": t, "answer": f"answer {i}", "lang": "en", "tags": [], "kind": "faq",
                        "valid_from": None, "valid_to": None} for i, t in zip(ids, entry_texts)}
    loaded = rel.LoadedRelease("bench", {}, index, entries, LexicalIndex(list(zip(ids.tolist(), entry_texts)), settings.lexical_scorer), frozenset({"faq"}))
    release_build_s = time.perf_counter() - started
    replayed = LoggedQueries(asked[: args.replayed], [1] * args.replayed, [1] * args.replayed, [0] * args.replayed, [0.2] * args.replayed, [None] * args.replayed)
    diff = release_diff(loaded, loaded, embedder, settings, replayed)  # includes the batched embedding of the replayed questions
    per_question_ms = diff.seconds * 1000 / args.replayed

    print(f"entries {args.entries}, logged questions {args.queries} (all distinct), model {settings.embedding_model.split('/')[-1]}, index {rel.index_info(index)['type']}")
    print(f"replay set: lexical index {lexical_s:.1f} s; embedding {embed_per_q_ms:.2f} ms/question "
          f"(→ {embed_per_q_ms * args.queries / 1000:.0f} s for {args.queries}, once per refresh, then cached)")
    print(f"per review item (question + 1 alternate vs {args.queries} questions): {per_item_ms:.1f} ms median cold, "
          f"{per_item_warm_ms:.1f} ms with the item's vectors cached ({per_item_lexical_ms:.1f} ms lexical only)")
    print(f"  one pass over {len(items)} cards (as the review page does): {page_ms:.0f} ms = {page_ms / len(items):.1f} ms per card")
    print(f"release preview: {per_question_ms:.1f} ms per replayed question (2 × answer_from, {args.replayed} replayed) "
          f"→ {per_question_ms * args.queries / 1000 / 60:.1f} min for {args.queries} distinct questions; test release built in {release_build_s:.1f} s")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
