"""Hybrid retrieval and handoff on a published sample-store KB."""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import select, update

from kbops.config import Settings, usable_cores
from kbops.db import session_scope
from kbops.errors import ConfigError, QueryError, TransientError
from kbops.pipeline import activate_release, build_release, decide, ingest
from kbops.schema import KbEntry, QueryLogEntry
from kbops.serve.query_log import log_answer
from kbops.serve.retriever import QueryBatcher, QueryVectors, Retriever
from tests.helpers import list_items


@pytest.fixture
def retriever(settings, embedder):
    ingest(settings)
    decide(settings, [i.id for i in list_items(settings)], "approve", by="lin")
    activate_release(settings, build_release(settings, embedder=embedder).release_id)
    return Retriever(settings, embedder=embedder)


@pytest.mark.parametrize(
    "question, entry_key",
    [
        ("鹿米智能电饭煲多少钱？", "product:LM-1001:price:zh"),
        ("How much is the Lumi Smart Rice Cooker?", "product:LM-1001:price:en"),
        ("退款多久能到账", "policy:"),
        ("How long does a refund take?", "policy:"),
        ("支持货到付款吗", "chat:zh:"),
        ("Do you deliver to Hong Kong?", "chat:en:"),
    ],
)
def test_answers_in_chinese_and_english(retriever, question, entry_key):
    answer = retriever.search(question)
    assert not answer.handoff, answer
    assert answer.top.entry_key.startswith(entry_key)


@pytest.mark.parametrize("question", ["你们老板最喜欢什么颜色？", "Can I pay with seashells on Mars?", "今天天气怎么样"])
def test_unanswerable_questions_are_handed_off(retriever, question):
    answer = retriever.search(question)
    assert answer.handoff and answer.reason == "no_match"
    assert answer.as_dict()["answer"] is None


@pytest.mark.parametrize("query, top_k", [("", 3), ("x" * 100_000, 3), ("ok", 0), ("ok", -1), ("ok", 10**9)])
def test_malformed_queries_get_a_clear_error(retriever, query, top_k):
    with pytest.raises(QueryError):
        retriever.search(query, top_k=top_k)


def test_filters_by_language(retriever):
    answer = retriever.search("鹿米智能电饭煲 3L", top_k=5, lang="en")
    assert all(h.lang == "en" for h in answer.hits)


def test_an_expired_entry_is_not_served_even_without_a_publish(retriever, settings):
    key = "product:LM-1001:price:zh"
    with session_scope(settings) as db:
        entry = db.scalar(select(KbEntry).where(KbEntry.entry_key == key))
        expires = datetime.now(UTC) + timedelta(hours=1)
        db.execute(update(KbEntry).where(KbEntry.id == entry.id).values(valid_to=expires))
    activate_release(settings, build_release(settings, embedder=retriever.embedder).release_id)
    assert retriever.search("鹿米智能电饭煲多少钱？").top.entry_key == key
    later = retriever.search("鹿米智能电饭煲多少钱？", now=expires + timedelta(minutes=1))
    assert all(h.entry_key != key for h in later.hits)


def test_query_log_is_scrubbed(retriever, settings):
    log_answer(settings, retriever.search("我的手机13812345678，退款多久到账？"))
    with session_scope(settings) as db:
        logged = db.scalar(select(QueryLogEntry.question).order_by(QueryLogEntry.id.desc()).limit(1))
    assert "13812345678" not in logged and "[PHONE]" in logged


def test_what_ranking_derives_from_a_release_is_computed_at_load_not_by_the_first_query(retriever):
    """Identifiers and product vocabularies of the whole catalogue come with the load (a background
    thread in the server); the first customer's query does not pay for tokenising the catalogue."""
    loaded = retriever.release()
    assert set(loaded.memo["identifiers"]) == set(loaded.entries)
    assert loaded.memo["identifiers"][next(e for e, v in loaded.entries.items() if v["entry_key"] == "product:LM-1001:price:zh")] >= {"lm1001", "3l"}
    assert "cooker" in loaded.memo["kind_vocabulary"][("price", "en")] and loaded.memo["tokens"] == {}


def test_a_repeated_question_reuses_its_vector_and_answers_the_same(retriever, settings, embedder):
    """The bot's query-vector memory: the second asking skips the model; the answer is identical to one computed
    without any memory, and the vector handed out cannot be altered by a caller."""
    question = "How long does a refund take?"
    first = retriever.search(question)
    misses = retriever.queries.misses
    again = retriever.search(question)
    assert retriever.queries.misses == misses and retriever.queries.hits >= 1
    uncached = Retriever(dataclasses.replace(settings, query_cache=0), embedder=embedder).search(question)
    assert again.as_dict() == first.as_dict() == uncached.as_dict()
    vec = retriever.queries.encode_query(question)
    with pytest.raises(ValueError):
        vec[0] = 1.0


