"""``kbops review label-gap``: a gap topic's questions labelled out of scope or answered by an entry, from the shell."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from kbops.cli.app import main
from kbops.db import session_scope
from kbops.index.golden import golden_pairs
from kbops.schema import ChatGap, KbEntry
from tests.cli.test_review_log import _env


def test_label_gap_from_the_command_line(settings, monkeypatch, capsys):
    with session_scope(settings) as db:
        db.add(ChatGap(topic_key="bot:gap:zh:mars", origin="bot", lang="zh", question="能寄到火星吗", support=3))
        db.add(ChatGap(topic_key="bot:gap:zh:fee", origin="bot", lang="zh", question="退货运费谁出", alt_questions=["退货运费由谁出"], support=2))
        db.add(KbEntry(entry_key="import:return-fee", origin="import", kind="faq", lang="zh", question="退货要运费吗", answer="质量问题免运费。",
                       fingerprint="x", approved_by="lin", approved_via="cli"))
        mars, fee = (db.scalar(select(ChatGap.id).where(ChatGap.topic_key == k)) for k in ("bot:gap:zh:mars", "bot:gap:zh:fee"))
    _env(monkeypatch, settings)

    with pytest.raises(SystemExit) as usage:  # --entry or --handoff is required: argparse's usage error
        main(["review", "label-gap", str(mars), "--by", "lin"])
    assert usage.value.code == 2
    assert "one of the arguments --entry --handoff is required" in capsys.readouterr().err
    assert main(["review", "label-gap", str(fee), "--entry", "import:nope", "--by", "lin"]) != 0
    err = capsys.readouterr().err
    assert "no active entry 'import:nope'" in err and "Traceback" not in err

    assert main(["review", "label-gap", str(mars), "--handoff", "--by", "lin"]) == 0
    assert "1 phrasing(s) labelled handed off (out of scope); 1 new golden question(s)" in capsys.readouterr().out
    assert main(["review", "label-gap", str(fee), "--entry", "import:return-fee", "--teach", "--by", "lin", "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert (done["entry_key"], done["golden_added"], done["taught"], done["status"]) == ("import:return-fee", 2, ["退货运费谁出", "退货运费由谁出"], "open")
    with session_scope(settings) as db:
        assert sorted(golden_pairs(db)) == [("能寄到火星吗", None), ("退货运费由谁出", "import:return-fee"), ("退货运费谁出", "import:return-fee")]
    assert main(["review", "gaps", "--no-refresh", "--all"]) == 0
    assert "[dismissed]" in capsys.readouterr().out
