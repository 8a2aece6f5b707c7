"""``kbops review log``: account events name the account, never ``entry None`` (issue 14)."""

from __future__ import annotations

from kbops.cli.app import main
from kbops.db import session_scope
from kbops.kb.audit import audit_events
from kbops.review import accounts


def _env(monkeypatch, settings):
    monkeypatch.setenv("KBOPS_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("KBOPS_HOME", str(settings.home))
    monkeypatch.delenv("KBOPS_CONFIG", raising=False)


def test_account_events_name_the_account(settings, monkeypatch, capsys):
    with session_scope(settings) as db:
        accounts.add_reviewer(db, "lin", "correct horse", role="admin", by="ops")
        accounts.set_role(db, "lin", "reviewer", by="ops")
        accounts.set_password(db, "lin", "another horse", by="ops")
        accounts.remove_reviewer(db, "lin", by="ops")
    with session_scope(settings) as db:
        notes = {e.action: e.note for e in audit_events(db, limit=10)}
    assert notes == {"reviewer_add": "reviewer lin", "reviewer_role": "reviewer lin", "reviewer_password": "reviewer lin", "reviewer_remove": "reviewer lin"}
    _env(monkeypatch, settings)
    assert main(["review", "log"]) == 0
    out = capsys.readouterr().out
    assert "entry None" not in out and out.count("reviewer lin") == 4
