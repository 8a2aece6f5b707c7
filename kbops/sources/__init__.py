"""Sources: read upstream records, documents and chat logs, and mirror them into the KB.

* :mod:`~kbops.sources.config` — ``sources.toml``: what each source is and how to read it;
* :mod:`~kbops.sources.files`, :mod:`~kbops.sources.sql`, :mod:`~kbops.sources.chats` — readers;
* :mod:`~kbops.sources.sync` — change detection, versions and tombstones (withdrawing
  dependent entries through :mod:`kbops.kb.entries`);
* :mod:`~kbops.sources.status` — ``kbops sources status``.
"""
