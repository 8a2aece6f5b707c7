"""Golden questions: the answers a new release must not lose.

A golden question is a question → expected entry pair kept in the KB
(``golden_questions``), or a question the bot must hand off: its expected
entry is :data:`HANDOFF` (a customer's question the KB does not answer, such
as an order-specific or out-of-scope one). At activation, the candidate
release answers every golden question exactly as the bot would (same
ranking, same handoff threshold); it is *correct* when the bot answers (no
handoff) with the expected entry on top, or hands off a :data:`HANDOFF`
question. Calibration reads them too (kbops/index/calibration.py): a store's
labelled handoffs tell it how many customers' questions have no answer. A release that gets fewer right than the active one is
not activated unless forced, and the refusal lists what it would break. The
score is stored with the release (``index_releases.stats['golden']``) keyed by
a digest of the golden set, so the active release is re-scored only when the
golden set changed.

Why relative to the active release and not an absolute bar: the golden set
records what customers rely on *now*; a release may legitimately still miss
a question the current one misses too, but it must not regress.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kbops.config import Settings
from kbops.errors import ConfigError, GoldenNotFound, GoldenRegression, ReleaseError
from kbops.index import release as rel
from kbops.index.embedder import Embedder
from kbops.index.search import answer_from
from kbops.pii import scrub
from kbops.schema import GoldenQuestion, IndexRelease, KbEntry
from kbops.text import content_hash, fingerprint

MAX_QUESTION_CHARS = 500
#: The expected "entry" of a golden question the bot must hand off. No entry is keyed so: every entry key
#: carries its source's prefix ("import:…", "product:…", "policy:…").
HANDOFF = "handoff"


@dataclass
class GoldenScore:
    release_id: str
    correct: int
    total: int
    digest: str
    misses: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _clean(question: str, entry_key: str) -> tuple[str, str]:
    # Scrubbed first: a golden question is stored, and the errors below quote it.
    question, entry_key = scrub((question or "").strip()), (entry_key or "").strip()
    if not question:
        raise ConfigError("a golden question needs the question text")
    if len(question) > MAX_QUESTION_CHARS:
        raise ConfigError(f"golden question is {len(question)} characters; keep it under {MAX_QUESTION_CHARS}")
    if not entry_key:
        raise ConfigError(
            f"golden question {question[:60]!r} needs the expected entry key (see `kbops export` for keys), or {HANDOFF!r} for a "
            "question the bot must hand off"
        )
    return question, entry_key


def golden_pairs(db: Session) -> list[tuple[str, str | None]]:
    """Every golden (question, expected entry key, or None for a :data:`HANDOFF` question): real phrasings with a
    known outcome, for calibration (which knows nothing of how golden questions are stored)."""
    rows = db.execute(select(GoldenQuestion.question, GoldenQuestion.entry_key).order_by(GoldenQuestion.id))
    return [(q, None if k == HANDOFF else k) for q, k in rows]


def add_golden(db: Session, pairs: list[tuple[str, str]], by: str) -> int:
    """Add (question, expected entry key) pairs; each key must name an active entry, or be :data:`HANDOFF`.

    Returns how many were new (re-adding a pair is a no-op).
    """
    if not (by or "").strip():
        raise ConfigError("say who adds golden questions: pass --by NAME")
    cleaned = [_clean(q, k) for q, k in pairs]
    added = 0
    keys = {k for _, k in cleaned} - {HANDOFF}
    active = set(db.scalars(select(KbEntry.entry_key).where(KbEntry.entry_key.in_(keys), KbEntry.status == "active")))
    unknown = sorted(keys - active)
    if unknown:
        raise ConfigError(
            f"no active KB entry {unknown[0]!r}" + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
            + "; golden questions must point at served entries — see `kbops export FILE` for entry keys",
            entry_keys=unknown,
        )
    existing = set(db.execute(select(GoldenQuestion.question, GoldenQuestion.entry_key)).tuples())
    try:
        with db.begin_nested():
            for question, key in dict.fromkeys(cleaned):
                if (question, key) not in existing:
                    db.add(GoldenQuestion(question=question, entry_key=key, created_by=by.strip()))
                    added += 1
    except IntegrityError:  # a concurrent add of the same pair: theirs counts
        return 0
    return added


def read_golden_file(path: Path) -> list[tuple[str, str]]:
    """(question, entry_key) pairs from a JSONL or CSV file with those two fields."""
    if not path.is_file():
        raise ConfigError(f"golden file {path} does not exist")
    pairs: list[tuple[str, str]] = []
    try:
        if path.suffix.lower() == ".csv":
            with path.open(encoding="utf-8-sig", newline="") as fh:
                rows = list(csv.DictReader(fh))
        else:
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"golden file {path} is not UTF-8 JSONL/CSV: {exc}") from None
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not row.get("question") or not row.get("entry_key"):
            raise ConfigError(f"golden file {path} row {n} needs 'question' and 'entry_key'")
        pairs.append((str(row["question"]), str(row["entry_key"])))
    return pairs


def remove_golden(db: Session, golden_id: int) -> None:
    row = db.get(GoldenQuestion, golden_id)
    if row is None:
        raise GoldenNotFound(f"no golden question {golden_id}; see `kbops golden list`", golden_id=golden_id)
    db.delete(row)


def list_golden(db: Session) -> list[dict[str, Any]]:
    rows = db.scalars(select(GoldenQuestion).order_by(GoldenQuestion.id))
    return [
        {"id": g.id, "question": g.question, "entry_key": g.entry_key, "created_by": g.created_by, "created_at": g.created_at.isoformat()}
        for g in rows
    ]


def relabel(db: Session, questions: list[str], outcome: str, by: str) -> int:
    """Label ``questions`` with ``outcome`` (an active entry's key, or :data:`HANDOFF`) as a reviewer's latest word:
    their golden questions with another outcome go first (kbops/review/gaps.py, kbops/review/spot_check.py), so the
    golden set never holds two answers to one question. Returns how many golden questions were new."""
    cleaned = [_clean(q, outcome)[0] for q in questions]
    db.execute(delete(GoldenQuestion).where(GoldenQuestion.question.in_(set(cleaned)), GoldenQuestion.entry_key != outcome))
    return add_golden(db, [(q, outcome) for q in cleaned], by=by)


def handoff_fingerprints(db: Session) -> set[str]:
    """Fingerprints of the golden questions the bot must hand off: questions a reviewer said no entry answers
    (``kbops review label-gap --handoff``). The gap lists leave them out: they are known, not missing knowledge."""
    return {fingerprint(q) for q in db.scalars(select(GoldenQuestion.question).where(GoldenQuestion.entry_key == HANDOFF))}


def has_golden(db: Session) -> bool:
    """Whether any golden question exists (cheap: activation loads no model without one)."""
    return db.scalar(select(GoldenQuestion.id).limit(1)) is not None


def golden_digest(db: Session) -> str:
    """A digest of the golden set: a release's calibration was fitted on it (kbops/index/publish.py rebuilds when
    it changed), and the gate's stored scores are keyed by it."""
    return _golden_set(db)[1]


