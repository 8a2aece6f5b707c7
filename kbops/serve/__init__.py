"""Serve: the HTTP doors (needs the ``serve`` extra).

* :mod:`~kbops.serve.api` — the bot API (``POST /search``, ``/release``, ``/healthz``);
* :mod:`~kbops.serve.retriever` — keeps the active release loaded and answers through
  :func:`kbops.index.search.answer_from`; logs queries;
* :mod:`~kbops.serve.review_web` — the review page (routes / forms / views / auth).
"""
