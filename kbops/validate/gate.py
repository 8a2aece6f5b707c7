"""The validation gate: a great-expectations suite run over each candidate batch.

Each expectation carries a ``meta.code`` and its per-row failures come back as
GX's ``unexpected_index_list`` keyed by ``candidate_id``; every failure
becomes a human-readable reason on that row. Rows that fail are kept
(status ``invalid`` with their reasons) for reviewers to fix and resubmit;
nothing is silently dropped.

Derived columns (lengths in characters for Chinese and words for English,
language agreement, duplicate target, fact conflicts, near-duplicate target)
are computed in Python first, so each rule stays one declarative expectation.

Rules whose meta says ``"blocking": False`` do not make a row invalid: a
near-duplicate is a *flag* (the row is routed as a proposal to add an
alternate question to the existing entry). Every other failure is a reason.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from kbops import pii
from kbops.pii import PLACEHOLDER, SCRUBBED, find_private
from kbops.text import detect_lang, fingerprint, normalize
from kbops.validate.facts import FactBook, conflicts, linked_skus
from kbops.validate.similar import NearDuplicate

SUITE_NAME = "kbops_candidates"

#: Pattern rules (private data, placeholders, markup…) read this many characters of a text.
SCAN_LIMIT = 20_000

# Bounds: Chinese in characters, English in words.
LENGTH_BOUNDS = {
    ("question", "zh"): (2, 150),
    ("question", "en"): (2, 60),
    ("answer", "zh"): (4, 2000),
    ("answer", "en"): (3, 500),
}


def private_patterns() -> list[str]:
    """The scrubber's patterns (kbops.pii) as regex strings, for bench/bench_gate.py's GX-free replay.

    The gate itself does not match these: its ``private_data`` rule asks :func:`kbops.pii.find_private`
    (normalisation, merged spans, names by cue, the address follow-on), the very detector the
    scrubber uses, so the gate refuses exactly what the scrubber would remove.
    """
    return [("(?i)" if pattern.flags & re.IGNORECASE else "") + pattern.pattern for _label, pattern in pii.PRIVATE_PATTERNS]


_CJK_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")


def answers_in(lang: str, answer: str | None) -> bool:
    """Whether the answer is written in ``lang``.

    Script detection alone lets a mostly-English reply with a Chinese tail pass
    as Chinese, so: a Chinese answer may quote English names (a few words) but
    not be mostly English (words × 2 > CJK characters); an English answer may
    quote a Chinese product name but not be mostly Chinese (CJK characters > words).
    """
    if not answer:
        return True
    cjk = len(_CJK_CHAR.findall(answer))
    words = len(_LATIN_WORD.findall(answer))
    if cjk == 0 and words == 0:
        return True
    if lang == "zh":
        return cjk > 0 and words * 2 <= cjk
    if lang == "en":
        return cjk <= words
    return True


# A reply made only of greetings, sign-offs and "please wait" fillers answers nothing.
NON_ANSWER = (
    r"^(?:[\W\s]*(?:您好|你好|亲爱的|亲|请稍等片刻|请稍等|请您稍等|稍等一下|稍等|正在为您查询|正在为您核实|正在查询|正在核实|马上为您查询|"
    r"我帮您查一下|帮您查询一下|我看一下|好的|嗯嗯|嗯|哦|是的|谢谢您的耐心等待|感谢您的耐心等待|谢谢|感谢您的支持|感谢|不客气|"
    r"再见|拜拜|在的|在呢|很高兴为您服务|请问有什么可以帮您|还有什么可以帮您|还有其他问题吗|祝您生活愉快|祝您购物愉快|祝您使用愉快|"
    r"有问题随时找我们|欢迎下次光临|"
    r"hi there|hi|hello|hey|dear customer|thanks for waiting|thank you for your patience|thanks|thank you|please wait|"
    r"please hold on|please hold|one moment please|one moment|just a moment|let me check that for you|let me check|"
    r"i'?ll check|checking now|ok|okay|bye|goodbye|have a (?:nice|great|good) day|you'?re welcome|"
    r"is there anything else i can help you with|anything else|glad to help|happy to help|how can i help you|"
    r"how may i help you))+[\W\s~～]*$"
)
# HTML/script markup or a script URL: knowledge is plain text, and pages render it.
MARKUP = (
    r"<\s*/?\s*[a-z][a-z0-9-]*(?:\s[^<>]*)?/?\s*>|<\s*(?:script|iframe|style|object|embed|img|svg|a|form|input)\b"
    r"|javascript\s*:|vbscript\s*:|data\s*:\s*text/html|\bon(?:error|load|click|mouseover)\s*=|&lt;\s*script|\{\{\{|\$\{[^}]*\}"
)
# Control characters and U+FFFD (decoding damage): text that went through a broken export.
BROKEN = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]"


@dataclass
class RowVerdict:
    """One row's outcome: blocking ``reasons`` (row invalid) and non-blocking ``flags``."""

    candidate_id: int
    reasons: list[str]
    flags: list[str] = field(default_factory=list)
    near_duplicate: NearDuplicate | None = None

    @property
    def ok(self) -> bool:
        return not self.reasons


