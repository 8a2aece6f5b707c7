"""Sync cost at store scale: first full sync vs no-change vs 1%-changed re-syncs.

    .venv/bin/python bench/bench_sync.py [--records 100000] [--repeat 3]

Generates a store of N products and N prices (CSV snapshots), then for each
repetition: a first full sync into an empty KB, a no-change re-sync, and a
re-sync after 1% of the prices changed. Reports medians and the ratios the
issue asks for (no-change ≤ 5%, 1%-changed ≤ 10% of the first sync). Only the
sync step is timed (mirror + change detection + withdrawal); extraction is
measured separately by bench_cycle.py.
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import tempfile
import time
from pathlib import Path

from kbops.config import Settings
from kbops.db import init_db
from kbops.pipeline import sync_sources

SOURCES = """
[[sources]]
name = "products"
type = "records"
kind = "product"
path = "products.csv"
max_delete_share = 0.3

[[sources]]
name = "prices"
type = "records"
kind = "price"
path = "prices.csv"
"""


def write_store(root: Path, n: int, changed: set[int] | None = None) -> None:
    changed = changed or set()
    with (root / "products.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sku", "name_zh", "name_en", "category", "stock", "shipping_class", "warranty_months"])
        for i in range(n):
            w.writerow([f"SKU-{i:06d}", f"鹿米商品{i}号", f"Lumi item {i}", "kitchen", i % 500, "standard", 12])
    with (root / "prices.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sku", "price", "currency", "valid_from", "valid_to"])
        for i in range(n):
            price = 10 + (i % 990) + (0.5 if i in changed else 0)
            w.writerow([f"SKU-{i:06d}", f"{price:.2f}", "CNY", "", ""])


def timed(settings: Settings) -> float:
    started = time.perf_counter()
    sync_sources(settings)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    firsts, nochange, onepct = [], [], []
    for rep in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "sources.toml").write_text(SOURCES, encoding="utf-8")
            write_store(root, args.records)
            settings = Settings.load(env={"KBOPS_HOME": str(root / "home"), "KBOPS_SOURCES": str(root / "sources.toml")})
            init_db(settings)
            firsts.append(timed(settings))
            nochange.append(timed(settings))
            changed = set(random.Random(rep).sample(range(args.records), args.records // 100))
            write_store(root, args.records, changed)
            onepct.append(timed(settings))
        print(f"rep {rep + 1}: first {firsts[-1]:.2f}s  no-change {nochange[-1]:.3f}s  1% changed {onepct[-1]:.3f}s", flush=True)
    f, n, c = (statistics.median(x) for x in (firsts, nochange, onepct))
    print(f"\n{args.records:,} products + {args.records:,} prices, median of {args.repeat}:")
    print(f"  first full sync   {f:8.2f} s")
    print(f"  no-change sync    {n:8.3f} s  = {n / f:6.1%} of first (goal ≤ 5%)")
    print(f"  1%-changed sync   {c:8.3f} s  = {c / f:6.1%} of first (goal ≤ 10%)")


if __name__ == "__main__":
    main()
