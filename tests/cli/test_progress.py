"""Progress on a terminal, silence elsewhere (kbops.cli._base.progress)."""

from __future__ import annotations

import argparse
import io
import logging

from kbops.cli._base import progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_sees_the_step_and_the_kbops_log(monkeypatch):
    err = _Terminal()
    monkeypatch.setattr("sys.stderr", err)
    with progress(argparse.Namespace(json=False), "publish") as say:
        logging.getLogger("kbops.index").info("embedding %d texts", 1200)
        say("replaying 40 questions")
    shown = err.getvalue()
    assert "publish" in shown and "embedding 1200 texts" in shown and "replaying 40 questions" in shown
    assert logging.getLogger("kbops").handlers == [] or all(type(h).__name__ != "_ToBar" for h in logging.getLogger("kbops").handlers)


def test_json_and_pipes_stay_quiet(monkeypatch):
    for stream, json_flag in ((_Terminal(), True), (io.StringIO(), False)):
        monkeypatch.setattr("sys.stderr", stream)
        with progress(argparse.Namespace(json=json_flag), "sync") as say:
            logging.getLogger("kbops.sources").info("read 10 rows")
            say("anything")
        assert stream.getvalue() == ""
