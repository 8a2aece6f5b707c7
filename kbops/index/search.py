"""Ranking a release's entries for a query, and the decision to answer, ask back or hand off.

Score = w · dense + (1 − w) · lexical, both cosines in [0, 1], where
w = the query language's dense weight × (1 − share of the query the model
cannot read) (:mod:`kbops.index.similarity`, the one question similarity). The
per-language dense weight and the mapping from scores to a probability come
from the release's calibration (:mod:`kbops.index.calibration`, fitted on the
store's own questions at publish); a release without one uses the defaults
measured on public data.

Before anything is served, the rules of :mod:`kbops.index.entities` apply to
every candidate entry: an entry about another product (its SKU, model or size
is not the one the query names, or the query names a brand its questions do
not) is never served, and a structured fact of the wrong kind (a stock entry
for a price question), or of a kind the query does not ask for, is never served
either. A query that names one product partly in the other script ("鹿米Air
Fryer多少钱", read in Chinese) names it as an identifier would. An
entry about the identifier the query names weighs heavily: its score closes
:data:`IDENTIFIER_WEIGHT` of its distance to 1; a product fact of the kind the
query asks for, about the one product it names by name, closes
:data:`NAME_WEIGHT` of it ("降噪耳机保修几年" is the earbuds' warranty however
the store's question words it).

Then, for the best remaining entry:

* ``confidence`` = P(the top answer is right), calibrated per language from the
  top score and its margin over the best entry with a different answer;
* **clarify** (``handoff: true``, ``reason: "clarify"``, ``options``): several
  entries of the same kind about *different* products fit about equally well
  ("How much is the Lumi lamp?" — the store sells four), and together they are
  a confident match: the bot can ask "which one do you mean?". A bot that does
  not know ``clarify`` hands off, which is safe;
* **answer** when ``confidence`` reaches the language's threshold (chosen at
  calibration for the target answered-precision, ``KBOPS_TARGET_PRECISION``);
* **no_match** for a product the store does not sell, whatever the confidence: the
  query names another product (its name words, its brand, a capitalised name no
  question of the store has: "the Ninja air fryer"), or puts an unknown word where
  the product's name goes on ("the rice bowl" is not the rice cooker);
* otherwise **hand off**: ``wrong_kind`` when the only entries that matched were
  of the wrong kind (or excluded by the caller's ``category``), ``ambiguous``
  when the two best entries answer differently and are too close to tell apart,
  ``no_match`` otherwise.

Only entries inside their validity window at ``now`` are served.

:func:`answer_from` scores any loaded release: the bot's retriever
(:mod:`kbops.serve.retriever`) calls it for the active release, the golden
gate for a release that is not active yet, calibration for leave-one-out
queries (:func:`rank` with exclusions), the mining evaluation for an in-memory
one — all with the same fusion and the same decision.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import cached_property, lru_cache, partial
from typing import Any

import numpy as np

from kbops.config import Settings
from kbops.index import confidence as cal
from kbops.index import entities, similarity
from kbops.index.release import LoadedRelease, entry_questions
from kbops.pii import drop_placeholders, scrub
from kbops.schema import utcnow
from kbops.text import EN_STOPWORDS, attachments, cased_clauses, detect_lang, drop_measure_words, normalize, phrases, to_simplified, tokens

MAX_QUERY_CHARS = 2_000
MAX_TOP_K = 50
CANDIDATES = 50
#: At most this many products are offered when the bot asks "which one do you mean?".
MAX_OPTIONS = 5
#: An entry about the identifier the query names (SKU, model, size) closes this share of its distance to 1:
#: an exact identifier weighs heavily (issue 11), and other products' entries are already excluded.
IDENTIFIER_WEIGHT = 0.5
#: A product fact of the kind the query asks for ("降噪耳机保修几年": warranty), about the one product the query names
#: by name and no other, closes this share of its distance to 1: less than an identifier, which is exact. 0.3 and 0.5
#: answered the same sample-store questions (bench/bench_store_questions.py).
NAME_WEIGHT = 0.3
#: The tokens of the cue words of every fact kind ("much", "stock", 多少钱): never a word of a product's name.
_CUE_TOKENS = frozenset(t for cues in entities.FACT_CUES.values() for cue in cues for t in tokens(cue))
#: Words that point at a product without naming it: "this one", "the item", 东西, 宝贝 (the marketplaces' word for a
#: listing) and 亲 (their "dear"). See :func:`_naming_words`.
_NAMELESS_TOKENS = frozenset(
    t for w in ("one", "ones", "item", "items", "product", "products", "thing", "things", "东西", "商品", "产品", "宝贝", "亲") for t in tokens(w)
)
#: The fact kinds that belong to a product: asked for alone, "多少钱" or "Is it in stock?", they name none.
_PRODUCT_KINDS = frozenset({"price", "stock"})
#: A dense hit this close to 1 against an excluded text is that text itself (leave-one-out).
_SELF = 0.9999


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
    kind: str = ""


@dataclass
class Option:
    """One choice of a clarifying question: the entry and what tells it apart from the others."""

    entry_id: int
    entry_key: str
    label: str


@dataclass
class Answer:
    release_id: str
    query: str
    handoff: bool
    reason: str | None
    hits: list[Hit] = field(default_factory=list)
    confidence: float | None = None
    options: list[Option] = field(default_factory=list)
    lang: str = "und"

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


@dataclass
class Channels:
    """A query's raw channel scores: best dense and lexical cosine per entry id, and its unreadable share."""

    dense: dict[int, float]
    lexical: dict[int, float]
    unk: float


@dataclass
class Ranked:
    """The candidate entries that may answer, best first, and what the rules of entities excluded."""

    hits: list[Hit]
    wrong_kind: bool  # entries matched but were all of the wrong kind (or of a category the caller excluded)
    query: str  # the query as rank read it: placeholders with their field labels, and numbers with measure words, dropped
    pairs: list[tuple[str, str]]  # its words and the words attached to them (text.attachments)
    asked: frozenset[str]  # the fact kinds it asks for (entities.asked_kinds)
    words: frozenset[str]  # its words that may name something (_naming_words)


def _in_window(entry: dict[str, Any], now: datetime) -> bool:
    start, end = entry.get("valid_from"), entry.get("valid_to")
    if start and datetime.fromisoformat(start) > now:
        return False
    if end and datetime.fromisoformat(end) <= now:
        return False
    return True


