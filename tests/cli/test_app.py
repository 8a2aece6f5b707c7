"""``kbops … | head``: a reader that goes away ends the command quietly (exit 141), never with a traceback.

Real pipes to a real subprocess, with and without ``PYTHONUNBUFFERED`` (a
user's shell usually has it unset: output then waits in Python's buffer until
the final flush, after ``main`` has returned).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from kbops.db import session_scope
from kbops.pipeline import ingest
from kbops.schema import ReviewItem


def _env(settings, unbuffered: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED" and not k.startswith("KBOPS_")}
    env.update({"KBOPS_HOME": str(settings.home), "KBOPS_DATABASE_URL": settings.database_url, "KBOPS_SOURCES": str(settings.sources_file),
                "KBOPS_EMBED_CACHE": str(settings.embed_cache), "KBOPS_MODELS_DIR": str(settings.models_dir)})
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    return env


def _into_closed_pipe(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``kbops COMMAND`` with stdout a pipe whose reader has already gone (``kbops … | true``)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-m", "kbops.cli", *command], stdout=write_end, stderr=subprocess.PIPE, text=True, env=env, timeout=120)
    finally:
        os.close(write_end)


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
def test_a_reader_that_went_away_is_exit_141_without_a_traceback(settings, unbuffered):
    """Issue 12: `kbops review list | head` printed a BrokenPipe traceback. Small outputs (still in the
    buffer when the command returns) printed "Exception ignored … BrokenPipeError" and exited 120."""
    ingest(settings)
    env = _env(settings, unbuffered)
    for command in (["review", "list"], ["review", "list", "--json"], ["review", "show", "1"], ["review", "list", "--limit", "1"], ["golden", "list"]):
        proc = _into_closed_pipe(command, env)
        assert proc.returncode == 141, (command, proc.returncode, proc.stderr[-500:])
        assert proc.stderr == "", (command, proc.stderr[-500:])
    # And through a real `| head -1` in a shell, as the issue ran it.
    proc = subprocess.run(f"{sys.executable} -m kbops.cli review list | head -1", shell=True, executable="/bin/bash", capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("   ID") and "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr[-500:]


def test_an_argument_that_is_not_utf8_is_a_one_line_error_and_changes_nothing(settings):
    """Found by the property tests (tests/cli/test_arguments.py): a byte that is not UTF-8 in any text
    argument (``--by``, ``--reason``, ``--answer``) reached the database driver as a lone surrogate and
    printed a UnicodeEncodeError traceback. Raw bytes in argv, as a Latin-1 or GBK terminal sends them."""
    ingest(settings)
    env = _env(settings, unbuffered=False)
    item = json.loads(subprocess.run([sys.executable, "-m", "kbops.cli", "review", "list", "--json"], capture_output=True, text=True, env=env, check=True).stdout)[0]["id"]
    kbops = [sys.executable.encode(), b"-m", b"kbops.cli"]
    for args in ([b"review", b"approve", str(item).encode(), b"--by", b"wang\xff"],
                 [b"review", b"reject", str(item).encode(), b"--by", b"lin", b"--reason", "重复".encode("gbk")],
                 [b"review", b"edit", str(item).encode(), b"--by", b"lin", b"--answer", b"\xe9\x80"]):
        proc = subprocess.run(kbops + args, capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-500:]
        assert proc.stderr.startswith("error: the argument ") and "is not UTF-8 text" in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    with session_scope(settings) as db:
        assert db.get(ReviewItem, item).state == "open"
