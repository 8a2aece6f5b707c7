"""Extract: turn changed upstream records and new chat sessions into candidates.

Work is driven by state in the KB database, not by run arguments: records
whose current version is not yet ``extracted`` and sessions not yet ``mined``.
So a re-run after a crash picks up exactly what is left, and a re-run with
nothing left proposes nothing.

Records are read, proposed and marked extracted in batches of
``Settings.extract_batch_size`` (keyset-paged by id), so memory stays bounded
however many records one sync changed (two million prices: see
bench/bench_extract_scale.py). A door that passes ``commit`` gets each batch
committed on its own; a record is marked extracted in the same transaction as
its candidates, so a run killed between batches leaves whole batches done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from kbops.config import Settings
from kbops.extract.mining import mine_chats
from kbops.extract.policies import policy_proposals
from kbops.extract.records import product_proposals
from kbops.index.embedder import Embedder
from kbops.kb.candidates import Proposal, propose_all
from kbops.kb.entries import retire_entries
from kbops.kb.runs import step_run
from kbops.schema import PipelineRun, SourceRecord, utcnow


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
    batches: int = 0
    seconds: float = 0.0
    messages: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def extract_candidates(
    db: Session,
    settings: Settings,
    embedder: Embedder | None,
    *,
    commit: Callable[[], None] | None = None,
    result: ExtractResult | None = None,
) -> ExtractResult:
    """Propose candidates from pending records and unmined chat sessions.

    ``embedder`` groups chat questions (dense channel); with None, or a model
    that cannot be loaded, mining groups lexically only. ``commit`` (from the
    door) is called after each batch of records; ``result`` lets the door see
    the run id even if the step fails part-way.
    """
    result = result if result is not None else ExtractResult()
    with step_run(db, "extract", result) as run:
        sources = _sources_by_kind(db)
        for batch in _pending_batches(db, settings.extract_batch_size):
            _propose(db, _from_records(db, batch, sources, result), run.id, result)
            ids = [record.id for record in batch]
            db.execute(update(SourceRecord).where(SourceRecord.id.in_(ids)).values(extracted=True).execution_options(synchronize_session=False))
            result.records += len(batch)
            result.batches += 1
            if commit is not None:
                commit()
        _propose(db, _from_chats(db, settings, embedder, result), run.id, result)
    return result


def mark_failed(db: Session, run_id: int, exc: BaseException) -> None:
    """Stamp an extract run whose earlier batches were committed, then failed, as ``failed``."""
    run = db.get(PipelineRun, run_id)
    if run is not None and run.status == "running":
        run.status, run.finished_at, run.error = "failed", utcnow(), f"{type(exc).__name__}: {exc}"


def _propose(db: Session, proposals: list[Proposal], run_id: int, result: ExtractResult) -> None:
    for created in propose_all(db, proposals, run_id):
        if created is None:
            result.unchanged += 1
        else:
            result.proposed += 1


class _Pending(NamedTuple):
    id: int
    kind: str
    key: str


def _pending_batches(db: Session, size: int) -> Iterator[list[_Pending]]:
    """Current records not yet extracted, ``size`` at a time, in id order.

    Keyset paging (``id > last``) walks ix_source_records_pending in order, so
    each page costs its own size; only ids, kinds and keys are read here (the
    payloads that are needed are loaded per batch).
    """
    last = 0
    while True:
        batch = [
            _Pending(*row)
            for row in db.execute(
                select(SourceRecord.id, SourceRecord.kind, SourceRecord.key)
                .where(SourceRecord.is_current.is_(True), SourceRecord.extracted.is_(False), SourceRecord.id > last)
                .order_by(SourceRecord.id)
                .limit(size)
            )
        ]
        if not batch:
            return
        yield batch
        last = batch[-1].id


def _sources_by_kind(db: Session) -> dict[str, list[str]]:
    """Which sources carry product and price records (so lookups by SKU use the (source, kind, key) index)."""
    out: dict[str, list[str]] = {}
    for source, kind in db.execute(select(SourceRecord.source, SourceRecord.kind).where(SourceRecord.kind.in_(("product", "price"))).distinct()):
        out.setdefault(kind, []).append(source)
    return out


def _from_records(db: Session, pending: list[_Pending], sources: dict[str, list[str]], result: ExtractResult) -> list[Proposal]:
    out: list[Proposal] = []
    skus = sorted({r.key for r in pending if r.kind in ("product", "price")})
    products = _current(db, sources.get("product", []), "product", skus)
    prices = _current(db, sources.get("price", []), "price", sorted(sku for sku, product in products.items() if not product.deleted))
    delisted: dict[str, dict[str, str]] = {}  # product source → sku → reason
    for sku, product in products.items():  # a price of a product no source lists says nothing: skipped
        if product.deleted:
            delisted.setdefault(product.source, {})[sku] = f"product {sku} is delisted upstream"
        else:
            out.extend(product_proposals(product, prices.get(sku)))
    for source, reasons in delisted.items():
        result.retired += retire_entries(db, source, "product", reasons)
    policy_ids = [r.id for r in pending if r.kind == "policy"]
    for doc in db.scalars(select(SourceRecord).where(SourceRecord.id.in_(policy_ids)).order_by(SourceRecord.id)) if policy_ids else []:
        proposals = policy_proposals(doc)
        if not doc.deleted and not proposals:
            result.messages.append(
                f"policy document {doc.key} (source {doc.source!r}) has no '## ' heading, so it yields no questions; "
                "write each question as a '## ' heading with its answer below (see examples/sample_store/README.md)"
            )
            continue  # a document without sections is bad input: its entries stay until it has some again or is removed
        reason = "policy document removed upstream" if doc.deleted else "section no longer in the policy document"
        result.retired += retire_entries(db, doc.source, "policy", {doc.key: reason}, keep={p.entry_key for p in proposals})
        out.extend(proposals)
    return out


def _current(db: Session, sources: list[str], kind: str, skus: list[str]) -> dict[str, SourceRecord]:
    """Current records of ``kind`` for ``skus`` (one query per 500 SKUs); the newest wins if two sources carry one SKU."""
    out: dict[str, SourceRecord] = {}
    if not sources:
        return out
    for start in range(0, len(skus), 500):
        for record in db.scalars(
            select(SourceRecord)
            .where(
                SourceRecord.source.in_(sources), SourceRecord.kind == kind,
                SourceRecord.key.in_(skus[start : start + 500]), SourceRecord.is_current.is_(True),
            )
            .order_by(SourceRecord.id)
        ):
            out[record.key] = record
    return out


def _from_chats(db: Session, settings: Settings, embedder: Embedder | None, result: ExtractResult) -> list[Proposal]:
    """Mine the sessions not mined yet (see kbops.extract.mining)."""
    mined = mine_chats(db, settings, embedder)
    result.sessions, result.exchanges, result.gaps = mined.sessions, mined.exchanges, mined.gaps
    return mined.proposals
