"""The kbops exception tree.

Every error kbops raises on purpose derives from :class:`KbopsError` and says
two things: what is wrong (naming the bad value) and what to do about it.

    KbopsError
    ├── TerminalError            fix the input or configuration; retrying will not help
    │   ├── ConfigError          a setting, config file or path is wrong
    │   │   └── GoldenNotFound   (also a NotFound) no golden question has that id
    │   ├── SourceError          a source cannot be read at all (missing file, bad mapping)
    │   ├── NotFound             a named thing (review item, candidate, entry…) does not exist
    │   ├── ReviewError          a review action cannot be carried out
    │   │   ├── ReviewItemNotFound   (also a NotFound)
    │   │   ├── CandidateNotFound    (also a NotFound) no candidate has that id
    │   │   ├── AlreadyDecided   another reviewer decided first (optimistic concurrency)
    │   │   ├── InvalidDecision  the decision itself is malformed (no reviewer, bad status…)
    │   │   └── AccountError     a reviewer account cannot be created, changed or found
    │   ├── ReleaseError         an index release is missing, corrupt or incompatible
    │   │   ├── GoldenRegression a new release would answer fewer golden questions than the active one
    │   │   └── ReleaseRefused   a new release is empty or drops too much of the serving one (--force overrides)
    │   └── QueryError           a bot query is malformed (empty, too long, bad top_k)
    └── TransientError           the environment failed (database locked, disk busy); retry

Errors carry data: keyword arguments given to the constructor (the ids and
values the message names) are kept in ``.data``, so a door can show or log
them without parsing the message. Each class names its HTTP status
(``http_status``); doors map errors by class, never by name:

* the CLI prints ``error: <message>`` and exits 2 (any :class:`KbopsError`);
* the Airflow adapter fails the task without retries for terminal errors and
  lets Airflow retry transient ones;
* the HTTP doors answer ``http_status`` with the same message — 4xx for what
  the caller can fix, 503 for what may pass, 500 only for server configuration.

Malformed *rows* are not errors: they are quarantined with a reason and the
rest of the batch proceeds.
"""

from __future__ import annotations

from typing import Any


class KbopsError(Exception):
    """Base of every error kbops raises on purpose.

    ``KbopsError("no review item 7", item_id=7)``: the message is for people,
    ``data`` for code.
    """

    #: Whether retrying the same call may succeed.
    transient: bool = False
    #: What an HTTP door answers for it.
    http_status: int = 500

    def __init__(self, message: str = "", **data: Any):
        super().__init__(message)
        self.data: dict[str, Any] = data


class TerminalError(KbopsError):
    """Retrying will not help: the input or configuration must change."""

    http_status = 400


class TransientError(KbopsError):
    """The environment failed; the same call may succeed later."""

    transient = True
    http_status = 503


class ConfigError(TerminalError):
    """A setting, config file or path is wrong (the operator's to fix, not an HTTP caller's)."""

    http_status = 500


class NotFound(TerminalError):
    """A thing named by id or key does not exist."""

    http_status = 404


class SourceError(TerminalError):
    """A configured source cannot be read at all."""


class ReviewError(TerminalError):
    """A review action cannot be carried out."""


class ReviewItemNotFound(ReviewError, NotFound):
    """No review item has the given id (``data["item_id"]``)."""

    http_status = 404


class CandidateNotFound(ReviewError, NotFound):
    """No candidate has the given id (``data["candidate_id"]``)."""

    http_status = 404


class AlreadyDecided(ReviewError):
    """Someone else decided the item first (``data["item_id"]``, ``data["decided_by"]``)."""

    http_status = 409


class InvalidDecision(ReviewError):
    """The decision is malformed (unknown status, no reviewer, empty reason)."""


class AccountError(ReviewError):
    """A reviewer account cannot be created, changed or found (bad name, weak password…)."""


class ReleaseError(TerminalError):
    """An index release is missing, corrupt or incompatible with this server."""

    http_status = 503


class GoldenRegression(ReleaseError):
    """A new release answers fewer golden questions correctly than the active one."""

    http_status = 409


class ReleaseRefused(ReleaseError):
    """A release is not activated: it is empty, or it drops more than ``max_release_drop_share`` of the
    serving release's entries (``data``: release_id, serving, reason "empty"/"shrink", entries,
    serving_entries, dropped, drop_share, max_drop_share). The serving release stays; ``--force`` overrides."""

    http_status = 409


class GoldenNotFound(ConfigError, NotFound):
    """No golden question has that id (``data["golden_id"]``)."""

    http_status = 404


class QueryError(TerminalError):
    """A bot query is malformed."""

    http_status = 400


class GapNotFound(ReviewError, NotFound):
    """No gap topic has the given id (``data["gap_id"]``)."""

    http_status = 404


class QueryNotFound(ReviewError, NotFound):
    """No logged query has the given id (``data["query_id"]``)."""

    http_status = 404
