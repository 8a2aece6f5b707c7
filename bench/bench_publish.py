"""Publish cost at scale: full build (cold and warm embedding cache) vs incremental vs no-change.

    .venv/bin/python bench/bench_publish.py [--entries 100000] [--changed 0.01] [--cold]

Fills a KB with N approved entries (one question + one alternate each, so 2·N
vectors) straight into the database, then, in the same run:

1. full build with a cold embedding cache (only with ``--cold``: embeds 2·N texts);
2. full rebuild with a warm cache (``kbops publish --full``: nothing embedded);
3. no-change publish (the KB digest matches the active release: nothing built);
4. incremental publish after ``--changed`` of the entries changed — half of
   them a new answer, half a new question (re-embedded) — plus as many new
   entries and as many retired ones.

Reports seconds, each figure as a share of the full builds, the index type,
the release size on disk, and the resident memory a server needs to hold it.
The bench's cache lives in var/bench/ (``--cold`` uses a fresh one).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert, update

from kbops.config import Settings
from kbops.db import init_db, session_scope
from kbops.index import release as rel
from kbops.index.embedder import Embedder
from kbops.pipeline import activate_release, build_release
from kbops.schema import KbEntry, utcnow

ITEMS = ["rice cooker", "desk lamp", "air purifier", "kettle", "headphones", "vacuum", "fan", "blender", "heater", "speaker"]
COLOURS = ["white", "black", "red", "blue", "green", "grey", "pink", "silver"]


def question(i: int, variant: int = 0) -> tuple[str, str]:
    item, colour = ITEMS[i % len(ITEMS)], COLOURS[(i // len(ITEMS)) % len(COLOURS)]
    model = f"{item.split()[0][:2].upper()}-{i:06d}"
    if variant:
        return f"Is the {colour} {item} {model} in stock (rev {variant})?", f"{model} {colour} {item} availability v{variant}"
    return f"Is the {colour} {item} {model} in stock?", f"{model} {colour} {item} availability"


def rows(start: int, stop: int) -> list[dict]:
    now = utcnow()
    out = []
    for i in range(start, stop):
        q, alt = question(i)
        out.append(
            dict(id=i + 1, entry_key=f"bench:{i}", revision=1, origin="record", kind="stock", lang="en", question=q,
                 alt_questions=[alt], answer=f"Yes, {i % 97} units are in stock.", tags=["stock"], depends_on=[],
                 fingerprint=f"{i:064d}", status="active", approved_by="bench", approved_via="rule", updated_at=now)
        )
    return out


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def timed(fn):
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--cold", action="store_true", help="also time a full build that embeds every question")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cache = root / "cold.sqlite" if args.cold else Path("var/bench/embeddings.sqlite").resolve()
        settings = Settings.load(env={"KBOPS_HOME": str(root / "home"), "KBOPS_EMBED_CACHE": str(cache)})
        init_db(settings)
        with session_scope(settings) as db:
            for start in range(0, args.entries, 5000):
                db.execute(insert(KbEntry), rows(start, min(start + 5000, args.entries)))
        embedder = Embedder.from_settings(settings)
        _ = embedder.dim  # load the model outside the timings
        figures: dict[str, float] = {}

        first, t_first = timed(lambda: build_release(settings, embedder=embedder, full=True))
        activate_release(settings, first.release_id, embedder=embedder)
        label = "full build, cold cache (embeds every question)" if args.cold else "first full build (cache as found)"
        figures[label] = t_first
        print(f"{label}: {t_first:.1f}s — {first.entries:,} entries, {first.vectors:,} vectors, {first.index_type}, "
              f"cache misses {first.cache_misses:,}", flush=True)

        warm, t_warm = timed(lambda: build_release(settings, embedder=embedder, full=True))
        activate_release(settings, warm.release_id, embedder=embedder)
        figures["full rebuild, warm cache (kbops publish --full)"] = t_warm

        same, t_same = timed(lambda: build_release(settings, embedder=embedder))
        assert same.status == "unchanged"
        figures["no-change publish"] = t_same

        n = max(2, int(args.entries * args.changed))
        rng = random.Random(5)
        picked = rng.sample(range(args.entries), n)
        with session_scope(settings) as db:
            for k, i in enumerate(picked):
                values = {"revision": 2, "answer": f"Restocked: {k} units."}
                if k % 2:
                    q, alt = question(i, variant=2)
                    values |= {"question": q, "alt_questions": [alt]}
                db.execute(update(KbEntry).where(KbEntry.id == i + 1).values(**values))
            db.execute(insert(KbEntry), rows(args.entries, args.entries + n // 10))
            retired = [i + 1 for i in rng.sample(range(args.entries), n // 10) if i not in picked]
            db.execute(update(KbEntry).where(KbEntry.id.in_(retired)).values(status="retired"))
        inc, t_inc = timed(lambda: build_release(settings, embedder=embedder))
        activate_release(settings, inc.release_id, embedder=embedder)
        figures[f"incremental, {args.changed:.0%} changed (+{n // 10} new, −{len(retired)} retired)"] = t_inc

        path = rel.releases_dir(settings.index_dir) / inc.release_id
        size = sum(p.stat().st_size for p in path.iterdir())
        before = rss_mb()
        loaded = rel.load_release(settings.index_dir, inc.release_id, expect_model=embedder.model_id)
        memory = rss_mb() - before

        print(f"\n{'':62} {'seconds':>8} {'÷ first':>8} {'÷ warm full':>11}")
        for name, seconds in figures.items():
            print(f"{name:62} {seconds:8.2f} {seconds / t_first:8.1%} {seconds / t_warm:11.1%}")
        print(f"\nincremental: re-embedded {inc.re_embedded}, added {inc.added}, removed {inc.removed}, mode {inc.mode}")
        print(f"release: {inc.entries:,} entries, {inc.vectors:,} vectors, {loaded.manifest['index_type']}, "
              f"{size / 1e6:.0f} MB on disk, {memory:.0f} MB resident when loaded")


if __name__ == "__main__":
    main()
