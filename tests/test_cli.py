"""The kbops command line: help everywhere, one-line errors, the documented commands."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest
from sqlalchemy import select

from kbops.cli import build_parser, main
from kbops.cli.app import report_error
from kbops.db import session_scope
from kbops.errors import ReviewItemNotFound, TransientError
from kbops.schema import ChatGap, KbEntry, QueryLogEntry

COMMANDS = [
    [], ["init"], ["sync"], ["review"], ["review", "list"], ["review", "show"], ["review", "approve"],
    ["review", "reject"], ["review", "edit"], ["review", "log"], ["publish"], ["ask"], ["releases"],
    ["rollback"], ["serve"], ["sources"], ["sources", "status"], ["import"], ["export"],
    ["review", "gaps"], ["review", "merge"], ["golden"], ["golden", "add"], ["golden", "list"],
    ["golden", "remove"], ["golden", "check"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "kbops")
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([*command, "--help"])
    assert exc.value.code == 0
    assert "usage:" in capsys.readouterr().out


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(words, parser, help line) of every command and group under ``parser``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield (*path, name), sub, helps.get(name)
                yield from _commands(sub, (*path, name))


def test_the_parser_has_no_command_without_help():
    """Beyond the list above: whatever a command module registers has a help line and a description."""
    commands = list(_commands(build_parser()))
    assert len(commands) >= 34
    for words, sub, help_line in commands:
        assert help_line and sub.description, " ".join(words)


def _env(settings):
    return {
        "KBOPS_HOME": str(settings.home),
        "KBOPS_DATABASE_URL": settings.database_url,
        "KBOPS_SOURCES": str(settings.sources_file),
        "KBOPS_EMBED_CACHE": str(settings.embed_cache),
    }


def test_user_mistakes_print_one_line_and_no_traceback(tmp_path):
    env = {"KBOPS_HOME": str(tmp_path / "empty"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "kbops.cli", "review", "list"], capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: the KB database is not initialised: run `kbops init` first"
    assert "Traceback" not in proc.stderr


def test_sync_review_and_log_from_the_command_line(settings, monkeypatch, capsys):
    for k, v in _env(settings).items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("KBOPS_CONFIG", raising=False)
    assert main(["sync"]) == 0
    out = capsys.readouterr().out
    assert "quarantined" in out and "auto-approved" in out
    assert main(["review", "list", "--json"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert items and all(i["state"] == "open" for i in items)
    assert main(["review", "approve", str(items[0]["id"]), "--by", "lin"]) == 0
    assert main(["review", "approve", str(items[0]["id"]), "--by", "wang"]) == 2
    assert "already decided by lin" in capsys.readouterr().err
    assert main(["review", "log", "--json"]) == 0
    assert any(e["actor"] == "lin" for e in json.loads(capsys.readouterr().out))
    assert main(["sources", "status"]) == 0
    assert "待定" in capsys.readouterr().out


def _json_commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every command (as its words) that has a --json flag."""
    found = {path} if any("--json" in a.option_strings for a in parser._actions) else set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= _json_commands(sub, (*path, name))
    return found