def channel_scores(
    loaded: LoadedRelease,
    embedder: Any,
    query: str,
    *,
    vector: np.ndarray | None = None,
    unk: float | None = None,
    exclude_entry: int | None = None,
    exclude_self: int | None = None,
    exclude_rows: Sequence[int] = (),
    found: tuple[np.ndarray, np.ndarray] | None = None,
) -> Channels:
    """Both channels' best cosine per entry for ``query`` (FAISS top 50 ∪ lexical top 50).

    Calibration asks leave-one-out questions: ``exclude_entry`` leaves a whole
    entry out (an out-of-KB question); ``exclude_self`` with ``exclude_rows``
    leaves out one text of an entry (its own vector and lexical row), so the
    entry must be found through its other questions. ``found``: this query's
    row of :func:`dense_search`, when many queries were searched at once.

    An embedder with ``encode_query_soon`` (the bot's
    :class:`kbops.serve.retriever.QueryVectors`) starts the query's encoding
    before the lexical channel scores it, and the two run at once.

    Placeholders and the field labels before them are not part of the question
    (:func:`kbops.pii.drop_placeholders`): a chat client's order card,
    "咨询订单号:[订单x] 订单金额:[金额x] 下单时间:[日期x] 商品降价了", drew the dense
    channel to the order entries (refund times, cancelling) instead of what was
    asked; :func:`rank` reads the query the same way (and :func:`decide` as rank read it).
    """
    query = drop_placeholders(query)
    unk = embedder.unk_share(query) if unk is None else unk
    searched = unk < 1.0 and loaded.index.ntotal
    vector_of: Callable[[], np.ndarray] | None = None
    if searched and found is None and vector is None:
        soon = getattr(embedder, "encode_query_soon", None)
        vector_of = soon(query) if soon is not None else partial(embedder.encode_query, query)
    lexical = loaded.lexical.scores(query, limit=CANDIDATES, exclude_rows=exclude_rows)
    if exclude_entry is not None:
        lexical.pop(exclude_entry, None)
    dense: dict[int, float] = {}
    if searched:
        if found is None:
            vec = vector_of() if vector_of is not None else vector
            found = dense_search(loaded, np.asarray(vec, dtype=np.float32).reshape(1, -1), leave_out=exclude_self is not None or exclude_entry is not None)[0]
        skipped_self = False
        for s, i in zip(*found):
            eid = int(i)
            if eid < 0 or eid == exclude_entry:
                continue
            if eid == exclude_self and not skipped_self and s >= _SELF:
                skipped_self = True
                continue
            dense[eid] = max(dense.get(eid, -1.0), float(s))
    return Channels(dense, lexical, float(unk))


def dense_search(loaded: LoadedRelease, vectors: np.ndarray, leave_out: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """(cosines, entry ids) of each query vector's nearest vectors: one FAISS call for many queries.

    A leave-one-out query asks for a few more, as some of them are left out."""
    k = min(CANDIDATES + (16 if leave_out else 0), loaded.index.ntotal)
    if not k or not len(vectors):
        return [(np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)) for _ in range(len(vectors))]
    sims, ids = loaded.index.search(np.asarray(vectors, dtype=np.float32), k)
    return list(zip(sims, ids))


def rank(
    loaded: LoadedRelease,
    channels: Channels,
    query: str,
    dense_weight: float,
    *,
    lang: str | None = None,
    tags: list[str] | None = None,
    categories: list[str] | None = None,
    now: datetime,
) -> Ranked:
    """Fuse the channels and keep the entries that may answer ``query``, best first (see the module docstring).

    ``lang``: only entries in this language; by default the query's own language
    when the release has entries in it (else every language)."""
    w = float(similarity.fusion_weight(dense_weight, channels.unk))
    query = drop_measure_words(drop_placeholders(query))
    spoken = detect_lang(query)
    if lang is None:
        # The customer's language, when the KB speaks it: an English question is not answered in Chinese.
        lang = spoken if spoken in _languages(loaded) else None
    asked = entities.asked_kinds(query)
    query = entities.without_price_limits(query)  # "under 100" asks for the price (above); it names nothing
    query_ids = entities.identifiers(query)
    query_brands = entities.brands(query)
    query_terms = frozenset(tokens(query))
    query_words = frozenset(t for t in query_terms if t.isascii() or len(t) == 1)
    about = entities.without_zh_cues(query)  # where its words about a product end
    query_pairs = attachments(about)
    words = _naming_words(about)
    across = _named_across(loaded, words, spoken)
    hits: list[Hit] = []
    wrong_kind = False
    for eid, score in similarity.fused_scores(w, channels.dense, channels.lexical).items():
        entry = loaded.entries.get(eid)
        if entry is None or not _in_window(entry, now):
            continue
        if lang and entry["lang"] != lang:
            continue
        if tags and not set(tags) & set(entry["tags"]):
            continue
        if entities.conflicts(query_ids | across, _identifiers(loaded, eid)):
            continue
        if query_brands and _product_ids(loaded, eid) and not query_brands <= _brands(loaded, eid):
            continue  # a product of another brand than the one asked about (the store's own, usually)
        if not entities.kind_fits(asked, entry["kind"]) or (categories and entry["kind"] not in categories):
            wrong_kind = True
            continue
        if query_ids & _identifiers(loaded, eid) or (entry["kind"] in asked and across & _identifiers(loaded, eid)):
            # the product the query names, by SKU, model or size; or the fact asked for, of the one product whose
            # words in both scripts the query names (as exact: no other product's questions hold them all)
            score += IDENTIFIER_WEIGHT * (1.0 - score)
        elif entry["kind"] in asked and _names_product(loaded, eid, query_terms, query_words) and not _misnames(loaded, eid, query_pairs):
            score += NAME_WEIGHT * (1.0 - score)  # the fact asked for, of the product the query names by name
        d, lx = max(channels.dense.get(eid, 0.0), 0.0), channels.lexical.get(eid, 0.0)
        hits.append(Hit(eid, entry["entry_key"], entry["question"], entry["answer"], round(score, 4), round(d, 4), round(lx, 4), entry["lang"], entry["tags"], entry["kind"]))
    hits.sort(key=lambda h: (-h.score, h.entry_id))
    if len(hits) > 1 and hits[1].score == hits[0].score:
        # Tied entries read alike (a question the store keeps in both scripts): the customer's script first.
        traditional = to_simplified(query) != query
        mine = next((h for h in hits if h.score == hits[0].score and (to_simplified(h.question) != h.question) == traditional), hits[0])
        hits.remove(mine)
        hits.insert(0, mine)
    return Ranked(hits, wrong_kind and not hits, query, query_pairs, asked, words)


