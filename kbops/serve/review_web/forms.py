"""Reading what a reviewer sent: query parameters and form fields, checked for shape.

These checks are about the page's own forms (which buttons exist, fields the
page requires, lengths, whole numbers); whether a *decision* is acceptable is
the review core's to say (:func:`kbops.kb.routing.check_decision`), so nothing
here repeats it. A form that does not fit raises :class:`PageError` with a 4xx
status and a message the reviewer can act on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from kbops.schema import MAX_ID, parse_record_id

PAGE_SIZES = (25, 50, 100, 200, 500)
WARNING_FILTERS = ("", "with", "without")
ACTIONS = ("approve", "edit", "reject", "merge")  # the buttons on an item card
BULK_ACTIONS = ("approve", "reject")  # the buttons above the queue
ACCOUNT_OPS = ("add", "remove", "role", "password")
MAX_TEXT = 20_000  # longest question/answer/note accepted from a form (characters)
_FILTER_KEYS = ("origin", "lang", "tag", "warnings", "page", "per_page")


class PageError(Exception):
    """Render the error page with this status and message (a 4xx the user can act on)."""

    def __init__(self, status: int, message: str, back: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.back = status, message, back


class Redirect(Exception):
    """Answer with a 303 to ``url`` (after a form post, or to the sign-in page)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


whole_number = parse_record_id  # a form field as a record id (kbops.schema: the id columns' range)


def path_id(raw: str, not_found: Callable[[str], Exception]) -> int:
    """A record id from the URL: the one parser for every route with an id in its path.

    Not a whole number → a 400 page; a whole number no record can have (0,
    past :data:`MAX_ID`, 5,000 digits) → ``not_found(shown)``, the same 404 as
    an id that is free, raised before any database is asked. ``shown`` is the
    id as the message repeats it (cut when long)."""
    number = whole_number(raw)
    if number is not None:
        return number
    shown = raw if len(raw) <= 30 else raw[:29] + "…"
    if raw.isascii() and raw.isdigit():
        raise not_found(shown)
    raise PageError(400, f"bad request: {shown!r} is not a record id (a whole number from 1 to {MAX_ID})")


def text(form: Any, key: str) -> str:
    """The stripped text of field ``key`` ("" when absent); refuses files and over-long text."""
    value = form.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PageError(400, f"field {key!r} must be text, not a file")
    if len(value) > MAX_TEXT:
        raise PageError(400, f"field {key!r} is {len(value)} characters long; the limit is {MAX_TEXT}")
    return value.strip()


@dataclass(frozen=True)
class QueueFilters:
    """The queue's filter and paging parameters, checked."""

    origin: str = ""
    lang: str = ""
    tag: str = ""
    warnings: str = ""
    page: int = 1
    per_page: int = 50

    @classmethod
    def parse(cls, origin: str = "", lang: str = "", tag: str = "", warnings: str = "", page: int = 1, per_page: int = 50) -> QueueFilters:
        if warnings not in WARNING_FILTERS:
            raise PageError(400, f"warnings={warnings!r} is not one of: with, without (or empty for all)")
        if per_page not in PAGE_SIZES:
            raise PageError(400, f"per_page={per_page} is not one of {', '.join(map(str, PAGE_SIZES))}")
        if page < 1:
            raise PageError(400, f"page={page} must be 1 or more")
        return cls(origin=origin[:40], lang=lang[:8], tag=tag[:200], warnings=warnings, page=page, per_page=per_page)

    def query(self) -> str:
        """The non-default filters as a query string (for links and the forms' return_query)."""
        defaults = {"page": 1, "per_page": 50}
        return urlencode({k: v for k, v in asdict(self).items() if v and v != defaults.get(k)})


def return_query(form: Any) -> str:
    """The queue filters the form came from, re-encoded from known keys only (no open redirect)."""
    raw = str(form.get("return_query") or "")[:2000]
    return urlencode([(k, v) for k, v in parse_qsl(raw) if k in _FILTER_KEYS])


@dataclass(frozen=True)
class ItemDecision:
    """One item card's form: the core's decision word and its arguments."""

    action: str  # the button: approve, edit, reject or merge
    decision: str  # what the core records: approve, reject or merge
    note: str
    question: str | None = None
    answer: str | None = None
    merge_into: str | None = None

    def core_args(self) -> dict[str, Any]:
        """Keyword arguments for :func:`kbops.pipeline.decide` (besides ids, decision, by, door)."""
        return {"note": self.note, "question": self.question, "answer": self.answer, "merge_into": self.merge_into}


def item_decision(form: Any) -> ItemDecision:
    """Read an item card's form.

    Only the page's own requirements are checked here (a known button; the
    edit form sends both texts). A rejection without a reason, a merge
    without a target or into a missing entry are the core's to refuse.
    """
    action = str(form.get("action") or "")
    if action not in ACTIONS:
        raise PageError(400, f"action {action!r} is not one of {', '.join(ACTIONS)}")
    note = text(form, "note")
    if action == "edit":
        question, answer = text(form, "question"), text(form, "answer")
        if not question or not answer:
            raise PageError(400, "the edited question and answer may not be empty; reject the item instead")
        return ItemDecision(action, "approve", note, question=question, answer=answer)
    if action == "merge":
        return ItemDecision(action, "merge", note, question=text(form, "question") or None, merge_into=text(form, "merge_into") or None)
    return ItemDecision(action, action, note)


