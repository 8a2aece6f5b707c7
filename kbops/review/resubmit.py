"""Resubmitting a refused candidate: a reviewer fixes it and it goes through the gate again."""

from __future__ import annotations

from sqlalchemy.orm import Session

from kbops.config import Settings
from kbops.errors import CandidateNotFound, ReviewError
from kbops.index.embedder import Embedder
from kbops.kb.audit import record_audit
from kbops.kb.routing import route_candidates
from kbops.schema import Candidate
from kbops.text import fingerprint
from kbops.validate import validate_candidates


def resubmit(
    db: Session,
    settings: Settings,
    candidate_id: int,
    *,
    by: str,
    embedder: Embedder,
    question: str | None = None,
    answer: str | None = None,
    template_slots: list[str] | None = None,
    door: str = "cli",
) -> Candidate:
    """Fix a refused candidate and run it through the gate again, in the caller's transaction.

    The candidate keeps its id and identity; the edit is audited (who, door,
    before/after). It comes back ``valid`` and is routed at once (auto-approved
    or queued), or ``invalid`` with fresh reasons. ``template_slots`` declares
    ``{{…}}`` names in the answer that the bot fills at answer time.
    """
    if not by or not by.strip():
        raise ReviewError("a resubmission needs your name: pass --by NAME")
    candidate = db.get(Candidate, candidate_id)
    if candidate is None:
        raise CandidateNotFound(f"no candidate {candidate_id}; see `kbops review invalid`", candidate_id=candidate_id)
    if candidate.status != "invalid":
        raise ReviewError(
            f"candidate {candidate_id} is {candidate.status}, not invalid: only refused candidates are resubmitted",
            candidate_id=candidate_id,
            status=candidate.status,
        )
    before = {"question": candidate.question, "answer": candidate.answer, "reasons": list(candidate.reasons)}
    if question is not None and question.strip():
        candidate.question = question.strip()
    if answer is not None and answer.strip():
        candidate.answer = answer.strip()
    if template_slots:
        evidence = dict(candidate.evidence or {})
        evidence["template_slots"] = sorted({*evidence.get("template_slots", []), *(s.strip("{} ") for s in template_slots)})
        candidate.evidence = evidence
    candidate.fingerprint = fingerprint(candidate.question)
    candidate.status, candidate.reasons = "new", []
    record_audit(
        db,
        actor=by.strip(),
        door=door,
        action="resubmit",
        before=before,
        after={"question": candidate.question, "answer": candidate.answer},
        note=f"candidate {candidate_id} ({candidate.entry_key})",
    )
    db.flush()
    validate_candidates(db, settings, embedder, candidate_ids=[candidate_id])
    if candidate.status == "valid":
        route_candidates(db, settings, candidate_ids=[candidate_id])
    return candidate
