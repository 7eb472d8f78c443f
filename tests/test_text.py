"""The text task: reading texts and token ids, their refusals, the model's wiring (embedding,
masked padding, the saved model that takes raw text), the baselines, and one real study."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import to_numpy

from tuner import samples
from tuner.config import TrialConfig
from tuner.data import DataOptions, Texts, fit_tokens, load
from tuner.errors import InputError
from tuner.space import parse_space


def text_options(path: Path, **kw) -> DataOptions:
    return DataOptions(
        path=str(path), task="text", **{"text": "review", "target": ("label",), **kw}
    )


@pytest.fixture
def reviews_csv(tmp_path: Path) -> Path:
    path = tmp_path / "reviews.csv"
    samples.reviews(300, seed=3).to_csv(path, index=False)
    return path


def test_a_table_of_texts_loads_stratified_with_its_classes(reviews_csv: Path) -> None:
    texts = load(text_options(reviews_csv), 1)
    assert isinstance(texts, Texts) and texts.tokens is None
    assert texts.classes == ["negative", "positive"] and texts.n_outputs == 1
    train, val, test = texts.splits
    assert len(train) + len(val) + len(test) == 300 and not set(train) & set(test)
    share = texts.y[train].mean()
    assert abs(texts.y[test].mean() - share) < 0.05, "the split is stratified by label"
    # reviews are 4 to 15 words: the default length is the training texts' 95th percentile
    assert 8 <= texts.default_window <= 15


def test_vocab_sizes_past_the_texts_own_vocabulary_are_noted(reviews_csv: Path, caplog) -> None:
    """A new user's trial: the embedding had 20,000 rows for a few dozen words, and nothing
    said that every vocab_size of the space drew the same model."""
    import logging

    from tuner.launch import note_vocabulary

    texts = load(text_options(reviews_csv), 1)
    whole = len(texts.vocabulary(10**6))  # Keras's own count, padding and [UNK] included
    assert texts.whole_vocabulary() == whole
    # token ids: ids at or beyond vocab_size are out of vocabulary, so the largest counts
    ids = Texts(y=np.zeros(4), classes=[0, 1], splits=(np.arange(4),) * 3)
    ids.tokens = np.array([[1, 5000, 0], [7000, 9000, 0], [1, 2, 3], [4, 0, 0]])
    assert ids.whole_vocabulary() == 9001
    searched = parse_space({"task": "text", "params": {"vocab_size": [whole, 20000]}}, source="t")
    fixed = parse_space({"task": "text", "params": {"vocab_size": 20000}}, source="t")
    with caplog.at_level(logging.INFO, logger="tuner"):
        note_vocabulary(searched, texts, "reviews.csv")
        note_vocabulary(fixed, texts, "reviews.csv")  # one size: no choice to waste
    [line] = [r.getMessage() for r in caplog.records]
    assert line == (
        f"note: reviews.csv: a vocab_size of {whole} keeps every token of the training texts: "
        "the searched sizes beyond it (up to 20000) all draw the same model"
    )


@pytest.mark.parametrize(
    "table, kw, field, says",
    [
        ({"review": ["a b"] * 4, "label": [0, 1] * 2}, {"text": None}, "--text", "--text"),
        ({"review": [1.5, 2.0] * 4, "label": [0, 1] * 4}, {}, "review", "numbers, not text"),
        ({"review": ["a", None, "b", "c"], "label": [0, 1] * 2}, {}, "review", "line 3"),
        ({"review": ["a", "b"] * 4, "label": [0] * 8}, {}, "label", "at least 2 classes"),
        ({"text": ["a", "b"] * 4, "label": [0, 1] * 4}, {}, "review", "no such column"),
    ],
)
def test_bad_text_tables_are_refused_in_one_line(
    tmp_path: Path, table, kw, field: str, says: str
) -> None:
    path = tmp_path / "t.csv"
    pd.DataFrame(table).to_csv(path, index=False)
    with pytest.raises(InputError) as e:
        load(text_options(path, **kw), 1)
    assert e.value.field == field and says in str(e.value) and "\n" not in str(e.value)


def test_nan_drop_skips_rows_with_no_text(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    rows = {"review": ["good", None, "bad", "fine"] * 5, "label": ["p", "p", "n", "p"] * 5}
    pd.DataFrame(rows).to_csv(path, index=False)
    texts = load(text_options(path, nan="drop"), 1)
    assert texts.texts is not None and len(texts.texts) == 15


def test_token_ids_are_right_padded_cut_and_capped() -> None:
    ids = np.array([[0, 0, 5, 9, 2], [3, 0, 4, 0, 0]])
    assert fit_tokens(ids, vocab_size=8, length=4).tolist() == [[5, 1, 2, 0], [3, 4, 0, 0]]
    assert fit_tokens(ids, vocab_size=100, length=7).tolist()[0] == [5, 9, 2, 0, 0, 0, 0]


@pytest.mark.parametrize(
    "x, says",
    [
        (np.zeros((8, 4, 2), "int64"), "samples x length"),
        (np.full((8, 4), 0.5), "integer token ids"),
        (np.full((8, 4), -1), ">= 0"),
    ],
)
def test_bad_token_arrays_are_refused(tmp_path: Path, x: np.ndarray, says: str) -> None:
    path = tmp_path / "ids.npz"
    np.savez(path, X=x, y=np.arange(8) % 2)
    with pytest.raises(InputError, match=says) as e:
        load(DataOptions(path=str(path), task="text"), 1)
    assert e.value.field == "X"


def test_token_ids_from_an_npz(tmp_path: Path) -> None:
    path = tmp_path / "ids.npz"
    rng = np.random.default_rng(0)
    x = np.where(
        np.arange(12) < rng.integers(3, 12, size=(40, 1)), rng.integers(1, 50, (40, 12)), 0
    )
    np.savez(path, X=x[:, ::-1], y=np.arange(40) % 3)  # left-padded, as pad_sequences makes them
    texts = load(DataOptions(path=str(path), task="text"), 1)
    assert texts.tokens is not None and texts.n_outputs == 3
    a = texts.for_config(TrialConfig(vocab_size=20, window=6))
    assert a.x_train.shape[1] == 6 and a.x_train.max() < 20 and a.vectorizer is None
    first = a.x_train[:, 0]
    assert (first != 0).all(), "every text starts at the first step (padding at the end)"


def test_text_parameters_belong_to_text_and_convolutions_do_not() -> None:
    with pytest.raises(InputError, match="does not apply to task 'forecast'"):
        parse_space({"params": {"embedding_dim": 32}}, source="s.yaml")
    for name, value in (("frontend", "conv"), ("fcn", True), ("scaler", "robust")):
        with pytest.raises(InputError, match="does not apply to task 'text'"):
            parse_space({"task": "text", "params": {name: value}}, source="s.yaml")
    with pytest.raises(InputError, match="window: auto applies to forecasts"):
        parse_space({"task": "text", "params": {"window": "auto"}}, source="s.yaml")
    space = parse_space(
        {"task": "text", "objective": "val_accuracy", "params": {"vocab_size": [100, 1000]}},
        source="s.yaml",
    )
    assert space.direction == "maximize"


def test_the_shipped_text_space_loads_with_its_textbook_starts() -> None:
    from tuner.space import load_space

    space = load_space(Path(__file__).parents[1] / "search_spaces" / "text.yaml")
    assert space.task == "text" and len(space.start_with) == 2
    assert space.start_with[0]["bidirectional"] is True and space.start_with[0]["units"] == 64


def test_bag_of_words_beats_the_majority_class(tmp_path: Path) -> None:
    from tuner.baselines import compute

    path = tmp_path / "reviews.csv"
    samples.reviews(1500, seed=4).to_csv(path, index=False)
    texts = load(text_options(path), 1)
    b = compute(texts, 1)
    assert b["task"] == "text" and set(b["scores"]) == {"majority", "bag_of_words"}
    words, majority = b["scores"]["bag_of_words"], b["scores"]["majority"]
    assert words["val_accuracy"] > majority["val_accuracy"] + 0.1
    assert 0 < words["test_loss"] < majority["test_loss"]


# -- Keras: the model and the saved model --------------------------------------------------


def test_the_vocabulary_comes_from_the_training_split_only(tmp_path: Path) -> None:
    pytest.importorskip("keras")
    path = tmp_path / "t.csv"
    rows = [("alpha beta", "a"), ("beta gamma", "b")] * 20 + [("zebra", "a"), ("zebra", "b")]
    pd.DataFrame(rows, columns=["review", "label"]).to_csv(path, index=False)
    texts = load(text_options(path), 1)
    train = set(texts.splits[0])
    seen = " ".join(texts.texts[i] for i in train)
    vocabulary = texts.vocabulary(100)
    assert vocabulary[:2] == ["", "[UNK]"]
    assert set(vocabulary[2:]) == set(seen.split()), "no word of the other splits"
    a = texts.for_config(TrialConfig(vocab_size=3, window=2))  # padding, [UNK] and one word
    assert a.x_train.max() <= 2


@pytest.mark.parametrize("pooling", ["last", "mean", "attention"])
@pytest.mark.parametrize("mask", [True, False])
def test_text_model_shapes_and_masked_padding(pooling: str, mask: bool) -> None:
    keras = pytest.importorskip("keras")
    from tuner.model import build_model

    config = TrialConfig(
        units=(8,), vocab_size=30, embedding_dim=6, mask_padding=mask, pooling=pooling
    )
    model = build_model(config, "text", (7,), 3)
    ids = np.array([[4, 5, 0, 0, 0, 0, 0], [4, 5, 9, 9, 9, 9, 9]])
    out = to_numpy(model(ids))
    assert out.shape == (2, 3) and np.allclose(out.sum(axis=1), 1.0)
    embedding = model.get_layer("embedding")
    assert embedding.input_dim == 30 and embedding.output_dim == 6
    assert embedding.mask_zero is mask
    if pooling == "attention" and mask:  # no attention weight on the padding
        weights = keras.Model(model.input, model.get_layer("attention").output)(ids)
        assert np.allclose(to_numpy(weights)[0, 2:, 0], 0.0)
    # the same weights on the text alone, unpadded: masked padding changes nothing
    short = build_model(config, "text", (2,), 3)
    short.set_weights(model.get_weights())
    alone = to_numpy(short(ids[:1, :2]))[0]
    assert np.allclose(alone, out[0], atol=1e-5) is mask


def test_the_saved_text_model_takes_raw_text(tmp_path: Path, reviews_csv: Path) -> None:
    pytest.importorskip("keras")
    from tuner.device import keras_backend
    from tuner.fitting import fit
    from tuner.model import text_parts
    from tuner.predict import load_model

    texts = load(text_options(reviews_csv), 1)
    config = TrialConfig(units=(8,), vocab_size=50, embedding_dim=8, window=12, epochs=1)
    done = fit(texts, config, objective="val_loss", direction="minimize")
    saved = done.saved_model()
    saved.save(tmp_path / "model.keras")
    back = load_model(tmp_path / "model.keras")  # safe mode, no Lambda, Keras objects only
    raw = np.array(["the battery was not good", "the screen is great"], dtype=object)[:, None]
    ids = to_numpy(done.arrays.vectorizer(raw[:, 0]))
    expected = to_numpy(done.model(ids))
    vectorizer, network = text_parts(back)  # every backend: vectorize, then the network
    again = to_numpy(network(to_numpy(vectorizer(raw[:, 0]))))
    assert np.allclose(again, expected, atol=1e-6)
    if keras_backend() == "tensorflow":  # there, the whole model takes strings too
        assert np.allclose(to_numpy(back(raw)), expected, atol=1e-6)


@pytest.mark.slow
def test_a_text_study_runs_and_predicts_raw_text_from_the_cli(
    space_file, reviews_csv: Path, tmp_path: Path
) -> None:
    import optuna
    from mlflow import MlflowClient

    from tuner.check import check
    from tuner.cli import main
    from tuner.storage import embedded
    from tuner.tracking import Tracker

    space = space_file("""
