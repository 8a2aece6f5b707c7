"""Ranking a release's entries for a query, and the handoff decision.

Score = w · dense + (1 − w) · lexical, both cosines in [0, 1], where
w = ``dense_weight`` × (1 − share of the query the model cannot read)
(:mod:`kbops.index.similarity`, the one question similarity). So an English
query uses both channels, and a Chinese query with the default English-only
model is answered by the lexical channel alone instead of by meaningless
[UNK] vectors.

The answer is handed off to a human (``handoff: true``) when the best score
is below ``handoff_threshold`` (reason ``no_match``) or the two best entries
are too close to tell apart (``ambiguous``). Only entries inside their
validity window at ``now`` are served.

:func:`answer_from` scores any loaded release: the bot's retriever
(:mod:`kbops.serve.retriever`) calls it for the active release, the golden
gate for a release that is not active yet, the mining evaluation for an
in-memory one — all with the same fusion and the same handoff rule.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from kbops.config import Settings
from kbops.index import similarity
from kbops.index.release import LoadedRelease
from kbops.pii import scrub
from kbops.schema import utcnow

MAX_QUERY_CHARS = 2_000
MAX_TOP_K = 50
CANDIDATES = 50


@dataclass
class Hit:
    entry_id: int
    entry_key: str
    question: str
    answer: str
    score: float
    dense: float
    lexical: float
    lang: str
    tags: list[str]


@dataclass
class Answer:
    release_id: str
    query: str
    handoff: bool
    reason: str | None
    hits: list[Hit] = field(default_factory=list)

    @property
    def top(self) -> Hit | None:
        return self.hits[0] if self.hits else None

    @cached_property
    def scrubbed_query(self) -> str:
        """The query without private data: what the reply echoes and the query log keeps (scrubbed once)."""
        return scrub(self.query)

    def as_dict(self) -> dict[str, Any]:
        """The answer as the doors send it; the query is echoed scrubbed of private data
        (bot frameworks log responses, and private data is never shown back)."""
        out = asdict(self)
        out["query"] = self.scrubbed_query
        out["entry_id"] = self.top.entry_id if self.top else None
        out["score"] = self.top.score if self.top else 0.0
        out["answer"] = self.top.answer if self.top and not self.handoff else None
        return out


def _in_window(entry: dict[str, Any], now: datetime) -> bool:
    start, end = entry.get("valid_from"), entry.get("valid_to")
    if start and datetime.fromisoformat(start) > now:
        return False
    if end and datetime.fromisoformat(end) <= now:
        return False
    return True


def answer_from(
    loaded: LoadedRelease,
    embedder: Any,
    settings: Settings,
    query: str,
    top_k: int = 3,
    *,
    lang: str | None = None,
    tags: list[str] | None = None,
    categories: list[str] | None = None,
    now: datetime | None = None,
) -> Answer:
    """Rank ``loaded``'s entries for an already validated query and decide on handoff.

    Separate from the server's :class:`kbops.serve.retriever.Retriever` so a
    release that is not active yet can be scored the same way the bot will
    score it (golden questions at activation).
    """
    now = now or utcnow()
    w = similarity.query_weight(embedder, query, settings.dense_weight)
    dense: dict[int, float] = {}
    if w > 0 and loaded.index.ntotal:
        vec = embedder.encode_query(query)
        sims, ids = loaded.index.search(vec, min(CANDIDATES, loaded.index.ntotal))
        for s, i in zip(sims[0], ids[0]):
            if i >= 0:
                dense[int(i)] = max(dense.get(int(i), -1.0), float(s))
    lexical = loaded.lexical.scores(query, limit=CANDIDATES)
    hits = []
    for eid, score in similarity.fused_scores(w, dense, lexical).items():
        entry = loaded.entries.get(eid)
        if entry is None or not _in_window(entry, now):
            continue
        if lang and entry["lang"] != lang:
            continue
        if tags and not set(tags) & set(entry["tags"]):
            continue
        if categories and entry["kind"] not in categories:
            continue
        d, lx = max(dense.get(eid, 0.0), 0.0), lexical.get(eid, 0.0)
        hits.append(Hit(eid, entry["entry_key"], entry["question"], entry["answer"], round(score, 4), round(d, 4), round(lx, 4), entry["lang"], entry["tags"]))
    hits.sort(key=lambda h: (-h.score, h.entry_id))
    handoff, reason = False, None
    if not hits or hits[0].score < settings.handoff_threshold:
        handoff, reason = True, "no_match"
    elif len(hits) > 1 and hits[0].score - hits[1].score < settings.ambiguity_margin and hits[0].answer != hits[1].answer:
        handoff, reason = True, "ambiguous"
    return Answer(loaded.release_id, query, handoff, reason, hits[:top_k])