def prepare(loaded: LoadedRelease) -> LoadedRelease:
    """Derive once what ranking needs of every entry: languages, identifiers, each kind's product vocabulary,
    the words no product's name is made of (cue words, and words most products' questions share).

    A release never changes once loaded, so neither does this. The server calls
    it while loading a release (in the background), so no customer's query pays
    for tokenising a whole catalogue; :func:`answer_from` calls it for a release
    nobody prepared (golden gate, calibration, tests) — a no-op the second time."""
    if "identifiers" in loaded.memo:
        return loaded
    identifiers = {eid: entities.entry_identifiers(e) for eid, e in loaded.entries.items()}
    # The entries about the catalogue's products: their own facts, and any entry that names one of their identifiers.
    catalogue = entities.catalogue_identifiers(loaded.entries.values())
    product_ids = {eid: ids for eid, ids in identifiers.items() if ids & catalogue}
    vocabulary: dict[tuple[str, str], set[str]] = {}
    each_product: dict[tuple[str, frozenset[str]], set[str]] = {}  # (language, a product's identifiers) → its questions' tokens
    for eid, ids in product_ids.items():  # products only: their names are what another product's question may carry
        e = loaded.entries[eid]
        words = _question_tokens(e)
        vocabulary.setdefault((e["kind"], e["lang"]), set()).update(words)
        each_product.setdefault((e["lang"], ids), set()).update(words)
    shared: dict[str, Counter[str]] = {}
    products: Counter[str] = Counter()
    for (lang, _), product in each_product.items():
        shared.setdefault(lang, Counter()).update(product)
        products[lang] += 1
    loaded.memo["languages"] = frozenset(e["lang"] for e in loaded.entries.values())
    loaded.memo["kind_vocabulary"] = {kind_lang: frozenset(words) for kind_lang, words in vocabulary.items()}
    # Each product's entries, every kind and language (their token sets are derived for the few products that come up
    # as a top hit, and kept: see _product_tokens).
    by_product: dict[frozenset[str], list[int]] = {}
    for eid, ids in product_ids.items():
        by_product.setdefault(ids, []).append(eid)
    loaded.memo["product_entries"] = by_product
    loaded.memo["product_tokens"] = {}
    loaded.memo["product_modifiers"] = {}
    loaded.memo["catalogue_words"] = {}
    loaded.memo["topics"] = {}
    loaded.memo["catalogue_names"] = {}
    # Words shared by more than half of a language's products, and by two at least: in a store of one product, every
    # word of its questions names it ("How much is the rice bowl?" got its rice cooker's price at 0.9975).
    loaded.memo["not_names"] = {
        lang: frozenset(w for w, n in c.items() if 2 * n > products[lang] and n >= 2) | _CUE_TOKENS for lang, c in shared.items()
    }
    loaded.memo["tokens"] = {}
    loaded.memo["brands"] = {}
    loaded.memo["product_ids"] = product_ids
    loaded.memo["identifiers"] = identifiers  # last: its presence says the rest is there
    return loaded


def _question_tokens(entry: dict[str, Any]) -> frozenset[str]:
    return frozenset(t for q in entry_questions(entry) for t in tokens(q))


def _languages(loaded: LoadedRelease) -> frozenset[str]:
    """The languages a release has entries in."""
    return prepare(loaded).memo["languages"]


def _identifiers(loaded: LoadedRelease, eid: int) -> frozenset[str]:
    """An entry's identifiers (its questions' SKUs, models, sizes and its ``sku:`` tags): exact terms, whatever the entry."""
    return prepare(loaded).memo["identifiers"][eid]


def _product_ids(loaded: LoadedRelease, eid: int) -> frozenset[str]:
    """An entry's identifiers when it is about a product of the catalogue (:func:`kbops.index.entities.catalogue_identifiers`),
    else none: the rules that read an entry's questions as a product's name apply to products only. "How can I download
    the audio of a YouTube video as an MP3?", in a help centre's FAQ, is about no product."""
    return prepare(loaded).memo["product_ids"].get(eid, frozenset())


def runner_up(hits: list[Hit]) -> float:
    """The best score of an entry that answers differently from the top one (0 when there is none)."""
    return next((h.score for h in hits[1:] if not answers_alike(h.answer, hits[0].answer)), 0.0)


def answers_alike(a: str, b: str) -> bool:
    """Whether two answers say the same: equal as read (:func:`kbops.text.normalize`: width, case, and Traditional
    characters read as Simplified). A store that keeps its FAQ in both scripts has two entries per question, which
    the bot reads alike and which tie: they are one answer, not two that disagree (a tie caps confidence at 0.5)."""
    return a == b or _as_read(a) == _as_read(b)


@lru_cache(maxsize=4096)
def _as_read(answer: str) -> str:
    """An answer as :func:`answers_alike` reads it, kept for the answers that come up as hits again and again (a
    served store's few thousand top answers: NFKC and OpenCC once each, not per query)."""
    return normalize(answer)


def decide(loaded: LoadedRelease, ranked: Ranked, model: cal.LanguageModel, settings: Settings) -> tuple[bool, str | None, float | None, list[Option]]:
    """(handoff, reason, confidence, options) for ranked hits (see the module docstring), reading the query as
    :func:`rank` read it (``ranked.query``, ``ranked.pairs``, ``ranked.asked``, ``ranked.words``)."""
    query = ranked.query
    hits = ranked.hits
    if not hits:
        return True, "wrong_kind" if ranked.wrong_kind else "no_match", None, []
    top = hits[0]
    confidence = model.probability(top.score, top.score - runner_up(hits))
    if ranked.asked and ranked.asked <= _PRODUCT_KINDS and not ranked.words and _naming_words(entities.without_zh_cues(top.question)):
        # "这个多少钱" was answered with the shipping policy's "买多少钱包邮" (0.52), "那款有货吗" with a mined chat reply
        # about another product: a price or stock asked of nothing named is answered by no entry about something.
        return True, "no_match", confidence, []
    if not ranked.asked and _names_only(loaded, query):
        # "那电饭煲呢" (what about the rice cooker?) got a mined reply about its inner pot (0.61): a question that only
        # names a product asks what an earlier turn asked, which this one does not say.
        return True, "no_match", confidence, []
    if _seeks_another_product(loaded, query):
        # "Do you have a cheaper kettle?" got the kettle's "in stock" (0.87), "有更便宜的电饭煲吗" the price protection's
        # exclusions (0.75): which other product fits is the catalogue's to say.
        return True, "no_match", confidence, []
    unknown_brand = _names_unknown_brand(loaded, top, query)
    group = _clarify_group(loaded, hits, query, ranked.words)
    if len(group) > 1 and (_names_unknown_product(loaded, group, query) or unknown_brand):
        # "How much is the Lumi air purifier?": the air fryer and the Earbuds Air share "air", but the store's
        # questions never say "purifier" — the customer asked about a product it does not have. "Zara牛仔裤有货吗"
        # in a store of four brands' jeans: a brand it does not sell, not a choice among the four.
        return True, "no_match", confidence, []
    if len(group) > 1:
        # A clarifying question only when the question is clearly about this kind of fact: it asks for
        # it in so many words ("多少钱", "in stock"), or the group as a whole is a confident match.
        outside = next((h.score for h in hits if h not in group and not answers_alike(h.answer, top.answer)), 0.0)
        if top.kind in ranked.asked or model.probability(top.score, top.score - outside) >= model.threshold:
            labels = entities.short_labels([h.question for h in group])
            return True, "clarify", confidence, [Option(h.entry_id, h.entry_key, label) for h, label in zip(group, labels)]
    if (
        unknown_brand
        or _names_another_product(loaded, top, query)
        or _misnames(loaded, top.entry_id, ranked.pairs)
        or _remodifies(loaded, top.entry_id, query)
        or _about_another_product(loaded, top, query)
        or _names_another_colour(loaded, top, query)
        or _off_topic(loaded, top, query, model.dense_weight)
    ):
        return True, "no_match", confidence, []
    if confidence >= model.threshold:
        return False, None, confidence, []
    second = next((h for h in hits[1:] if not answers_alike(h.answer, top.answer)), None)
    if second is not None and top.score - second.score < settings.ambiguity_margin:
        # Two entries answer differently and tie; "ambiguous" only when the pair itself is a confident match.
        beyond = next((h.score for h in hits if not answers_alike(h.answer, top.answer) and not answers_alike(h.answer, second.answer)), 0.0)
        if model.probability(top.score, top.score - beyond) >= model.threshold:
            return True, "ambiguous", confidence, []
    return True, "no_match", confidence, []


