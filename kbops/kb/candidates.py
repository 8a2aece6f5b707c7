"""Proposing candidates: the one place a candidate row is created.

Extractors (records, policies, chats) build :class:`Proposal` objects; this
module turns them into ``candidates`` rows idempotently. A proposal's
identity is its entry key plus the content a reviewer would judge (texts,
dependency versions, validity window), so extracting the same facts twice
proposes nothing new; only support counts and evidence are refreshed.

``Evidence`` is the contract between the stages that write a candidate's
evidence and the doors that show it: exactly the keys some stage writes, by
the stage that writes them. Read it by these names; there are no others.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TypedDict

from sqlalchemy import select
from sqlalchemy.orm import Session

from kbops.pii import scrub
from kbops.schema import Candidate, ReviewItem
from kbops.text import content_hash, fingerprint


class NearDuplicateEvidence(TypedDict):
    """The active entry a candidate asks the same as (written by the validation gate)."""

    entry_key: str
    score: float
    matched: str  # the entry's phrasing that matched


class StaleValue(TypedDict):
    """A value the answer quotes that changed upstream (written by sync)."""

    record: str  # source/kind/key@version of the new record
    old: str
    new: str


class ChatTurnRef(TypedDict):
    session: str
    turn: int


class ChatExcerpt(ChatTurnRef):
    question: str
    answer: str


class Evidence(TypedDict, total=False):
    """Why a candidate exists, by the stage that says so. Every key is optional."""

    # extract/records.py: the record versions a templated fact was made from
    records: list[str]
    sku: str
    # extract/policies.py: the policy document section
    document: str
    title: str
    version: int
    # extract/chats.py: the chat sessions that asked it, and the miner's score
    sessions: list[str]
    skus: list[str]
    quality: float
    quality_parts: dict[str, float]
    answer_from: ChatTurnRef
    excerpts: list[ChatExcerpt]
    checks: list[str]  # the miner's checks this candidate passed, readable ("self-contained", "3 sessions agree")
    context_turns: list[str]  # the earlier customer turns (scrubbed) a rewritten question took its topic from
    # faq import
    file: str
    location: str
    # validate: the active entry it duplicates (routed as a merge proposal)
    near_duplicate: NearDuplicateEvidence
    # sources/sync: a quoted value that changed (never auto-approved)
    stale_values: list[StaleValue]
    # review resubmit: ``{{slot}}`` names the bot fills at answer time
    template_slots: list[str]


@dataclass
class Proposal:
    entry_key: str
    origin: str  # record | policy | chat | import
    kind: str  # price, stock, shipping, warranty, policy, faq …
    lang: str
    question: str
    answer: str
    alt_questions: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    evidence: Evidence = field(default_factory=lambda: Evidence())
    depends_on: list[str] = field(default_factory=list)
    support: int = 1
    valid_from: datetime | None = None
    valid_to: datetime | None = None

    def identity(self) -> str:
        return content_hash(
            self.entry_key,
            self.question,
            self.answer,
            sorted(self.alt_questions),
            sorted(self.tags),
            sorted(self.depends_on),
            self.valid_from.isoformat() if self.valid_from else None,
            self.valid_to.isoformat() if self.valid_to else None,
        )


def propose(db: Session, proposal: Proposal, run_id: int | None) -> Candidate | None:
    """Insert the proposal as a new candidate, or refresh the identical one.

    Returns the new candidate, or None when an identical proposal exists.
    """
    return propose_all(db, [proposal], run_id)[0]


_CHUNK = 500


def scrubbed(proposal: Proposal) -> Proposal:
    """The proposal with private data scrubbed from everything a reviewer reads or the bot serves:
    question, answer, alternate questions and the chat excerpts in its evidence.

    The last line of defence: stages scrub what they read (chat turns are scrubbed at sync), but
    whatever a stage builds, no candidate row can hold private data.
    """
    evidence = proposal.evidence
    if evidence.get("excerpts"):
        evidence = Evidence(**evidence)
        evidence["excerpts"] = [
            {**excerpt, "question": scrub(excerpt.get("question") or ""), "answer": scrub(excerpt.get("answer") or "")} for excerpt in proposal.evidence["excerpts"]
        ]
    return replace(
        proposal,
        question=scrub(proposal.question),
        answer=scrub(proposal.answer),
        alt_questions=[scrub(q) for q in proposal.alt_questions],
        evidence=evidence,
    )


def propose_all(db: Session, proposals: list[Proposal], run_id: int | None) -> list[Candidate | None]:
    """:func:`propose` for a batch, with one lookup per chunk instead of one per proposal.

    Each proposal is :func:`scrubbed` first, so its identity is that of what is stored —
    except templated facts from catalogue records (``origin == "record"``): their text is
    the store's own product data, scrubbing costs ~33 µs a text (minutes for millions of
    price rows), and the gate's ``private_data`` rule still refuses one that carries any.
    """
    proposals = [p if p.origin == "record" else scrubbed(p) for p in proposals]
    identities = [p.identity() for p in proposals]
    existing: dict[tuple[str, str], Candidate] = {}
    for start in range(0, len(proposals), _CHUNK):
        keys = {p.entry_key for p in proposals[start : start + _CHUNK]}
        hashes = set(identities[start : start + _CHUNK])
        for c in db.scalars(select(Candidate).where(Candidate.entry_key.in_(keys), Candidate.content_hash.in_(hashes))):
            existing[(c.entry_key, c.content_hash)] = c
    out: list[Candidate | None] = []
    for proposal, identity in zip(proposals, identities):
        found = existing.get((proposal.entry_key, identity))
        if found is not None:
            _refresh_support(db, found, proposal)
            out.append(None)
            continue
        candidate = Candidate(
            entry_key=proposal.entry_key,
            origin=proposal.origin,
            kind=proposal.kind,
            lang=proposal.lang,
            question=proposal.question,
            answer=proposal.answer,
            alt_questions=list(proposal.alt_questions),
            tags=list(proposal.tags),
            evidence=dict(proposal.evidence),
            depends_on=sorted(proposal.depends_on),
            support=proposal.support,
            valid_from=proposal.valid_from,
            valid_to=proposal.valid_to,
            fingerprint=fingerprint(proposal.question),
            content_hash=identity,
            status="new",
            run_id=run_id,
        )
        db.add(candidate)
        existing[(proposal.entry_key, identity)] = candidate
        out.append(candidate)
    return out


def _refresh_support(db: Session, existing: Candidate, proposal: Proposal) -> None:
    """Same proposal, more evidence: update the counts (and the open review item's)."""
    if existing.support == proposal.support:
        return
    existing.support = proposal.support
    existing.evidence = dict(proposal.evidence)
    item = db.scalar(select(ReviewItem).where(ReviewItem.candidate_id == existing.id))
    if item is not None and item.state == "open":
        item.support = proposal.support
        item.evidence = dict(proposal.evidence)