def test_every_command_with_json_prints_one_json_document(settings, monkeypatch, capsys, tmp_path):
    """--json goes through one helper: every command that offers it prints valid JSON and nothing else."""
    for k, v in _env(settings).items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("KBOPS_CONFIG", raising=False)
    covered: set[tuple[str, ...]] = set()

    def run(command: tuple[str, ...], *rest: str, codes: tuple[int, ...] = (0,)):
        status = main([*command, *rest, "--json"])
        out = capsys.readouterr().out
        assert status in codes, (command, status)
        covered.add(command)
        return json.loads(out)

    assert run(("sync",))["route"]["queued"] > 0
    items = run(("review", "list"))
    assert run(("review", "show"), str(items[0]["id"]))["id"] == items[0]["id"]
    assert isinstance(run(("review", "invalid")), list)
    assert run(("review", "report"))["checked"] > 0
    assert isinstance(run(("review", "gaps")), list)
    assert isinstance(run(("review", "log")), list)
    assert run(("publish",))["build"]["release_id"]
    releases = run(("releases",))
    assert [r["active"] for r in releases] == [True]
    answer = run(("ask",), "how long does delivery take")
    assert answer["release_id"] == releases[0]["release_id"] and answer["hits"]
    assert main(["golden", "add", answer["query"], "--entry", answer["hits"][0]["entry_key"], "--by", "lin"]) == 0
    capsys.readouterr()
    assert [g["entry_key"] for g in run(("golden", "list"))] == [answer["hits"][0]["entry_key"]]
    assert run(("golden", "check"), codes=(0, 1))["total"] == 1
    with session_scope(settings) as db:
        db.add(ChatGap(topic_key="bot:gap:en:mars", origin="bot", lang="en", question="Do you ship to Mars?", support=1))
        gap_id = db.scalar(select(ChatGap.id).where(ChatGap.topic_key == "bot:gap:en:mars"))
    assert run(("review", "label-gap"), str(gap_id), "--handoff", "--by", "lin")["status"] == "dismissed"
    with session_scope(settings) as db:  # an answer the bot gave, to spot-check
        entry_id = db.scalar(select(KbEntry.id).where(KbEntry.entry_key == answer["hits"][0]["entry_key"]))
        db.add(QueryLogEntry(question="when does my parcel arrive", entry_id=entry_id, handoff=False, score=0.8, confidence=0.9))
    [checked] = run(("review", "answers"), "--count", "1")
    assert run(("review", "label-answer"), str(checked["query_id"]), "--right", "--by", "lin")["outcome"] == checked["entry_key"]
    faq = tmp_path / "faq.jsonl"
    faq.write_text(json.dumps({"question": "Do you ship to Macau?", "answer": "Yes, within 5 working days."}) + "\n", encoding="utf-8")
    assert run(("import",), str(faq), codes=(0, 1))["read"] == 1
    assert run(("reviewers", "list")) == []
    assert {s["source"] for s in run(("sources", "status"))}
    assert run(("health",))["queue"]["size"] >= 0
    assert run(("calibrate",))["languages"]["en"]["in_kb"] > 0
    assert run(("calibrate",), "--report")["release_id"] == releases[0]["release_id"]
    assert run(("notify",), "prices")["event"]["source"] == "prices"  # Redis runs on these machines (KBOPS_EVENTS_URL)
    assert covered == _json_commands(build_parser())


def test_a_user_error_is_one_line_on_stderr_with_exit_2(settings, tmp_path):
    env = {**_env(settings), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "kbops.cli", "review", "show", "999"], capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
    assert "999" in proc.stderr and "Traceback" not in proc.stderr
    # A usage mistake is argparse's: usage line, exit 2, no traceback either.
    proc = subprocess.run([sys.executable, "-m", "kbops.cli", "review", "show", "seven"], capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert "usage: kbops review show" in proc.stderr and "Traceback" not in proc.stderr


def test_errors_map_by_class(capsys):
    class DatabaseBusyish(TransientError):
        pass

    assert report_error(DatabaseBusyish("the KB database is locked")) == 2
    assert capsys.readouterr().err == "error: the KB database is locked (retry)\n"
    assert report_error(ReviewItemNotFound("no review item 7", item_id=7)) == 2
    assert capsys.readouterr().err == "error: no review item 7\n"


def test_bot_commands_run_without_airflow(settings):
    """`kbops releases` / `ask` / `serve` must work on a host with only the serve extra."""
    code = (
        "import sys; sys.modules['airflow'] = None\n"  # any `import airflow…` now fails
        "from kbops.cli import main\n"
        "status = main(['releases', '--json'])\n"
        "assert 'kbops.airflow_adapter' not in sys.modules and 'kbops.pipeline' not in sys.modules\n"
        "sys.exit(status)\n"
    )
    env = {**_env(settings), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []
