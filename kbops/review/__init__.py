"""What the review doors (CLI, web page, SQL) share, above the KB core.

* :mod:`~kbops.review.queue` — reading the queue, recording a reviewer's
  decision (optimistic concurrency) and applying it (re-checked by the gate);
* :mod:`~kbops.review.resubmit` — fixing a refused candidate and running it
  through the gate and routing again;
* :mod:`~kbops.review.accounts` — reviewer accounts and sign-in.

Routing and the rules themselves are KB state: :mod:`kbops.kb.routing`.
Every function takes the door's session.
"""
