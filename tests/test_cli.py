"""The kbops command line: help everywhere, one-line errors, the documented commands."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kbops.cli import build_parser, main

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
