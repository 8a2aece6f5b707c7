"""Text helpers shared by extraction, validation and retrieval.

Chinese and English are both first-class: language detection is by script,
fingerprints ignore punctuation, width and case, every reading of a text reads
Traditional characters as Simplified (a Hong Kong or Taiwan customer's 電飯煲 is
the store's 电饭煲), and lexical tokens are words
for Latin script and character uni+bigrams for CJK (Chinese has no spaces, and
the default embedding model reads no Chinese at all).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from decimal import Decimal

import opencc

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_TOKEN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[a-z0-9]+(?:\.[0-9]+)?")
_PUNCT_SPACE = re.compile(r"[\W_]+", re.UNICODE)

# Chinese sentence-final particles and English filler carry no meaning for matching.
_ZH_PARTICLES = set("吗呢啊呀吧哦么嘛哈啦")
#: Chinese courtesy and pointing words a customer wraps a question in ("请问一下这个电饭煲多少钱"): like English
#: stop words they match nothing that matters, and in a self-normalised score they counted against the entry that
#: answers. A run of characters is split where one stands, so no bigram spans it.
_ZH_FILLER = re.compile("请问|你好|您好|麻烦|问一下|一下|这个|那个|这款|那款|我想|想问|你们家|你们的|你们|您们|的")
#: A number and a measure word ("一台", "两个", "几台", "3件"): how many, not what ("挂烫机多少钱一台" is not about a
#: 台灯). Dropped where a question's words are read for what they name (:mod:`kbops.index.search`), not from the
#: lexical tokens (as filler there they cost the help desk's lexical recall 1.6 points).
_MEASURE = re.compile(r"(?:[一二两三四五六七八九十几每多]|\d+)\s?[台个只件套把瓶盒支]")
#: The A-not-A question ("有没有货", "能不能退", "是不是正品") asks what "有货吗" asks: it reads as A.
_A_NOT_A = re.compile(r"([\u4e00-\u9fff])[不没]\1")
EN_STOPWORDS = frozenset(
    "a an the is are was were be been do does did to of for in on at by with and or "
    "i me my you your we our it its this that can could would will should please hi hello "
    "there any how what when where which who".split()
)


def drop_measure_words(text: str) -> str:
    """``text`` with each number and its measure word ("一台", "两个") replaced by a comma (see :data:`_MEASURE`)."""
    return _MEASURE.sub("，", text)


#: Traditional → Simplified Chinese by phrase (OpenCC's ``t2s``: 週末 → 周末, 麵條 → 面条, while 乾隆 stays 乾隆). A text
#: already simplified comes out as it went in: of JDDC's 12,136 lines, the 4 that change hold traditional characters.
_T2S = opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """``text`` with its Traditional Chinese written in Simplified characters (see :data:`_T2S`).

    Chinese customers write both: Hong Kong, Taiwan and overseas customers ask "電飯煲多少錢" of a store whose
    questions say "电饭煲多少钱". Every reading of a text — the lexical tokens and the rules' words
    (:func:`normalize`) and the vectors (:mod:`kbops.index.embedder`) — reads this form, on both the store's side
    and the customer's, so a store that writes traditional characters is read the same way as one that does not.
    Identities are not (:func:`fingerprint`), and answers are shown as the store wrote them. About 1.5 µs a text."""
    return text if text.isascii() else _T2S.convert(text)


def normalize(text: str) -> str:
    """NFKC (full-width → half-width), Simplified characters (:func:`to_simplified`), lower case, collapsed whitespace."""
    return " ".join(to_simplified(unicodedata.normalize("NFKC", text)).lower().split())


def detect_lang(text: str) -> str:
    """'zh' when CJK characters make up a fair share of the letters, else 'en'.

    Returns 'und' for text without letters (numbers, emoji, punctuation).
    """
    cjk = len(_CJK.findall(text))
    latin = sum(1 for ch in text if ch.isascii() and ch.isalpha())
    if cjk == 0 and latin == 0:
        return "und"
    return "zh" if cjk * 2 >= latin / 4 else "en"


def fingerprint(text: str) -> str:
    """A hash that is equal for texts differing only in punctuation, case and width.

    Not in script: entry keys are made of fingerprints (a policy section's, a mined question's), and folding
    Traditional characters here would give every existing entry written in them a new key on upgrade — withdrawn
    and proposed again. A question kept in both scripts is two entries, which the bot reads as one
    (:func:`normalize`)."""
    core = _PUNCT_SPACE.sub("", " ".join(unicodedata.normalize("NFKC", text).lower().split()))
    core = "".join(ch for ch in core if ch not in _ZH_PARTICLES) or core
    return hashlib.sha256(core.encode("utf-8")).hexdigest()[:32]


def content_hash(*parts: object) -> str:
    """A stable hash of the given parts (used for record and candidate identity)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()


