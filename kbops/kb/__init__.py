"""The ground floor: every change of KB state, in one place.

Stage packages (sources, extract, validate, index) and the doors' review
logic change knowledge only through these modules, each taking the caller's
``db`` session and never opening one:

* :mod:`~kbops.kb.candidates` — propose candidates (the typed ``Evidence`` contract);
* :mod:`~kbops.kb.entries` — approve, merge, retire and withdraw entries;
* :mod:`~kbops.kb.routing` — auto-approval rules, review priority, queueing,
  and the one check of a reviewer's decision every door calls;
* :mod:`~kbops.kb.audit` — the append-only audit log;
* :mod:`~kbops.kb.runs` — the run ledger (``with step_run(db, "validate", result):``).

It imports only ``schema``, ``text``, ``errors``, ``config`` (a layer test
keeps it so), which is what lets every stage build on it without circles.
"""
