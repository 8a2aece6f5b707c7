"""View-models: what the templates show, built from rows a handler already fetched.

Pure functions over ORM rows and plain data (no session, no queries): the
queue's facets and paging, an item card with its evidence, diffs against the
current entry and record versions, the invalid and decided lists. Evidence is
read by the keys the stages write (:class:`kbops.kb.candidates.Evidence`).
Everything returned is plain text; the templates escape it.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

from kbops.kb.candidates import Evidence
from kbops.schema import AuditEvent, Candidate, ChatGap, ChatSession, IndexRelease, KbEntry, ReviewItem, SourceRecord
from kbops.serve.review_web.forms import MAX_TEXT, PAGE_SIZES, QueueFilters

MAX_SHOWN = 2_000  # longest chat turn or record field shown before it is cut
Ref = tuple[str, str, str, int]  # source, kind, key, version

#: Evidence keys the card shows in their own places; any other key is shown raw under "other".
_SHOWN_EVIDENCE = {
    "excerpts", "sessions", "skus", "records", "sku", "stale_values", "document", "title", "version", "file", "location",
    "quality", "quality_parts", "answer_from", "near_duplicate", "checks", "context_turns",
}


class QueueRow(NamedTuple):
    """What the queue's filters and facets need of one open item (no texts)."""

    id: int
    origin: str
    lang: str
    warnings: list[str] | None
    apply_error: str | None
    tags: list[str] | None


@dataclass
class CardRows:
    """Everything the cards of one page rest on (fetched by :func:`kbops.serve.review_web.queries.card_rows`)."""

    candidates: dict[int, Candidate] = field(default_factory=dict)
    sessions: dict[str, ChatSession] = field(default_factory=dict)
    refs: dict[str, Ref] = field(default_factory=dict)  # each parsable record reference → its parts
    records: dict[Ref, SourceRecord] = field(default_factory=dict)
    entries: dict[str, KbEntry] = field(default_factory=dict)  # by entry key
    events: list[AuditEvent] = field(default_factory=list)  # newest first


def evidence_of(item: ReviewItem) -> Evidence:
    """The item's evidence, typed (the column is plain JSON)."""
    return cast(Evidence, item.evidence or {})


def merge_keys(item: ReviewItem) -> list[str]:
    """Entry keys the item could join: routing's proposal and the gate's near-duplicate."""
    keys = [item.proposed_merge_into] if item.proposed_merge_into else []
    near = evidence_of(item).get("near_duplicate")
    if near and near["entry_key"] not in keys:
        keys.append(near["entry_key"])
    return keys


def record_refs(item: ReviewItem, candidate: Candidate | None) -> list[str]:
    """The record versions an item rests on: its candidate's dependencies, then its evidence's records."""
    return list(candidate.depends_on if candidate else []) + list(evidence_of(item).get("records", []))


# --- the queue -------------------------------------------------------------------------


@dataclass
class QueuePage:
    """Which open items match the filters, the page of them to show, and the facet counts."""

    page_ids: list[int]
    total_open: int
    matching: int
    page: int
    pages: int
    facets: dict[str, list[tuple[str, int]]]
    page_sizes: tuple[int, ...] = PAGE_SIZES


