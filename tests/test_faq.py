"""`kbops import` / `kbops export`: an existing FAQ in, the active KB out, in one format."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from kbops.db import session_scope
from kbops.errors import ConfigError
from kbops.pipeline import export_faq, import_faq
from kbops.schema import AuditEvent, KbEntry
from tests.helpers import list_items

ROWS = [
    {
        "id": "returns", "question": "How do I return an item?", "answer": "Open the order and choose Return within 7 days of delivery.",
        "alt_questions": ["Can I send something back?"], "tags": ["returns"],
    },
    {"question": "发票怎么开？", "answer": "在订单详情页点击申请发票，填写抬头即可。", "tags": ["invoice"]},
    {"question": "Call me", "answer": "Please call 13812345678 for help with your order."},
    {"question": "", "answer": "no question"},
]


@pytest.fixture
def faq_file(tmp_path):
    path = tmp_path / "faq.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in ROWS) + "\nnot json\n", encoding="utf-8")
    return path


def test_import_with_approval_creates_audited_entries_and_reports_bad_rows(settings, faq_file):
    result = import_faq(settings, faq_file, approve=True, by="lin")
    assert (result.read, result.approved, result.invalid) == (5, 2, 1)
    assert any("faq.jsonl:3" in e and "private_data" in e for e in result.errors)
    assert any("faq.jsonl:4" in e for e in result.errors) and any("faq.jsonl:5" in e for e in result.errors)
    with session_scope(settings) as db:
        entry = db.scalar(select(KbEntry).where(KbEntry.entry_key == "import:returns"))
        assert entry.alt_questions == ["Can I send something back?"] and entry.approved_via == "import"
        assert db.scalar(select(AuditEvent).where(AuditEvent.entry_id == entry.id, AuditEvent.actor == "lin")) is not None
    again = import_faq(settings, faq_file, approve=True, by="lin")
    assert again.proposed == 0 and again.unchanged == 3


def test_import_without_approval_queues_for_review(settings, faq_file):
    result = import_faq(settings, faq_file)
    assert result.queued == 2 and result.approved == 0
    assert {i.origin for i in list_items(settings)} == {"import"}


def test_export_round_trips_through_import(settings, faq_file, tmp_path):
    import_faq(settings, faq_file, approve=True, by="lin")
    for name in ("kb.jsonl", "kb.csv"):
        out = tmp_path / name
        assert export_faq(settings, out) == 2
        text = out.read_text(encoding="utf-8")
        assert "How do I return an item?" in text and "发票怎么开？" in text and "Can I send something back?" in text
        again = import_faq(settings, out, approve=True, by="lin")
        assert again.errors == [] and again.proposed == 0


def test_import_mistakes_are_clear_errors(settings, tmp_path):
    with pytest.raises(ConfigError, match="--by"):
        import_faq(settings, tmp_path / "x.jsonl", approve=True)
    with pytest.raises(ConfigError, match="does not exist"):
        import_faq(settings, tmp_path / "missing.jsonl")
    bad = tmp_path / "faq.txt"
    bad.write_text("q,a\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=".jsonl or .csv"):
        import_faq(settings, bad)