def _zh_parts(run: str) -> list[list[str]]:
    """The characters of a Chinese run that carry meaning, in parts split where a filler word stood."""
    run = _A_NOT_A.sub(r"\1", run.replace("可不可以", "可以"))
    return [chars for part in _ZH_FILLER.split(run) if (chars := [ch for ch in part if ch not in _ZH_PARTICLES])]


def tokens(text: str) -> list[str]:
    """Lexical tokens: English words (stop words dropped) and CJK uni+bigrams (filler words and particles dropped)."""
    out: list[str] = []
    for run in _TOKEN_RUN.findall(normalize(text)):
        if _CJK.match(run):
            for chars in _zh_parts(run):
                out.extend(chars)
                out.extend(a + b for a, b in zip(chars, chars[1:]))
        elif run not in EN_STOPWORDS:
            out.append(_stem(run))
    return out


#: Words that end a phrase as stop words do, though they count as lexical tokens: when, and courtesy
#: ("the Bluetooth speaker today", "the earbuds now", "the rice cooker these days"), not what a product is called.
_PHRASE_BREAKS = EN_STOPWORDS | frozenset(
    "today now still currently right yet again anymore tomorrow tonight yesterday thanks thank also too really actually just ever already "
    "here please these those nowadays lately recently pls plz thx sir madam".split()
)
#: Chinese words of time and degree end a phrase the same way ("蓝牙音箱今天多少钱", "电饭煲现在还有货吗"), and so
#: do the question words that ask when or how long ("空气炸锅几天发货": 几天 is no part of the air fryer).
_ZH_PHRASE_BREAKS = re.compile("今天|现在|目前|最近|几天|多久|多长时间|什么时候|啥时候|哪天|还|也|都")
#: What ends a phrase besides stop words: punctuation, and a full stop that is not a decimal point ("1.7L").
_CLAUSE = re.compile(r"[,!?;:，。！？；：、\n]+|(?<!\d)\.|\.(?!\d)")


def phrases(text: str) -> list[list[str]]:
    """The :func:`tokens` of ``text`` grouped by phrase, single words and characters only (no bigrams).

    A phrase is a run of English words between stop words (and words of time such as
    "today", "now", "still") and punctuation, or a
    run of Chinese characters between punctuation, other scripts and filler words: "Hi, I'm
    looking for the Lumi lamp, how much is it?" → [m, look], [lumi, lamp],
    [much]; "鹿米智能门锁多少钱" is one. What names a product is one of them.
    (Not the primitive of :func:`tokens`, which the lexical index calls for every
    question it holds: grouping first made it half as slow again.)"""
    out: list[list[str]] = []
    for clause in _CLAUSE.split(normalize(text)):
        phrase: list[str] = []
        for run in _TOKEN_RUN.findall(clause):
            if _CJK.match(run):
                if phrase:
                    out.append(phrase)
                out.extend(chars for part in _ZH_PHRASE_BREAKS.split(run) for chars in _zh_parts(part))
                phrase = []
            elif run in _PHRASE_BREAKS:
                if phrase:
                    out.append(phrase)
                phrase = []
            else:
                phrase.append(_stem(run))
        if phrase:
            out.append(phrase)
    return [p for p in out if p]


