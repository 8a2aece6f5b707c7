"""The bot's confidence: per-language models that turn a ranked query's scores into P(right).

Fitted at publish by :mod:`kbops.index.calibration` (which explains how) and
stored in the release manifest; :func:`model_for` reads them for
:mod:`kbops.index.search`. Kept apart from the fitting so the search path
imports no fitting code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kbops.config import Settings


@dataclass(frozen=True)
class LanguageModel:
    """How one language's queries are fused and how sure the bot is of its top answer."""

    dense_weight: float
    coef: tuple[float, float, float]  # a, b (top score), c (margin)
    threshold: float
    source: str = "default"  # "store" (fitted on this KB) or "default" (measured on public data)
    curve: tuple[tuple[float, float, float], ...] = ()  # (confidence threshold, answered share, precision)

    def probability(self, score: float, margin: float) -> float:
        """P(the top answer is right) for its fused score and margin."""
        a, b, c = self.coef
        z = a + b * score + c * margin
        return round(1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0))), 4)

    def with_target(self, target: float) -> LanguageModel:
        """The same model with the threshold for another target precision (read from its curve)."""
        if not self.curve:
            return self
        return LanguageModel(self.dense_weight, self.coef, threshold_for(self.curve, target), self.source, self.curve)


#: Conservative defaults per language, for a KB with too few questions of its own to calibrate on: fitted on
#: public data with the same fusion and features (``bench/bench_confidence.py --split tune --fit-defaults``):
#: English on held-out Bitext phrasings (22 intents in the KB, 5 not: answered precision 0.906 at 0.65, 67 %
#: answered); Chinese on the tune half of the labelled real JDDC customer turns (bench/labels/zh_retrieval.tsv:
#: 64 % have no answer in its KB, and answering them reaches 0.90 only at 0.9, where 1.5 % are answered —
#: a small Chinese KB hands off nearly everything rather than guess). "und" (no letters) is treated as Chinese.
DEFAULTS: Mapping[str, LanguageModel] = {
    "en": LanguageModel(1.0, (-3.11, 3.99, 11.33), 0.65),
    "zh": LanguageModel(0.1, (-3.36, 6.95, -0.35), 0.9),
    "und": LanguageModel(0.1, (-3.36, 6.95, -0.35), 0.9),
}


def model_for(manifest: Mapping[str, Any], lang: str, settings: Settings) -> LanguageModel:
    """The calibrated model of ``lang`` in a release manifest, else the public default."""
    stored = (manifest.get("calibration") or {}).get("languages", {}).get(lang)
    model = from_dict(stored) if stored else DEFAULTS.get(lang, DEFAULTS["zh"])
    calibrated_for = (manifest.get("calibration") or {}).get("target_precision")
    return model.with_target(settings.target_precision) if calibrated_for != settings.target_precision else model


def from_dict(data: Mapping[str, Any]) -> LanguageModel:
    a, b, c = (float(x) for x in data["coef"])
    curve = tuple((float(t), float(ans), float(p)) for t, ans, p in data.get("curve", ()))
    return LanguageModel(float(data["dense_weight"]), (a, b, c), float(data["threshold"]), str(data.get("source", "store")), curve)


def threshold_for(curve: Sequence[tuple[float, float, float]], target: float) -> float:
    """The lowest confidence threshold on ``curve`` whose answered precision reaches ``target``.

    When none does, the threshold of the best precision (the bot answers only
    what it is surest of; the manifest's note says the target is out of reach).
    """
    reaching = [t for t, answered, precision in curve if answered > 0 and precision >= target]
    if reaching:
        return min(reaching)
    answered = [(precision, t) for t, share, precision in curve if share > 0]
    return max(answered)[1] if answered else 1.0
