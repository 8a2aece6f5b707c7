"""The review page's routes: thin handlers that read the form, call the core, render.

Each handler's work runs through :meth:`~kbops.serve.review_web.page.Page.handle`
(viewer, CSRF, errors as pages by class). Reads open
``with session_scope(settings) as db:`` and call :mod:`kbops.review` and
:mod:`.queries`; decisions and resubmissions go through :mod:`kbops.pipeline`,
which opens its own sessions, so no read session is held open while the core
writes. The core checks decisions (and raises); handlers do not check again.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from kbops import pipeline
from kbops.config import Settings
from kbops.db import session_scope
from kbops.errors import AlreadyDecided, CandidateNotFound, InvalidDecision, KbopsError, ReviewItemNotFound
from kbops.health import health_report
from kbops.index.embedder import Embedder
from kbops.review import accounts
from kbops.review.gaps import answer_gap, label_gap, ranked_gaps, refresh_bot_gaps
from kbops.review.queue import get_item, invalid_candidates
from kbops.review.spot_check import DAYS, SAMPLE, label_answer, sample_answers
from kbops.serve.review_web import charts, queries, views
from kbops.serve.review_web.auth import Viewer
from kbops.serve.review_web.forms import (
    PageError,
    QueueFilters,
    Redirect,
    account_change,
    answer_verdict,
    bulk_decision,
    gap_answer,
    gap_label,
    item_decision,
    path_id,
    resubmission,
    return_query,
    whole_number,
)
from kbops.serve.review_web.page import SERVE, Page, bad_request, http_error

_PAST = {"approve": "approved", "reject": "rejected", "merge": "merged"}


_FAVICON = SERVE / "static" / "favicon.svg"


def create_review_app(settings: Settings) -> FastAPI:
    """The review page as an application to mount at ``/review``."""
    app = FastAPI(title="kbops review page", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.page = Page(settings)
    app.mount("/static", StaticFiles(directory=SERVE / "static"), name="static")
    app.exception_handler(RequestValidationError)(bad_request)
    app.exception_handler(StarletteHTTPException)(http_error)
    app.exception_handler(PageError)(_refused_id)
    app.exception_handler(KbopsError)(_refused_id)
    app.add_api_route("/favicon.ico", _favicon, methods=["GET"], include_in_schema=False)
    app.include_router(router)
    return app


async def _favicon() -> Response:
    """The page's icon (browsers ask for /favicon.ico whatever the page links)."""
    return Response(_FAVICON.read_bytes(), media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})


def _page(request: Request) -> Page:
    return request.app.state.page


router = APIRouter()


# --- ids in paths: parsed once, here, for every route with an id -----------------------------


async def _item_id(item_id: str) -> int:
    return path_id(item_id, lambda shown: ReviewItemNotFound(f"no review item {shown}; see the queue", item_id=shown))


async def _candidate_id(candidate_id: str) -> int:
    return path_id(candidate_id, lambda shown: CandidateNotFound(f"no candidate {shown}; see the invalid tab", candidate_id=shown))


#: A review item's id in the path (1 … MAX_ID). Declare every id path parameter with one of these
#: types, never a bare ``int``: a number past the id columns' range must not reach the database.
ItemId = Annotated[int, Depends(_item_id)]
CandidateId = Annotated[int, Depends(_candidate_id)]


async def _refused_id(request: Request, exc: Exception) -> Response:
    """An id refused by :func:`path_id` before the handler ran: the same error page the handler's own errors get."""
    page = _page(request)
    status = exc.status if isinstance(exc, PageError) else exc.http_status if isinstance(exc, KbopsError) else 400
    message = exc.message if isinstance(exc, PageError) else str(exc)
    return page.problem(request, None, status, message, f"{page.base(request)}/")


# --- sign-in ---------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> Response:
    page = _page(request)

    def work(viewer: Viewer, _form: Any) -> Response:
        if viewer.account is not None:
            raise Redirect(f"{page.base(request)}/")
        with session_scope(page.settings) as db:
            no_accounts = not accounts.list_reviewers(db)
        return page.render(request, viewer, "login.html", no_accounts=no_accounts, name="")

    return await page.handle(request, work)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    page = _page(request)

    def work(viewer: Viewer, form: Any) -> Response:
        name = str(form.get("name") or "").strip()[:100]
        address = request.client.host if request.client else ""
        # Counted (and committed) before the password is checked: parallel guesses all count.
        with session_scope(page.settings) as db:
            wait = accounts.reserve_sign_in(db, name, address)
        if wait is not None:
            return page.render(request, viewer, "login.html", status=429, no_accounts=False, name=name,
                               error=f"too many failed sign-ins for {name!r} or from your address; wait {max(1, round(wait / 60))} minute(s) "
                                     "or ask an admin to reset the password")
        with session_scope(page.settings) as db:
            account = accounts.authenticate(db, name, str(form.get("password") or ""))
            if account is not None:
                accounts.sign_in_succeeded(db, name, address)
        if account is None:
            return page.render(request, viewer, "login.html", status=401, no_accounts=False, name=name, error="wrong name or password")
        viewer.sign_in(account)
        raise Redirect(f"{page.base(request)}/")

    return await page.handle(request, work, form=True, back="/login")