def _clarify_group(loaded: LoadedRelease, hits: list[Hit], query: str, words: frozenset[str]) -> list[Hit]:
    """The entries of the top hit's kind, about different products, that the query cannot tell apart.

    The query's *telling* words are those of its words the top entry's
    questions contain but not every entry of that kind does ("lamp" in "How
    much is the Lumi lamp?"; "Lumi" and "much" are in every price question).
    The group is every entry of the kind, each about its own product (its own
    identifiers), whose questions contain all of them: the floor lamp and the
    desk lamp, not the ceiling light. A query that names an identifier has
    already lost the other products' entries (:func:`rank`), and an entry
    about no product in particular is not a product choice.
    """
    top = hits[0]
    if entities.identifiers(query) or not _product_ids(loaded, top.entry_id):
        return []
    same_kind = [h for h in hits if h.kind == top.kind and _product_ids(loaded, h.entry_id)]
    shared = frozenset.intersection(*(_tokens(loaded, h.entry_id) for h in same_kind))  # every one of them has these
    named = words & _tokens(loaded, top.entry_id)
    telling = named - shared
    if not telling and named and words <= shared:
        # A query that names only what every one of them shares ("牛仔裤多少钱" in a store of four brands' jeans, which
        # got the Michael Kors jeans' price at 0.98) fits every one: they are all the choice. Not a query with words of
        # its own ("鹿米 rice cooker price", read in Chinese, shares only the brand with the Chinese questions).
        telling = named
    if not telling:
        return []
    group: list[Hit] = []
    seen: set[frozenset[str]] = set()
    for h in same_kind:
        ids = _product_ids(loaded, h.entry_id)
        if ids not in seen and telling <= _tokens(loaded, h.entry_id):
            seen.add(ids)
            group.append(h)
    return group[:MAX_OPTIONS]


def _naming_words(about: str) -> frozenset[str]:
    """The tokens of ``about`` (a text with its Chinese cue words cut out: :func:`kbops.index.entities.without_zh_cues`)
    that may name something: not cue words, stop words, filler, nor words that point without naming
    (:data:`_NAMELESS_TOKENS`). None in "这个多少钱", "还有货吗", "How much is it?", "Is this one in stock?"; an
    identifier is always one ("lm", "1001"; "5.1")."""
    return frozenset(tokens(about)) - _CUE_TOKENS - _NAMELESS_TOKENS


#: A word of a query naming a product in two scripts that more entries hold than this names no one product
#: (:func:`_named_across`): the query is read as before, and no catalogue-wide scan runs on the bot's hot path.
ACROSS_MAX_ENTRIES = 200


def _named_across(loaded: LoadedRelease, words: frozenset[str], lang: str) -> frozenset[str]:
    """The identifiers of the one product whose questions, in any language, hold every word of a query that names
    it partly in the script its language does not use.

    "鹿米Air Fryer多少钱" and "鹿米 rice cooker price" are read in Chinese: the store's Chinese questions
    say 空气炸锅 and 电饭煲, its English ones "Air Fryer" and "Rice Cooker", and the product is both. The
    product's words are those of all its entries (:func:`_product_tokens`), so 鹿米 and "fryer" are the air
    fryer's together, and the Earbuds Air's "air" is not enough. Empty — the query is read as before — when it has
    no word of the other script, a word no question of the release has, words that several products hold, or no
    word rarer than :data:`ACROSS_MAX_ENTRIES` entries. "Bluetooth耳机多少钱" names none: "Bluetooth" is the
    speaker's English name, 耳机 the earbuds' Chinese one."""
    if lang == "zh":
        mixed = any(w.isascii() and w.isalpha() for w in words)
    elif lang == "en":
        mixed = any(not w.isascii() for w in words)
    else:
        mixed = False
    if not mixed:
        return frozenset()
    postings = [loaded.lexical.entries_with(w) for w in words]
    rarest = min(postings, key=len)
    if not len(rarest) or len(rarest) > ACROSS_MAX_ENTRIES:
        return frozenset()
    found: set[frozenset[str]] = set()
    for eid in dict.fromkeys(int(e) for e in rarest):
        ids = _product_ids(loaded, eid)
        if ids and ids not in found and words <= _product_tokens(loaded, eid):
            found.add(ids)
    if not found:
        return frozenset()
    # One product: its entries' identifier sets nest (a mined answer names its SKU, its facts the SKU and the size).
    # Two products that share a size ("5L") do not, and the size alone is no product.
    widest = max(found, key=len)
    return frozenset.intersection(*found) if all(ids <= widest for ids in found) else frozenset()


def _names_unknown_product(loaded: LoadedRelease, group: list[Hit], query: str) -> bool:
    """Whether the phrase of the query that names the group's products has a word no question of the KB has.

    The phrase is the one holding a word every product of the group has in its
    name ("Lumi air purifier", "鹿米智能门锁多少钱"); words of the query's other
    phrases ("Hi, I'm looking for …") do not count. Words are English words of
    three letters or more and single Chinese characters (the lexical index's
    vocabulary, which has every question and alternate of the release), and two
    Chinese characters of which one is the group's and the other not: "蒸锅多少钱"
    (a steamer pot) was asked back with the air fryer and the wok, which share 锅,
    and 蒸 alone is the steamer's (蒸汽挂烫机)."""
    common = frozenset.intersection(*(_tokens(loaded, h.entry_id) for h in group))

    def unknown_pair(a: str, b: str) -> bool:
        return not (a.isascii() or b.isascii()) and (a in common) != (b in common) and _unknown(loaded, a + b)

    return any(
        common.intersection(phrase)
        and (any(_unknown(loaded, w) for w in phrase) or any(unknown_pair(a, b) for a, b in zip(phrase, phrase[1:])))
        for phrase in phrases(query)
    )


