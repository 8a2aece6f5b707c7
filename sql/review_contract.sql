-- The review-table contract: how a reviewer decides from any database tool.
--
-- review_items is THE review table. A reviewer decides by setting these columns
-- on a row whose state = 'open':
--
--   decision          'approve' | 'reject'          (NULL = still waiting)
--   decided_by        the reviewer's name            (required)
--   note              free text; REQUIRED for 'reject' (the reason)
--   edited_question   optional corrected question    (applied with 'approve')
--   edited_answer     optional corrected answer      (applied with 'approve'; re-validated)
--
-- Leave every other column alone. The next kb_publish run (or `kbops publish`)
-- applies the decision in its own transaction and sets state = 'applied'. A
-- decision it cannot apply (unknown value, no reviewer, a rejection without a
-- reason, an edit that fails validation) is NOT applied: the row stays open and
-- apply_error says why; fix the columns and it is picked up again. Every applied
-- decision is recorded in audit_log with door = 'sql'.
--
-- Examples:
--   UPDATE review_items SET decision = 'approve', decided_by = 'lin' WHERE id = 42 AND state = 'open';
--   UPDATE review_items SET decision = 'reject', decided_by = 'lin', note = 'order-specific' WHERE id = 43 AND state = 'open';
--   UPDATE review_items SET decision = 'approve', decided_by = 'lin',
--          edited_answer = '支持7天无理由退货……' WHERE id = 44 AND state = 'open';

-- The pending queue, highest priority first (created by migration 0002).
CREATE VIEW pending_review AS
SELECT id, origin, kind, lang, support, priority, question, answer,
       decision, decided_by, apply_error, created_at
FROM review_items
WHERE state = 'open'
ORDER BY priority DESC, created_at, id;

-- Decisions the pipeline refused, with the reason.
CREATE VIEW refused_decisions AS
SELECT id, decision, decided_by, decided_at, apply_error, question
FROM review_items
WHERE state = 'open' AND apply_error IS NOT NULL;
