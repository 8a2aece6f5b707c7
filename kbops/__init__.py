"""kbops: keep a customer-service bot's knowledge base true and complete.

The loop: sources → sync → extract → validate → review → publish → retrieve.
Every step is a plain function (see :mod:`kbops.pipeline`) taking one
:class:`kbops.config.Settings`; the Airflow DAGs, the CLI and the tests call
the same functions.
"""

__version__ = "0.1.0"
