"""Reviewer accounts: salted scrypt hashes, constant-cost checks, roles, audit."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from kbops.db import session_scope
from kbops.errors import AccountError
from kbops.review import accounts
from kbops.schema import AuditEvent, Reviewer


def test_passwords_are_salted_hashes_that_verify(settings):
    accounts.add_reviewer(settings, "lin", "correct horse", role="admin")
    accounts.add_reviewer(settings, "wang", "correct horse")
    with session_scope(settings) as db:
        stored = dict(db.execute(select(Reviewer.name, Reviewer.password_hash)).all())
    assert all(h.startswith("scrypt$") and "correct horse" not in h for h in stored.values())
    assert stored["lin"] != stored["wang"]  # same password, different salt
    assert accounts.authenticate(settings, "lin", "correct horse").role == "admin"
    assert accounts.authenticate(settings, "wang", "correct horse").role == "reviewer"
    assert accounts.authenticate(settings, "lin", "correct horsE") is None
    assert accounts.authenticate(settings, "nobody", "correct horse") is None
    assert accounts.authenticate(settings, "lin", "") is None


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
    with pytest.raises(AccountError, match=message):
        accounts.add_reviewer(settings, name, password, role=role)
    assert accounts.list_reviewers(settings) == []


def test_duplicate_names_and_unknown_accounts(settings):
    accounts.add_reviewer(settings, "lin", "correct horse")
    with pytest.raises(AccountError, match="already exists"):
        accounts.add_reviewer(settings, "lin", "another one")
    with pytest.raises(AccountError, match="no reviewer called 'zhao'"):
        accounts.remove_reviewer(settings, "zhao")
    with pytest.raises(AccountError, match="no reviewer"):
        accounts.set_password(settings, "zhao", "whatever123")


def test_new_password_changes_the_session_epoch_and_old_password_stops_working(settings):
    before = accounts.add_reviewer(settings, "lin", "correct horse").session_epoch
    accounts.set_password(settings, "lin", "battery staple")
    after = accounts.get_reviewer(settings, "lin")
    assert after.session_epoch != before
    assert accounts.authenticate(settings, "lin", "correct horse") is None
    assert accounts.authenticate(settings, "lin", "battery staple") is not None


def test_header_only_accounts_cannot_sign_in_with_a_password(settings):
    acct = accounts.add_reviewer(settings, "proxyuser", None)
    assert not acct.has_password
    assert accounts.authenticate(settings, "proxyuser", "") is None
    assert accounts.authenticate(settings, "proxyuser", "anything at all") is None


def test_account_changes_are_audited_and_the_last_admin_is_kept_on_the_web(settings):
    accounts.add_reviewer(settings, "lin", "correct horse", role="admin")
    accounts.set_role(settings, "lin", "admin", by="root")
    with pytest.raises(AccountError, match="last admin"):
        accounts.remove_reviewer(settings, "lin", by="lin2", door="web")
    accounts.remove_reviewer(settings, "lin", by="root")
    assert accounts.get_reviewer(settings, "lin") is None
    with session_scope(settings) as db:
        actions = [e.action for e in db.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions == ["reviewer_add", "reviewer_role", "reviewer_remove"]


def _cli(settings, monkeypatch, argv, stdin=""):
    import io

    from kbops.cli import main

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
    assert accounts.authenticate(settings, "lin", "correct horse") is not None
    assert _cli(settings, monkeypatch, ["reviewers", "passwd", "lin", "--password-stdin"], "battery staple\n") == 0
    assert accounts.authenticate(settings, "lin", "battery staple") is not None
    assert _cli(settings, monkeypatch, ["reviewers", "role", "lin", "reviewer"]) == 0
    assert accounts.get_reviewer(settings, "lin").role == "reviewer"
    assert _cli(settings, monkeypatch, ["reviewers", "remove", "lin"]) == 0
    assert accounts.get_reviewer(settings, "lin") is None


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
