"""Reviewer accounts: salted scrypt hashes, constant-cost checks, roles, audit."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from kbops.cli import main
from kbops.db import session_scope
from kbops.errors import AccountError
from kbops.review import accounts
from kbops.schema import AuditEvent, Reviewer


def test_passwords_are_salted_hashes_that_verify(settings):
    with session_scope(settings) as db:
        accounts.add_reviewer(db, "lin", "correct horse", role="admin")
        accounts.add_reviewer(db, "wang", "correct horse")
    with session_scope(settings) as db:
        stored = dict(db.execute(select(Reviewer.name, Reviewer.password_hash)).all())
        assert all(h.startswith("scrypt$") and "correct horse" not in h for h in stored.values())
        assert stored["lin"] != stored["wang"]  # same password, different salt
        assert accounts.authenticate(db, "lin", "correct horse").role == "admin"
        assert accounts.authenticate(db, "wang", "correct horse").role == "reviewer"
        assert accounts.authenticate(db, "lin", "correct horsE") is None
        assert accounts.authenticate(db, "nobody", "correct horse") is None
        assert accounts.authenticate(db, "lin", "") is None


def test_malformed_stored_hashes_never_verify():
    good = accounts.hash_password("s3cret-pass")
    assert accounts.verify_password("s3cret-pass", good)
    for bad in (None, "", "plain", "md5$x", good.replace("scrypt", "bcrypt"), good + "$extra", "scrypt$a$b$c$d$e"):
        assert not accounts.verify_password("s3cret-pass", bad)


@pytest.mark.parametrize(
    "name, password, role, message",
    [
        ("", "long enough", "reviewer", "not allowed"),
        ("two words", "long enough", "reviewer", "not allowed"),
        ("<script>", "long enough", "reviewer", "not allowed"),
        ("lin", "short", "reviewer", "at least 8"),
        ("lin", "long enough", "owner", "not one of reviewer, admin"),
    ],
)
def test_bad_accounts_are_refused_with_the_fix(settings, name, password, role, message):
    with pytest.raises(AccountError, match=message), session_scope(settings) as db:
        accounts.add_reviewer(db, name, password, role=role)
    with session_scope(settings) as db:
        assert accounts.list_reviewers(db) == []


def test_duplicate_names_and_unknown_accounts(settings):
    with session_scope(settings) as db:
        accounts.add_reviewer(db, "lin", "correct horse")
    with pytest.raises(AccountError, match="already exists"), session_scope(settings) as db:
        accounts.add_reviewer(db, "lin", "another one")
    with pytest.raises(AccountError, match="no reviewer called 'zhao'"), session_scope(settings) as db:
        accounts.remove_reviewer(db, "zhao")
    with pytest.raises(AccountError, match="no reviewer"), session_scope(settings) as db:
        accounts.set_password(db, "zhao", "whatever123")


def test_new_password_changes_the_session_epoch_and_old_password_stops_working(settings):
    with session_scope(settings) as db:
        before = accounts.add_reviewer(db, "lin", "correct horse").session_epoch
    with session_scope(settings) as db:
        accounts.set_password(db, "lin", "battery staple")
    with session_scope(settings) as db:
        assert accounts.get_reviewer(db, "lin").session_epoch != before
        assert accounts.authenticate(db, "lin", "correct horse") is None
        assert accounts.authenticate(db, "lin", "battery staple") is not None


def test_header_only_accounts_cannot_sign_in_with_a_password(settings):
    with session_scope(settings) as db:
        acct = accounts.add_reviewer(db, "proxyuser", None)
        assert not acct.has_password
        assert accounts.authenticate(db, "proxyuser", "") is None
        assert accounts.authenticate(db, "proxyuser", "anything at all") is None


def test_account_changes_are_audited_and_the_last_admin_is_kept_on_the_web(settings):
    with session_scope(settings) as db:
        accounts.add_reviewer(db, "lin", "correct horse", role="admin")
        accounts.set_role(db, "lin", "admin", by="root")
    with pytest.raises(AccountError, match="last admin"), session_scope(settings) as db:
        accounts.remove_reviewer(db, "lin", by="lin2", door="web")
    with session_scope(settings) as db:
        accounts.remove_reviewer(db, "lin", by="root")
    with session_scope(settings) as db:
        assert accounts.get_reviewer(db, "lin") is None
        actions = [e.action for e in db.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions == ["reviewer_add", "reviewer_role", "reviewer_remove"]


def test_a_failed_change_leaves_nothing_behind(settings):
    """The caller's session is the transaction: an account error rolls back what came before it in the same session."""
    with pytest.raises(AccountError, match="already exists"), session_scope(settings) as db:
        accounts.add_reviewer(db, "lin", "correct horse")
        accounts.add_reviewer(db, "lin", "correct horse")
    with session_scope(settings) as db:
        assert accounts.list_reviewers(db) == []
        assert db.scalars(select(AuditEvent)).all() == []


def _cli(settings, monkeypatch, argv, stdin=""):
    for key, value in {"KBOPS_HOME": str(settings.home), "KBOPS_DATABASE_URL": settings.database_url}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(argv)


def test_cli_adds_lists_and_removes_reviewers_without_echoing_the_password(settings, monkeypatch, capsys):
    assert _cli(settings, monkeypatch, ["reviewers", "add", "lin", "--role", "admin", "--password-stdin"], "correct horse\n") == 0
    assert _cli(settings, monkeypatch, ["reviewers", "add", "proxyuser", "--no-password"]) == 0
    assert _cli(settings, monkeypatch, ["reviewers", "list", "--json"]) == 0
    out = capsys.readouterr().out
    assert "correct horse" not in out and '"role": "admin"' in out and '"password": false' in out
    with session_scope(settings) as db:
        assert accounts.authenticate(db, "lin", "correct horse") is not None
    assert _cli(settings, monkeypatch, ["reviewers", "passwd", "lin", "--password-stdin"], "battery staple\n") == 0
    with session_scope(settings) as db:
        assert accounts.authenticate(db, "lin", "battery staple") is not None
    assert _cli(settings, monkeypatch, ["reviewers", "role", "lin", "reviewer"]) == 0
    with session_scope(settings) as db:
        assert accounts.get_reviewer(db, "lin").role == "reviewer"
    assert _cli(settings, monkeypatch, ["reviewers", "remove", "lin"]) == 0
    with session_scope(settings) as db:
        assert accounts.get_reviewer(db, "lin") is None


@pytest.mark.parametrize(
    "argv, stdin, message",
    [
        (["reviewers", "add", "lin", "--password-stdin"], "short\n", "at least 8"),
        (["reviewers", "add", "lin", "--password-stdin"], "", "empty line"),
        (["reviewers", "add", "lin"], "", "--password-stdin"),  # no terminal to prompt on
        (["reviewers", "add", "two words", "--no-password"], "", "not allowed"),
        (["reviewers", "remove", "ghost"], "", "no reviewer called 'ghost'"),
        (["reviewers", "passwd", "ghost", "--password-stdin"], "long enough\n", "no reviewer called 'ghost'"),
    ],
)
def test_cli_account_mistakes_are_one_line_errors(settings, monkeypatch, capsys, argv, stdin, message):
    assert _cli(settings, monkeypatch, argv, stdin) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err and err.count("\n") == 1
