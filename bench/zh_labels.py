"""The Chinese retrieval set: real JDDC customer turns labelled with the zh_faq.jsonl entry that answers them.

    .venv/bin/python bench/zh_labels.py [--data $KBOPS_DATASETS/jddc/chat_0.1per.txt]   # summary
    .venv/bin/python bench/zh_labels.py --ask [--split test]    # + ask the bot: recall@1, answered, precision

``bench/labels/zh_retrieval.tsv`` stores references only (session, turn index, text hash); this module
resolves them from the dataset and checks each hash, so a label is never applied to other text.
``bench/labels/zh_faq.jsonl`` is the KB the turns are labelled against (import it with
``kbops import bench/labels/zh_faq.jsonl --approve --by NAME``). Guideline: bench/labels/README.md.

Use (from a script in bench/, which Python puts on the path)::

    from zh_labels import load_labels, FAQ
    for turn in load_labels():          # LabelledTurn(session, turn, text, keys, split, stratum)
        ...                             # keys: frozenset of acceptable entry ids ("import:" + id in the KB); empty = none

``split`` is recomputed here (test when ``int(sha256(session)[:8], 16)`` is odd, else tune) and must match
the file's: report figures on ``test`` only, tune on ``tune``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LABELS = ROOT / "bench" / "labels" / "zh_retrieval.tsv"
FAQ = ROOT / "bench" / "labels" / "zh_faq.jsonl"


@dataclass(frozen=True)
class LabelledTurn:
    session: str
    turn: int
    text: str
    keys: frozenset[str]  # zh_faq.jsonl ids that answer the turn; empty: the KB has no answer
    split: str  # tune | test
    stratum: str


def default_data() -> Path:
    """$KBOPS_DATASETS/jddc/chat_0.1per.txt, else ../shared/datasets next to the checkout."""
    for base in (os.environ.get("KBOPS_DATASETS"), str(ROOT.parent / "shared" / "datasets")):
        if base and (Path(base) / "jddc" / "chat_0.1per.txt").is_file():
            return Path(base) / "jddc" / "chat_0.1per.txt"
    raise SystemExit("error: jddc/chat_0.1per.txt not found; set KBOPS_DATASETS or pass --data")


def split_of(session: str) -> str:
    """The fixed split rule: by session, so every turn of a session falls on the same side."""
    return "test" if int(hashlib.sha256(session.encode()).hexdigest()[:8], 16) % 2 else "tune"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()[:12]


def jddc_rows(data: Path) -> dict[str, list[tuple[str, str]]]:
    """Session id → its rows in file order as (sender, text); sender "0" is the customer, "1" the agent."""
    sessions: dict[str, list[tuple[str, str]]] = {}
    with data.open(encoding="utf-8") as fh:
        for line in fh:
            cols = line.rstrip("\n").split("\t")
            if len(cols) >= 7:
                sessions.setdefault(cols[0], []).append((cols[2].strip(), "\t".join(cols[6:]).strip()))
    return sessions


def faq_ids(path: Path = FAQ) -> set[str]:
    return {json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


def load_labels(labels: Path = LABELS, data: Path | None = None, faq: Path = FAQ) -> list[LabelledTurn]:
    """Every labelled turn with its text from the dataset; raises on a stale reference (text changed,
    not a customer turn, unknown entry id, split disagreeing with the rule)."""
    sessions = jddc_rows(data or default_data())
    known = faq_ids(faq)
    out: list[LabelledTurn] = []
    problems: list[str] = []
    for n, line in enumerate(labels.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#") or line.startswith("session\t"):
            continue
        session, turn, digest, stratum, split, label = line.split("\t")
        rows = sessions.get(session, [])
        index = int(turn)
        if index >= len(rows) or rows[index][0] != "0":
            problems.append(f"{labels.name}:{n}: {session}/{turn} is not a customer turn of the dataset")
            continue
        text = rows[index][1]
        if text_hash(text) != digest:
            problems.append(f"{labels.name}:{n}: {session}/{turn} text changed (hash {text_hash(text)} != {digest})")
            continue
        if split != split_of(session):
            problems.append(f"{labels.name}:{n}: split {split} disagrees with the rule ({split_of(session)})")
        keys = frozenset() if label == "none" else frozenset(label.split("|"))
        if unknown := keys - known:
            problems.append(f"{labels.name}:{n}: unknown entry id(s) {sorted(unknown)}")
        out.append(LabelledTurn(session, index, text, keys, split, stratum))
    if problems:
        raise ValueError(f"{len(problems)} bad label reference(s): " + "; ".join(problems[:5]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="JDDC file (default $KBOPS_DATASETS/jddc/chat_0.1per.txt)")
    parser.add_argument("--ask", action="store_true", help="import zh_faq.jsonl into a fresh KB, publish, and ask every turn")
    parser.add_argument("--split", choices=("tune", "test", "all"), default="test", help="which part --ask reports (default test)")
    args = parser.parse_args()
    turns = load_labels(data=args.data)
    print(f"{len(turns)} labelled turns against {len(faq_ids())} entries of {FAQ.name}")
    for split in ("tune", "test"):
        part = [t for t in turns if t.split == split]
        none = sum(1 for t in part if not t.keys)
        print(f"  {split}: {len(part)} turns, {none} none ({none / len(part):.0%}), {len({t.session for t in part})} sessions")
    print("  strata:", dict(Counter(t.stratum for t in turns)))
    print("  most labelled entries:", Counter(k for t in turns for k in t.keys).most_common(8))
    if args.ask:
        ask([t for t in turns if args.split in ("all", t.split)])


def ask(turns: list[LabelledTurn]) -> dict[str, float]:
    """The bot as a store would run it on this KB: recall@1 over turns with an answer, the share of all
    turns answered (not handed off), and the precision of those answers (an answered ``none`` is wrong)."""
    import tempfile  # the bot's stack is only needed here, not to read labels

    from kbops.config import Settings
    from kbops.db import init_db
    from kbops.pipeline import activate_release, build_release, import_faq
    from kbops.serve.retriever import Retriever

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.load(
            env={"KBOPS_HOME": f"{tmp}/home", "KBOPS_DATABASE_URL": f"sqlite:///{tmp}/kb.sqlite", "KBOPS_SOURCES": f"{tmp}/none.toml"},
            config_file=None,
        )
        init_db(settings)
        result = import_faq(settings, FAQ, approve=True, by="bench")
        if result.errors:
            raise SystemExit("zh_faq.jsonl did not import cleanly: " + "; ".join(result.errors))
        activate_release(settings, build_release(settings).release_id)
        retriever = Retriever(settings)
        right = answered = answered_right = positives = 0
        for t in turns:
            answer = retriever.search(t.text[:1000], top_k=3)
            top = answer.top.entry_key.removeprefix("import:") if answer.top else None
            ok = top in t.keys if t.keys else False
            positives += bool(t.keys)
            right += ok
            if not answer.handoff:
                answered += 1
                answered_right += ok
    figures = {
        "turns": len(turns),
        "recall@1": round(right / max(positives, 1), 3),
        "answered": round(answered / max(len(turns), 1), 3),
        "precision": round(answered_right / max(answered, 1), 3),
    }
    print("  ask:", figures)
    return figures


if __name__ == "__main__":
    main()