def _golden_set(db: Session) -> tuple[list[tuple[str, str]], str]:
    pairs = [(q, k) for q, k in db.execute(select(GoldenQuestion.question, GoldenQuestion.entry_key).order_by(GoldenQuestion.id))]
    return pairs, content_hash(pairs)


def score_release(settings: Settings, release_id: str, embedder: Embedder, pairs: list[tuple[str, str]], digest: str) -> GoldenScore:
    """Answer every golden question from ``release_id`` as the bot would."""
    loaded = rel.load_release(
        settings.index_dir, release_id, expect_model=embedder.model_id, expect_dim=embedder.dim, lexical_scorer=settings.lexical_scorer
    )
    score = GoldenScore(release_id, 0, len(pairs), digest)
    for question, expected in pairs:
        answer = answer_from(loaded, embedder, settings, question, 1)
        got = answer.top.entry_key if answer.top else None
        if (expected == HANDOFF and answer.handoff) or (not answer.handoff and got == expected):
            score.correct += 1
        else:
            score.misses.append({"question": question, "expected": expected, "got": None if answer.handoff else got, "reason": answer.reason})
    return score


def _stored_score(db: Session, release_id: str, digest: str) -> GoldenScore | None:
    row = db.get(IndexRelease, release_id)
    stored = (row.stats or {}).get("golden") if row else None
    if stored and stored.get("digest") == digest:
        return GoldenScore(**stored)
    return None


def _store_score(db: Session, score: GoldenScore) -> None:
    row = db.get(IndexRelease, score.release_id)
    if row is not None:
        row.stats = {**(row.stats or {}), "golden": score.as_dict()}


def gate(db: Session, settings: Settings, release_id: str, embedder: Embedder, force: bool = False) -> dict[str, Any] | None:
    """Score ``release_id`` against the golden set and refuse a regression.

    Returns None when there are no golden questions, else the comparison.
    Raises :class:`GoldenRegression` when the new release answers fewer golden
    questions correctly than the active one and ``force`` is false.
    """
    pairs, digest = _golden_set(db)
    if not pairs:
        return None
    new = score_release(settings, release_id, embedder, pairs, digest)
    _store_score(db, new)
    active = rel.active_release_id(settings.index_dir)
    old = None
    if active and active != release_id:
        old = _stored_score(db, active, digest)
        if old is None:
            try:
                old = score_release(settings, active, embedder, pairs, digest)
                _store_score(db, old)
            except ReleaseError:
                old = None  # another model or unreadable: nothing comparable to protect
    outcome: dict[str, Any] = {"correct": new.correct, "total": new.total, "active_correct": old.correct if old else None, "forced": False}
    if old is not None and new.correct < old.correct:
        lost = [m for m in new.misses if m["question"] not in {x["question"] for x in old.misses}]
        if not force:
            shown = "; ".join(f"{m['question']!r} → expected {m['expected']}, got {m['got'] or 'handoff (' + str(m['reason']) + ')'}" for m in lost[:5])
            raise GoldenRegression(
                f"release {release_id} answers {new.correct}/{new.total} golden questions correctly, the active release "
                f"{active} answers {old.correct}/{old.total}; it would break: {shown}"
                + (f" (and {len(lost) - 5} more)" if len(lost) > 5 else "")
                + ". Fix the KB and publish again, remove a golden question that is no longer right "
                "(`kbops golden remove ID`), or activate anyway with `kbops publish --force`",
                release_id=release_id, active_release_id=active, correct=new.correct, total=new.total, active_correct=old.correct, lost=lost,
            )
        outcome["forced"] = True
        outcome["lost"] = lost
    return outcome


def check_active(db: Session, settings: Settings, embedder: Embedder) -> GoldenScore:
    """Score the active release on the golden set (``kbops golden check``)."""
    pairs, digest = _golden_set(db)
    if not pairs:
        raise ConfigError("no golden questions yet; add some with `kbops golden add QUESTION --entry KEY --by NAME`")
    active = rel.active_release_id(settings.index_dir)
    if active is None:
        raise ReleaseError(f"no active release under {settings.index_dir}; run `kbops publish` first")
    score = score_release(settings, active, embedder, pairs, digest)
    _store_score(db, score)
    return score