@router.post("/logout")
async def logout(request: Request) -> Response:
    page = _page(request)

    def work(viewer: Viewer, _form: Any) -> Response:
        if viewer.account is not None and viewer.via == "password":
            with session_scope(page.settings) as db:  # a saved copy of the cookie must not open the queue again
                accounts.end_sessions(db, viewer.account.name)
        viewer.sign_out()
        raise Redirect(f"{page.base(request)}/login")

    return await page.handle(request, work, form=True)


# --- the queue -------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
async def queue_page(
    request: Request, origin: str = "", lang: str = "", tag: str = "", warnings: str = "", page: int = 1, per_page: int = 50
) -> Response:
    pg = _page(request)

    def work(viewer: Viewer, _form: Any) -> Response:
        pg.require(request, viewer)
        filters = QueueFilters.parse(origin, lang, tag, warnings, page, per_page)
        with session_scope(pg.settings) as db:
            listing = views.queue_page(queries.open_queue(db), filters)
            items = queries.items_in_order(db, listing.page_ids)
            cards = views.cards(items, queries.card_rows(db, items))
        impacts = pg.impacts(items)
        for c in cards:
            c["impact"] = impacts.get(c["id"])
        return pg.render(request, viewer, "queue.html", tab="queue", filters=filters, query=filters.query(), items=cards,
                         total_open=listing.total_open, matching=listing.matching, page=listing.page, pages=listing.pages,
                         facets=listing.facets, page_sizes=listing.page_sizes)

    return await pg.handle(request, work)


@router.get("/items/{item_id}", response_class=HTMLResponse)
async def item_page(request: Request, item_id: ItemId) -> Response:
    page = _page(request)

    def work(viewer: Viewer, _form: Any) -> Response:
        page.require(request, viewer)
        with session_scope(page.settings) as db:
            item = get_item(db, item_id)
            card = views.cards([item], queries.card_rows(db, [item]))[0]
        card["impact"] = page.impacts([item]).get(item.id) if item.state == "open" else None
        return page.render(request, viewer, "item.html", tab="queue", item=card, filters=QueueFilters(), query="")

    return await page.handle(request, work)


@router.post("/items/{item_id}/decide")
async def decide_item(request: Request, item_id: ItemId) -> Response:
    page = _page(request)

    def work(viewer: Viewer, form: Any) -> Response:
        me = page.require(request, viewer)
        back = f"{page.base(request)}/?{return_query(form)}"
        choice = item_decision(form)
        result = pipeline.decide(page.settings, [item_id], choice.decision, by=me.name, door="web", **choice.core_args())
        if result.errors:
            for failed, error in result.errors.items():
                viewer.flash("error", f"item {failed} was not applied: {error}")
            raise Redirect(f"{back}#item-{item_id}")
        message = f"item {item_id} {_PAST[choice.decision]}"
        if choice.action == "edit":
            message += " with your edits"
        elif choice.action == "merge" and choice.merge_into:
            message += f" into {choice.merge_into}"
        elif choice.decision == "approve" and result.merged:
            message += ": it was a near-duplicate, so its question joined the existing entry as an alternate phrasing"
        viewer.flash("ok", message + " (the bot serves it from the next publish; the Decided tab shows when it is live)")
        following = whole_number(form.get("next"))
        raise Redirect(back + (f"#item-{following}" if following else ""))

    return await page.handle(request, work, form=True)


