"""The bad-input corpus and the hand-written good set, run through the real gate.

One copy of the kit: bench/gate_corpus.py (bench/ imports nothing from tests/,
so the code lives there and reads this folder's ``corpus/*.jsonl`` as data).
Tests load it by path, as they would any script: ``load``, ``build_kb``,
``insert``, ``outcomes``, ``score``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parents[2] / "bench" / "gate_corpus.py"
_spec = importlib.util.spec_from_file_location("gate_corpus", _PATH)
assert _spec is not None and _spec.loader is not None, f"{_PATH} is missing"
_kit = sys.modules.setdefault("gate_corpus", importlib.util.module_from_spec(_spec))
if not hasattr(_kit, "load"):
    _spec.loader.exec_module(_kit)

CORPUS = _kit.CORPUS
load = _kit.load
build_kb = _kit.build_kb
insert = _kit.insert
outcomes = _kit.outcomes
score = _kit.score