def _names_another_product(loaded: LoadedRelease, top: Hit, query: str) -> bool:
    """Whether the query has words of other products' names that the top product's questions lack.

    "How much is the 5L rice cooker?" matches the 5L *air fryer* by its size,
    but "rice" and "cooker" belong to another product: that is not the product
    asked about (the store's rice cooker is 3L), so the bot must not answer.
    Words are English words and single Chinese characters (a bigram may span
    two words of the question); only product entries (with identifiers) of the
    top hit's kind are compared, in every language, and the cue words of any kind
    never count (the English questions' "price" is not another product's name in
    "LM-1003 price多少", answered in Chinese). Every language, because a customer
    names a product in either: "鹿米Air Fryer多少钱" got the Earbuds Air's Chinese
    price (0.53), whose name holds "Air" while "Fryer" is only in the air fryer's
    English questions. The top product's own words are those of all its entries
    (every kind and language: the product its identifiers say)."""
    if not _product_ids(loaded, top.entry_id):
        return False
    words = {t for t in tokens(query) if len(t) == 1 or t.isascii()}
    others = set().union(*(words & _kind_vocabulary(loaded, top.kind, lang) for lang in _languages(loaded)))  # the query's few words, not a catalogue's vocabulary
    return bool(others - _product_tokens(loaded, top.entry_id) - _CUE_TOKENS)


def _names_unknown_brand(loaded: LoadedRelease, top: Hit, query: str) -> bool:
    """Whether the query names the top product with a word, a brand or a model, that no question of the release has.

    "How much is the Ninja air fryer?" matched the store's air fryer (0.76 confident), as did
    "Ninja空气炸锅多少钱"; Ninja is in no list of brands (:data:`kbops.index.entities.BRANDS`), but it
    is a name where the question names the product: in English a word capitalised inside a
    clause (not its first word; and only where the stop words are in lower case, as "How Much
    Is The New Air Fryer" capitalises every word), in the phrase holding a word of the product's
    name; in Chinese a Latin word right before the characters naming it. Ordinary words a
    customer adds in lower case ("a new air fryer") are not names. The product's words are those of
    its questions but the cue words ("air", "fryer", "Lumi"; not "much", 多少钱), the words every
    product shares included: in a store of four brands' jeans, "Zara牛仔裤多少钱" got the Michael
    Kors jeans' price (0.94) when 牛仔裤, in every product's name, was no word of it. A word is
    unknown when it is no identifier and none of its tokens is in the release's lexical vocabulary
    (every question and alternate)."""
    if not _product_ids(loaded, top.entry_id):
        return False
    name = _tokens(loaded, top.entry_id) - _CUE_TOKENS

    def unknown(word: str) -> bool:
        found = tokens(word)
        return bool(found) and all(_unknown(loaded, t, shortest=2) for t in found) and not entities.identifiers(word)

    for clause in cased_clauses(query):
        title_case = any(w[:1].isupper() for w in clause[1:] if w.lower() in EN_STOPWORDS)
        phrase: list[tuple[int, str]] = []
        for i, run in enumerate([*clause, ""]):  # "" ends the last phrase
            if run and run.isascii() and run.lower() not in EN_STOPWORDS:
                phrase.append((i, run))
                continue
            if run and i and clause[i - 1].isascii() and not clause[i - 1].isdigit() and name.intersection(run) and unknown(clause[i - 1]):
                return True  # a Chinese run naming the product, after a Latin word the store never uses (a number is none: 30厘米)
            names_it = any(name.intersection(tokens(w)) for _, w in phrase)
            if names_it and not title_case and any(j and w[:1].isupper() and "'" not in w and unknown(w) for j, w in phrase):
                return True
            phrase = []
    return False


def _names_product(loaded: LoadedRelease, eid: int, terms: frozenset[str], words: frozenset[str]) -> bool:
    """Whether a query's lexical ``terms`` (``words``: those that are words or single characters) name the
    product of entry ``eid`` and no other."""
    if not _names(loaded, eid, terms):
        return False
    entry = loaded.entries[eid]
    return not (words & _kind_vocabulary(loaded, entry["kind"], entry["lang"])) - _tokens(loaded, eid)


def _names(loaded: LoadedRelease, eid: int, terms: frozenset[str]) -> bool:
    """Whether a query's lexical ``terms`` name the product of entry ``eid``: a word of its name, or two adjacent
    characters of it (one character, 冰箱 and 音箱 share 箱; 电视 and 鹿米电热水壶 share 米电, names nothing)."""
    if not _product_ids(loaded, eid):
        return False
    name = _name_words(loaded, eid)
    return any(t.isascii() or (len(t) == 2 and t[0] in name and t[1] in name) for t in terms & name)


def _misnames(loaded: LoadedRelease, eid: int, pairs: list[tuple[str, str]]) -> bool:
    """Whether the query follows a word of the product's name with a word no question of the release has.

    "How much is the rice bowl?" matched the rice cooker's price, "Is the hair straightener in
    stock?" the hair dryer's stock and "蓝牙键盘多少钱" the Bluetooth speaker: another product that
    shares a word with the store's. "How much is the air fryer basket?", "电动牙刷刷头多少钱" and
    "榨汁杯杯盖有卖吗" were answered with the product's own price and stock at 0.86–0.94: an
    accessory, which the store's questions never name. Both read the same: a word of the name
    (:func:`_name_words`), then a word attached to it (:func:`kbops.text.attachments`: the next word
    of its phrase, the words before "for/of the <name>", the character after 的) that the store
    never uses and that is no fact kind's cue word ("the price of the rice cooker"). A word before
    the name ("a new rice cooker") does not count, and words of time and courtesy end a phrase
    ("the rice cooker these days", "the Bluetooth speaker today", "蓝牙音箱今天多少钱").
    "The charger for the earbuds" and "扫地机器人的滤网" were answered with the earbuds' price and
    the robot's stock at 0.86 and 0.94, and "扫地机器人配件多少钱" with the robot's price at 0.92 (配 alone
    is also 配送's: two characters attached count too, where the name has ended). The query's Chinese cue
    words end its words about the product (:func:`kbops.index.entities.without_zh_cues`): 有现 of
    "体脂秤有现货吗" is no part."""
    if not _product_ids(loaded, eid):
        return False
    name = _name_words(loaded, eid)
    # Two characters attached count only where the name has ended ("电饭煲多少钱" attaches 多少 to 煲, and 煲多 to 饭).
    return any(head in name and _unknown(loaded, after) and not (len(after) == 2 and not after.isascii() and after[0] in name) for head, after in pairs)


#: Words before a product's name that say how many or how good, not which product (:func:`_remodifies`): "two
#: kettles", "a new kettle", "the cheapest kettle" (stemmed as :func:`kbops.text.tokens` stems them).
_ANY_PRODUCT = frozenset(tokens(
    "one two three four five six seven eight nine ten dozen couple pair several few many some more another other each every both all these "
    "those new newest latest old used good great nice best better cheap cheaper cheapest affordable expensive original "
    "genuine official same whole basic standard normal regular simple decent"
))


