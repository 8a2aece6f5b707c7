"""The review page: the web door to ``review_items``, served next to the bot API.

``create_review_app(settings)`` is a small FastAPI application mounted at
``/review`` by :func:`kbops.serve.api.create_app`. It renders HTML on the
server (Jinja2 with autoescaping; templates and one CSS/JS file ship in
kbops/serve/templates and kbops/serve/static, nothing is fetched from a
network) and decides through the same core as the CLI
(:func:`kbops.pipeline.decide`, door ``web``), so the decision rules,
optimistic concurrency, validation of edits and the audit log are shared.

Modules, one hop each:

* :mod:`.auth`    signed, revocable session cookie, trusted proxy header, CSRF, sign-in throttle (counted in the KB: kbops.review.accounts);
* :mod:`.forms`   reading query parameters and form fields (the page's own checks only);
* :mod:`.queries` the page's reads, batched per page (take the handler's session);
* :mod:`.views`   view-models: queue facets and paging, item cards, evidence, diffs (pure);
* :mod:`.routes`  the FastAPI routes: open a session or call :mod:`kbops.pipeline`, render.

Every piece of chat, record and candidate text is rendered escaped; a
Content-Security-Policy without inline scripts backs that up. Queries are
built with SQLAlchemy expressions only. Errors are pages, never tracebacks:
each :class:`~kbops.errors.KbopsError` answers its ``http_status`` (unknown
item → 404, a decision the core refuses → 400, a reviewer who lost the race →
409 "already decided by …"); a malformed form → 400; a missing or wrong CSRF
token → 403.
"""

from kbops.serve.review_web.auth import COOKIE, Viewer, sign, unsign
from kbops.serve.review_web.routes import create_review_app

__all__ = ["COOKIE", "Viewer", "create_review_app", "sign", "unsign"]
