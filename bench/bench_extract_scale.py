"""Extract at store scale: peak memory (RSS) and time of `extract_candidates` after one huge sync.

    .venv/bin/python bench/bench_extract_scale.py --rows 200000 [--products 2000] [--batch-size 5000]

Issue 12: a 50 MB price file (2 M rows) synced in 2 minutes, then extract grew to
5.1 GB RSS and did not finish in 400 s. This generates a price file of N rows
(~25 bytes a row, so 2,000,000 rows ≈ 50 MB) and a product file for the first
``--products`` SKUs (default 1 % of N: those get 8 fact candidates each; the rest
are prices of products no source lists), syncs both into an empty SQLite KB, then
runs the settings-level `kbops.pipeline.extract_candidates` — what `kbops sync` and
the DAG run — each step in its own process, so each peak RSS is that step's own.
Prints one JSON object: rows, file size, and per step the seconds and peak RSS (MiB).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def _write_store(folder: Path, rows: int, products: int) -> int:
    (folder / "sources.toml").write_text(SOURCES, encoding="utf-8")
    with (folder / "products.csv").open("w", encoding="utf-8") as fh:
        fh.write("sku,name_zh,name_en,category,stock,shipping_class,warranty_months\n")
        for n in range(products):
            fh.write(f"SKU-{n:07d},鹿米台灯{n}号,Lumi Lamp No. {n},lighting,{n % 300},standard,12\n")
    with (folder / "prices.csv").open("w", encoding="utf-8") as fh:
        fh.write("sku,price,currency\n")
        for n in range(rows):
            fh.write(f"SKU-{n:07d},{100 + n % 9000}.{n % 100:02d},CNY\n")
    return (folder / "prices.csv").stat().st_size


def _env(folder: Path) -> dict[str, str]:
    return {"KBOPS_HOME": str(folder / "home"), "KBOPS_SOURCES": str(folder / "sources.toml")}


def _child(step: str, folder: Path, batch_size: int) -> None:
    """Run one step in this (fresh) process; print its seconds, peak RSS and result."""
    from kbops.config import Settings
    from kbops.db import init_db
    from kbops.pipeline import extract_candidates, sync_sources

    settings = Settings.load(env=_env(folder), config_file=None, extract_batch_size=batch_size)
    started = time.perf_counter()
    if step == "sync":
        init_db(settings)
        out: object = {r.source: {"new": r.new, "quarantined": r.quarantined, "status": r.status} for r in sync_sources(settings)}
    else:
        result = extract_candidates(settings)
        out = {"records": result.records, "proposed": result.proposed, "batches": result.batches}
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"seconds": round(seconds, 1), "peak_rss_mib": round(peak_mib), "result": out}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000, help="price rows (2,000,000 is the issue's 50 MB file)")
    parser.add_argument("--products", type=int, default=None, help="products listed (default 1%% of --rows)")
    parser.add_argument("--batch-size", type=int, default=5_000, help="Settings.extract_batch_size")
    parser.add_argument("--child", nargs=2, metavar=("STEP", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], Path(args.child[1]), args.batch_size)
        return
    products = args.products if args.products is not None else max(1, args.rows // 100)
    with tempfile.TemporaryDirectory(prefix="kbops-extract-scale-") as tmp:
        folder = Path(tmp)
        size = _write_store(folder, args.rows, products)
        report: dict[str, object] = {"rows": args.rows, "products": products, "price_file_mb": round(size / 1e6, 1), "batch_size": args.batch_size}
        for step in ("sync", "extract"):
            proc = subprocess.run(
                [sys.executable, __file__, "--batch-size", str(args.batch_size), "--child", step, str(folder)],
                capture_output=True, text=True, check=False,
            )
            if proc.returncode != 0:
                raise SystemExit(f"{step} failed:\n{proc.stderr[-3000:]}")
            report[step] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