def test_query_vector_memory_keeps_the_most_recent_questions(embedder):
    memory = QueryVectors(embedder, size=2)
    for q in ("退款多久到账", "how much is shipping", "退款多久到账", "do you ship abroad"):
        memory.encode_query(q)
    assert list(memory._vectors) == ["退款多久到账", "do you ship abroad"]  # the least recently asked left
    assert (memory.hits, memory.misses) == (1, 3)
    np.testing.assert_array_equal(memory.encode_query("how much is shipping"), embedder.encode_query("how much is shipping"))
    assert memory.dim == embedder.dim  # everything else is the embedder's
    none = QueryVectors(embedder, size=0)
    none.encode_query("退款多久到账")
    none.encode_query("退款多久到账")
    assert (none.hits, none.misses, len(none._vectors)) == (0, 2, 0)


class _HeldEmbedder:
    """The real embedder, whose first model run waits until ``waiting`` more questions have queued behind it
    in ``batcher`` (so the test knows the batch that forms), counting the runs of each kind."""

    def __init__(self, embedder, waiting: int):
        self.embedder, self.waiting, self.batcher = embedder, waiting, None
        self.single, self.batches = [], []

    def encode_query(self, text):
        if not self.single and not self.batches:
            deadline = time.monotonic() + 10
            while len(self.batcher._queue) < self.waiting and time.monotonic() < deadline:
                time.sleep(0.001)
        self.single.append(text)
        return self.embedder.encode_query(text)

    def encode_query_batch(self, texts):
        self.batches.append(list(texts))
        if any("boom" in t for t in texts):
            raise TransientError("the model run failed")
        return self.embedder.encode_query_batch(texts)


QUESTIONS = [f"question number {i} about shipping to city {i}" for i in range(13)]


def _ask_together(batcher, texts):
    """Ask every text from its own thread at once; the vectors (or errors) in order."""
    out: list = [None] * len(texts)

    def ask(i):
        try:
            out[i] = batcher.encode_query(texts[i])
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            out[i] = exc

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(texts))]
    threads[0].start()
    time.sleep(0.05)  # the first question starts the first run; the others arrive while it runs
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join(30)
    return out


def test_questions_that_arrive_together_are_encoded_in_one_run(embedder):
    """While one question's model run is under way, the next 12 queue and go into the next runs together
    (at most 8 per run here); every caller gets its own question's vector, as if encoded alone."""
    held = _HeldEmbedder(embedder, waiting=12)
    batcher = held.batcher = QueryBatcher(held, max_batch=8)
    vectors = _ask_together(batcher, QUESTIONS)
    assert held.single == QUESTIONS[:1]  # the first question alone: nothing was waiting when it came
    assert sorted(len(b) for b in held.batches) == [4, 8]  # then the 12 that queued behind it, 8 + 4
    assert sorted(t for b in held.batches for t in b) == sorted(QUESTIONS[1:])
    assert (batcher.runs, batcher.encoded) == (3, 13)
    for text, vec in zip(QUESTIONS, vectors):
        assert vec.shape == (1, embedder.dim)
        np.testing.assert_allclose(vec, embedder.encode_query(text), atol=1e-5)


def test_a_lone_question_is_encoded_alone_at_once(embedder):
    held = _HeldEmbedder(embedder, waiting=0)
    batcher = held.batcher = QueryBatcher(held, max_batch=16)
    started = time.perf_counter()
    vec = batcher.encode_query("How long does a refund take?")
    assert time.perf_counter() - started < 5 and held.single == ["How long does a refund take?"] and not held.batches
    np.testing.assert_array_equal(vec, embedder.encode_query("How long does a refund take?"))


def test_a_failed_run_fails_its_questions_and_the_next_run_proceeds(embedder):
    held = _HeldEmbedder(embedder, waiting=4)
    batcher = held.batcher = QueryBatcher(held, max_batch=8)
    out = _ask_together(batcher, ["first question", "boom one", "second", "third", "fourth"])
    assert not isinstance(out[0], Exception)
    assert all(isinstance(o, TransientError) for o in out[1:])  # the batch that failed: every request gets the error
    assert not batcher._running and not batcher._queue
    np.testing.assert_allclose(batcher.encode_query("after the failure"), embedder.encode_query("after the failure"), atol=1e-5)


def test_the_retriever_batches_its_query_vectors_as_settings_say(retriever, settings, embedder):
    assert retriever.queries.batcher.max_batch == settings.query_batch == 16
    alone = Retriever(dataclasses.replace(settings, query_batch=1), embedder=embedder)
    assert alone.queries.batcher.max_batch == 1
    assert alone.search("How long does a refund take?").as_dict() == retriever.search("How long does a refund take?").as_dict()


