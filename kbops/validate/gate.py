"""The validation gate: a great-expectations suite run over each candidate batch.

Each expectation carries a ``meta.code`` and its per-row failures come back as
GX's ``unexpected_index_list`` keyed by ``candidate_id``; every failure
becomes a human-readable reason on that row. Rows that fail are kept
(status ``invalid`` with their reasons) for reviewers to fix and resubmit;
nothing is silently dropped.

Derived columns (lengths in characters for Chinese and words for English,
language agreement, duplicate target) are computed with pandas first, so
each rule stays one declarative expectation.
"""

from __future__ import annotations

import os

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from kbops.pii import PLACEHOLDER, find_private
from kbops.text import detect_lang, fingerprint, normalize

# Bounds: Chinese in characters, English in words.
LENGTH_BOUNDS = {
    ("question", "zh"): (2, 150),
    ("question", "en"): (2, 60),
    ("answer", "zh"): (4, 2000),
    ("answer", "en"): (3, 500),
}

PRIVATE_PATTERNS = [
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    r"(?<!\d)1[3-9]\d[- ]?\d{4}[- ]?\d{4}(?!\d)",
    r"(?<!\d)\d{17}[\dXx](?!\d)",
    r"(?<!\d)(?:\d[ -]?){15,18}\d(?!\d)",
    r"\+\d{1,3}[ -]?\(?\d{2,4}\)?[ -]?\d{3,4}[ -]?\d{4}",
]
NON_ANSWER = (
    r"^(?:[\W\s]*(?:您好|你好|亲|请稍等|稍等|正在为您查询|正在查询|马上为您查询|好的|嗯|谢谢|感谢|不客气|再见|在的|"
    r"hi|hello|thanks|thank you|please wait|one moment|let me check|ok|okay|bye|you're welcome))+[\W\s]*$"
)
MARKUP = r"<\s*/?\s*(?:script|iframe|style|object|embed|img|a|div|span|svg|form|input)\b|javascript:"


@dataclass
class RowVerdict:
    candidate_id: int
    reasons: list[str]

    @property
    def ok(self) -> bool:
        return not self.reasons


def _units(text: str | None, lang: str) -> int:
    if not text:
        return 0
    return len(normalize(text).replace(" ", "")) if lang == "zh" else len(text.split())


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
        gxe.ExpectColumnValuesToNotMatchRegexList(column="answer_text", regex_list=PRIVATE_PATTERNS, meta={"code": "private_data"}),
        gxe.ExpectColumnValuesToNotMatchRegex(column="answer_text", regex=PLACEHOLDER.pattern, meta={"code": "placeholder"}),
        gxe.ExpectColumnValuesToNotMatchRegex(column="answer_text", regex=f"(?i){NON_ANSWER}", meta={"code": "non_answer"}),
        gxe.ExpectColumnValuesToNotMatchRegex(column="all_text", regex=f"(?i){MARKUP}", meta={"code": "markup"}),
        gxe.ExpectColumnValuesToBeNull(column="duplicate_of", meta={"code": "duplicate"}),
    ]
    suite = context.suites.add(gx.ExpectationSuite(name="kbops_candidates", expectations=expectations))
    return batch_def, suite


def check_rows(rows: list[dict[str, Any]], known_fingerprints: dict[str, str] | None = None) -> list[RowVerdict]:
    """Validate rows (candidate_id, entry_key, lang, question, answer).

    ``known_fingerprints`` maps question fingerprints of active KB entries to
    their entry keys; a row asking the same question under another key is an
    exact duplicate, as is the second of two rows in the batch.
    """
    import pandas as pd

    if not rows:
        return []
    known = dict(known_fingerprints or {})
    records = []
    for row in rows:
        question = (row.get("question") or "").strip() or None
        answer = (row.get("answer") or "").strip() or None
        lang = row.get("lang") or detect_lang((question or "") + (answer or ""))
        duplicate_of = None
        if question:
            fp = fingerprint(question)
            owner = known.get(fp)
            if owner is not None and owner != row["entry_key"]:
                duplicate_of = owner
            else:
                known.setdefault(fp, row["entry_key"])
        answer_lang = detect_lang(answer) if answer else lang
        records.append(
            {
                "candidate_id": row["candidate_id"],
                "lang": lang,
                "question": question,
                "answer": answer,
                "answer_text": answer or "",
                "all_text": f"{question or ''}\n{answer or ''}",
                "question_units": _units(question, lang),
                "answer_units": _units(answer, lang),
                "lang_match": answer_lang in (lang, "und"),
                "duplicate_of": duplicate_of,
            }
        )
    frame = pd.DataFrame.from_records(records)
    batch_def, suite = _suite()
    result = batch_def.get_batch(batch_parameters={"dataframe": frame}).validate(
        suite, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["candidate_id"]}
    )
    by_id = {r["candidate_id"]: r for r in records}
    reasons: dict[int, list[str]] = {r["candidate_id"]: [] for r in records}
    for outcome in result.results:
        meta = outcome.expectation_config.meta or {}
        if outcome.exception_info and outcome.exception_info.get("raised_exception"):
            raise RuntimeError(f"validation rule {meta.get('code')} crashed: {outcome.exception_info.get('exception_message')}")
        if outcome.success:
            continue
        for failed in outcome.result.get("unexpected_index_list") or []:
            cid = int(failed["candidate_id"])
            reasons[cid].append(_reason(meta, by_id[cid]))
    return [RowVerdict(cid, sorted(set(r))) for cid, r in reasons.items()]


def _reason(meta: dict[str, Any], row: dict[str, Any]) -> str:
    code = meta.get("code", "rule")
    if code.endswith("_length"):
        col = code.split("_")[0]
        lo, hi = meta["bounds"]
        return f"{code}: {col} is {row[f'{col}_units']} {meta['unit']}, allowed {lo}–{hi}"
    if code in ("empty_question", "empty_answer"):
        return f"{code}: the {code.split('_')[1]} is empty; write one"
    if code == "language_mismatch":
        return f"language_mismatch: question is {row['lang']} but the answer is {detect_lang(row['answer_text'])}"
    if code == "private_data":
        kinds = find_private(row["answer_text"]) or ["number"]
        return f"private_data: answer contains private data ({', '.join(k.lower() for k in kinds)}); remove it"
    if code == "placeholder":
        found = PLACEHOLDER.search(row["answer_text"])
        return f"placeholder: answer has an unresolved placeholder {found.group(0) if found else ''}; replace it with real text"
    if code == "non_answer":
        return "non_answer: the answer is a greeting or 'please wait', not an answer"
    if code == "markup":
        return "markup: text contains HTML/script markup; knowledge must be plain text"
    if code == "duplicate":
        return f"duplicate: the same question is already answered by {row['duplicate_of']}"
    return f"{code}: {meta}"


