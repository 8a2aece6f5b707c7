"""Bring an existing FAQ in (`kbops import`) and write the active KB out (`kbops export`).

File format, JSONL (one object per line) or CSV (a header row):

    question        required
    answer          required
    alt_questions   optional: a JSON list (JSONL), or phrasings separated by " | " (CSV)
    tags            optional: a JSON list (JSONL), or tags separated by " | " (CSV)
    lang            optional: zh or en (detected when absent)
    id              optional: a stable key; re-importing the same id updates that entry

Answers exported from a help centre are often HTML: they are converted to
plain text (:func:`html_to_text`: links kept as ``text (url)``, list items
and paragraphs as lines, entities decoded, scripts and styles dropped) and
each converted row is reported in ``ImportResult.converted``. An answer
shorter than the gate allows (a one-word "Yes.") is imported but flagged:
it waits in the review queue with the reason, even under ``--approve``
(``ImportResult.flagged``), so a reviewer writes the full answer.

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
import html
import io
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bs4 import BeautifulSoup, Comment, Doctype, NavigableString, Tag
from bs4.exceptions import ParserRejectedMarkup
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
from kbops.validate.gate import LENGTH_BOUNDS, length_units

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
    #: ``location: what was converted`` for each row whose texts were HTML or carried entities.
    converted: list[str] = field(default_factory=list)
    #: ``location: why`` for each row imported but held for a reviewer (never approved by ``--approve``).
    flagged: list[str] = field(default_factory=list)

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


# --- HTML answers -------------------------------------------------------------------------

#: A tag of HTML's own vocabulary (so "a <b and c> d" in prose is no reason to parse, but "<p>" is).
_HTML_TAG = re.compile(
    r"<!--|<!doctype|</?(?:a|abbr|address|article|aside|b|big|blockquote|body|br|button|caption|center|code|col|dd|details|div|dl|dt|em|embed|"
    r"figcaption|figure|font|footer|form|h[1-6]|head|header|hr|html|i|iframe|img|input|label|li|link|main|mark|meta|nav|noscript|object|ol|"
    r"p|pre|s|section|select|small|span|strike|strong|style|sub|summary|sup|svg|table|tbody|td|template|textarea|tfoot|th|thead|title|tr|u|ul)"
    r"(?=[\s/>])[^<>]*>",
    re.IGNORECASE,
)
_ENTITY = re.compile(r"&(?:#\d{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
#: Elements whose content is never text a customer reads.
_DROP = frozenset({"script", "style", "noscript", "template", "head", "iframe", "object", "embed", "svg", "canvas", "form", "button", "select", "textarea", "input"})
#: Elements that start a new line of text.
_BLOCK = frozenset(
    "p div section article header footer main aside nav address blockquote pre figure figcaption h1 h2 h3 h4 h5 h6 dl dt dd table thead tbody tfoot caption hr details summary title".split()
)
#: Marks one level of list indentation inside rendered text (HTML text itself never carries it).
_INDENT = "\x1f"
_LINK_SCHEMES = ("http://", "https://", "mailto:", "tel:", "/", "www.")


@dataclass
class _Conversion:
    links: int = 0
    lists: int = 0
    items: int = 0
    tables: int = 0
    images: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, what: str) -> None:
        self.dropped[what] = self.dropped.get(what, 0) + 1


def html_to_text(text: str) -> tuple[str, list[str]]:
    """Plain text from an FAQ answer that may be HTML, and what was converted (empty: nothing was).

    Why: the bot serves plain text (the gate refuses markup), but a help-centre export writes answers
    as HTML. Links stay readable as ``text (url)``, list items become ``- item`` / ``1. item`` lines,
    paragraphs and ``<br>`` become line breaks, table rows become ``cell | cell`` lines, images leave
    their alt text, entities are decoded, and scripts, styles, forms, comments and ``javascript:``
    links are dropped. Text without tags only has its entities decoded.
    """
    if not _HTML_TAG.search(text):
        if not _ENTITY.search(text):
            return text, []
        decoded = html.unescape(text)
        return decoded, ["entities decoded"] if decoded != text else []
    try:
        soup = BeautifulSoup(text, "html.parser")
    except (ParserRejectedMarkup, AssertionError, ValueError) as exc:
        raise ValueError(f"its HTML cannot be read ({exc})") from None
    stats = _Conversion()
    plain = _tidy(_render(soup, stats)).replace(_INDENT, "  ")
    notes = ["HTML converted to text"]
    if stats.links:
        notes.append(f"{stats.links} link(s) kept as text")
    if stats.lists:
        notes.append(f"{stats.lists} list(s) ({stats.items} item(s)) as lines")
    if stats.tables:
        notes.append(f"{stats.tables} table row(s) as lines")
    if stats.images:
        notes.append(f"{stats.images} image(s) replaced by their alt text")
    if _ENTITY.search(text):
        notes.append("entities decoded")
    if stats.dropped:
        notes.append("dropped " + ", ".join(f"{n} {what}" for what, n in sorted(stats.dropped.items())))
    return plain, notes


def _render(node: Tag, stats: _Conversion) -> str:
    """The text of ``node``'s children; ``\n`` marks line breaks (whitespace is tidied afterwards)."""
    out: list[str] = []
    for child in node.children:
        if isinstance(child, (Comment, Doctype)):
            continue
        if isinstance(child, NavigableString):
            out.append(re.sub(r"\s+", " ", str(child)))
            continue
        if not isinstance(child, Tag):
            continue
        name = child.name.lower()
        if name in _DROP:
            stats.drop(name)
        elif name == "br":
            out.append("\n")
        elif name == "img":
            alt = str(child.get("alt") or "").strip()
            if alt:
                stats.images += 1
                out.append(alt)
        elif name == "a":
            out.append(_link(child, stats))
        elif name in ("ul", "ol"):
            out.append(_html_list(child, stats))
        elif name == "li":  # an item outside any list: still a line of its own
            out.append("\n- " + _render(child, stats).strip() + "\n")
        elif name == "tr":
            cells = [" ".join(_render(c, stats).split()) for c in child.find_all(["td", "th"], recursive=False)]
            stats.tables += 1
            out.append("\n" + " | ".join(c for c in cells if c) + "\n")
        elif name in _BLOCK:
            out.append("\n" + _render(child, stats) + "\n")
        else:
            out.append(_render(child, stats))
    return "".join(out)


