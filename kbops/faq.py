"""Bring an existing FAQ in (`kbops import`) and write the active KB out (`kbops export`).

File format, JSONL (one object per line) or CSV (a header row):

    question        required
    answer          required
    alt_questions   optional: a JSON list (JSONL), or phrasings separated by " | " (CSV)
    tags            optional: a JSON list (JSONL), or tags separated by " | " (CSV)
    lang            optional: zh or en (detected when absent)
    id              optional: a stable key; re-importing the same id updates that entry

Imported rows become candidates and pass the same validation gate as
everything else. Without ``approve`` they wait in the review queue; with it
(``--approve --by NAME``) every valid row becomes an active entry, each with
an audit record naming the importer. Rows the gate refuses are reported and
kept as invalid candidates; malformed lines are reported with their line
numbers. ``export`` writes the active entries in the same format, so a KB
round-trips.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kbops.config import Settings
from kbops.errors import ConfigError
from kbops.index.embedder import Embedder
from kbops.kb.candidates import Proposal, propose_all
from kbops.kb.entries import approve_candidate
from kbops.kb.routing import route_candidates
from kbops.kb.runs import record_run, step_run
from kbops.schema import Candidate, KbEntry
from kbops.text import detect_lang, fingerprint
from kbops.validate import validate_candidates

FIELDS = ("id", "question", "answer", "alt_questions", "tags", "lang")
_SEP = " | "


@dataclass
class ImportResult:
    read: int = 0
    proposed: int = 0
    unchanged: int = 0
    approved: int = 0
    queued: int = 0
    invalid: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _list(value: Any, location: str) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    if isinstance(value, str):
        return [v.strip() for v in value.split("|") if v.strip()]
    raise ValueError(f"{location}: expected a list of strings, got {type(value).__name__}")


def _rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"FAQ file {path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"FAQ file {path} is not UTF-8 ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        out = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                obj = {"__error__": f"not valid JSON ({exc.msg})"}
            out.append((f"{path.name}:{n}", obj if isinstance(obj, dict) else {"__error__": "each line must be a JSON object"}))
        return out
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        missing = {"question", "answer"} - set(reader.fieldnames or [])
        if missing:
            raise ConfigError(f"FAQ file {path} has no column(s) {', '.join(sorted(missing))}; the header needs question and answer")
        return [(f"{path.name}:{reader.line_num}", dict(row)) for row in reader]
    raise ConfigError(f"FAQ file {path} must end in .jsonl or .csv")


def import_faq(db: Session, settings: Settings, embedder: Embedder, path: Path, approve: bool = False, by: str | None = None) -> ImportResult:
    """Propose every row; approve the valid ones (``approve``) or queue them for review.

    One transaction (the caller's): an import lands whole or not at all.
    """
    if approve and not (by or "").strip():
        raise ConfigError("--approve needs --by NAME: the importer is recorded in the audit log")
    result = ImportResult()
    proposals: list[Proposal] = []
    for location, row in _rows(path):
        result.read += 1
        if "__error__" in row:
            result.errors.append(f"{location}: {row['__error__']}")
            continue
        question, answer = str(row.get("question") or "").strip(), str(row.get("answer") or "").strip()
        if not question or not answer:
            result.errors.append(f"{location}: question and answer are both required")
            continue
        try:
            alternates, tags = _list(row.get("alt_questions"), location), _list(row.get("tags"), location)
        except ValueError as exc:
            result.errors.append(str(exc))
            continue
        lang = str(row["lang"]) if row.get("lang") in ("zh", "en") else detect_lang(question)
        key = str(row.get("id") or "").strip() or fingerprint(question)[:16]
        proposals.append(
            Proposal(
                entry_key=f"import:{key}",
                origin="import",
                kind="faq",
                lang=lang,
                question=question,
                answer=answer,
                alt_questions=alternates,
                tags=tags,
                evidence={"file": path.name, "location": location},
            )
        )
    with step_run(db, "import", source=path.name) as run:
        created = propose_all(db, proposals, run.id)
        db.flush()
    new_ids = [c.id for c in created if c is not None]
    result.unchanged = sum(1 for c in created if c is None)
    result.proposed = len(new_ids)
    validated = validate_candidates(db, settings, embedder)
    result.invalid = validated.invalid
    for c in db.scalars(select(Candidate).where(Candidate.id.in_(new_ids), Candidate.status == "invalid")):
        result.errors.append(f"{c.evidence.get('location')}: refused by validation: {'; '.join(c.reasons)}")
    if approve:
        for c in db.scalars(select(Candidate).where(Candidate.id.in_(new_ids), Candidate.status == "valid")):
            approve_candidate(db, c, actor=(by or "").strip(), door="import", note=f"imported from {path.name}")
            result.approved += 1
    record_run(db, "import_done", result.as_dict(), source=path.name)
    if not approve:
        result.queued = route_candidates(db, settings).queued
    return result


def export_faq(db: Session, path: Path) -> int:
    """Write the active entries to ``path`` (.jsonl or .csv) atomically; returns how many."""
    if path.suffix.lower() not in (".jsonl", ".ndjson", ".csv"):
        raise ConfigError(f"export file {path} must end in .jsonl or .csv")
    rows = [
        {
            "id": e.entry_key.removeprefix("import:"),
            "question": e.question,
            "answer": e.answer,
            "alt_questions": list(e.alt_questions),
            "tags": list(e.tags),
            "lang": e.lang,
        }
        for e in db.scalars(select(KbEntry).where(KbEntry.status == "active").order_by(KbEntry.id))
    ]
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        if path.suffix.lower() == ".csv":
            writer = csv.DictWriter(fh, fieldnames=FIELDS)
            writer.writeheader()
            for row in rows:
                writer.writerow({**row, "alt_questions": _SEP.join(row["alt_questions"]), "tags": _SEP.join(row["tags"])})
        else:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return len(rows)
