-- The review-table contract: how a reviewer decides from any database tool.
--
-- review_items is THE review table. A reviewer decides by setting these columns
-- on a row whose state = 'open':
--
--   decision          'approve' | 'reject' | 'merge' (NULL = still waiting)
--   decided_by        the reviewer's name            (required; once reviewer accounts exist, the
--                     name of one: `kbops reviewers list`; else the decision is not applied and
--                     apply_error says "decided_by … is not a reviewer account")
--   note              free text; REQUIRED for 'reject' (the reason)
--   edited_question   optional corrected question    (applied with 'approve' or 'merge'; re-validated)
--   edited_answer     optional corrected answer      (applied with 'approve'; re-validated; not with 'merge')
--   merge_into        entry key of an existing entry (with 'merge': the item's question becomes an
--                     alternate question of that entry, which keeps its answer; no new entry)
--
-- proposed_merge_into is filled by the pipeline, not by reviewers: the gate found the item's
-- question a near-duplicate of that active entry. For such an item, 'approve' accepts the
-- proposal (it is applied as a merge into proposed_merge_into; merge_into may be left NULL);
-- 'approve' WITH an edited_answer makes it a new entry of its own instead.
--
-- Only rows with state = 'open' take a decision. A row that is no longer open
-- (state 'applied', or 'superseded' by a newer candidate) keeps the decision that
-- was applied: a trigger (review_items_closed, migration 0008) refuses an UPDATE that
-- changes its state or decision columns, with the error "… is not open (already applied
-- or superseded) …", so the table never shows a decision the KB does not hold. One
-- UPDATE touching an open and a closed row is refused as a whole: keep
-- "AND state = 'open'" in the WHERE clause, as in the examples.
--
-- Leave every other column alone. The next kb_publish run (or `kbops publish`)
-- applies the decision in its own transaction and sets state = 'applied'; it first
-- claims the row (state 'applying', never visible outside that transaction), so a
-- decision is applied exactly once even when several publishes run at once. A
-- decision it cannot apply (unknown value, no reviewer, decided_by not a reviewer
-- account, a rejection without a reason, an edit that fails validation) is NOT applied: the row stays open and
-- apply_error says why; fix the columns and it is picked up again. A merge is refused
-- when merge_into is not an active/withdrawn entry key, its language differs from the
-- question's, or the question fails validation against that entry's answer; merge_into
-- with any decision other than 'merge' is refused too. Every applied decision is recorded
-- in audit_log with door = 'sql' (action approve | edit_approve | reject | merge, before/after).
--
-- Examples:
--   UPDATE review_items SET decision = 'approve', decided_by = 'lin' WHERE id = 42 AND state = 'open';
--   UPDATE review_items SET decision = 'reject', decided_by = 'lin', note = 'order-specific' WHERE id = 43 AND state = 'open';
--   UPDATE review_items SET decision = 'approve', decided_by = 'lin',
--          edited_answer = '支持7天无理由退货……' WHERE id = 44 AND state = 'open';
--   UPDATE review_items SET decision = 'merge', decided_by = 'lin',
--          merge_into = 'policy:returns:zh:7天无理由退货' WHERE id = 45 AND state = 'open';

-- The pending queue, highest priority first (created by migration 0002, columns
-- proposed_merge_into and merge_into added by 0007).
CREATE VIEW pending_review AS
SELECT id, origin, kind, lang, support, priority, question, answer, proposed_merge_into,
       decision, decided_by, merge_into, apply_error, created_at
FROM review_items
WHERE state = 'open'
ORDER BY priority DESC, created_at, id;

-- Decisions the pipeline refused, with the reason.
CREATE VIEW refused_decisions AS
SELECT id, decision, decided_by, decided_at, apply_error, question
FROM review_items
WHERE state = 'open' AND apply_error IS NOT NULL;