def _link(tag: Tag, stats: _Conversion) -> str:
    """``text (url)``; the bare text when the link goes nowhere a reader can follow (``#``, ``javascript:``)."""
    label = " ".join(_render(tag, stats).split())
    href = str(tag.get("href") or "").strip()
    if href.lower().startswith(("javascript:", "vbscript:", "data:")):
        stats.drop("script link")
        return label
    if not href or href.startswith("#") or not href.lower().startswith(_LINK_SCHEMES):
        return label
    stats.links += 1
    shown = href.removeprefix("mailto:").removeprefix("tel:")
    if not label or shown in label:
        return shown if not label else label
    return f"{label} ({shown})"


def _html_list(tag: Tag, stats: _Conversion) -> str:
    """Each ``<li>`` on a line: ``- item``, or ``1. item`` in an ordered list; nested lists indented."""
    stats.lists += 1
    ordered = tag.name.lower() == "ol"
    lines: list[str] = []
    number = 0
    for item in tag.find_all("li", recursive=False):
        number += 1
        stats.items += 1
        text = _tidy(_render(item, stats))
        if not text:
            continue
        first, *rest = text.split("\n")
        lines.append(f"{number}. {first}" if ordered else f"- {first}")
        lines.extend(_INDENT + line for line in rest)
    return "\n" + "\n".join(lines) + "\n"


def _tidy(text: str) -> str:
    """HTML whitespace rules: runs of spaces collapse, blank lines go, lines are trimmed; list nesting indents."""
    lines = []
    for raw in text.replace("\xa0", " ").split("\n"):
        line = " ".join(raw.replace(_INDENT, "").split())
        if line:
            depth = len(raw.strip(" ")) - len(raw.strip(" ").lstrip(_INDENT))
            lines.append(_INDENT * depth + line)
    return "\n".join(lines)


def _text_field(row: dict[str, Any], name: str) -> str:
    """A row's question or answer as text: numbers are written out, lists and objects are refused."""
    value = row.get(name)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{name} must be text, got {type(value).__name__}")
    return str(value).strip()


def _short_answer(answer: str, lang: str) -> bool:
    """Whether the answer is below the gate's lower length bound (a one-word "Yes.", "可以")."""
    low = LENGTH_BOUNDS.get(("answer", lang), (1, 0))[0]
    return length_units(answer, lang) < low


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
        try:
            missing = {"question", "answer"} - set(reader.fieldnames or [])
            if missing:
                raise ConfigError(f"FAQ file {path} has no column(s) {', '.join(sorted(missing))}; the header needs question and answer")
            return [(f"{path.name}:{reader.line_num}", dict(row)) for row in reader]
        except csv.Error as exc:
            raise ConfigError(f"FAQ file {path} is not valid CSV at line {reader.line_num}: {exc}; fix that line", path=str(path), line=reader.line_num) from None
    raise ConfigError(f"FAQ file {path} must end in .jsonl or .csv")