def queue_page(rows: list[QueueRow], filters: QueueFilters) -> QueuePage:
    """Filter the open queue (kept in order) and count its facets over all open items."""
    facets: dict[str, dict[str, int]] = {"origin": {}, "lang": {}, "tag": {}}
    matching: list[int] = []
    for row in rows:
        facets["origin"][row.origin] = facets["origin"].get(row.origin, 0) + 1
        facets["lang"][row.lang] = facets["lang"].get(row.lang, 0) + 1
        for t in row.tags or []:
            if t:
                facets["tag"][t] = facets["tag"].get(t, 0) + 1
        flagged = bool(row.warnings) or bool(row.apply_error)
        if filters.origin and row.origin != filters.origin:
            continue
        if filters.lang and row.lang != filters.lang:
            continue
        if filters.tag and filters.tag not in (row.tags or []):
            continue
        if filters.warnings == "with" and not flagged or filters.warnings == "without" and flagged:
            continue
        matching.append(row.id)
    per, page = filters.per_page, filters.page
    return QueuePage(
        page_ids=matching[(page - 1) * per : page * per],
        total_open=len(rows),
        matching=len(matching),
        page=page,
        pages=max(1, -(-len(matching) // per)),
        facets={k: sorted(v.items(), key=lambda kv: (-kv[1], kv[0]))[:60] for k, v in facets.items()},
    )


# --- item cards ------------------------------------------------------------------------


def cut(text: Any, limit: int = MAX_SHOWN) -> str:
    """``text`` as a string of at most ``limit`` characters, saying how much was cut."""
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[:limit] + f" … [{len(text) - limit} more characters]"


def diff(old: str, new: str) -> list[tuple[str, str]]:
    """Character-level diff as (op, text) segments, op in eq/del/ins; escaped by the template."""
    if len(old) + len(new) > 8000:
        return [("del", cut(old)), ("ins", cut(new))]
    out: list[tuple[str, str]] = []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op == "equal":
            out.append(("eq", old[a1:a2]))
        else:
            if a2 > a1:
                out.append(("del", old[a1:a2]))
            if b2 > b1:
                out.append(("ins", new[b1:b2]))
    return out


def cards(items: list[ReviewItem], rows: CardRows) -> list[dict[str, Any]]:
    """Everything a reviewer needs per item, in page order (``next``: the card to go to after deciding)."""
    out = []
    for index, r in enumerate(items):
        following = items[index + 1].id if index + 1 < len(items) else (items[index - 1].id if index else None)
        out.append(_card(r, rows, following))
    return out


def _card(r: ReviewItem, rows: CardRows, following: int | None) -> dict[str, Any]:
    cand = rows.candidates.get(r.candidate_id)
    entry = rows.entries.get(r.entry_key)
    ev = evidence_of(r)
    near = ev.get("near_duplicate")
    card: dict[str, Any] = {
        "id": r.id,
        "next": following,
        "entry_key": r.entry_key,
        "origin": r.origin,
        "kind": r.kind,
        "lang": r.lang,
        "question": r.question,
        "answer": r.answer,
        "alt_questions": list(r.alt_questions or []),
        "support": r.support,
        "priority": r.priority,
        "created_at": r.created_at,
        "state": r.state,
        "decision": r.decision,
        "decided_by": r.decided_by,
        "apply_error": r.apply_error,
        "warnings": [str(w) for w in (r.warnings or [])],
        "tags": [t for t in (cand.tags if cand else []) if t],
        "chats": _chat_evidence(ev, rows.sessions),
        "records": _record_evidence(record_refs(r, cand), rows),
        "stale_values": list(ev.get("stale_values", [])),
        "document": {"key": ev["document"], "title": ev.get("title", ""), "version": ev.get("version")} if "document" in ev else None,
        "file": {"name": ev["file"], "location": ev.get("location", "")} if "file" in ev else None,
        "quality": _quality(ev),
        "checks": [str(c) for c in ev.get("checks", [])],
        "context_turns": [cut(t, 400) for t in ev.get("context_turns", [])],
        "other_evidence": {k: v for k, v in ev.items() if k not in _SHOWN_EVIDENCE},
        "current": None,
        "merge_targets": [],
        "proposed_merge_into": r.proposed_merge_into,
        "audit": [],
        "impact": None,  # the route fills it in (kbops.index.preview over the logged questions)
    }
    if entry is not None:
        card["current"] = {
            "id": entry.id, "status": entry.status, "revision": entry.revision, "reason": entry.status_reason,
            "question_diff": diff(entry.question, r.question) if entry.question != r.question else None,
            "answer_diff": diff(entry.answer, r.answer) if entry.answer != r.answer else None,
            "question": entry.question, "answer": entry.answer,
        }
    for key in merge_keys(r):
        target = rows.entries.get(key)
        if target is not None and target.status in ("active", "withdrawn") and key != r.entry_key:
            card["merge_targets"].append({
                "entry_key": key, "question": target.question, "answer": cut(target.answer, 300), "lang": target.lang,
                "proposed": key == r.proposed_merge_into, "score": float(near["score"]) if near and near["entry_key"] == key else None,
            })
    mine = [e for e in rows.events if e.review_item_id == r.id or (entry is not None and e.entry_id == entry.id)]
    card["audit"] = [
        {"at": e.at, "actor": e.actor, "door": e.door, "action": e.action, "note": e.note, "before": e.before, "after": e.after}
        for e in mine[:30]
    ]
    return card


def _quality(ev: Evidence) -> dict[str, Any] | None:
    """The miner's quality score and its parts, when the item came from chats."""
    if "quality" not in ev:
        return None
    parts = ev.get("quality_parts", {})
    return {"score": float(ev["quality"]), "parts": [(str(k), v) for k, v in parts.items()]}


def _chat_evidence(ev: Evidence, sessions: dict[str, ChatSession]) -> list[dict[str, Any]]:
    """Each excerpt's session around the exchange: the customer turn asked, the next agent turn answered."""
    out = []
    chosen = ev.get("answer_from")
    for ex in ev.get("excerpts", [])[:5]:
        session = sessions.get(ex["session"])
        turn = ex["turn"]
        picked = chosen is not None and chosen["session"] == ex["session"] and chosen["turn"] == turn
        if session is not None and 0 <= turn < len(session.turns or []) - 1:
            lo, hi = max(0, turn - 2), min(len(session.turns), turn + 4)
            turns = [
                {"role": str(t.get("role", "")), "text": cut(t.get("text", "")), "mark": "asked" if i == turn else "answered" if i == turn + 1 else ""}
                for i, t in enumerate(session.turns[lo:hi], start=lo)
            ]
            out.append({"session": session.session_key, "source": session.source, "turns": turns, "more_before": lo > 0, "more_after": hi < len(session.turns), "picked": picked})
        else:  # the session is gone (deleted upstream): show the excerpt itself
            out.append({"session": ex["session"], "source": "", "more_before": False, "more_after": False, "picked": picked, "turns": [
                {"role": "customer", "text": cut(ex["question"]), "mark": "asked"},
                {"role": "agent", "text": cut(ex["answer"]), "mark": "answered"},
            ]})
    return out


def _record_evidence(refs: list[str], rows: CardRows) -> list[dict[str, Any]]:
    """Each record version the item rests on, field by field, with the previous version's value where it changed."""
    out = []
    seen: set[str] = set()
    for ref in refs:
        if ref in seen or ref not in rows.refs:
            continue
        seen.add(ref)
        source, kind, key, version = rows.refs[ref]
        rec, prev = rows.records.get((source, kind, key, version)), rows.records.get((source, kind, key, version - 1))
        fields = []
        payload = rec.payload if rec is not None else {}
        old = prev.payload if prev is not None else None
        for name in sorted(set(payload) | set(old or {})):
            new_value, old_value = payload.get(name), (old or {}).get(name)
            fields.append({"name": name, "value": cut(new_value, 400), "old": cut(old_value, 400) if old is not None and old_value != new_value else None})
        out.append({"ref": ref, "found": rec is not None, "deleted": bool(rec and rec.deleted), "fields": fields, "changed": old is not None})
    return out


# --- the other tabs -----------------------------------------------------------------------


def invalid_view(c: Candidate) -> dict[str, Any]:
    """A refused candidate with the gate's reasons and the full text to fix."""
    return {"id": c.id, "entry_key": c.entry_key, "origin": c.origin, "lang": c.lang, "question": c.question, "answer": cut(c.answer, MAX_SHOWN),
            "full_answer": c.answer[:MAX_TEXT], "reasons": [str(x) for x in (c.reasons or [])], "created_at": c.created_at}


def decided_view(r: ReviewItem, releases: Sequence[IndexRelease] = ()) -> dict[str, Any]:
    """One applied decision: who decided what, through which door (``sql`` when written by hand), and when it went live.

    ``live``: the first activated release built after the decision was applied
    (its id and activation time), or None while it waits for the next publish.
    A rejection goes live the same way (the bot stops serving the entry)."""
    live = None
    if r.applied_at is not None:
        built_after = [rel for rel in releases if rel.created_at >= r.applied_at and rel.activated_at is not None]
        if built_after:
            live = {"release_id": built_after[0].id, "since": built_after[0].activated_at}
    return {"id": r.id, "question": r.edited_question or r.question, "decision": r.decision, "by": r.decided_by, "via": r.decided_via or "sql",
            "at": r.applied_at, "note": r.note, "lang": r.lang, "origin": r.origin, "merge_into": r.merge_into, "live": live}


def gap_view(g: ChatGap, rank: float) -> dict[str, Any]:
    """A gap topic as the gaps page lists it: the question, how often and how lately it was asked, examples."""
    return {"id": g.id, "origin": g.origin, "lang": g.lang, "question": g.question, "alt_questions": list(g.alt_questions or [])[:8],
            "support": g.support, "rank": rank, "last_seen": g.last_seen, "status": g.status, "kb_score": g.kb_score,
            "answer_key": g.answer_key, "reasons": sorted((g.reasons or {}).items()),
            "examples": [str(e.get("question", "")) for e in (g.evidence or [])][:5]}
