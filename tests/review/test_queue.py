"""The review table and its doors: routing, CLI decisions, the SQL door, audit, concurrency."""

from __future__ import annotations

import math
import threading

import pytest
from sqlalchemy import select, text, update

from kbops.db import engine_for, session_scope
from kbops.errors import AlreadyDecided, InvalidDecision, ReviewItemNotFound
from kbops.pipeline import apply_decisions, decide, extract_candidates, route_candidates, sync_sources, validate_candidates
from kbops.schema import AuditEvent, Candidate, KbEntry, ReviewItem
from tests.helpers import list_items
from tests.review.conftest import entry_by_key


def test_structured_facts_are_auto_approved_and_the_rest_queued(queued):
    s = queued
    price = entry_by_key(s, "product:LM-1001:price:zh")
    assert price is not None and price.status == "active" and price.approved_by == "rule:structured-facts"
    assert "299.00" in price.answer
    items = list_items(s)
    assert items and {i.origin for i in items} == {"policy", "chat"}
    assert items == sorted(items, key=lambda i: -i.priority)
    with session_scope(s) as db:
        assert db.scalar(select(AuditEvent).where(AuditEvent.actor == "rule:structured-facts")) is not None


def test_approve_reject_and_edit_through_the_cli_path(queued):
    s = queued
    a, b, c = list_items(s)[:3]
    assert decide(s, [a.id], "approve", by="lin").approved == 1
    assert decide(s, [b.id], "reject", by="lin", note="too specific").rejected == 1
    assert decide(s, [c.id], "approve", by="lin", answer="改过的答案：请在订单详情页申请。" if c.lang == "zh" else "Edited: apply in the order details page.").approved == 1
    assert entry_by_key(s, a.entry_key).status == "active"
    assert entry_by_key(s, b.entry_key) is None
    assert entry_by_key(s, c.entry_key).answer.startswith(("改过的答案", "Edited"))
    with session_scope(s) as db:
        actions = [e.action for e in db.scalars(select(AuditEvent).where(AuditEvent.door == "cli").order_by(AuditEvent.id))]
    assert actions == ["approve", "reject", "edit_approve"]


def test_decision_mistakes_are_refused_with_clear_errors(queued):
    s = queued
    item = list_items(s)[0]
    with pytest.raises(InvalidDecision, match="--by"):
        decide(s, [item.id], "approve", by=" ")
    with pytest.raises(InvalidDecision, match="reason"):
        decide(s, [item.id], "reject", by="lin")
    with pytest.raises(ReviewItemNotFound, match="99999"):
        decide(s, [99999], "approve", by="lin")
    decide(s, [item.id], "approve", by="lin")
    with pytest.raises(AlreadyDecided, match="lin"):
        decide(s, [item.id], "approve", by="wang")


def test_an_edited_answer_that_fails_validation_is_not_applied(queued):
    s = queued
    item = list_items(s)[0]
    result = decide(s, [item.id], "approve", by="lin", answer="请拨打13812345678联系我们的客服人员处理。")
    assert result.approved == 0 and "private_data" in result.errors[item.id]
    with session_scope(s) as db:
        row = db.get(ReviewItem, item.id)
        assert row.state == "open" and "private_data" in row.apply_error
    assert entry_by_key(s, item.entry_key) is None


def test_sql_door_valid_and_invalid_decisions(queued):
    s = queued
    good, bad_status, no_name = list_items(s)[:3]
    with engine_for(s).begin() as conn:
        conn.execute(text("UPDATE review_items SET decision = 'approve', decided_by = 'zhao' WHERE id = :i"), {"i": good.id})
        conn.execute(text("UPDATE review_items SET decision = 'maybe', decided_by = 'zhao' WHERE id = :i"), {"i": bad_status.id})
        conn.execute(text("UPDATE review_items SET decision = 'approve' WHERE id = :i"), {"i": no_name.id})
    result = apply_decisions(s)
    assert result.approved == 1
    assert set(result.errors) == {bad_status.id, no_name.id}
    assert "maybe" in result.errors[bad_status.id] and "decided_by" in result.errors[no_name.id]
    assert entry_by_key(s, good.entry_key).approved_via == "sql"
    with session_scope(s) as db:
        assert db.get(ReviewItem, bad_status.id).state == "open"
        # Fixing the row through SQL lets the next apply succeed.
        db.execute(update(ReviewItem).where(ReviewItem.id == bad_status.id).values(decision="approve"))
    assert apply_decisions(s).approved == 1