def import_faq(db: Session, settings: Settings, embedder: Embedder, path: Path, approve: bool = False, by: str | None = None) -> ImportResult:
    """Propose every row; approve the valid ones (``approve``) or queue them for review.

    One transaction (the caller's): an import lands whole or not at all.
    """
    if approve and not (by or "").strip():
        raise ConfigError("--approve needs --by NAME: the importer is recorded in the audit log")
    result = ImportResult()
    proposals: list[Proposal] = []
    short: set[str] = set()
    for location, row in _rows(path):
        result.read += 1
        if "__error__" in row:
            result.errors.append(f"{location}: {row['__error__']}")
            continue
        try:
            question, answer = _text_field(row, "question"), _text_field(row, "answer")
            alternates, tags = _list(row.get("alt_questions"), location), _list(row.get("tags"), location)
            converted = _convert_row(question, answer, alternates)
        except ValueError as exc:
            result.errors.append(f"{location}: {str(exc).removeprefix(location + ': ')}")
            continue
        if not question or not answer:
            result.errors.append(f"{location}: question and answer are both required")
            continue
        (question, answer, alternates), notes = converted
        if notes:
            result.converted.append(f"{location}: {'; '.join(notes)}")
        if not question or not answer:
            result.errors.append(f"{location}: the {'question' if not question else 'answer'} has no text once its HTML is converted")
            continue
        lang = str(row["lang"]) if row.get("lang") in ("zh", "en") else detect_lang(question)
        if _short_answer(answer, lang):
            short.add(location)
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
    held = _hold_short_answers(db, new_ids, short, result)
    result.invalid = validated.invalid - len(held)
    for c in db.scalars(select(Candidate).where(Candidate.id.in_(new_ids), Candidate.status == "invalid").order_by(Candidate.id)):
        result.errors.append(f"{c.evidence.get('location')}: refused by validation: {'; '.join(c.reasons)}")
    if approve:
        for c in db.scalars(select(Candidate).where(Candidate.id.in_(new_ids), Candidate.status == "valid", Candidate.id.notin_(held)).order_by(Candidate.id)):
            approve_candidate(db, c, actor=(by or "").strip(), door="import", note=f"imported from {path.name}")
            result.approved += 1
    record_run(db, "import_done", result.as_dict(), source=path.name)
    result.queued = route_candidates(db, settings, None if not approve else held).queued if (held or not approve) else 0
    return result


def _convert_row(question: str, answer: str, alternates: list[str]) -> tuple[tuple[str, str, list[str]], list[str]]:
    """The row's texts as plain text, and notes naming what was converted in which field."""
    notes: list[str] = []
    try:
        answer, answer_notes = html_to_text(answer)
    except ValueError as exc:
        raise ValueError(f"answer: {exc}") from None
    if answer_notes:
        notes.append("answer: " + ", ".join(answer_notes))
    # Questions are one line: any markup or entity in them is converted the same way, on one line.
    texts = []
    for name, text in [("question", question), *(("alternate question", a) for a in alternates)]:
        try:
            plain, text_notes = html_to_text(text)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        if text_notes:
            notes.append(f"{name}: " + ", ".join(text_notes))
        texts.append(" ".join(plain.split()))
    return (texts[0], answer, [t for t in texts[1:] if t]), notes


def _hold_short_answers(db: Session, new_ids: list[int], short: set[str], result: ImportResult) -> list[int]:
    """Hold one-word answers for a reviewer instead of refusing them; returns the held candidate ids.

    The gate refuses an answer shorter than its bound (``answer_length``, and ``non_answer`` for a bare
    "OK"/"好的"). For an imported FAQ such an answer is usually right but terse ("Yes." to "Do you ship
    on Sundays?"), so it is neither dropped nor published: the candidate is made valid with the gate's
    reasons kept as warnings, routed to the review queue, and reported in ``result.flagged``. The reviewer's
    approval runs the gate again, so it must be edited into a full answer first.
    """
    if not short:
        return []
    held: list[int] = []
    rows = db.scalars(select(Candidate).where(Candidate.id.in_(new_ids), Candidate.status == "invalid").order_by(Candidate.id))
    for c in rows:
        reasons = [str(r) for r in c.reasons or []]
        if c.evidence.get("location") not in short or not all(r.startswith(("answer_length", "non_answer")) for r in reasons):
            continue
        flag = f"short_answer: the answer {c.answer!r} is too short to serve on its own; write the full answer before approving"
        c.reasons = [flag, *reasons]
        c.status = "valid"
        held.append(c.id)
        result.flagged.append(f"{c.evidence.get('location')}: {flag} (held for review, not approved)")
    return held


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
