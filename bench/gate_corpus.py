"""The gate's bad-input corpus and good set, run through the real pipeline (for bench_gate.py).

The rows are the test suite's data files, tests/validate/corpus/{bad,good}.jsonl
(read as data; bench/ imports no code from tests/):

``bad.jsonl``: hostile or broken candidates, each with the reason codes the
gate must give it (``expect``); a row with an empty ``expect`` is the
legitimate first half of a within-batch duplicate pair and must pass.
``good.jsonl``: hand-written answers a store would publish, several quoting
current facts and declared template slots; none may be blocked.

The context is a real KB: the bundled sample store synced, extracted,
validated, routed (structured facts auto-approved) and every queued item
approved, so duplicates, near-duplicates and fact conflicts are checked
against real active entries and current records. Only public kbops names:
the settings-level steps of :mod:`kbops.pipeline` and the db-level queue reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from kbops.config import Settings
from kbops.db import session_scope
from kbops.pipeline import decide, extract_candidates, route_candidates, sync_sources, validate_candidates
from kbops.review.queue import list_items
from kbops.schema import Candidate
from kbops.text import content_hash, fingerprint

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "validate" / "corpus"


def load(name: str) -> list[dict[str, Any]]:
    """Rows of corpus/<name>.jsonl; ``{"repeat": TEXT, "bytes": N}`` questions/answers are expanded to N UTF-8 bytes."""
    rows = []
    for line in (CORPUS / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        for col in ("question", "answer"):
            if isinstance(row[col], dict):
                unit, size = row[col]["repeat"], row[col]["bytes"]
                row[col] = unit * (size // len(unit.encode("utf-8")) + 1)
        rows.append(row)
    return rows


def build_kb(settings: Settings) -> None:
    """An active KB from the sample store: every candidate approved (by rule or by 'corpus')."""
    sync_sources(settings)
    extract_candidates(settings)
    validate_candidates(settings)
    route_candidates(settings)
    with session_scope(settings) as db:
        ids = [item.id for item in list_items(db, limit=10_000)]
    if ids:
        decide(settings, ids, "approve", by="corpus")


def insert(settings: Settings, rows: list[dict[str, Any]], prefix: str) -> dict[str, int]:
    """Add rows as new candidates (origin 'import'); returns corpus id → candidate id."""
    ids: dict[str, int] = {}
    with session_scope(settings) as db:
        for row in rows:
            key = f"corpus:{prefix}:{row['id']}"
            candidate = Candidate(
                entry_key=key,
                origin="import",
                kind="faq",
                lang=row["lang"],
                question=row["question"],
                answer=row["answer"],
                evidence=row.get("evidence", {}),
                depends_on=row.get("depends_on", []),
                fingerprint=fingerprint(row["question"] or "-"),
                content_hash=content_hash(key, row["question"], row["answer"]),
                status="new",
            )
            db.add(candidate)
            db.flush()
            ids[row["id"]] = candidate.id
    return ids


def outcomes(settings: Settings, ids: dict[str, int]) -> dict[str, dict[str, Any]]:
    """corpus id → {status, codes (blocking reason codes), flags, reasons}."""
    by_candidate = {v: k for k, v in ids.items()}
    out = {}
    with session_scope(settings) as db:
        for c in db.scalars(select(Candidate).where(Candidate.id.in_(list(ids.values())))):
            reasons = [r for r in c.reasons if not r.startswith("near_duplicate")]
            out[by_candidate[c.id]] = {
                "status": c.status,
                "codes": sorted({r.split(":", 1)[0] for r in reasons}) if c.status == "invalid" else [],
                "flags": sorted({r.split(":", 1)[0] for r in c.reasons if r.startswith("near_duplicate")}),
                "reasons": list(c.reasons),
            }
    return out


def score(rows: list[dict[str, Any]], results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """How many should-be-caught rows were caught (for the expected reason), and how many good rows were blocked."""
    should = [r for r in rows if r["expect"]]
    must_pass = [r for r in rows if not r["expect"]]
    caught = [r for r in should if results[r["id"]]["status"] == "invalid"]
    for_reason = [r for r in caught if set(r["expect"]) <= set(results[r["id"]]["codes"])]
    blocked = [r for r in must_pass if results[r["id"]]["status"] == "invalid"]
    by_category: dict[str, list[int]] = {}
    for r in should:
        seen = by_category.setdefault(r["category"], [0, 0])
        seen[1] += 1
        seen[0] += results[r["id"]]["status"] == "invalid"
    return {
        "should_catch": len(should),
        "caught": len(caught),
        "caught_for_expected_reason": len(for_reason),
        "missed": [r["id"] for r in should if results[r["id"]]["status"] != "invalid"],
        "wrong_reason": [(r["id"], r["expect"], results[r["id"]]["codes"]) for r in caught if r not in for_reason],
        "must_pass": len(must_pass),
        "blocked": [(r["id"], results[r["id"]]["reasons"]) for r in blocked],
        "flagged_near_duplicate": [r["id"] for r in rows if results[r["id"]]["flags"]],
        "by_category": {k: f"{v[0]}/{v[1]}" for k, v in sorted(by_category.items())},
    }