@router.post("/bulk")
async def bulk(request: Request) -> Response:
    page = _page(request)

    def work(viewer: Viewer, form: Any) -> Response:
        me = page.require(request, viewer)
        back = f"{page.base(request)}/?{return_query(form)}"
        choice = bulk_decision(form, back)
        try:
            applied, merged, errors, skipped = _decide_each(page.settings, choice.ids, choice.action, by=me.name, note=choice.note)
        except InvalidDecision as exc:  # e.g. a rejection without a reason: back to the same filtered queue
            raise PageError(exc.http_status, str(exc), back=back) from None
        joined = f" ({merged} near-duplicate(s) joined their existing entries as alternate phrasings)" if merged else ""
        viewer.flash("ok", f"{applied} item(s) {_PAST[choice.action]}{joined}")
        for message in skipped:
            viewer.flash("warn", message)
        for item_id, error in list(errors.items())[:5]:
            viewer.flash("error", f"item {item_id} was not applied: {error}")
        raise Redirect(back)

    return await page.handle(request, work, form=True)


def _decide_each(settings: Settings, ids: list[int], decision: str, *, by: str, note: str) -> tuple[int, int, dict[int, str], list[str]]:
    """Decide ``ids`` in one call; an item another reviewer took (or that is gone) is reported and left out.

    The core records a batch all or nothing and names the item that stopped it
    (``exc.data["item_id"]``): drop that one and try the rest again. Returns
    (applied, of which merged as near-duplicates, apply errors by item, skipped messages).
    """
    todo, skipped = list(ids), []
    while todo:
        try:
            result = pipeline.decide(settings, todo, decision, by=by, note=note, door="web")
        except (AlreadyDecided, ReviewItemNotFound) as exc:
            if exc.data.get("item_id") not in todo:
                raise
            todo.remove(exc.data["item_id"])
            skipped.append(str(exc))
            continue
        return result.applied, result.merged, dict(result.errors), skipped[:10]
    return 0, 0, {}, skipped[:10]


# --- other tabs --------------------------------------------------------------------------


@router.get("/invalid", response_class=HTMLResponse)
async def invalid_page(request: Request) -> Response:
    page = _page(request)

    def work(viewer: Viewer, _form: Any) -> Response:
        page.require(request, viewer)
        with session_scope(page.settings) as db:
            candidates = [views.invalid_view(c) for c in invalid_candidates(db, limit=500)]
        return page.render(request, viewer, "invalid.html", tab="invalid", candidates=candidates)

    return await page.handle(request, work)


@router.post("/invalid/{candidate_id}/resubmit")
async def resubmit(request: Request, candidate_id: CandidateId) -> Response:
    page = _page(request)

    def work(viewer: Viewer, form: Any) -> Response:
        me = page.require(request, viewer)
        fix = resubmission(form, back=f"{page.base(request)}/invalid")
        outcome = pipeline.resubmit(page.settings, candidate_id, by=me.name, question=fix.question, answer=fix.answer,
                                    template_slots=fix.template_slots, door="web")
        if outcome.status == "invalid":
            viewer.flash("warn", f"candidate {candidate_id} still fails the gate: " + "; ".join(str(r) for r in (outcome.reasons or [])))
        elif outcome.status == "queued":
            viewer.flash("ok", f"candidate {candidate_id} passed the gate and waits in the queue")
        else:
            viewer.flash("ok", f"candidate {candidate_id} resubmitted: {outcome.status}")
        raise Redirect(f"{page.base(request)}/invalid")

    return await page.handle(request, work, form=True, back="/invalid")


@router.get("/decided", response_class=HTMLResponse)
async def decided_page(request: Request) -> Response:
    page = _page(request)

    def work(viewer: Viewer, _form: Any) -> Response:
        page.require(request, viewer)
        with session_scope(page.settings) as db:
            releases = queries.activated_releases(db)
            items = [views.decided_view(r, releases) for r in queries.recently_decided(db, limit=200)]
        return page.render(request, viewer, "decided.html", tab="decided", items=items)

    return await page.handle(request, work)


@router.get("/health", response_class=HTMLResponse)
async def health_page(request: Request, days: int = 14) -> Response:
    """The KB's health (kbops.health) with its plots, drawn on the server as SVG."""
    page = _page(request)

    def work(viewer: Viewer, _form: Any) -> Response:
        page.require(request, viewer)
        span = min(max(days, 1), 90)
        with session_scope(page.settings) as db:
            report = health_report(db, page.settings, days=span, gap_limit=15).as_dict()
        return page.render(request, viewer, "health.html", tab="health", h=report, plots=_health_plots(report), days=span)

    return await page.handle(request, work)


