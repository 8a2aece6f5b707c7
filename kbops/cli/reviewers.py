"""``kbops reviewers …``: accounts for the review page (add, list, remove, passwd, role).

Passwords are prompted (never echoed) or read from the first line of stdin;
they are never command-line arguments, which other users could read from the
process list. Every change is audited under ``cli:<os user>``.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from kbops.cli._base import Subparsers, add_command, add_group, add_json_flag, emit
from kbops.config import Settings
from kbops.db import session_scope
from kbops.errors import AccountError
from kbops.review.accounts import add_reviewer, check_name, get_reviewer, list_reviewers, remove_reviewer, set_password, set_role

_ROLES = ["reviewer", "admin"]


def register(subparsers: Subparsers) -> None:
    """Add ``kbops reviewers`` and its actions."""
    vsub = add_group(subparsers, "reviewers", "accounts for the review page: add, list, remove, passwd, role", "accounts for the review page", "reviewers_command")

    p = add_command(vsub, "add", cmd_add, "add an account (the password is prompted, or read from stdin with --password-stdin)")
    p.add_argument("name", help="sign-in name (letters, digits, . _ - @)")
    p.add_argument("--role", default="reviewer", choices=_ROLES, help="reviewer decides items; admin also manages accounts (default reviewer)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    p.add_argument("--no-password", action="store_true", help="no password: signs in only through the trusted proxy header")

    p = add_command(vsub, "list", cmd_list, "the accounts with their roles")
    add_json_flag(p)

    p = add_command(vsub, "remove", cmd_remove, "remove an account (its decisions stay in the audit log)")
    p.add_argument("name")

    p = add_command(vsub, "passwd", cmd_passwd, "set a new password (ends the account's sessions)")
    p.add_argument("name")
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")

    p = add_command(vsub, "role", cmd_role, "make an account a reviewer or an admin")
    p.add_argument("name")
    p.add_argument("role", choices=_ROLES)


def _read_new_password(args: argparse.Namespace) -> str:
    """The new password from stdin (--password-stdin) or a prompt; never echoed, never an argument."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise AccountError("--password-stdin read an empty line; pipe the password in, e.g. `printf '%s\\n' \"$PW\" | kbops reviewers add NAME --password-stdin`")
        return password
    if not sys.stdin.isatty():
        raise AccountError("no terminal to ask for the password: pass --password-stdin and pipe it in")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise AccountError("the two passwords differ; run the command again")
    return first


def _operator() -> str:
    """Who runs the command, for the audit log of account changes."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def cmd_add(settings: Settings, args: argparse.Namespace) -> int:
    # Check the name before asking for a password, and ask before opening a transaction.
    check_name(args.name)
    password = None if args.no_password else _read_new_password(args)
    with session_scope(settings) as db:
        account = add_reviewer(db, args.name, password, role=args.role, by=_operator(), door="cli")
    how = "signs in only through the trusted proxy header" if password is None else "signs in with a password"
    print(f"reviewer {account.name} added ({account.role}; {how}); the review page is at /review on `kbops serve`")
    return 0


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    with session_scope(settings) as db:
        accounts = list_reviewers(db)
    rows = [{"name": a.name, "role": a.role, "password": a.has_password, "created_at": a.created_at, "last_login_at": a.last_login_at} for a in accounts]
    emit(args, rows, _print_list)
    return 0


def _print_list(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("no reviewer accounts; add one with `kbops reviewers add NAME --role admin`")
    for a in rows:
        last = f"{a['last_login_at']:%Y-%m-%d %H:%M}" if a["last_login_at"] else "never"
        print(f"{a['name']:<24} {a['role']:<9} {'password' if a['password'] else 'proxy header only':<18} last sign-in {last}")


def cmd_remove(settings: Settings, args: argparse.Namespace) -> int:
    with session_scope(settings) as db:
        remove_reviewer(db, args.name, by=_operator(), door="cli")
    print(f"reviewer {args.name} removed; their past decisions stay in the audit log")
    return 0


def cmd_passwd(settings: Settings, args: argparse.Namespace) -> int:
    # Say "no such reviewer" before prompting for a password nobody can use.
    with session_scope(settings) as db:
        if get_reviewer(db, args.name) is None:
            raise AccountError(f"no reviewer called {args.name!r}; see `kbops reviewers list`", name=args.name)
    password = _read_new_password(args)
    with session_scope(settings) as db:
        set_password(db, args.name, password, by=_operator(), door="cli")
    print(f"password of {args.name} changed; their open sessions ended")
    return 0


def cmd_role(settings: Settings, args: argparse.Namespace) -> int:
    with session_scope(settings) as db:
        set_role(db, args.name, args.role, by=_operator(), door="cli")
    print(f"{args.name} is now {args.role}")
    return 0
