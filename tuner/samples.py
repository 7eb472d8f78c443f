"""Small generated data sets for the README's examples and the tests (no downloads, no licence).

``python -m tuner.samples reviews reviews.csv`` writes short product reviews labelled
``positive`` / ``negative``. Their sentiment depends on word order, as real reviews' does: a
negation flips the adjective after it ("not good"), and after "but" the second clause decides
("good screen but awful battery" is negative). A bag of single words cannot read either; an
LSTM can.

``python -m tuner.samples tags tags.npz`` writes noisy sensor sequences with a hidden regime
(``low``, ``mid``, ``high``) per step, which persists for a while: one step's reading alone often
misleads, the steps around it tell. ``levels`` writes the same readings with, per step, the level
they are smoothed to (a value: sequence regression). ``reversals`` writes token sequences and
their "translation" (reversed, each word through a dictionary) for seq2seq.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
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


REGIMES = ("low", "mid", "high")


def regimes(n: int = 400, length: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (n x length x 2: a noisy reading and its change) and ``y`` (n x length), the hidden
    regime of each step, which switches with probability 0.08 a step."""
    rng = np.random.default_rng(seed)
    state = rng.integers(0, 3, size=n)
    y = np.empty((n, length), dtype=np.int64)
    for t in range(length):
        switch = rng.random(n) < 0.08
        state = np.where(switch, rng.integers(0, 3, size=n), state)
        y[:, t] = state
    reading = y + rng.normal(0.0, 0.9, size=y.shape)
    change = np.diff(reading, axis=1, prepend=reading[:, :1])
    x = np.stack([reading, change], axis=2).astype(np.float32)
    return x, np.asarray(REGIMES)[y]


def levels(n: int = 400, length: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The readings of ``regimes`` and, per step, their exponential moving average (0.2)."""
    x, _ = regimes(n, length, seed)
    y = np.empty(x.shape[:2])
    y[:, 0] = x[:, 0, 0]
    for t in range(1, length):
        y[:, t] = 0.8 * y[:, t - 1] + 0.2 * x[:, t, 0]
    return x, y


def reversals(n: int = 2000, length: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """Token sequences to "translate": ``encoder`` holds 3 to ``length`` words (ids 1..12, 0 is
    padding), ``decoder_target`` the same words in reverse order, each through a fixed
    dictionary (word ``w`` becomes ``(5 * w) % 13``, ids 1..12 again)."""
    rng = np.random.default_rng(seed)
    source = np.zeros((n, length), dtype=np.int64)
    target = np.zeros((n, length), dtype=np.int64)
    for i in range(n):
        k = int(rng.integers(3, length + 1))
        words = rng.integers(1, 13, size=k)
        source[i, :k] = words
        target[i, :k] = (5 * words[::-1]) % 13
    return {"encoder": source, "decoder_target": target}


def main(argv: list[str]) -> int:
    tables = {"reviews": reviews}
    arrays: dict[str, Callable[[], dict[str, np.ndarray]]] = {
        "tags": lambda: dict(zip(("X", "y"), regimes(), strict=True)),
        "levels": lambda: dict(zip(("X", "y"), levels(), strict=True)),
        "reversals": reversals,
    }
    if len(argv) != 2 or argv[0] not in {**tables, **arrays}:
        kinds = ",".join([*tables, *arrays])
        print(
            f"usage: python -m tuner.samples {{{kinds}}} OUTPUT\n"
            "  reviews    text: short product reviews and their label (a .csv table)\n"
            "  tags       tag: noisy sequences, a hidden regime label per step (.npz)\n"
            "  levels     tag: the same readings, a value per step: their moving average (.npz)\n"
            "  reversals  seq2seq: token sequences, reversed and translated by a fixed code (.npz)",
            file=sys.stderr,
        )
        return 0 if argv in (["--help"], ["-h"]) else 2
    kind, path = argv
    if kind in tables:
        tables[kind]().to_csv(path, index=False)
    else:
        np.savez(path, **arrays[kind]())  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
