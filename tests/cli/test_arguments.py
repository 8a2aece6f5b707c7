"""Command-line arguments that name records: one id type for every command, never a traceback.

Issue 12: `kbops review show 99999999999999999999` printed an OverflowError
traceback (the number reached SQLite). Every argument naming a record by id
and every ``--limit`` is parsed by the shared types in kbops/cli/_base.py;
a number no row can have is argparse's usage error (exit 2, one message).
Property-based tests (Hypothesis) feed arbitrary strings to each of them.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from kbops.cli import main
from kbops.config import Settings
from kbops.db import init_db
from kbops.pipeline import ingest
from kbops.schema import MAX_ID
from tests.conftest import MODELS_DIR, SAMPLE

#: Every command taking an id, with the id's place marked X (and the other arguments it needs).
ID_COMMANDS = [
    ["review", "show", "X"],
    ["review", "approve", "X", "--by", "lin"],
    ["review", "reject", "X", "--by", "lin", "--reason", "重复"],
    ["review", "edit", "X", "--by", "lin", "--answer", "下单后48小时内发货。"],
    ["review", "merge", "X", "--by", "lin", "--into", "faq:zh:none"],
    ["review", "resubmit", "X", "--by", "lin", "--answer", "下单后48小时内发货。"],
    ["review", "report", "X"],
    ["review", "log", "--item", "X"],
    ["golden", "remove", "X"],
]
LIMIT_COMMANDS = [["review", "list", "--limit", "X"], ["review", "invalid", "--limit", "X"], ["review", "gaps", "--limit", "X"],
                  ["review", "log", "--limit", "X"], ["review", "report", "--limit", "X"]]


@pytest.fixture(scope="module")
def kb(tmp_path_factory, request):
    """A synced sample-store KB on SQLite, built once for the module, and the environment the CLI reads it from."""
    tmp = tmp_path_factory.mktemp("cli-args")
    shutil.copytree(SAMPLE, tmp / "store")
    env = {"KBOPS_HOME": str(tmp / "home"), "KBOPS_DATABASE_URL": f"sqlite:///{tmp / 'kb.sqlite'}", "KBOPS_SOURCES": str(tmp / "store" / "sources.toml"),
           "KBOPS_EMBED_CACHE": str(tmp / "embeddings.sqlite"), "KBOPS_MODELS_DIR": MODELS_DIR}
    settings = Settings.load(env=env, config_file=None)
    init_db(settings)
    ingest(settings)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        mp.delenv("KBOPS_CONFIG", raising=False)
        yield env


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``kbops ARGV`` in this process: (exit status, stdout, stderr). Any exception escaping ``main`` fails the test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exc:  # argparse: usage errors and --help
            status = exc.code if isinstance(exc.code, int) else 2
    return status, out.getvalue(), err.getvalue()


def _with(command: list[str], value: str) -> list[str]:
    return [value if word == "X" else word for word in command]


def test_the_reported_command_is_a_usage_error_not_a_traceback(kb):
    """The issue's command, in a real process as a user runs it."""
    proc = subprocess.run([sys.executable, "-m", "kbops.cli", "review", "show", "99999999999999999999"], capture_output=True, text=True, env={**kb, "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-500:]
    assert "usage: kbops review show" in proc.stderr and "'99999999999999999999' is not an id: a whole number from 1 to 2147483647" in proc.stderr


@pytest.mark.parametrize("command", ID_COMMANDS + LIMIT_COMMANDS, ids=lambda c: " ".join(w for w in c if w != "X"))
@pytest.mark.parametrize("value", ["99999999999999999999", str(2**63), str(MAX_ID + 1), "1" * 5000, "0", "-1", "1.5", "٣", "0x10"])
def test_every_id_and_limit_argument_refuses_what_no_row_can_have(kb, command, value):
    status, out, err = run_cli(_with(command, value))
    assert status == 2 and "Traceback" not in err and err.strip(), (status, err[-300:])
    assert "usage: kbops" in err and out == ""


@pytest.mark.parametrize("command", ID_COMMANDS, ids=lambda c: " ".join(w for w in c if w != "X"))
def test_an_id_in_range_that_is_free_is_a_one_line_error(kb, command):
    status, _out, err = run_cli(_with(command, str(MAX_ID)))
    assert status in (0, 1, 2) and "Traceback" not in err  # `review log --item` of an item with no events lists nothing: 0
    if status == 2:
        assert err.startswith("error: ") and err.count("\n") == 1, err


# --- property-based: arbitrary strings where ids and counts go ---------------------------------------

#: Any code point, lone surrogates included (st.text() leaves them out; a non-UTF-8 byte in argv becomes one).
ANY_CHAR = st.one_of(st.characters(exclude_categories=()), st.characters(categories=["Cs"]))
ANY_TEXT = st.one_of(
    st.text(alphabet=ANY_CHAR, max_size=40),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.from_regex(r"\A[0-9]{1,30}\Z"),
)
FAST = hsettings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@FAST
@given(command=st.sampled_from(ID_COMMANDS + LIMIT_COMMANDS), value=ANY_TEXT)
def test_any_string_as_an_id_or_limit_exits_0_1_or_2_without_a_traceback(kb, command, value):
    status, _out, err = run_cli(_with(command, value))
    assert status in (0, 1, 2), (command, value, status, err[-300:])
    assert "Traceback" not in err


@FAST
@given(command=st.sampled_from(ID_COMMANDS), ids=st.lists(st.one_of(ANY_TEXT, st.integers(1, 60).map(str)), min_size=1, max_size=4), by=st.text(alphabet=ANY_CHAR, min_size=1, max_size=20))
def test_any_ids_and_reviewer_name_exit_0_1_or_2_without_a_traceback(kb, command, ids, by):
    """Several ids where a command takes several (often ones that exist), and any reviewer name: the decisions reach the database.

    Found: a reviewer name with a lone surrogate (a non-UTF-8 byte in argv) failed in the database driver with a traceback."""
    argv = _with(command, ids[0])
    if command[1] in ("approve", "reject", "merge") or command[:2] == ["golden", "remove"]:
        at = argv.index(ids[0])
        argv[at + 1 : at + 1] = ids[1:]
    if "--by" in argv:
        argv[argv.index("--by") + 1] = by
    status, _out, err = run_cli(argv)
    assert status in (0, 1, 2), (argv, status, err[-300:])
    assert "Traceback" not in err
