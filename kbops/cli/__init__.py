"""The ``kbops`` command line (console script ``kbops.cli:main``).

Every command takes its configuration from one Settings object (environment
variables ``KBOPS_*`` and an optional kbops.toml). Errors a user can fix print
one line, ``error: …``, and exit 2; they never print a traceback.

Layout — one module per command group; each defines ``register(subparsers)``
with every command's arguments right beside its handler:

    app.py            the parser (global ``--config``), ``main``, the error mapping
    _base.py          add_command / add_group, the ``--json`` flag and ``emit``, ``short``
    pipeline_cmds.py  init, sync, publish, releases, rollback
    review.py         review list | show | approve | reject | edit | merge | gaps | invalid | resubmit | report | log
    golden.py         golden add | list | remove | check
    bot.py            ask, serve
    data.py           import, export
    reviewers.py      reviewers add | list | remove | passwd | role
    sources.py        sources status

Why argparse: it is in the standard library, so the CLI adds no dependency
(a bot-API-only host installs no click/typer), and subcommand modules with a
``register(subparsers)`` function give what the issue asks for — options
beside their command — without decorators or import-time side effects. The
flags, help texts and exit codes of the old single-module CLI carry over
unchanged, which a rewrite on click or Typer would not have guaranteed.

Output: a command with ``--json`` prints its result through
:func:`kbops.cli._base.emit` (one JSON encoding for all of them); the human
form is a small ``_print_…`` function beside the handler.

Errors (:func:`kbops.cli.app.report_error`): any :class:`~kbops.errors.KbopsError`
prints ``error: <message>`` on stderr and exits 2 (a transient one adds
"(retry)"); argparse usage errors exit 2 as argparse does; Ctrl-C exits 130.
Errors are mapped by class, never by name.

Sessions: handlers that read open ``with session_scope(settings) as db:`` and
call the db-level API; handlers that change the KB call the settings-level
doors in :mod:`kbops.pipeline`, which open their own.

Imports sit at the top of each module, except these, imported inside the
handlers that use them (the layer test allows lazy imports in ``kbops/cli/``):

* :mod:`kbops.pipeline` (sync, publish, rollback, review approve/reject/edit/
  merge/resubmit, golden check, import, export): it pulls every stage — the
  validation gate (great-expectations), the index builder (FAISS, the
  embedding model) — which ``kbops --help`` and the read-only commands must
  not wait for;
* :mod:`kbops.serve.retriever` (ask) and :mod:`kbops.serve.api` with
  ``uvicorn`` (serve): the ``serve`` extra, which a pipeline-only host may not
  install; ``serve`` without it is a one-line ``error:``.

Neither this package nor any command imports Airflow or
:mod:`kbops.airflow_adapter`: ``ask``, ``serve`` and ``releases`` run on a
host with only the ``serve`` extra.
"""

from __future__ import annotations

from kbops.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