@dataclass(frozen=True)
class BulkDecision:
    action: str  # approve or reject
    ids: list[int]
    note: str


def bulk_decision(form: Any, back: str) -> BulkDecision:
    """Read the bulk form: an action, the ticked item ids (whole numbers, at least one) and the reason."""
    action = str(form.get("action") or "")
    if action not in BULK_ACTIONS:
        raise PageError(400, f"bulk action {action!r} is not approve or reject")
    raw = form.getlist("ids")
    ids = [whole_number(v) for v in raw]
    if any(i is None for i in ids):
        raise PageError(400, f"item ids must be whole numbers, got {[v for v in raw if whole_number(v) is None][:5]!r}")
    unique = sorted({i for i in ids if i is not None})
    if not unique:
        raise PageError(400, "no items selected: tick items (x) or select the page (shift+x) first", back=back)
    return BulkDecision(action, unique, text(form, "reason"))


@dataclass(frozen=True)
class Resubmission:
    question: str
    answer: str
    template_slots: list[str] | None


def resubmission(form: Any, back: str) -> Resubmission:
    """Read the fix-and-resubmit form: both texts (the page's form requires them) and optional slot names."""
    question, answer = text(form, "question"), text(form, "answer")
    if not question or not answer:
        raise PageError(400, "the fixed question and answer may not be empty", back=back)
    slots = [x.strip() for x in text(form, "template_slots").split(",") if x.strip()]
    return Resubmission(question, answer, slots or None)


@dataclass(frozen=True)
class AccountChange:
    op: str  # add, remove, role or password
    name: str
    role: str
    password: str


def account_change(form: Any, back: str) -> AccountChange:
    """Read the admin page's account form; the name, role and password rules are the accounts module's."""
    op = str(form.get("op") or "")
    if op not in ACCOUNT_OPS:
        raise PageError(400, f"account operation {op!r} is not add, remove, role or password", back=back)
    return AccountChange(op, text(form, "name"), str(form.get("role") or ""), str(form.get("password") or ""))


@dataclass
class GapAnswer:
    """An answer a reviewer wrote for a gap topic (the question defaults to the topic's)."""

    question: str | None
    answer: str


def gap_answer(form: Any, back: str) -> GapAnswer:
    """The gap form's fields: a non-empty answer, both within :data:`MAX_TEXT`."""
    answer = str(form.get("answer") or "").strip()
    question = str(form.get("question") or "").strip() or None
    if not answer:
        raise PageError(400, "write the answer the bot should give", back=back)
    if len(answer) > MAX_TEXT or (question and len(question) > MAX_TEXT):
        raise PageError(400, f"keep the question and the answer under {MAX_TEXT} characters", back=back)
    return GapAnswer(question, answer)


@dataclass
class GapVerdict:
    """A reviewer's label of a gap topic: the entry that answers it (None: no entry should), and whether the entry
    is taught the topic's phrasings."""

    entry_key: str | None
    teach: bool


def gap_label(form: Any, back: str) -> GapVerdict:
    """The gap label form: ``outcome`` ``entry`` with the ``entry_key`` that answers the topic (and ``teach``
    checked or not), or ``handoff`` (no entry should answer it)."""
    outcome = str(form.get("outcome") or "")
    if outcome == "handoff":
        return GapVerdict(None, False)
    if outcome != "entry":
        raise PageError(400, f"label outcome {outcome!r} is not entry or handoff", back=back)
    return GapVerdict(_entry_key(form, back), bool(form.get("teach")))


@dataclass
class AnswerVerdict:
    """A reviewer's verdict on a logged answer: right, or wrong with the entry that answers it (None: a handoff)."""

    right: bool
    entry_key: str | None


def answer_verdict(form: Any, back: str) -> AnswerVerdict:
    """The spot-check form: ``verdict`` ``right``, ``handoff``, or ``entry`` with the ``entry_key`` that answers it."""
    verdict = str(form.get("verdict") or "")
    if verdict == "right":
        return AnswerVerdict(True, None)
    if verdict == "handoff":
        return AnswerVerdict(False, None)
    if verdict != "entry":
        raise PageError(400, f"verdict {verdict!r} is not right, handoff or entry", back=back)
    return AnswerVerdict(False, _entry_key(form, back))


def _entry_key(form: Any, back: str) -> str:
    """The ``entry_key`` a label form names (gap topics, spot checks): present, within :data:`MAX_TEXT`."""
    key = str(form.get("entry_key") or "").strip()
    if not key:
        raise PageError(400, "name the entry that answers these questions (its key, as the review page and `kbops export` show it)", back=back)
    if len(key) > MAX_TEXT:
        raise PageError(400, f"keep the entry key under {MAX_TEXT} characters", back=back)
    return key
