"""Small generated data sets for the README's examples and the tests (no downloads, no licence).

``python -m tuner.samples reviews reviews.csv`` writes short product reviews labelled
``positive`` / ``negative``. Their sentiment depends on word order, as real reviews' does: a
negation flips the adjective after it ("not good"), and after "but" the second clause decides
("good screen but awful battery" is negative). A bag of single words cannot read either; an
LSTM can.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

GOOD = ("good", "great", "excellent", "lovely", "solid", "fantastic", "reliable", "superb")
BAD = ("bad", "awful", "poor", "terrible", "flimsy", "disappointing", "useless", "broken")
NOUNS = ("battery", "screen", "price", "design", "sound", "camera", "delivery", "keyboard")
FILLER = ("honestly", "overall", "really", "so far", "to be fair", "after a week", "i think")
INTENSIFIERS = ("", "", "very ", "quite ", "truly ", "rather ")


def reviews(n: int = 2000, seed: int = 0, noise: float = 0.05) -> Any:
    """A table of ``n`` reviews: columns ``review`` and ``label``, balanced within a few %; a
    ``noise`` share of labels is flipped (reviewers are not consistent), so no model scores 1."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        text, positive = _review(rng)
        texts.append(text)
        labels.append("positive" if positive != (rng.random() < noise) else "negative")
    return pd.DataFrame({"review": texts, "label": labels})


def _clause(rng: np.random.Generator) -> tuple[str, bool]:
    positive = bool(rng.random() < 0.5)
    negated = bool(rng.random() < 0.35)
    adjective = str(rng.choice(GOOD if positive != negated else BAD))
    noun = str(rng.choice(NOUNS))
    verb = "was" if rng.random() < 0.5 else "is"
    middle = "not " if negated else str(rng.choice(INTENSIFIERS))
    return f"the {noun} {verb} {middle}{adjective}", positive


def _review(rng: np.random.Generator) -> tuple[str, bool]:
    first, positive = _clause(rng)
    parts = [first]
    if rng.random() < 0.5:  # "... but ...": the second clause decides
        second, positive = _clause(rng)
        parts.append(f"but {second}")
    if rng.random() < 0.5:
        parts.insert(0, str(rng.choice(FILLER)))
    return " ".join(parts), positive


def main(argv: list[str]) -> int:
    kinds = {"reviews": reviews}
    if len(argv) != 2 or argv[0] not in kinds:
        print(f"usage: python -m tuner.samples {{{','.join(kinds)}}} OUTPUT.csv", file=sys.stderr)
        return 2
    kinds[argv[0]]().to_csv(argv[1], index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