@router.get("/gaps", response_class=HTMLResponse)
async def gaps_page(request: Request, origin: str = "", show: str = "open") -> Response:
    """Gap topics (chats and the bot's handoffs), ranked by frequency × recency, each with a form to answer it."""
    page = _page(request)

    def work(viewer: Viewer, _form: Any) -> Response:
        page.require(request, viewer)
        with session_scope(page.settings) as db:
            rows = [views.gap_view(g, rank) for g, rank in ranked_gaps(db, origin=origin if origin in ("chat", "bot") else None,
                                                                      status=None if show == "all" else "open", limit=200)]
        return page.render(request, viewer, "gaps.html", tab="gaps", gaps=rows, origin=origin, show=show)

    return await page.handle(request, work)


@router.post("/gaps/refresh")
async def gaps_refresh(request: Request) -> Response:
    page = _page(request)

    def work(viewer: Viewer, _form: Any) -> Response:
        page.require(request, viewer)
        with session_scope(page.settings) as db:
            result = refresh_bot_gaps(db, page.settings, Embedder.from_settings(page.settings))
        viewer.flash("ok", f"bot handoffs regrouped: {result.queries} question(s), {result.open} open and {result.covered} covered topic(s)")
        raise Redirect(f"{page.base(request)}/gaps")

    return await page.handle(request, work, form=True, back="/gaps")


@router.post("/gaps/{gap_id}/answer")
async def gaps_answer(request: Request, gap_id: str) -> Response:
    page = _page(request)

    def work(viewer: Viewer, form: Any) -> Response:
        me = page.require(request, viewer)
        back = f"{page.base(request)}/gaps"
        number = path_id(gap_id, lambda shown: PageError(404, f"no gap topic {shown}", back=back))
        fix = gap_answer(form, back)
        with session_scope(page.settings) as db:
            cand = answer_gap(db, page.settings, Embedder.from_settings(page.settings), number, question=fix.question, answer=fix.answer, by=me.name, door="web")
            status, cid, reasons = cand.status, cand.id, [str(r) for r in cand.reasons or []]
        if status == "invalid":
            viewer.flash("warn", f"your answer to gap {number} was refused by the gate: {'; '.join(reasons)} (fix it under Invalid candidates, #{cid})")
        else:
            viewer.flash("ok", f"your answer to gap {number} passed the gate and is {status}; the gap is covered once the KB answers it")
        raise Redirect(f"{back}#gap-{number}")

    return await page.handle(request, work, form=True, back="/gaps")


@router.post("/gaps/{gap_id}/label")
async def gaps_label(request: Request, gap_id: str) -> Response:
    """A reviewer says what a topic's questions are: an existing entry answers them, or the bot must hand them off."""
    page = _page(request)

    def work(viewer: Viewer, form: Any) -> Response:
        me = page.require(request, viewer)
        back = f"{page.base(request)}/gaps"
        number = path_id(gap_id, lambda shown: PageError(404, f"no gap topic {shown}", back=back))
        label = gap_label(form, back)
        with session_scope(page.settings) as db:
            done = label_gap(db, number, entry_key=label.entry_key, by=me.name, door="web", teach=label.teach)
        if done.entry_key:
            viewer.flash("ok", f"gap {number}: {done.phrasings} phrasing(s) labelled as answered by {done.entry_key} ({done.golden_added} new golden "
                               f"question(s))" + (f"; {len(done.taught)} added to the entry's questions, answered after the next publish" if label.teach else ""))
        else:
            viewer.flash("ok", f"gap {number} dismissed: {done.phrasings} phrasing(s) the bot must hand off ({done.golden_added} new golden question(s))")
        raise Redirect(f"{back}#gap-{number}")

    return await page.handle(request, work, form=True, back="/gaps")


@router.get("/answers", response_class=HTMLResponse)
async def answers_page(request: Request, lang: str = "") -> Response:
    """Spot check: a random sample of the bot's recent answers, each with a form for the reviewer's verdict."""
    page = _page(request)

    def work(viewer: Viewer, _form: Any) -> Response:
        page.require(request, viewer)
        with session_scope(page.settings) as db:
            rows = [i.as_dict() for i in sample_answers(db, count=SAMPLE, days=DAYS, lang=lang if lang in ("zh", "en") else None)]
        return page.render(request, viewer, "answers.html", tab="answers", answers=rows, days=DAYS)

    return await page.handle(request, work)


@router.post("/answers/{query_id}/label")
async def answers_label(request: Request, query_id: str) -> Response:
    page = _page(request)

    def work(viewer: Viewer, form: Any) -> Response:
        me = page.require(request, viewer)
        back = f"{page.base(request)}/answers"
        number = path_id(query_id, lambda shown: PageError(404, f"no logged query {shown}", back=back))
        verdict = answer_verdict(form, back)
        with session_scope(page.settings) as db:
            done = label_answer(db, number, right=verdict.right, entry_key=verdict.entry_key, by=me.name, door="web")
        viewer.flash("ok", f"answer {number}: {done.verdict}; golden question → {done.outcome}")
        raise Redirect(back)

    return await page.handle(request, work, form=True, back="/answers")