task: text
objective: val_accuracy
epochs: 2
sampler: random
pruner: none
params:
  vocab_size: [40, 60]
  embedding_dim: 8
  units: 8
  bidirectional: [false, true]
  pooling: [last, attention]
  batch_size: 32
  learning_rate: 0.01
""")
    argv = ["run", str(space), "--data", str(reviews_csv), "--text", "review", "--target", "label"]
    assert main([*argv, "--study", "s", "--trials", "2", "-q"]) == 0
    storage, tracking, _ = embedded()
    study = optuna.load_study(study_name="s", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 2
    best = study.best_trial
    run = MlflowClient(tracking).get_run(best.user_attrs["mlflow_run_id"])
    assert int(run.data.params["window"]) == load(text_options(reviews_csv), 1).default_window
    assert "test_accuracy" in run.data.metrics and run.data.params["embedding_dim"] == "8"
    assert check(study, Tracker(tracking)).ok

    out_file = tmp_path / "predictions.csv"
    assert main(["predict", "--study", "s", "--data", str(reviews_csv), "-o", str(out_file)]) == 0
    out = pd.read_csv(out_file)
    assert list(out.columns) == ["row", "predicted", "p_negative", "p_positive", "actual", "split"]
    assert len(out) == 300 and set(out["predicted"]) <= {"negative", "positive"}
    assert np.allclose(out["p_negative"] + out["p_positive"], 1.0, atol=1e-5)
    test = out[out["split"] == "test"]  # the study's own split: its test accuracy, reproduced
    accuracy = (test["predicted"] == test["actual"]).mean()
    assert accuracy == pytest.approx(run.data.metrics["test_accuracy"], abs=1e-6)
