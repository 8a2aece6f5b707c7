"""The kbops exception tree.

Every error kbops raises on purpose derives from :class:`KbopsError` and says
two things: what is wrong (naming the bad value) and what to do about it.

    KbopsError
    ├── TerminalError            fix the input or configuration; retrying will not help
    │   ├── ConfigError          a setting, config file or path is wrong
    │   ├── SourceError          a source cannot be read at all (missing file, bad mapping)
    │   ├── ReviewError          a review action cannot be carried out
    │   │   ├── ReviewItemNotFound
    │   │   ├── CandidateNotFound  no candidate has that id (resubmitting a refused one)
    │   │   ├── AlreadyDecided   another reviewer decided first (optimistic concurrency)
    │   │   ├── InvalidDecision  the decision itself is malformed (no reviewer, bad status…)
    │   │   └── AccountError     a reviewer account cannot be created, changed or found
    │   ├── ReleaseError         an index release is missing, corrupt or incompatible
    │   │   └── GoldenRegression a new release would answer fewer golden questions than the active one
    │   └── QueryError           a bot query is malformed (empty, too long, bad top_k)
    └── TransientError           the environment failed (database locked, disk busy); retry

Edges translate them: the CLI prints ``error: <message>`` and exits 2, the
Airflow adapter fails the task without retries for terminal errors, and the
HTTP API answers 4xx with the same message. Malformed *rows* are not errors:
they are quarantined with a reason and the rest of the batch proceeds.
"""

from __future__ import annotations


class KbopsError(Exception):
    """Base of every error kbops raises on purpose."""

    #: Whether retrying the same call may succeed.
    transient: bool = False


class TerminalError(KbopsError):
    """Retrying will not help: the input or configuration must change."""


class TransientError(KbopsError):
    """The environment failed; the same call may succeed later."""

    transient = True


class ConfigError(TerminalError):
    """A setting, config file or path is wrong."""


class SourceError(TerminalError):
    """A configured source cannot be read at all."""


class ReviewError(TerminalError):
    """A review action cannot be carried out."""


class ReviewItemNotFound(ReviewError):
    """No review item has the given id."""


class CandidateNotFound(ReviewError):
    """No candidate has the given id."""


class AlreadyDecided(ReviewError):
    """Someone else decided the item first."""


class InvalidDecision(ReviewError):
    """The decision is malformed (unknown status, no reviewer, empty reason)."""


class AccountError(ReviewError):
    """A reviewer account cannot be created, changed or found (bad name, weak password…)."""


class ReleaseError(TerminalError):
    """An index release is missing, corrupt or incompatible with this server."""


class GoldenRegression(ReleaseError):
    """A new release answers fewer golden questions correctly than the active one."""


class QueryError(TerminalError):
    """A bot query is malformed."""
