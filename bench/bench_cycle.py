"""Freshness: one kb_ingest + kb_publish cycle after N prices changed upstream.

    .venv/bin/python bench/bench_cycle.py [--products 10000] [--changed 1000]

Builds a store of P products with prices (2·P price entries, zh + en), runs
the first ingest + publish (embedding every question once, into the cache),
then changes ``--changed`` prices and times the cycle that makes the bot
serve them: sync → extract → validate → route (auto-approve) → apply →
build → activate. Checks that the bot quotes a changed price afterwards.
The cycle runs the same kbops functions the DAGs call; Airflow adds its
own per-task overhead on top (bench/README.md).
"""

from __future__ import annotations

import argparse
import csv
import random
import tempfile
import time
from pathlib import Path

from kbops.config import Settings
from kbops.db import init_db
from kbops.pipeline import ingest, publish
from kbops.serve.retriever import Retriever

SOURCES = """
[[sources]]
name = "products"
type = "records"
kind = "product"
path = "products.csv"

[[sources]]
name = "prices"
type = "records"
kind = "price"
path = "prices.csv"
"""


def write(root: Path, n: int, bumped: set[int]) -> None:
    with (root / "products.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sku", "name_zh", "name_en"])
        for i in range(n):
            w.writerow([f"SKU-{i:06d}", f"鹿米{i:06d}号商品", f"Lumi product {i:06d}"])
    with (root / "prices.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sku", "price", "currency"])
        for i in range(n):
            w.writerow([f"SKU-{i:06d}", f"{100 + i % 900 + (7 if i in bumped else 0)}.00", "CNY"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=10000)
    parser.add_argument("--changed", type=int, default=1000)
    parser.add_argument("--embed-cache", default="var/bench/embeddings.sqlite", help="kept between runs: the first build embeds once")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "sources.toml").write_text(SOURCES, encoding="utf-8")
        write(root, args.products, set())
        settings = Settings.load(
            env={"KBOPS_HOME": str(root / "home"), "KBOPS_SOURCES": str(root / "sources.toml"), "KBOPS_EMBED_CACHE": str(Path(args.embed_cache).resolve())}
        )
        init_db(settings)
        started = time.perf_counter()
        ingest(settings)
        first = publish(settings)
        print(f"first ingest + publish: {time.perf_counter() - started:.1f}s ({first['build']['entries']} entries, {first['build']['vectors']} vectors)", flush=True)

        bumped = set(random.Random(1).sample(range(args.products), args.changed))
        write(root, args.products, bumped)
        started = time.perf_counter()
        t0 = time.perf_counter()
        result = ingest(settings)
        t_ingest = time.perf_counter() - t0
        t0 = time.perf_counter()
        published = publish(settings)
        t_publish = time.perf_counter() - t0
        cycle = time.perf_counter() - started
        sku = min(bumped)
        answer = Retriever(settings).search(f"How much is the Lumi product {sku:06d}?")
        expected = f"{100 + sku % 900 + 7}.00"
        ok = not answer.handoff and expected in answer.top.answer
        sync = {s["source"]: s for s in result["sync"]}
        print(f"\n{args.products:,} products + {args.products:,} prices, {args.changed:,} prices changed:")
        print(f"  kb_ingest work   {t_ingest:6.1f}s  (changed {sync['prices']['changed']}, withdrawn {sum(s['withdrawn'] for s in result['sync'])}, "
              f"auto-approved {result['route']['auto_approved']})")
        print(f"  kb_publish work  {t_publish:6.1f}s  (cache hits {published['build']['cache_hits']}, misses {published['build']['cache_misses']})")
        print(f"  cycle            {cycle:6.1f}s  bot quotes the new price: {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    main()
