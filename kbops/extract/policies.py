"""Policy documents → candidates: each ``## heading`` is a question, its section the answer.

Convention (see examples/sample_store/README.md)::

    # 退换货政策
    ## 收到的商品不想要了，可以退货吗？
    也问：支持七天无理由退货吗｜买了不喜欢能退吗
    支持7天无理由退货……

The optional first line ``也问：…｜…`` / ``Also asked: … | …`` lists alternate
phrasings. Every candidate depends on the document's version, so an edited
policy withdraws its entries; sections whose text did not change come back
through the ``unchanged-text`` rule, changed ones go to a reviewer.
"""

from __future__ import annotations

import re

from kbops.kb.candidates import Proposal
from kbops.schema import SourceRecord
from kbops.text import detect_lang, fingerprint

_ALT = re.compile(r"^\s*(?:也问|又问|Also asked)\s*[:：]\s*(.+)$", re.IGNORECASE)
_ALT_SPLIT = re.compile(r"\s*[|｜]\s*")
_CJK_END = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]$")
_CJK_START = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


def policy_sections(text: str) -> list[tuple[str, list[str], str]]:
    """(question, alternates, answer) for each level-2 section of a Markdown document."""
    sections: list[tuple[str, list[str], str]] = []
    heading: str | None = None
    body: list[str] = []

    def flush() -> None:
        if heading is None:
            return
        lines = [ln for ln in body if ln.strip()]
        alternates: list[str] = []
        if lines and (m := _ALT.match(lines[0])):
            alternates = [a for a in _ALT_SPLIT.split(m.group(1).strip()) if a]
            lines = lines[1:]
        sections.append((heading, alternates, _join_lines(lines)))

    for line in text.splitlines():
        if line.startswith("## "):
            flush()
            heading, body = line[3:].strip(), []
        elif line.startswith("# "):
            continue
        elif heading is not None:
            body.append(line)
    flush()
    return sections


def _join_lines(lines: list[str]) -> str:
    """Join a section's lines into one answer.

    Wrapped Chinese lines join without a space (Chinese has none between
    words); sub-headings (``### 注意``) become a lead-in (``注意：``).
    """
    answer = ""
    for raw in lines:
        line = raw.strip()
        if line.startswith("#"):
            line = line.lstrip("#").strip()
            line += "：" if _CJK_END.search(line) else ":"
        if not line.strip("：:"):
            continue
        if answer and not (_CJK_END.search(answer) and _CJK_START.match(line)):
            answer += " "
        answer += line
    return answer


def policy_proposals(doc: SourceRecord) -> list[Proposal]:
    if doc.deleted:
        return []
    title = doc.payload.get("title", doc.key)
    out = []
    for question, alternates, answer in policy_sections(doc.payload.get("text", "")):
        lang = doc.payload.get("lang") or detect_lang(question + answer)
        out.append(
            Proposal(
                entry_key=f"policy:{doc.source}:{doc.key}:{fingerprint(question)[:12]}",
                origin="policy",
                kind="policy",
                lang=lang,
                question=question,
                answer=answer,
                alt_questions=alternates,
                tags=["policy", title],
                evidence={"document": doc.key, "title": title, "version": doc.version},
                depends_on=[doc.ref],
            )
        )
    return out
