"""Extract: turn changed upstream records and new chat sessions into candidates.

Work is driven by state in the KB database, not by run arguments: records
whose current version is not yet ``extracted`` and sessions not yet ``mined``.
So a re-run after a crash picks up exactly what is left, and a re-run with
nothing left proposes nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kbops.config import Settings
from kbops.extract.mining import mine_chats
from kbops.extract.policies import policy_proposals
from kbops.extract.records import product_proposals
from kbops.index.embedder import Embedder
from kbops.kb.candidates import Proposal, propose_all
from kbops.kb.entries import retire_entries
from kbops.kb.runs import step_run
from kbops.schema import SourceRecord


@dataclass
class ExtractResult:
    run_id: int = 0
    records: int = 0
    sessions: int = 0
    exchanges: int = 0
    gaps: int = 0
    proposed: int = 0
    unchanged: int = 0
    retired: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def extract_candidates(db: Session, settings: Settings, embedder: Embedder | None) -> ExtractResult:
    """Propose candidates from pending records and unmined chat sessions.

    ``embedder`` groups chat questions (dense channel); with None, or a model
    that cannot be loaded, mining groups lexically only.
    """
    result = ExtractResult()
    with step_run(db, "extract", result) as run:
        proposals = _from_records(db, result) + _from_chats(db, settings, embedder, result)
        for created in propose_all(db, proposals, run.id):
            if created is None:
                result.unchanged += 1
            else:
                result.proposed += 1
    return result


def _from_records(db: Session, result: ExtractResult) -> list[Proposal]:
    pending = list(
        db.scalars(select(SourceRecord).where(SourceRecord.is_current.is_(True), SourceRecord.extracted.is_(False)))
    )
    result.records = len(pending)
    out: list[Proposal] = []
    skus = sorted({r.key for r in pending if r.kind in ("product", "price")})
    current = _current_facts(db, skus)
    for sku in skus:
        product = current.get(("product", sku))
        price = current.get(("price", sku))
        if product is None or product.deleted:
            result.retired += retire_entries(db, f"product:{sku}:", f"product {sku} is delisted upstream")
            continue
        out.extend(product_proposals(product, price))
    for doc in (r for r in pending if r.kind == "policy"):
        proposals = policy_proposals(doc)
        keep = {p.entry_key for p in proposals}
        prefix = f"policy:{doc.source}:{doc.key}:"
        reason = "policy document removed upstream" if doc.deleted else "section no longer in the policy document"
        result.retired += retire_entries(db, prefix, reason, keep=keep)
        out.extend(proposals)
    for record in pending:
        record.extracted = True
    return out


def _current_facts(db: Session, skus: list[str]) -> dict[tuple[str, str], SourceRecord]:
    """Current product and price records of ``skus`` (one query per 500 SKUs)."""
    out: dict[tuple[str, str], SourceRecord] = {}
    for start in range(0, len(skus), 500):
        for record in db.scalars(
            select(SourceRecord)
            .where(SourceRecord.kind.in_(("product", "price")), SourceRecord.key.in_(skus[start : start + 500]), SourceRecord.is_current.is_(True))
            .order_by(SourceRecord.id)
        ):
            out[(record.kind, record.key)] = record  # the newest wins if two sources carry one SKU
    return out


def _from_chats(db: Session, settings: Settings, embedder: Embedder | None, result: ExtractResult) -> list[Proposal]:
    """Mine the sessions not mined yet (see kbops.extract.mining)."""
    mined = mine_chats(db, settings, embedder)
    result.sessions, result.exchanges, result.gaps = mined.sessions, mined.exchanges, mined.gaps
    return mined.proposals
