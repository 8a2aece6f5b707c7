"""Routing: auto-approval rules, review priority, and the review queue's entry point.

Routing sends each valid candidate either through an auto-approval rule
(logged with the rule's name) or into ``review_items``. A newer candidate for
the same entry supersedes an older open item, so reviewers never approve a
stale proposal. :func:`check_decision` is the one check of a reviewer's
decision; every door (CLI, web page, a plain SQL UPDATE applied later) runs it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kbops.config import ApprovalRule, Settings
from kbops.errors import InvalidDecision
from kbops.kb.audit import record_audit
from kbops.kb.entries import approve_candidate
from kbops.kb.runs import step_run
from kbops.schema import Candidate, KbEntry, QueryLogEntry, ReviewItem, utcnow

#: The values a reviewer may put in ``review_items.decision`` (see sql/review_contract.sql).
DECISIONS = ("approve", "reject", "merge")

#: Days of bot traffic that raise a withdrawn entry's replacement in the queue.
TRAFFIC_DAYS = 7


@dataclass
class RouteResult:
    run_id: int = 0
    queued: int = 0
    auto_approved: int = 0
    superseded: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- the one decision check ----------------------------------------------------------


def check_decision(
    decision: str | None,
    *,
    by: str | None,
    note: str | None = None,
    merge_into: str | None = None,
    edited_answer: str | None = None,
    door: str = "cli",
) -> str:
    """Check a reviewer's decision before it is recorded or applied; return it normalised.

    Raises :class:`InvalidDecision` naming what is wrong and how to fix it in
    the reviewer's own terms: command-line flags (``door="cli"``), the page's
    fields (``"web"``), or review-table columns for a decision written with
    plain SQL (``"sql"``, checked when it is applied).
    """
    normal = (decision or "").strip().lower()
    fix = _FIXES.get(door, _FIXES["cli"])

    def refuse(problem: str, key: str, **data: Any) -> InvalidDecision:
        return InvalidDecision(problem + fix[key].format(merge_into=merge_into, decision=normal), decision=decision, **data)

    if normal not in DECISIONS:
        raise refuse(f"decision {decision!r} is not one of {', '.join(DECISIONS)}", "decision")
    if not (by or "").strip():
        raise refuse("", "by")
    if normal == "reject" and not (note or "").strip():
        raise refuse("a rejection needs a reason", "reason")
    if normal != "merge" and (merge_into or "").strip():
        raise refuse("", "merge_into", merge_into=merge_into)
    if normal == "merge" and (edited_answer or "").strip():
        raise refuse("a merge keeps the existing entry's answer", "merge_answer")
    return normal


#: How each door's reviewer fixes a refused decision.
_FIXES: dict[str, dict[str, str]] = {
    "cli": {
        "decision": "",
        "by": "a decision needs the reviewer's name: pass --by NAME",
        "reason": ": pass --reason TEXT",
        "merge_into": "merge_into={merge_into!r} only goes with the decision 'merge', not {decision!r}",
        "merge_answer": ": drop the edited answer, or approve instead",
    },
    "web": {
        "decision": "",
        "by": "a decision needs the reviewer's name: sign in again",
        "reason": ": write it in the note",
        "merge_into": "an entry to merge into only goes with the decision 'merge', not {decision!r}",
        "merge_answer": ": clear the edited answer, or approve instead",
    },
    "sql": {
        "decision": "; set decision to approve, reject or merge",
        "by": "decided_by is empty; set it to the reviewer's name",
        "reason": " in note",
        "merge_into": "merge_into is set ({merge_into!r}) but decision is {decision!r}; set decision = 'merge' or clear merge_into",
        "merge_answer": "; clear edited_answer (or set decision = 'approve')",
    },
}


# --- rules and priority -------------------------------------------------------------


def rule_for(rules: Iterable[ApprovalRule], candidate: Candidate, entry: KbEntry | None) -> ApprovalRule | None:
    """The first rule that approves ``candidate`` without a reviewer, or None."""
    evidence = candidate.evidence or {}
    if evidence.get("stale_values"):
        return None  # it quotes a fact that changed: a human must look, whatever the rules say
    if evidence.get("near_duplicate"):
        return None  # proposed as another entry's alternate question: a human decides
    for rule in rules:
        if not rule.covers(candidate.origin, candidate.kind):
            continue
        if rule.unchanged_text:
            if (
                entry is not None
                and entry.status in ("active", "withdrawn")
                and entry.question == candidate.question
                and entry.answer == candidate.answer
                and sorted(entry.alt_questions) == sorted(candidate.alt_questions)
            ):
                return rule
            continue
        return rule
    return None


def priority(candidate: Candidate, entry: KbEntry | None, traffic: int = 0) -> float:
    """Higher first. Three signals, in the units a reviewer thinks in:

    * evidence: distinct sessions that asked it, weighted by the miner's quality
      score (0–1; records and policies count as 0.5) — ``support × (0.5 + quality)``;
    * a withdrawn entry the bot can no longer serve: +5, plus 2·ln(1 + queries
      that entry answered in the last ``TRAFFIC_DAYS`` days) — customers are being
      handed off on it right now;
    * age is the tie-breaker at read time (oldest first), not baked in here.
    """
    quality = (candidate.evidence or {}).get("quality")
    quality = float(quality) if isinstance(quality, (int, float)) else 0.5
    score = float(candidate.support) * (0.5 + min(max(quality, 0.0), 1.0))
    if entry is not None and entry.status == "withdrawn":
        score += 5.0 + 2.0 * math.log1p(traffic)
    return round(score, 3)


def _recent_traffic(db: Session, entry_ids: list[int]) -> dict[int, int]:
    """Queries each entry answered in the last TRAFFIC_DAYS days (from the bot's query log)."""
    if not entry_ids:
        return {}
    since = utcnow() - timedelta(days=TRAFFIC_DAYS)
    rows = db.execute(
        select(QueryLogEntry.entry_id, func.count())
        .where(QueryLogEntry.entry_id.in_(entry_ids), QueryLogEntry.at >= since)
        .group_by(QueryLogEntry.entry_id)
    )
    return {int(eid): int(n) for eid, n in rows if eid is not None}


# --- routing ---------------------------------------------------------------------------


def route_candidates(db: Session, settings: Settings, candidate_ids: list[int] | None = None) -> RouteResult:
    """Auto-approve what a rule covers; queue the rest for a reviewer.

    A near-duplicate (``evidence["near_duplicate"]``, set by the gate) is never
    auto-approved: it is queued as a proposal to join the existing entry as an
    alternate question (``proposed_merge_into``).
    """
    result = RouteResult()
    with step_run(db, "route", result):
        stmt = select(Candidate).where(Candidate.status == "valid")
        if candidate_ids is not None:
            stmt = stmt.where(Candidate.id.in_(candidate_ids))
        batch = list(db.scalars(stmt.order_by(Candidate.id)))
        # Within one batch the newest proposal per entry wins; older ones never reach a rule or a reviewer.
        newest = {c.entry_key: c for c in batch}
        for candidate in batch:
            if newest[candidate.entry_key] is not candidate:
                candidate.status = "superseded"
                result.superseded += 1
        batch = list(newest.values())
        entries, open_items = _prefetch(db, set(newest))
        # Each entry is written at most once per batch, so autoflush before every
        # statement is wasted work: flush explicitly where an id is needed.
        with db.no_autoflush:
            _route_batch(db, settings, batch, entries, open_items, result)
    return result


def _route_batch(
    db: Session,
    settings: Settings,
    batch: list[Candidate],
    entries: dict[str, KbEntry],
    open_items: dict[str, list[ReviewItem]],
    result: RouteResult,
) -> None:
    """Route each candidate: a rule approves it, or it waits for a reviewer."""
    traffic = _recent_traffic(db, [e.id for e in entries.values() if e.status == "withdrawn"])
    for candidate in batch:
        result.superseded += _supersede_open_items(db, candidate, open_items.pop(candidate.entry_key, []))
        entry = entries.get(candidate.entry_key)
        rule = rule_for(settings.rules, candidate, entry)
        if rule is not None:
            entries[candidate.entry_key] = approve_candidate(db, candidate, actor=f"rule:{rule.name}", door="rule", entry=entry)
            candidate.status = "auto_approved"
            result.auto_approved += 1
            result.by_rule[rule.name] = result.by_rule.get(rule.name, 0) + 1
            continue
        near = (candidate.evidence or {}).get("near_duplicate")
        item = ReviewItem(
            candidate_id=candidate.id,
            entry_key=candidate.entry_key,
            origin=candidate.origin,
            kind=candidate.kind,
            lang=candidate.lang,
            question=candidate.question,
            answer=candidate.answer,
            alt_questions=list(candidate.alt_questions),
            evidence=candidate.evidence,
            warnings=_warnings(entry) + _gate_warnings(candidate),
            support=candidate.support,
            priority=priority(candidate, entry, traffic.get(entry.id, 0) if entry is not None else 0),
            proposed_merge_into=near["entry_key"] if near else None,
        )
        db.add(item)
        candidate.status = "queued"
        result.queued += 1


def _gate_warnings(candidate: Candidate) -> list[str]:
    """The gate's non-blocking flags (near-duplicate, a stale fact the sync flagged), for the reviewer."""
    return [r for r in candidate.reasons or [] if isinstance(r, str)]


def _warnings(entry: KbEntry | None) -> list[str]:
    if entry is None:
        return []
    if entry.status == "withdrawn":
        return [f"replaces withdrawn entry {entry.id}: {entry.status_reason}"]
    return [f"replaces active entry {entry.id} (revision {entry.revision})"]


def _prefetch(db: Session, keys: set[str]) -> tuple[dict[str, KbEntry], dict[str, list[ReviewItem]]]:
    """Entries and open review items for a batch's entry keys, one query per chunk."""
    entries: dict[str, KbEntry] = {}
    open_items: dict[str, list[ReviewItem]] = {}
    ordered = sorted(keys)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        for entry in db.scalars(select(KbEntry).where(KbEntry.entry_key.in_(chunk))):
            entries[entry.entry_key] = entry
        for item in db.scalars(select(ReviewItem).where(ReviewItem.entry_key.in_(chunk), ReviewItem.state == "open").order_by(ReviewItem.id)):
            open_items.setdefault(item.entry_key, []).append(item)
    return entries, open_items


def _supersede_open_items(db: Session, candidate: Candidate, older: list[ReviewItem]) -> int:
    """Close the open items for the candidate's entry: a newer proposal replaces them."""
    for item in older:
        item.state = "superseded"
        item.apply_error = None
        superseded = db.get(Candidate, item.candidate_id)
        if superseded is not None:
            superseded.status = "superseded"
        record_audit(db, actor="kbops", door="pipeline", action="supersede", review_item_id=item.id, note=f"newer candidate {candidate.id}")
    return len(older)