def _remodifies(loaded: LoadedRelease, eid: int, query: str) -> bool:
    """Whether the query puts before the last word of the product's name it has (in Chinese, before the run of the
    name's characters ending there) a word no question of the store has, where the store's own name puts another
    that the query leaves out.

    "How much is the Lumi pressure cooker?" and "… slow cooker?" got the Smart Rice Cooker's price at 0.87 and
    0.88: in English the last word of a name says what kind of thing it is and the word before it which one, and
    "pressure" took the place of "rice". Only the word before the phrase's last word of the name counts (its head:
    "a new rice cooker" puts "new" before "rice cooker", and "rice" before "cooker" is the store's), and only when
    the store's questions never have it: "the cordless vacuum" is the Cordless Stick Vacuum.
    The price: a synonym the store never wrote ("the bathroom scale" for the body fat scale) is handed off too.
    Chinese reads the same by characters: "鹿米暖风机多少钱" (a fan heater) got the hair dryer's (负离子吹风机) price at
    0.70, 暖 where the store has 吹 before 风机; "鹿米电水壶" is the kettle (电 is a character the store uses)."""
    if not _product_ids(loaded, eid):
        return False
    before = _product_modifiers(loaded, eid)
    name = _name_words(loaded, eid)
    for phrase in phrases(entities.without_zh_cues(query)):
        # the phrase's head: its last word of the name ("cooker" in "a new rice cooker 3L"; 机 in 暖风机), and the word
        # before it; in Chinese, before the run of the name's characters that ends there, as the store joins them (风机)
        head = next((i for i in range(len(phrase) - 1, 0, -1) if phrase[i].isalpha() and phrase[i] in name), None)
        if head is None:
            continue
        start = head
        while not phrase[head].isascii() and start > 0 and phrase[start - 1] in before.get(phrase[start], ()):
            start -= 1
        if start == 0:
            continue
        modifier, word = phrase[start - 1], phrase[start]
        own = before.get(word, frozenset()) & name  # the store's words before it that name this product ("rice", not "lumi")
        if own and modifier not in _ANY_PRODUCT and not set(phrase) & own and _unknown(loaded, modifier):
            return True
    return False


def _about_another_product(loaded: LoadedRelease, top: Hit, query: str) -> bool:
    """Whether an entry that is no product's (a mined reply, an FAQ: no SKU) names a product of the catalogue, and the
    query names one too, and none of the same words.

    "空气炸锅的内胆可以用洗碗机洗吗" and "电热水壶可以用洗碗机洗吗" got a mined reply about the rice cooker's inner pot
    ("这个电饭煲内胆能用洗碗机吗？", 0.84 and 0.60): the reply has no SKU, so no rule read it as the rice cooker's. Names
    are the words of the catalogue's products' questions less those most of them share (鹿米, 多少钱): English words,
    and pairs of Chinese characters (one character, 机 of 洗碗机 and 吹风机, names nothing)."""
    if _product_ids(loaded, top.entry_id):
        return False
    names = _catalogue_names(loaded, top.lang)

    def named(text: str) -> set[str]:
        return {t for t in tokens(text) if t in names and (t.isascii() or len(t) == 2)}

    asked = named(entities.without_zh_cues(query))
    if not asked:
        return False
    entry = loaded.entries[top.entry_id]
    theirs = set().union(*(named(q) for q in entry_questions(entry)))
    return bool(theirs) and not asked & theirs


#: The meaning channel's score (cosine) at which a query without the words of an entry's topic still asks what the
#: entry answers (:func:`_off_topic`): its paraphrases there reach 0.84–0.95, the questions about something else that
#: the rule was made for 0.43–0.63.
TOPIC_MEANING = 0.75
#: A language's fusion leans on the words below this dense weight (:func:`_off_topic`).
LEANS_ON_WORDS = 0.5


def _off_topic(loaded: LoadedRelease, top: Hit, query: str, dense_weight: float) -> bool:
    """Whether, in a language whose fusion leans on the words (a dense weight below one half), the query holds none
    of the words every phrasing of an entry that is no product's holds (its topic: :func:`_topic`), and the meaning
    channel does not vouch for it (below :data:`TOPIC_MEANING`): only the words that say what the question is about,
    not what it asks, made the entry the top hit.

    "电饭煲内胆多厚" (how thick is the rice cooker's inner pot?), "电饭煲内胆能用多久" and "电饭煲内胆是什么材质的"
    got the sample store's mined reply on washing the inner pot in a dishwasher (0.86, 0.95, 0.57): all three of
    its customers' phrasings say 洗碗机, and the lexical channel, on which the store's Chinese fit (0.2) leans,
    matched 电饭煲内胆. "电饭煲内锅可以机洗吗" says no 洗碗机 either, and is answered: the meaning channel scores it
    0.90. Where the fusion leans on meaning, it already reads what is asked: without the gate the rule cost the
    English help desk (dense weight 1.0) five right answers of 209 test questions, and the Chinese one (0.7) one.
    A product's facts have their kinds for what is asked (:func:`rank`), and an entry of one phrasing has no topic
    to tell."""
    if dense_weight >= LEANS_ON_WORDS or _product_ids(loaded, top.entry_id) or top.dense >= TOPIC_MEANING:
        return False
    topic = _topic(loaded, top.entry_id)
    return bool(topic) and not topic & frozenset(tokens(query))


def _topic(loaded: LoadedRelease, eid: int) -> frozenset[str]:
    """The words every question of an entry of two questions or more holds (English words, Chinese pairs of
    characters), less the catalogue's products' words and the fact kinds' cue words: what all its phrasings are about
    (洗碗机 of the mined reply above; "return" of a returns section asked three ways). Kept per entry."""
    memo = prepare(loaded).memo["topics"]
    found = memo.get(eid)
    if found is None:
        questions = entry_questions(loaded.entries[eid])
        shared = frozenset.intersection(*(frozenset(tokens(q)) for q in questions)) if len(questions) > 1 else frozenset()
        names = _catalogue_words(loaded)
        found = memo[eid] = frozenset(t for t in shared if t not in names and t not in _CUE_TOKENS and (t.isascii() or len(t) > 1))
    return found


def _seeks_another_product(loaded: LoadedRelease, query: str) -> bool:
    """Whether the query asks a store with a catalogue for another product than one of its own it names, or than the
    one the customer is looking at (:func:`kbops.index.entities.seeks_another`; "还有更便宜的吗" names none). "Is
    there another way to pay?" names no product, and a help centre without a catalogue has none to name."""
    if not entities.seeks_another(query):
        return False
    words, names = _named_in_catalogue(loaded, entities.without_another(query), detect_lang(query))
    return bool(names) and (not words or bool(words & names))


