"""Reviewer throughput on the review page, driven by a real browser (issue 5).

    .venv/bin/python bench/bench_review.py                      # JDDC mined candidates, SQLite KB
    .venv/bin/python bench/bench_review.py --keyboard 40 --bulk-pages 3 --cli 10

Fills the review queue with the real pipeline (`kbops sync` over the JDDC
sample in $KBOPS_DATASETS/jddc, mining with --min-support, default 1 so the
0.1 % sample yields a queue worth measuring; the bundled sample store when the
dataset is absent), starts `kbops serve` on a free port and drives Debian's
Chromium (/usr/bin/chromium) with Playwright, as a reviewer would:

* keyboard one by one: `a` approves the current item, the page reloads on the
  next one (1 key per decision); `r`, a short reason, Enter rejects;
* bulk: `X` selects the page, `A` approves the selection (2 keys per page);
* the obvious alternative without the page, in the same run: one
  `kbops review approve ID --by NAME` command per item (and one command for many ids).

Figures are machine-limited (the browser presses keys as fast as the page
answers), i.e. the ceiling the page puts on a reviewer; a person adds reading
time. Keys/clicks per decision are what the reviewer's hands do.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from sqlalchemy import func, select  # noqa: E402

from kbops.config import Settings  # noqa: E402
from kbops.db import init_db, session_scope  # noqa: E402
from kbops.pipeline import ingest  # noqa: E402
from kbops.review import accounts  # noqa: E402
from kbops.schema import AuditEvent, ReviewItem  # noqa: E402

PASSWORD = "bench-password"
CHROMIUM = os.environ.get("KBOPS_TEST_CHROMIUM", "/usr/bin/chromium")


def datasets() -> Path | None:
    for c in (os.environ.get("KBOPS_DATASETS"), str(ROOT.parent / "shared" / "datasets")):
        if c and (Path(c) / "jddc").is_dir():
            return Path(c)
    return None


def fill_queue(home: Path, min_support: int, database_url: str | None) -> tuple[Settings, dict]:
    data = datasets()
    sources = home / "sources.toml"
    if data is not None:
        sources.write_text(
            f'[[sources]]\nname = "jddc"\ntype = "chats"\nformat = "jddc"\npath = "{data / "jddc"}"\nglob = "*.txt"\n'
        )
        origin = "JDDC 0.1 % sample"
    else:
        print("JDDC not found (set KBOPS_DATASETS): using the bundled sample store", file=sys.stderr)
        sources = ROOT / "examples" / "sample_store" / "sources.toml"
        origin = "sample store"
    env = {"KBOPS_HOME": str(home), "KBOPS_SOURCES": str(sources), "KBOPS_MIN_CHAT_SUPPORT": str(min_support)}
    if database_url:
        env["KBOPS_DATABASE_URL"] = database_url
    settings = Settings.load(env=env, config_file=None)
    init_db(settings)
    started = time.perf_counter()
    ingest(settings)
    with session_scope(settings) as db:
        queued = db.scalar(select(func.count()).select_from(ReviewItem).where(ReviewItem.state == "open"))
        chat = db.scalar(select(func.count()).select_from(ReviewItem).where(ReviewItem.state == "open", ReviewItem.origin == "chat"))
    return settings, {"source": origin, "min_support": min_support, "queued": queued, "chat": chat, "fill_s": round(time.perf_counter() - started, 1), "env": env}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kbops.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, **env, "KBOPS_CONFIG": ""}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/review/login", timeout=2):
                return proc, url
        except OSError as exc:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("error: kbops serve did not start") from exc
            time.sleep(0.2)


def current(page) -> int:
    return int(page.get_attribute("article.item.current-item", "data-id"))


def rate(seconds: list[float], decisions_each: list[int]) -> float:
    return 60.0 * sum(decisions_each) / sum(seconds) if sum(seconds) else 0.0


def bench_keyboard(page, url: str, n: int, action: str) -> dict:
    """One decision per key press (approve), or r + reason + Enter (reject)."""
    page.goto(f"{url}/review/?origin=chat")
    page.wait_for_selector("article.item.current-item")
    times, keys = [], 0
    for _ in range(n):
        if page.locator("article.item").count() == 0:
            break
        item = current(page)
        t = time.perf_counter()
        if action == "approve":
            page.keyboard.press("a")
            keys += 1
            page.wait_for_selector(f"text=item {item} approved")
        else:
            page.keyboard.press("r")
            page.keyboard.type("dup")
            page.keyboard.press("Enter")
            keys += 2  # r and Enter; the reason's letters are typing, counted apart
            page.wait_for_selector(f"text=item {item} rejected")
        times.append(time.perf_counter() - t)
    return {"decisions": len(times), "seconds": round(sum(times), 2), "median_ms": round(1000 * statistics.median(times), 1) if times else None,
            "per_min": round(rate(times, [1] * len(times)), 1), "keys_per_decision": round(keys / len(times), 2) if times else None}


def bench_bulk(page, url: str, pages: int, per_page: int) -> dict:
    """Shift+X selects the page, Shift+A approves it: 2 keys per page."""
    times, counts = [], []
    for _ in range(pages):
        page.goto(f"{url}/review/?origin=chat&per_page={per_page}")
        n = page.locator("article.item").count()
        if n == 0:
            break
        page.wait_for_selector("article.item.current-item")
        t = time.perf_counter()
        page.keyboard.press("Shift+X")
        page.keyboard.press("Shift+A")
        page.wait_for_selector(f"text={n} item(s) approved")
        times.append(time.perf_counter() - t)
        counts.append(n)
    total = sum(counts)
    return {"decisions": total, "pages": len(times), "seconds": round(sum(times), 2), "median_page_ms": round(1000 * statistics.median(times), 1) if times else None,
            "per_min": round(rate(times, counts), 1), "keys_per_decision": round(2 * len(times) / total, 3) if total else None}


def bench_select_and_bulk(page, url: str, n: int) -> dict:
    """x on each item (x, j, x, j …) then Shift+A: a hand-picked selection."""
    page.goto(f"{url}/review/?origin=chat&per_page=100")
    page.wait_for_selector("article.item.current-item")
    n = min(n, page.locator("article.item").count())
    if n == 0:
        return {"decisions": 0}
    t = time.perf_counter()
    keys = 0
    for i in range(n):
        page.keyboard.press("x")
        keys += 1
        if i + 1 < n:
            page.keyboard.press("j")
            keys += 1
    page.keyboard.press("Shift+A")
    keys += 1
    page.wait_for_selector(f"text={n} item(s) approved")
    seconds = time.perf_counter() - t
    return {"decisions": n, "seconds": round(seconds, 2), "per_min": round(60 * n / seconds, 1), "keys_per_decision": round(keys / n, 2)}


def bench_cli(settings: Settings, env: dict, n: int) -> dict:
    """The alternative without the page: one `kbops review approve ID` per item, and one command for n ids."""
    with session_scope(settings) as db:
        ids = list(db.scalars(select(ReviewItem.id).where(ReviewItem.state == "open").order_by(ReviewItem.priority.desc(), ReviewItem.id).limit(2 * n)))
    one, many = ids[:n], ids[n : 2 * n]
    kbops = [sys.executable, "-m", "kbops.cli"]
    run_env = {**os.environ, **env, "KBOPS_CONFIG": ""}
    times = []
    for item in one:
        t = time.perf_counter()
        subprocess.run([*kbops, "review", "approve", str(item), "--by", "bench"], env=run_env, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    if many:
        subprocess.run([*kbops, "review", "approve", *map(str, many), "--by", "bench"], env=run_env, check=True, capture_output=True)
    many_s = time.perf_counter() - t
    return {
        "one_by_one": {"decisions": len(times), "median_ms": round(1000 * statistics.median(times), 1) if times else None, "per_min": round(rate(times, [1] * len(times)), 1)},
        "one_command": {"decisions": len(many), "seconds": round(many_s, 2), "per_min": round(60 * len(many) / many_s, 1) if many else None},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--min-support", type=int, default=1, help="sessions needed per mined candidate (default 1: a bigger queue)")
    ap.add_argument("--keyboard", type=int, default=30, help="items approved one by one with the keyboard")
    ap.add_argument("--reject", type=int, default=10, help="items rejected one by one (r, reason, Enter)")
    ap.add_argument("--pick", type=int, default=20, help="items hand-picked with x/j, then bulk-approved")
    ap.add_argument("--bulk-pages", type=int, default=3, help="pages bulk-approved with shift+x, shift+a")
    ap.add_argument("--per-page", type=int, default=50, choices=[25, 50, 100, 200, 500])
    ap.add_argument("--cli", type=int, default=8, help="items approved with one CLI command each (and as many with one command)")
    ap.add_argument("--database-url", help="KB database (default: SQLite in a temp dir)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"error: no Chromium at {CHROMIUM}: apt-get install -y chromium (or set KBOPS_TEST_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    home = Path(tempfile.mkdtemp(prefix="kbops-bench-review-"))
    try:
        settings, fill = fill_queue(home, args.min_support, args.database_url)
        print(f"queue: {fill['queued']} open items ({fill['chat']} mined from chats) from the {fill['source']}, filled in {fill['fill_s']} s", file=sys.stderr)
        with session_scope(settings) as db:
            accounts.add_reviewer(db, "bench", PASSWORD)
        proc, url = start_server(fill["env"])
        results: dict = {"queue": {k: v for k, v in fill.items() if k != "env"}}
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
                page = browser.new_page()
                page.goto(f"{url}/review/login")
                page.fill('input[name="name"]', "bench")
                page.fill('input[name="password"]', PASSWORD)
                page.keyboard.press("Enter")
                page.wait_for_selector("form.filters")
                # Page render of a full queue page, for reference.
                loads = []
                for _ in range(5):
                    t = time.perf_counter()
                    page.goto(f"{url}/review/?origin=chat&per_page={args.per_page}")
                    loads.append(time.perf_counter() - t)
                results["queue_page_load_ms"] = round(1000 * statistics.median(loads), 1)
                results["keyboard_approve"] = bench_keyboard(page, url, args.keyboard, "approve")
                results["keyboard_reject"] = bench_keyboard(page, url, args.reject, "reject")
                results["pick_and_bulk"] = bench_select_and_bulk(page, url, args.pick)
                results["bulk_page"] = bench_bulk(page, url, args.bulk_pages, args.per_page)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=20)
        results["cli"] = bench_cli(settings, fill["env"], args.cli)
        with session_scope(settings) as db:
            results["audited_web_decisions"] = db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.door == "web"))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
        return 0
    q = results["queue"]
    print(f"\nqueue: {q['queued']} open ({q['chat']} mined chat candidates, {q['source']}, min support {q['min_support']}); "
          f"queue page ({args.per_page} items) loads in {results['queue_page_load_ms']} ms")
    print(f"{'mode':<44} {'decisions':>9} {'per min':>9} {'keys/decision':>14}")
    rows = [
        ("keyboard one by one: a", results["keyboard_approve"]),
        ("keyboard reject: r, reason, Enter", results["keyboard_reject"]),
        ("hand-picked: x/j per item, then A", results["pick_and_bulk"]),
        (f"bulk: X selects the page ({args.per_page}), A approves", results["bulk_page"]),
    ]
    for name, r in rows:
        print(f"{name:<44} {r.get('decisions', 0):>9} {r.get('per_min', 0):>9} {r.get('keys_per_decision') or '-':>14}")
    c = results["cli"]
    print(f"{'CLI: kbops review approve ID (one per item)':<44} {c['one_by_one']['decisions']:>9} {c['one_by_one']['per_min']:>9} {'(a command each)':>14}")
    print(f"{'CLI: kbops review approve ID ID … (one)':<44} {c['one_command']['decisions']:>9} {c['one_command']['per_min'] or '-':>9} {'(ids typed)':>14}")
    kb = results["keyboard_approve"]["per_min"]
    if kb and c["one_by_one"]["per_min"]:
        print(f"\nkeyboard vs one CLI command per item: {kb / c['one_by_one']['per_min']:.1f}x; bulk page vs keyboard: {results['bulk_page']['per_min'] / kb:.1f}x")
    print(f"web decisions in the audit log: {results['audited_web_decisions']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