def _health_plots(h: dict[str, Any]) -> dict[str, Any]:
    """The health page's charts: handoff rate and questions per day, coverage per language, reasons, gaps, queue by reviewer,
    and the serving release's calibration curve per language (answered share and precision by confidence threshold)."""
    by_day = h["handoffs"]["by_day"]
    labels = [d["day"] for d in by_day]
    return {
        "rate": charts.time_series("Handoff rate per day", labels, {"handoff rate": [d["rate"] for d in by_day]}, percent=True),
        "volume": charts.time_series("Questions and handoffs per day", labels,
                                     {"questions": [d["questions"] for d in by_day], "handoffs": [d["handoffs"] for d in by_day]}),
        "coverage": charts.bars("Coverage by language", [(lang, v["share"]) for lang, v in h["coverage"]["by_lang"].items()], percent=True),
        "reasons": charts.bars("Handoffs by reason", [(k, float(v)) for k, v in h["handoffs"]["by_reason"].items()]),
        "gaps": charts.bars("Top gap topics (asked)", [(g["question"], float(g["support"])) for g in h["gaps"][:10]]),
        "reviewers": charts.bars("Decisions per reviewer", [(k, float(v)) for k, v in h["queue"]["decided_by"].items()]),
        "calibration": [_calibration_plot(lang, c) for lang, c in (h["calibration"] or {"languages": {}})["languages"].items() if c["curve"]],
    }


def _calibration_plot(lang: str, c: dict[str, Any]) -> Any:
    """One language's calibration curve: the share answered and its precision for each confidence threshold."""
    at = f"answers {c['answered']:.0%} at {c['precision']:.0%} precision, " if c["answered"] is not None else ""
    title = f"Calibration, {lang}: {at}threshold {c['threshold']:.2f} ({c['source']})"
    labels = [f"{t:.2f}" for t, _, _ in c["curve"]]
    return charts.time_series(title, labels, {"answered": [a for _, a, _ in c["curve"]], "precision": [p for _, _, p in c["curve"]]}, percent=True)


# --- admin ----------------------------------------------------------------------------------


@router.get("/admin", response_class=HTMLResponse)
async def admin_page(request: Request) -> Response:
    page = _page(request)

    def work(viewer: Viewer, _form: Any) -> Response:
        page.require(request, viewer, "admin")
        s = page.settings
        with session_scope(s) as db:
            reviewers = accounts.list_reviewers(db)
        return page.render(request, viewer, "admin.html", tab="admin", accounts=reviewers, roles=accounts.ROLES, rules=s.rules,
                           trusted_header=s.review_trusted_header, trusted_proxies=s.review_trusted_proxies)

    return await page.handle(request, work)


@router.post("/admin/accounts")
async def admin_accounts(request: Request) -> Response:
    page = _page(request)

    def work(viewer: Viewer, form: Any) -> Response:
        me = page.require(request, viewer, "admin")
        back = f"{page.base(request)}/admin"
        change = account_change(form, back)
        if change.op == "remove" and change.name == me.name:
            raise PageError(400, "you cannot remove your own account while signed in with it", back=back)
        with session_scope(page.settings) as db:
            if change.op == "add":
                accounts.add_reviewer(db, change.name, change.password or None, role=change.role or "reviewer", by=me.name, door="web")
                done = f"account {change.name} added"
            elif change.op == "remove":
                accounts.remove_reviewer(db, change.name, by=me.name, door="web")
                done = f"account {change.name} removed"
            elif change.op == "role":
                accounts.set_role(db, change.name, change.role, by=me.name, door="web")
                done = f"{change.name} is now {change.role}"
            else:
                accounts.set_password(db, change.name, change.password, by=me.name, door="web")
                done = f"password of {change.name} changed; their sessions ended"
            if change.op in ("role", "password") and change.name == me.name and viewer.via == "password":
                # The change ended every session of this account; the admin who made it stays signed in here.
                renewed = accounts.get_reviewer(db, me.name)
                if renewed is not None:
                    viewer.sign_in(renewed)
        viewer.flash("ok", done)  # after the commit: a change that failed is not reported as done
        raise Redirect(back)

    return await page.handle(request, work, form=True, back="/admin")
