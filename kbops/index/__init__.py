"""Index: embedding, similarity, releases and the bot's scoring.

* :mod:`~kbops.index.embedder` — THE embedder (``Embedder.from_settings``) and its cache;
* :mod:`~kbops.index.similarity` — the one fused question similarity;
* :mod:`~kbops.index.lexical` — the BM25 / TF-IDF lexical channel;
* :mod:`~kbops.index.search` — ``answer_from``: ranking and handoff, shared by serving and golden checks;
* :mod:`~kbops.index.release` — FAISS release directories, the ACTIVE pointer, atomic swap;
* :mod:`~kbops.index.publish` — build and activate releases from the servable KB;
* :mod:`~kbops.index.golden` — golden questions that gate activation.
"""