#: Words that point back to an earlier turn ("那电饭煲呢", "what about the kettle?", "and the blender?").
_FOLLOW_UP = re.compile(r"^\s*(?:那么|那|还有|and)(?![a-z])|(?<![a-z])(?:what|how) about(?![a-z])", re.IGNORECASE)


def _names_only(loaded: LoadedRelease, query: str) -> bool:
    """Whether every word of the query that may name something is a word of the catalogue's products' names: it asks
    nothing of its own, a follow-up whose question was an earlier turn's (or a product's name alone)."""
    words, names = _named_in_catalogue(loaded, _FOLLOW_UP.sub("，", query), detect_lang(query))
    return bool(words) and bool(names) and words <= names


def _named_in_catalogue(loaded: LoadedRelease, text: str, lang: str) -> tuple[frozenset[str], frozenset[str]]:
    """(the words of ``text`` that may name something, the words that name the catalogue's products in ``lang``):
    what :func:`_seeks_another_product` and :func:`_names_only` compare. ``lang`` is the whole query's, read before
    the caller cut words out of it."""
    return _naming_words(entities.without_zh_cues(text)), _catalogue_names(loaded, lang)


def _names_another_colour(loaded: LoadedRelease, top: Hit, query: str) -> bool:
    """Whether the query asks a product in a colour that no question about it names ("Do you sell LM-1003 in white?"
    got the air fryer's "in stock" at 0.94): the store does not say it has that colour, and its facts say nothing of it."""
    asked = entities.colours(query)
    if not asked or not _product_ids(loaded, top.entry_id):
        return False
    own = _product_tokens(loaded, top.entry_id)
    return any(not set(tokens(colour)) <= own for colour in asked)


def _catalogue_words(loaded: LoadedRelease, lang: str | None = None) -> frozenset[str]:
    """Every token of the questions about the catalogue's products, in ``lang`` or (None) in every language: the
    union of :func:`_kind_vocabulary`, kept per release."""
    memo = prepare(loaded).memo
    found = memo["catalogue_words"].get(lang)
    if found is None:
        found = memo["catalogue_words"][lang] = frozenset().union(*(w for (_, lang_), w in memo["kind_vocabulary"].items() if lang in (None, lang_)))
    return found


def _catalogue_names(loaded: LoadedRelease, lang: str) -> frozenset[str]:
    """The words that name the catalogue's products in ``lang``: :func:`_catalogue_words` less :data:`not_names`."""
    memo = prepare(loaded).memo
    found = memo["catalogue_names"].get(lang)
    if found is None:
        found = memo["catalogue_names"][lang] = _catalogue_words(loaded, lang) - memo["not_names"].get(lang, frozenset())
    return found


def _product_modifiers(loaded: LoadedRelease, eid: int) -> dict[str, frozenset[str]]:
    """Each English word or Chinese character of the questions about a product (every entry of it) → the words or
    characters they put right before it ("cooker" → {"rice"}, 机 → {风}). Kept per product, whichever of its entries
    asked first: the caller keeps those that name it."""
    memo = prepare(loaded).memo
    ids = _product_ids(loaded, eid)
    found = memo["product_modifiers"].get(ids)
    if found is None:
        pairs: dict[str, set[str]] = {}
        for e in memo["product_entries"].get(ids, [eid]):
            entry = loaded.entries[e]
            for question in entry_questions(entry):
                for phrase in phrases(question):
                    for modifier, word in zip(phrase, phrase[1:]):
                        if modifier.isascii() == word.isascii():  # two English words, or two Chinese characters
                            pairs.setdefault(word, set()).add(modifier)
        found = memo["product_modifiers"][ids] = {word: frozenset(mods) for word, mods in pairs.items()}
    return found


def _unknown(loaded: LoadedRelease, token: str, shortest: int = 3) -> bool:
    """Whether no question of the release has ``token`` (the lexical vocabulary: every question and alternate).

    English words shorter than ``shortest`` letters and the fact kinds' cue words ("price",
    多少钱) never count: they say nothing of which product is asked about."""
    return token not in loaded.lexical.vocab and token not in _CUE_TOKENS and (not token.isascii() or len(token) >= shortest)


def _name_words(loaded: LoadedRelease, eid: int) -> frozenset[str]:
    """The words of a product entry that name its product: its questions' tokens less the cue words of every
    fact kind and those the questions of more than half of the products in its language have, two at least ("Lumi",
    "much", 多少钱)."""
    not_names = prepare(loaded).memo["not_names"].get(loaded.entries[eid]["lang"], frozenset())
    return _tokens(loaded, eid) - not_names


def _product_tokens(loaded: LoadedRelease, eid: int) -> frozenset[str]:
    """The tokens of the questions of every entry about the product of ``eid`` (its identifiers), in every language."""
    memo = prepare(loaded).memo
    ids = _product_ids(loaded, eid)
    found = memo["product_tokens"].get(ids)
    if found is None:
        found = memo["product_tokens"][ids] = frozenset().union(*(_tokens(loaded, e) for e in memo["product_entries"].get(ids, [eid])))
    return found


def _kind_vocabulary(loaded: LoadedRelease, kind: str, lang: str) -> frozenset[str]:
    """Every token of the questions of the product entries (with identifiers) of one kind in one language."""
    return prepare(loaded).memo["kind_vocabulary"].get((kind, lang), frozenset())


def _brands(loaded: LoadedRelease, eid: int) -> frozenset[str]:
    """The brands an entry's questions name (derived for the few queries that name a brand, and kept)."""
    memo = prepare(loaded).memo["brands"]
    found = memo.get(eid)
    if found is None:
        found = memo[eid] = entities.entry_brands(loaded.entries[eid])
    return found


def _tokens(loaded: LoadedRelease, eid: int) -> frozenset[str]:
    """The lexical tokens of an entry's questions (kept for the entries that came up as hits)."""
    memo = prepare(loaded).memo["tokens"]
    found = memo.get(eid)
    if found is None:
        found = memo[eid] = _question_tokens(loaded.entries[eid])
    return found


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
    """Rank ``loaded``'s entries for an already validated query and decide (see the module docstring).

    Separate from the server's :class:`kbops.serve.retriever.Retriever` so a
    release that is not active yet can be scored the same way the bot will
    score it (golden questions at activation, calibration at publish).
    """
    now = now or utcnow()
    asked, query = query, split_compounds(loaded, query)
    query_lang = detect_lang(query)
    model = cal.model_for(loaded.manifest, query_lang, settings)
    unk = None if model.dense_weight > 0 else 1.0  # a language read by characters alone embeds nothing
    channels = channel_scores(loaded, embedder, query, unk=unk)
    ranked = rank(loaded, channels, query, model.dense_weight, lang=lang, tags=tags, categories=categories, now=now)
    handoff, reason, confidence, options = decide(loaded, ranked, model, settings)
    if handoff and reason == "no_match" and (not categories or STORE_WIDE in categories):
        # A store-wide policy asked of a product ("空气炸锅可以退货吗", "Can I return the air fryer?"): the product's name
        # drew the question to its own facts, and the policy, worded for every product, scored too low.
        bare = _without_product(loaded, ranked, channels)
        if bare is not None:
            spoken = lang or (query_lang if query_lang in _languages(loaded) else None)
            policy = rank(loaded, channel_scores(loaded, embedder, bare, unk=unk), bare, model.dense_weight, lang=spoken, tags=tags, categories=[STORE_WIDE], now=now)
            policy_handoff, _, policy_confidence, _ = decide(loaded, policy, model, settings)
            if not policy_handoff:
                return Answer(loaded.release_id, asked, False, None, policy.hits[:top_k], policy_confidence, [], query_lang)
    return Answer(loaded.release_id, asked, handoff, reason, ranked.hits[:top_k], confidence, options, query_lang)