def length_units(text: str | None, lang: str) -> int:
    """A text's length as LENGTH_BOUNDS counts it: characters (spaces aside) for Chinese, words for English."""
    if not text:
        return 0
    return len(normalize(text).replace(" ", "")) if lang == "zh" else len(text.split())


def _private_kinds(question: str, answer: str, alt_questions: list[str] | None) -> list[str]:
    """What :func:`kbops.pii.find_private` finds in the texts an approval would publish (each read separately,
    so a phone number cannot be made of a question's tail and an answer's head), and the kinds of the
    typed placeholders (``[PHONE]``…) standing where a proposal's private value was scrubbed: a text
    that had private data is refused with the same reason whether or not it was scrubbed."""
    texts = [question, answer, *(str(a)[:SCAN_LIMIT] for a in (alt_questions or []))]
    return sorted({kind for text in texts if text for kind in [*find_private(text), *SCRUBBED.findall(text)]})


# The names bench/bench_gate.py used before they were public.
_private_patterns = private_patterns
_units = length_units


@lru_cache(maxsize=1)
def _suite():
    """The GX context, batch definition and suite (built once per process)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch_def = (
        context.data_sources.add_pandas("kbops")
        .add_dataframe_asset("candidates")
        .add_batch_definition_whole_dataframe("batch")
    )
    expectations: list[Any] = [
        gxe.ExpectColumnValuesToNotBeNull(column="question", meta={"code": "empty_question"}),
        gxe.ExpectColumnValuesToNotBeNull(column="answer", meta={"code": "empty_answer"}),
    ]
    for (col, lang), (lo, hi) in LENGTH_BOUNDS.items():
        expectations.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=f"{col}_units",
                min_value=lo,
                max_value=hi,
                row_condition=f'lang=="{lang}"',
                condition_parser="pandas",
                meta={"code": f"{col}_length", "bounds": [lo, hi], "unit": "characters" if lang == "zh" else "words"},
            )
        )
    expectations += [
        gxe.ExpectColumnValuesToBeInSet(column="lang_match", value_set=[True], meta={"code": "language_mismatch"}),
        # The kinds kbops.pii.find_private reports (None when none): the scrubber's own detector.
        gxe.ExpectColumnValuesToBeNull(column="private_kinds", meta={"code": "private_data"}),
        gxe.ExpectColumnValuesToNotMatchRegex(column="placeholder_text", regex=PLACEHOLDER.pattern, meta={"code": "placeholder"}),
        gxe.ExpectColumnValuesToNotMatchRegex(column="answer_text", regex=f"(?i){NON_ANSWER}", meta={"code": "non_answer"}),
        gxe.ExpectColumnValuesToNotMatchRegex(column="all_text", regex=f"(?i){MARKUP}", meta={"code": "markup"}),
        gxe.ExpectColumnValuesToNotMatchRegex(column="all_text", regex=BROKEN, meta={"code": "broken_text"}),
        gxe.ExpectColumnValuesToBeNull(column="duplicate_of", meta={"code": "duplicate"}),
        gxe.ExpectColumnValuesToBeNull(column="fact_conflict", meta={"code": "fact_conflict"}),
        gxe.ExpectColumnValuesToBeNull(column="near_duplicate_of", meta={"code": "near_duplicate", "blocking": False}),
    ]
    suite = context.suites.add(gx.ExpectationSuite(name=SUITE_NAME, expectations=expectations))
    return batch_def, suite


def check_rows(
    rows: list[dict[str, Any]],
    known_fingerprints: dict[str, str] | None = None,
    *,
    facts: FactBook | None = None,
    near_duplicates: dict[int, NearDuplicate] | None = None,
    template_slots: tuple[str, ...] | list[str] = (),
    stats: dict[str, Any] | None = None,
) -> list[RowVerdict]:
    """Validate rows (candidate_id, entry_key, lang, question, answer; optionally
    origin, depends_on, evidence).

    ``known_fingerprints`` maps question fingerprints of active KB entries to
    their entry keys; a row asking the same question under another key is an
    exact duplicate, as is the second of two rows in the batch. ``facts`` are
    the current facts answers are checked against (see
    :mod:`kbops.validate.facts`); ``near_duplicates`` (candidate id → closest
    active entry) come from :mod:`kbops.validate.similar`. ``template_slots``
    are placeholder names (``Order Number`` for ``{{Order Number}}``) the bot
    fills at answer time, so they are not unresolved placeholders; a row may
    declare more in ``evidence["template_slots"]``. A row whose evidence has
    ``stale_values`` (the sync already flagged the changed fact, old → new)
    keeps its conflict as a flag for the reviewer instead of being blocked;
    approving it unedited is refused at apply time.
    """
    import pandas as pd

    if not rows:
        return []
    known = dict(known_fingerprints or {})
    near = near_duplicates or {}
    records = []
    conflicts_by_id: dict[int, list[str]] = {}
    for row in rows:
        question = (row.get("question") or "").strip() or None
        answer = (row.get("answer") or "").strip() or None
        lang = row.get("lang") or detect_lang(question or answer or "")
        duplicate_of = None
        if question:
            fp = fingerprint(question)
            owner = known.get(fp)
            if owner is not None and owner != row["entry_key"]:
                duplicate_of = owner
            else:
                known.setdefault(fp, row["entry_key"])
        answer_lang = detect_lang(answer) if answer else lang
        evidence = row.get("evidence") or {}
        slots = [*template_slots, *(evidence.get("template_slots") or [])]
        # Pattern rules read at most SCAN_LIMIT characters: an over-long text already fails its
        # length bound, and a 1 MB answer must not make regexes backtrack for minutes.
        scan_q, scan_a = (question or "")[:SCAN_LIMIT], (answer or "")[:SCAN_LIMIT]
        # Typed placeholders of scrubbed private data are reported once, by the private_data rule.
        placeholder_text = SCRUBBED.sub("", scan_a)
        for slot in slots:
            placeholder_text = placeholder_text.replace("{{" + str(slot).strip("{} ") + "}}", "")
        found = conflicts(scan_a, linked_skus(row), facts) if facts is not None and answer else []
        conflicts_by_id[row["candidate_id"]] = found
        blocking_conflict = found and not evidence.get("stale_values")
        neighbour = near.get(row["candidate_id"]) if duplicate_of is None else None
        records.append(
            {
                "candidate_id": row["candidate_id"],
                "lang": lang,
                "question": question,
                "answer": answer,
                "answer_text": scan_a,
                "placeholder_text": placeholder_text,
                "all_text": f"{scan_q}\n{scan_a}",
                "alt_text": "\n".join(str(a) for a in row.get("alt_questions") or [])[:SCAN_LIMIT],
                "private_kinds": ", ".join(k.lower() for k in _private_kinds(scan_q, scan_a, row.get("alt_questions"))) or None,
                "question_units": length_units(question, lang),
                "answer_units": length_units(answer, lang),
                "lang_match": answer_lang in (lang, "und") and answers_in(lang, answer),
                "duplicate_of": duplicate_of,
                "fact_conflict": "; ".join(found) if blocking_conflict else None,
                "near_duplicate_of": neighbour.entry_key if neighbour else None,
            }
        )
    frame = pd.DataFrame.from_records(records)
    batch_def, suite = _suite()
    result = batch_def.get_batch(batch_parameters={"dataframe": frame}).validate(
        suite, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["candidate_id"]}
    )
    by_id = {r["candidate_id"]: r for r in records}
    reasons: dict[int, list[str]] = {r["candidate_id"]: [] for r in records}
    flags: dict[int, list[str]] = {r["candidate_id"]: [] for r in records}
    per_rule: dict[str, int] = {}
    for outcome in result.results:
        meta = outcome.expectation_config.meta or {}
        if outcome.exception_info and outcome.exception_info.get("raised_exception"):
            raise RuntimeError(f"validation rule {meta.get('code')} crashed: {outcome.exception_info.get('exception_message')}")
        failed_ids = [int(f["candidate_id"]) for f in (outcome.result.get("unexpected_index_list") or [])]
        per_rule[meta.get("code", "rule")] = per_rule.get(meta.get("code", "rule"), 0) + len(failed_ids)
        for cid in failed_ids:
            target = flags if meta.get("blocking") is False else reasons
            target[cid].append(_reason(meta, by_id[cid], near.get(cid)))
    for row in rows:
        cid = row["candidate_id"]
        if conflicts_by_id[cid] and (row.get("evidence") or {}).get("stale_values"):
            flags[cid].append("fact_conflict: " + "; ".join(conflicts_by_id[cid]) + " (flagged by the sync; edit the answer before approving)")
    if stats is not None:
        stats.update({"suite": SUITE_NAME, "expectations": len(result.results), "success": bool(result.success), "failed_rows_by_rule": per_rule})
    return [
        RowVerdict(
            cid,
            sorted(set(r)),
            sorted(set(flags[cid])),
            near.get(cid) if by_id[cid]["near_duplicate_of"] and not r else None,
        )
        for cid, r in reasons.items()
    ]


def _reason(meta: dict[str, Any], row: dict[str, Any], neighbour: NearDuplicate | None = None) -> str:
    code = meta.get("code", "rule")
    if code.endswith("_length"):
        col = code.split("_")[0]
        lo, hi = meta["bounds"]
        return f"{code}: {col} is {row[f'{col}_units']} {meta['unit']}, allowed {lo}–{hi}"
    if code in ("empty_question", "empty_answer"):
        return f"{code}: the {code.split('_')[1]} is empty; write one"
    if code == "language_mismatch":
        said = detect_lang(row["answer_text"])
        said = "mixed zh/en" if said == row["lang"] else said
        return f"language_mismatch: question is {row['lang']} but the answer is {said}; answer in the question's language"
    if code == "private_data":
        where = [name for name in ("question", "answer") if row[name] and _private_kinds(row[name][:SCAN_LIMIT], "", None)]
        where += ["an alternate question"] if row["alt_text"] and _private_kinds(row["alt_text"], "", None) else []
        where = where or ["text"]
        return f"private_data: {' and '.join(where)} contains private data ({row['private_kinds']}); remove it"
    if code == "placeholder":
        found = PLACEHOLDER.search(row["placeholder_text"])
        return f"placeholder: answer has an unresolved placeholder {found.group(0) if found else ''}; replace it with real text (or declare it a template slot)"
    if code == "non_answer":
        return "non_answer: the answer is a greeting, sign-off or 'please wait', not an answer"
    if code == "markup":
        return "markup: text contains HTML/script markup; knowledge must be plain text"
    if code == "broken_text":
        return "broken_text: text contains control characters or U+FFFD (a decoding error); re-export it as UTF-8"
    if code == "duplicate":
        return f"duplicate: the same question is already answered by {row['duplicate_of']}"
    if code == "fact_conflict":
        return f"fact_conflict: {row['fact_conflict']}; correct the answer to the current value"
    if code == "near_duplicate":
        score = f" (similarity {neighbour.score:.2f} to {neighbour.matched!r})" if neighbour else ""
        return f"near_duplicate: asks what entry {row['near_duplicate_of']} answers{score}; proposed as its alternate question"
    return f"{code}: {meta}"