def test_two_reviewers_deciding_at_once_exactly_one_wins(queued):
    s = queued
    item = list_items(s)[0]
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def reviewer(name: str) -> None:
        barrier.wait()
        try:
            decide(s, [item.id], "approve", by=name)
            outcomes.append("won")
        except AlreadyDecided as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=reviewer, args=(n,)) for n in ("lin", "wang")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("won") == 1
    assert any("already decided" in o for o in outcomes)
    with session_scope(s) as db:
        assert db.scalar(select(Candidate.status).where(Candidate.id == item.candidate_id)) == "approved"


def test_a_changed_fact_withdraws_its_entries_before_any_review(queued, store):
    s = queued
    policy_item = next(i for i in list_items(s) if i.origin == "policy")
    decide(s, [policy_item.id], "approve", by="lin")
    doc = store / "policies" / policy_item.evidence["document"]
    new_q, new_a = ("新增的问题？", "新增的答案内容，足够长。") if policy_item.lang == "zh" else ("A new question?", "A new answer that is long enough.")
    doc.write_text(doc.read_text(encoding="utf-8") + f"\n\n## {new_q}\n{new_a}\n", encoding="utf-8")
    [result] = sync_sources(s, only="policies")
    assert result.changed == 1 and result.withdrawn >= 1
    assert entry_by_key(s, policy_item.entry_key).status == "withdrawn"
    # Unchanged sections come back by the unchanged-text rule; the new one waits for review.
    extract_candidates(s)
    validate_candidates(s)
    routed = route_candidates(s)
    assert routed.by_rule.get("unchanged-text", 0) >= 1
    assert entry_by_key(s, policy_item.entry_key).status == "active"
    assert any(i.question == new_q for i in list_items(s))


def test_two_postgres_sessions_racing_on_one_item_exactly_one_wins(queued):
    """Both sessions read the open row before either writes; the loser is told who won.

    A third session holds the row lock until both deciders are blocked in their
    UPDATE (seen in pg_stat_activity), so the race is forced, not hoped for.
    """
    s = queued
    if not s.database_url.startswith("postgresql"):
        pytest.skip("row-lock race needs PostgreSQL (set KBOPS_TEST_DATABASE_URL)")
    import time

    item = list_items(s)[0]
    engine = engine_for(s)
    outcomes: dict[str, str] = {}

    def reviewer(name: str) -> None:
        try:
            decide(s, [item.id], "approve", by=name, door="web")
            outcomes[name] = "won"
        except AlreadyDecided as exc:
            outcomes[name] = str(exc)

    with engine.connect() as locker:
        tx = locker.begin()
        locker.execute(text("SELECT id FROM review_items WHERE id = :i FOR UPDATE"), {"i": item.id})
        threads = [threading.Thread(target=reviewer, args=(n,)) for n in ("lin", "wang")]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        with engine.connect() as probe:
            while time.monotonic() < deadline:
                waiting = probe.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")
                ).scalar()
                if waiting == 2:
                    break
                time.sleep(0.05)
            activity = probe.execute(text("SELECT state, wait_event_type, wait_event, left(query, 60) FROM pg_stat_activity WHERE datname = current_database()")).all()
        assert waiting == 2, f"both deciders should be blocked on the row lock: {activity}"
        tx.rollback()
    for t in threads:
        t.join(30)
    winner = [n for n, o in outcomes.items() if o == "won"]
    assert len(winner) == 1, outcomes
    [loser] = [n for n in outcomes if n not in winner]
    assert f"already decided by {winner[0]}" in outcomes[loser]
    with session_scope(s) as db:
        row = db.get(ReviewItem, item.id)
        assert (row.state, row.decided_by, row.row_version) == ("applied", winner[0], 2)
        events = list(db.scalars(select(AuditEvent).where(AuditEvent.review_item_id == item.id)))
        assert [(e.actor, e.door) for e in events] == [(winner[0], "web")]