_LONG_WORD = re.compile(r"[A-Za-z]{6,}")
#: A compound whose two words more entries hold together than this is checked on this many of them only: the bot's
#: hot path reads no catalogue's questions.
COMPOUND_MAX_ENTRIES = 200


def split_compounds(loaded: LoadedRelease, query: str) -> str:
    """``query`` with each English word the store does not have, written as two words of a catalogue product's that
    its questions hold side by side, written as those two ("hairdryer" → "hair dryer", "airfryer" → "air fryer").

    "How much is the hairdryer?" was handed off (0.26): no question has the word, and the rules read it as no
    word of the hair dryer's name. Only a word of six letters or more that no question of the release has, only a
    split into two words that questions have *next to each other* (through the lexical index's postings: at most
    :data:`COMPOUND_MAX_ENTRIES` entries read), and only when one split does: "hairband" stays (no question says
    "band"), and so does a word two splits fit. A product's word glued to one the store does not have is written apart
    too ("toothbrushhead" → "toothbrush head"), so that the rules see the unknown word after the name's
    (:func:`_misnames`) instead of a word they cannot read. A store without a catalogue has no product names to
    split ("Facebook" stays whole in a help centre's FAQ)."""
    vocab = loaded.lexical.vocab
    names = _catalogue_words(loaded)  # nothing to split without a catalogue

    def split(match: re.Match[str]) -> str:
        word = match.group(0)
        low = word.lower()
        if not names or any(t in vocab for t in tokens(low)):
            return word
        found = []
        for i in range(3, len(low) - 2):
            first, second = tokens(low[:i]), tokens(low[i:])
            if len(first) != 1 or len(second) != 1 or first[0] not in names or second[0] not in names:
                continue
            both = np.intersect1d(loaded.lexical.entries_with(first[0]), loaded.lexical.entries_with(second[0]))[:COMPOUND_MAX_ENTRIES]
            if any(_product_ids(loaded, int(eid)) and _side_by_side(first[0], second[0], loaded.entries[int(eid)]) for eid in both):
                found.append(f"{word[:i]} {word[i:]}")
        if found:
            return found[0] if len(found) == 1 else word
        # A product's word glued to one the store does not have ("toothbrushhead" got the toothbrush's price at 0.41):
        # written apart, the rules see a word the store never uses after the name's (an accessory, another product).
        for i in range(len(low) - 3, 3, -1):
            first, second = tokens(low[:i]), tokens(low[i:])
            if len(first) == 1 and first[0] in names and len(second) == 1 and second[0] not in vocab:
                return f"{word[:i]} {word[i:]}"
        return word

    return _LONG_WORD.sub(split, query)


def _side_by_side(first: str, second: str, entry: dict[str, Any]) -> bool:
    """Whether a question of ``entry`` has the token ``first`` right before the token ``second``."""
    for question in entry_questions(entry):
        seq = tokens(question)
        if any(a == first and b == second for a, b in zip(seq, seq[1:])):
            return True
    return False


#: The kind of entry that answers for every product alike (a policy section): a product's name is no part of a
#: question to it.
STORE_WIDE = "policy"
_NAME_RUN = re.compile(r"[A-Za-z0-9][A-Za-z0-9'-]*|[\u3400-\u9fff]+")


def _without_product(loaded: LoadedRelease, ranked: Ranked, channels: Channels) -> str | None:
    """The query as :func:`rank` read it, without the name of the product it names (:func:`_names`, the first among
    the product entries either channel found, best first: a question that asks for no fact has no product entry
    among its hits), when it asks that product for nothing only a product answers (a price, its stock) and asks for no
    other product (:func:`_seeks_another_product`); None otherwise.

    English words of the name go ("Can I return the air fryer?" → "Can I return the ?"), and in Chinese the runs of
    two characters or more that the product's questions hold as they stand ("空气炸锅可以退吗" → "可以退吗"; in
    "电饭煲能开发票吗" 能 stays, though 智能 is in the rice cooker's name). The brand and the words most products share
    are no words of a name (:func:`_name_words`) and stay."""
    if ranked.asked & _PRODUCT_KINDS:
        return None  # "What is the price of the air fryer basket?": a price is a product's, never a policy's
    if _seeks_another_product(loaded, ranked.query):
        return None  # "有没有比电饭煲更便宜的" without its name asks price protection's "更便宜": it asks for another product
    terms = frozenset(tokens(ranked.query))
    found = similarity.fused_scores(0.5, channels.dense, channels.lexical)
    products = (eid for eid in sorted(found, key=lambda e: (-found[e], e)) if eid in loaded.entries and _product_ids(loaded, eid))
    named = next((eid for eid in products if _names(loaded, eid, terms)), None)
    if named is None:
        return None
    name = _name_words(loaded, named)
    memo = prepare(loaded).memo
    said = "\n".join(
        normalize(q) for e in memo["product_entries"].get(_product_ids(loaded, named), [named]) for q in entry_questions(loaded.entries[e])
    )

    def cut(match: re.Match[str]) -> str:
        run = match.group(0)
        if run.isascii():
            parts = tokens(run)
            return "" if parts and all(t in name for t in parts) else run
        kept, i = [], 0
        while i < len(run):
            j = i
            while j < len(run) and run[j] in name and run[i : j + 1] in said:
                j += 1
            if j - i >= 2:
                i = j
                continue
            kept.append(run[i])
            i += 1
        return "".join(kept)

    bare = " ".join(_NAME_RUN.sub(cut, ranked.query).split())
    if bare == " ".join(ranked.query.split()):
        return None
    # What is left must be more than the words most products' questions share: "电饭煲怎么用" without its name is
    # "怎么用", which the points section's "积分怎么用" answered at 0.95.
    shared = memo["not_names"].get(loaded.entries[named]["lang"], frozenset())
    left = {t for t in _naming_words(entities.without_zh_cues(bare)) if t.isascii() or len(t) == 1}  # words and characters
    return bare if left - shared else None