_CASED_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[A-Za-z0-9]+(?:['.-][A-Za-z0-9]+)*")


def cased_clauses(text: str) -> list[list[str]]:
    """The runs of each clause of ``text``, in order and as typed: Chinese runs and Latin words.

    Case is kept (a capital inside a sentence says "a name"), and so are a
    word's hyphens and apostrophes ("LM-1003", "I'm"): "Is the Ninja air
    fryer in stock? Ninja空气炸锅" → [Is, the, Ninja, air, fryer, in, stock], [Ninja, 空气炸锅]."""
    return [runs for clause in _CLAUSE.split(to_simplified(unicodedata.normalize("NFKC", text))) if (runs := _CASED_RUN.findall(clause))]


#: "X for the Y", "X of my Y", "X that fits the Y", "X compatible with the Y": X is something of Y's (a part, an
#: accessory, a fact).
_OF = frozenset({"for", "of", "fit", "fits"})
_RELATIVES = frozenset({"that", "which"})
_DETERMINERS = frozenset({"the", "a", "an", "my", "your", "our", "this", "that", "these", "those"})


def attachments(text: str) -> list[tuple[str, str]]:
    """(head, attached) pairs of tokens: a word of ``text`` and a word that says what *of it* is asked.

    Three forms, in both languages: the next word of a phrase ("rice" → "bowl" in "the rice
    bowl"; "杯" → "盖" in 榨汁杯杯盖), the words before "for/of the Y", "that fits the Y" or
    "compatible with the Y" ("Y" → "charger" in "the charger for the earbuds") and the
    character after 的 ("人" → "滤" in 扫地机器人的滤网). In Chinese the next two characters are
    attached as well as the next one ("人" → "配件" in 扫地机器人配件): a part's first character
    alone is often a common one (配 is also 配送's, 电 of 电池 every appliance's).
    :func:`kbops.index.search` asks whether an attached word is one no question of the store
    has: then the question is about something of the product the store does not know."""
    grouped = phrases(text)
    pairs = [(word, after) for phrase in grouped for word, after in zip(phrase, phrase[1:])]
    # A Chinese word attached is often two characters whose first alone is common (配 of 配件 is also
    # 配送's, 电 of 电池 every appliance's): the two characters after each one count as well.
    pairs += [(phrase[i], phrase[i + 1] + phrase[i + 2]) for phrase in grouped for i in range(len(phrase) - 2)
              if not phrase[i + 1].isascii() and not phrase[i + 2].isascii()]
    for clause in cased_clauses(text):
        words = [w.lower() for w in clause]
        for k, word in enumerate(words):
            if word in _OF or (word == "with" and k and words[k - 1] == "compatible"):
                j = k + 1
                while j < len(words) and words[j] in _DETERMINERS:
                    j += 1
                heads = [t for w in _run_of_words(words[j:]) for t in tokens(w)]  # "the Lumi robot vacuum": every word
                i = k - 1 if word == "with" else k  # "X compatible with"
                while i and words[i - 1] in _RELATIVES:  # "X that fits"
                    i -= 1
                before = [t for w in _run_of_words(words[:i][::-1]) for t in tokens(w)]
                pairs += [(head, w) for head in heads for w in before]
            elif not word.isascii():
                pairs += [(word[i - 1], word[i + 1 : i + 1 + n]) for i, ch in enumerate(word) if ch == "的" and 0 < i for n in (1, 2) if i + n < len(word)]
    return pairs


def _run_of_words(words: list[str]) -> list[str]:
    """The leading English words of ``words`` up to the first phrase break or Chinese run."""
    run: list[str] = []
    for w in words:
        if not w.isascii() or w in _PHRASE_BREAKS:
            break
        run.append(w)
    return run


def _stem(word: str) -> str:
    """A deliberately light English stemmer: plurals and -ing/-ed endings.

    "prices" and "price" meet at "price"; "shipping" and "ship" at "ship".
    """
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif word.endswith(("sses", "xes", "zes", "ches", "shes")):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            word = word[: -len(suffix)]
            if len(word) > 2 and word[-1] == word[-2] and word[-1] not in "aeiouls":
                word = word[:-1]  # shipp → ship
            break
    return word


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_AMOUNT = re.compile(r"(?<![\d.])\d+(?:\.\d{1,2})?(?![\d]|\.\d)")


def amounts(text: str) -> set[str]:
    """Money-like numbers in ``text``, canonical like prices ("299元" → "299.00", "19.9" → "19.90")."""
    return {f"{Decimal(m):.2f}" for m in _AMOUNT.findall(text)}