def test_every_decision_is_audited_with_who_when_door_and_before_after(queued):
    s = queued
    a, b = list_items(s)[:2]
    decide(s, [a.id], "approve", by="lin", answer=("改过的答案：请在订单详情页申请。" if a.lang == "zh" else "Edited: apply in the order details page."), door="web")
    with engine_for(s).begin() as conn:
        conn.execute(text("UPDATE review_items SET decision = 'reject', decided_by = 'zhao', note = 'too vague' WHERE id = :i"), {"i": b.id})
    apply_decisions(s)
    with session_scope(s) as db:
        approve = db.scalar(select(AuditEvent).where(AuditEvent.review_item_id == a.id))
        reject = db.scalar(select(AuditEvent).where(AuditEvent.review_item_id == b.id))
    assert (approve.actor, approve.door, approve.action) == ("lin", "web", "edit_approve")
    assert approve.at is not None and approve.before is None and approve.after["answer"].startswith(("改过的答案", "Edited"))
    assert (reject.actor, reject.door, reject.action, reject.note) == ("zhao", "sql", "reject", "too vague")
    assert reject.before == {"question": b.question, "answer": b.answer}


def test_priority_weighs_support_quality_and_traffic_of_withdrawn_entries():
    """A withdrawn entry customers are asking about right now outranks a quiet one;
    among mined questions, more sessions and a better quality score rank higher."""
    from kbops.kb.routing import priority as _priority

    def cand(support, quality=None):
        return Candidate(support=support, evidence={} if quality is None else {"quality": quality})

    withdrawn = KbEntry(status="withdrawn")
    busy, quiet = _priority(cand(1), withdrawn, traffic=200), _priority(cand(1), withdrawn, traffic=0)
    assert busy > quiet > _priority(cand(1), None)
    assert _priority(cand(4, 0.9), None) > _priority(cand(4, 0.2), None) > _priority(cand(2, 0.2), None)
    assert _priority(cand(3), KbEntry(status="active"), traffic=500) == _priority(cand(3), None), "traffic matters only when withdrawn"


def test_routing_reads_withdrawn_entries_traffic_from_the_query_log(queued):
    from datetime import timedelta

    from kbops.schema import QueryLogEntry, utcnow

    s = queued
    items = {i.entry_key: i for i in list_items(s)}
    key = next(k for k, i in items.items() if i.origin == "policy")
    decide(s, [items[key].id], "approve", by="lin")
    with session_scope(s) as db:
        entry = db.scalar(select(KbEntry).where(KbEntry.entry_key == key))
        db.add_all([QueryLogEntry(question="q", entry_id=entry.id, handoff=False) for _ in range(30)])
        db.add(QueryLogEntry(question="old", entry_id=entry.id, handoff=False, at=utcnow() - timedelta(days=30)))
        entry.status = "withdrawn"
        cand = db.get(Candidate, items[key].candidate_id)
        fresh = Candidate(
            content_hash="x" * 64, fingerprint="y" * 64, entry_key=key, origin=cand.origin, kind=cand.kind, lang=cand.lang, question=cand.question,
            answer=cand.answer + "（更新）", alt_questions=[], tags=list(cand.tags), evidence={}, depends_on=[], support=1, status="valid",
        )
        db.add(fresh)
    route_candidates(s)
    queued = next(i for i in list_items(s) if i.entry_key == key)
    assert queued.priority == pytest.approx(1 * (0.5 + 0.5) + 5 + 2 * math.log1p(30), abs=1e-3), "30 recent queries count, the month-old one not"