class _SlowEmbedder:
    """The real embedder, each query's run held until ``release`` is set, recording the thread that ran it."""

    def __init__(self, embedder):
        self.embedder, self.release, self.threads = embedder, threading.Event(), []

    def encode_query(self, text):
        self.threads.append(threading.current_thread().name)
        self.release.wait(10)
        if "boom" in text:
            raise TransientError("the model run failed")
        return self.embedder.encode_query(text)


def test_a_question_is_encoded_on_a_helper_while_its_caller_works_and_inline_when_none_is_free(embedder):
    """encode_query_soon: with a helper free the question is encoded on it (the caller goes on with other work
    meanwhile); with every helper busy, or none configured, the caller encodes it itself when it takes the vector.
    Each lookup is counted once, the vector is encode_query's, a failure reaches the caller, and a remembered
    question needs no thread at all."""
    slow = _SlowEmbedder(embedder)
    lookups: list[bool] = []
    memory = QueryVectors(slow, size=8, on_lookup=lookups.append, helpers=1)
    first = memory.encode_query_soon("How long does a refund take?")
    deadline = time.monotonic() + 10
    while not slow.threads and time.monotonic() < deadline:  # started before the caller asked for the vector
        time.sleep(0.001)
    assert slow.threads == ["kbops-query-vector_0"]
    second = memory.encode_query_soon("Do you ship abroad?")  # the only helper is busy: encoded in the caller's thread
    assert len(slow.threads) == 1
    slow.release.set()
    np.testing.assert_allclose(first(), embedder.encode_query("How long does a refund take?"), atol=1e-5)
    np.testing.assert_allclose(second(), embedder.encode_query("Do you ship abroad?"), atol=1e-5)
    assert slow.threads[1] == threading.current_thread().name
    again = memory.encode_query_soon("Do you ship abroad?")
    assert len(slow.threads) == 2 and again() is memory.encode_query("Do you ship abroad?")
    assert lookups == [False, False, True, True] and (memory.hits, memory.misses) == (2, 2)
    with pytest.raises(TransientError):
        memory.encode_query_soon("boom")()
    third = memory.encode_query_soon("after the failure")  # the failed run gave its helper back
    third()
    assert slow.threads[-1] == "kbops-query-vector_0"
    memory.close()
    memory._pool = ThreadPoolExecutor(1)
    memory._pool.shutdown()  # closed between the lookup and the hand-over: the caller encodes it
    memory.encode_query_soon("closed meanwhile")()
    assert slow.threads[-1] == threading.current_thread().name
    alone = QueryVectors(slow, size=8, helpers=0)
    alone.encode_query_soon("How much is shipping?")()
    assert slow.threads[-1] == threading.current_thread().name


def test_the_retriever_embeds_on_a_helper_and_answers_as_without(retriever, settings, embedder):
    """The bot's own path: a question's vector comes from a helper thread (this machine has cores to spare, or
    none is used), and the answer is the one computed with every question encoded in the request's thread."""
    question = "How long does a refund take?"
    inline = Retriever(settings, embedder=embedder)
    inline.queries.helpers = 0
    assert retriever.search(question).as_dict() == inline.search(question).as_dict()
    assert retriever.queries.helpers == usable_cores() - 1
    assert (retriever.queries._pool is not None) == (retriever.queries.helpers > 0) and inline.queries._pool is None
    retriever.close()
    assert retriever.queries._pool is None


def test_a_question_the_chinese_reader_reads_is_encoded_by_its_caller(embedder):
    """The reader's 1.5 ms are about what the hop to a helper costs: no helper for them (README, "Measured", query latency)."""
    slow = _SlowEmbedder(embedder)
    slow.release.set()
    slow.reads_with_main_model = embedder.reads_with_main_model
    memory = QueryVectors(slow, size=8, helpers=1)
    memory.encode_query_soon("退款多久到账")()
    memory.encode_query_soon("How long does a refund take?")()
    assert slow.threads == [threading.current_thread().name, "kbops-query-vector_0"]
    assert embedder.reads_with_main_model("How long does a refund take?") and not embedder.reads_with_main_model("退款多久到账")
    memory.close()


def test_query_helpers_are_a_setting(settings, embedder, tmp_path):
    """KBOPS_QUERY_HELPERS: 0 embeds every question in its request's thread (an operator pinning one worker per
    core may want that); unset, one fewer than the usable cores; a negative or non-number is refused with the fix."""
    assert Retriever(settings, embedder=embedder).queries.helpers == usable_cores() - 1
    none = Settings.load(env={"KBOPS_HOME": str(tmp_path), "KBOPS_QUERY_HELPERS": "0"}, config_file=None)
    assert none.query_helpers == 0 and Retriever(none, embedder=embedder).queries.helpers == 0
    assert Retriever(dataclasses.replace(settings, query_helpers=3), embedder=embedder).queries.helpers == 3
    for bad in ("-1", "two"):
        with pytest.raises(ConfigError, match="KBOPS_QUERY_HELPERS"):
            Settings.load(env={"KBOPS_QUERY_HELPERS": bad}, config_file=None)
